"""geo-replication: regions, blob locations, regional pushes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 11:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('regions',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('store_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('failing_since', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_regions'))
    )
    op.create_table('blob_locations',
    sa.Column('digest', sa.String(length=160), nullable=False),
    sa.Column('region', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['region'], ['regions.name'], name=op.f('fk_blob_locations_region_regions'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('digest', 'region', name=op.f('pk_blob_locations'))
    )
    with op.batch_alter_table('blob_locations', schema=None) as batch_op:
        batch_op.create_index('ix_blob_locations_region', ['region'], unique=False)
    op.create_table('regional_pushes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('registry_id', sa.Integer(), nullable=False),
    sa.Column('region', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('manifest_digest', sa.String(length=160), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], name=op.f('fk_regional_pushes_registry_id_registries'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_regional_pushes'))
    )
    with op.batch_alter_table('regional_pushes', schema=None) as batch_op:
        batch_op.create_index('ix_regional_pushes_region_manifest_digest', ['region', 'manifest_digest'],
                              unique=False)


def downgrade() -> None:
    op.drop_table('regional_pushes')
    op.drop_table('blob_locations')
    op.drop_table('regions')
