"""OCI data plane

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 05:29:13.217040
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('blobs',
    sa.Column('digest', sa.String(length=160), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_blobs'))
    )
    op.create_table('repositories',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_repositories')),
    sa.UniqueConstraint('name', name=op.f('uq_repositories_name'))
    )
    op.create_table('manifests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=160), nullable=False),
    sa.Column('media_type', sa.String(length=255), nullable=False),
    sa.Column('artifact_type', sa.String(length=255), nullable=True),
    sa.Column('subject_digest', sa.String(length=160), nullable=True),
    sa.Column('annotations', sa.Text(), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('fk_manifests_repository_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_manifests')),
    sa.UniqueConstraint('repository_id', 'digest', name=op.f('uq_manifests_repository_id_digest'))
    )
    with op.batch_alter_table('manifests', schema=None) as batch_op:
        batch_op.create_index('ix_manifests_repository_id_subject_digest', ['repository_id', 'subject_digest'], unique=False)

    op.create_table('repository_blobs',
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=160), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['digest'], ['blobs.digest'], name=op.f('fk_repository_blobs_digest_blobs')),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('fk_repository_blobs_repository_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repository_id', 'digest', name=op.f('pk_repository_blobs'))
    )
    with op.batch_alter_table('repository_blobs', schema=None) as batch_op:
        batch_op.create_index('ix_repository_blobs_digest', ['digest'], unique=False)

    op.create_table('uploads',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('fk_uploads_repository_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_uploads'))
    )
    op.create_table('manifest_references',
    sa.Column('manifest_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=160), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['manifest_id'], ['manifests.id'], name=op.f('fk_manifest_references_manifest_id_manifests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('manifest_id', 'digest', 'kind', name=op.f('pk_manifest_references'))
    )
    with op.batch_alter_table('manifest_references', schema=None) as batch_op:
        batch_op.create_index('ix_manifest_references_digest', ['digest'], unique=False)

    op.create_table('tags',
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('manifest_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['manifest_id'], ['manifests.id'], name=op.f('fk_tags_manifest_id_manifests'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('fk_tags_repository_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repository_id', 'name', name=op.f('pk_tags'))
    )
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.create_index('ix_tags_manifest_id', ['manifest_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.drop_index('ix_tags_manifest_id')

    op.drop_table('tags')
    with op.batch_alter_table('manifest_references', schema=None) as batch_op:
        batch_op.drop_index('ix_manifest_references_digest')

    op.drop_table('manifest_references')
    op.drop_table('uploads')
    with op.batch_alter_table('repository_blobs', schema=None) as batch_op:
        batch_op.drop_index('ix_repository_blobs_digest')

    op.drop_table('repository_blobs')
    with op.batch_alter_table('manifests', schema=None) as batch_op:
        batch_op.drop_index('ix_manifests_repository_id_subject_digest')

    op.drop_table('manifests')
    op.drop_table('repositories')
    op.drop_table('blobs')
