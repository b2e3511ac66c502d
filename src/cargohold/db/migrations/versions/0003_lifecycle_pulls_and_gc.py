"""lifecycle: last pulls, garbage-collection runs and marks

Revision ID: 0003_lifecycle
Revises: 0002
Create Date: 2026-11-29 11:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003_lifecycle'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('manifest_pulls',
    sa.Column('manifest_id', sa.Integer(), nullable=False),
    sa.Column('last_pulled_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['manifest_id'], ['manifests.id'], name=op.f('fk_manifest_pulls_manifest_id_manifests'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('manifest_id', name=op.f('pk_manifest_pulls'))
    )
    op.create_table('gc_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('cursor', sa.Text(), nullable=True),
    sa.Column('holder', sa.String(length=200), nullable=True),
    sa.Column('leased_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('grace_seconds', sa.Integer(), nullable=False),
    sa.Column('upload_ttl_seconds', sa.Integer(), nullable=False),
    sa.Column('uploads_expired', sa.Integer(), nullable=False),
    sa.Column('links_removed', sa.Integer(), nullable=False),
    sa.Column('blobs_removed', sa.Integer(), nullable=False),
    sa.Column('files_removed', sa.Integer(), nullable=False),
    sa.Column('bytes_reclaimed', sa.BigInteger(), nullable=False),
    sa.Column('batches', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gc_runs')),
    sqlite_autoincrement=True
    )
    op.create_table('gc_marks',
    sa.Column('digest', sa.String(length=160), nullable=False),
    sa.Column('marked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_gc_marks'))
    )


def downgrade() -> None:
    op.drop_table('gc_marks')
    op.drop_table('gc_runs')
    op.drop_table('manifest_pulls')
