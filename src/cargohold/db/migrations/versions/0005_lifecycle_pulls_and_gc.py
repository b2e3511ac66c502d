"""lifecycle: last pulls, garbage-collection runs and marks, the soft-delete recycle bin

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 11:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
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
    op.create_table('deleted_manifests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('registry_id', sa.Integer(), nullable=False),
    sa.Column('repository', sa.String(length=256), nullable=False),
    sa.Column('digest', sa.String(length=160), nullable=False),
    sa.Column('media_type', sa.String(length=255), nullable=False),
    sa.Column('artifact_type', sa.String(length=255), nullable=True),
    sa.Column('subject_digest', sa.String(length=160), nullable=True),
    sa.Column('annotations', sa.Text(), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('config_media_type', sa.String(length=255), nullable=True),
    sa.Column('architecture', sa.String(length=64), nullable=True),
    sa.Column('os', sa.String(length=64), nullable=True),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('purge_after', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'],
                            name=op.f('fk_deleted_manifests_registry_id_registries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deleted_manifests')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('deleted_manifests', schema=None) as batch_op:
        batch_op.create_index('ix_deleted_manifests_registry_id_repository', ['registry_id', 'repository'],
                              unique=False)
        batch_op.create_index('ix_deleted_manifests_purge_after', ['purge_after'], unique=False)
    op.create_table('deleted_manifest_references',
    sa.Column('deleted_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=160), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['deleted_id'], ['deleted_manifests.id'],
                            name=op.f('fk_deleted_manifest_references_deleted_id_deleted_manifests'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('deleted_id', 'digest', 'kind', name=op.f('pk_deleted_manifest_references'))
    )
    with op.batch_alter_table('deleted_manifest_references', schema=None) as batch_op:
        batch_op.create_index('ix_deleted_manifest_references_digest', ['digest'], unique=False)


def downgrade() -> None:
    op.drop_table('deleted_manifest_references')
    op.drop_table('deleted_manifests')
    op.drop_table('gc_marks')
    op.drop_table('gc_runs')
    op.drop_table('manifest_pulls')
