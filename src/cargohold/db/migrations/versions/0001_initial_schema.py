"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 07:14:47.788553
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('registry', sa.String(length=50), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('identity', sa.String(length=200), nullable=True),
    sa.Column('client_ip', sa.String(length=64), nullable=True),
    sa.Column('repository', sa.String(length=256), nullable=True),
    sa.Column('reference', sa.String(length=200), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_events_identity', ['identity'], unique=False)

    op.create_table('blobs',
    sa.Column('digest', sa.String(length=160), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_blobs'))
    )
    op.create_table('identities',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('secret_hash', sa.String(length=255), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identities')),
    sa.UniqueConstraint('client_id', name=op.f('uq_identities_client_id')),
    sqlite_autoincrement=True
    )
    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures'))
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index('ix_login_failures_key_at', ['key', 'at'], unique=False)

    op.create_table('registries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('login_server', sa.String(length=255), nullable=False),
    sa.Column('anonymous_pull_enabled', sa.Boolean(), nullable=False),
    sa.Column('admin_user_enabled', sa.Boolean(), nullable=False),
    sa.Column('public_network_access', sa.Boolean(), nullable=False),
    sa.Column('network_default_action', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registries')),
    sa.UniqueConstraint('login_server', name=op.f('uq_registries_login_server')),
    sa.UniqueConstraint('name', name=op.f('uq_registries_name')),
    sqlite_autoincrement=True
    )
    op.create_table('admin_credentials',
    sa.Column('registry_id', sa.Integer(), nullable=False),
    sa.Column('slot', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('password_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], name=op.f('fk_admin_credentials_registry_id_registries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('registry_id', 'slot', name=op.f('pk_admin_credentials'))
    )
    op.create_table('network_rules',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('registry_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('cidr', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], name=op.f('fk_network_rules_registry_id_registries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_network_rules')),
    sa.UniqueConstraint('registry_id', 'kind', 'cidr', name=op.f('uq_network_rules_registry_id_kind_cidr'))
    )
    op.create_table('repositories',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('registry_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delete_enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('write_enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('read_enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('list_enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], name=op.f('fk_repositories_registry_id_registries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_repositories')),
    sa.UniqueConstraint('registry_id', 'name', name=op.f('uq_repositories_registry_id_name'))
    )
    op.create_table('role_assignments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('identity_id', sa.Integer(), nullable=False),
    sa.Column('registry_id', sa.Integer(), nullable=True),
    sa.Column('repository', sa.String(length=257), nullable=True),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['identity_id'], ['identities.id'], name=op.f('fk_role_assignments_identity_id_identities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], name=op.f('fk_role_assignments_registry_id_registries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_role_assignments')),
    sa.UniqueConstraint('identity_id', 'registry_id', 'repository', 'role', name=op.f('uq_role_assignments_identity_id_registry_id_repository_role'))
    )
    op.create_table('scope_maps',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('registry_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('actions', sa.Text(), nullable=False),
    sa.Column('system', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], name=op.f('fk_scope_maps_registry_id_registries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scope_maps')),
    sa.UniqueConstraint('registry_id', 'name', name=op.f('uq_scope_maps_registry_id_name'))
    )
    op.create_table('signing_keys',
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('registry_id', sa.Integer(), nullable=True),
    sa.Column('algorithm', sa.String(length=16), nullable=False),
    sa.Column('private_key_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('public_key_pem', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], name=op.f('fk_signing_keys_registry_id_registries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('kid', name=op.f('pk_signing_keys'))
    )
    with op.batch_alter_table('signing_keys', schema=None) as batch_op:
        batch_op.create_index('ix_signing_keys_registry_id', ['registry_id'], unique=False)

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
    sa.Column('config_media_type', sa.String(length=255), nullable=True),
    sa.Column('architecture', sa.String(length=64), nullable=True),
    sa.Column('os', sa.String(length=64), nullable=True),
    sa.Column('quarantine_state', sa.String(length=32), nullable=True),
    sa.Column('quarantine_details', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delete_enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('write_enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('read_enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('list_enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('fk_manifests_repository_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_manifests')),
    sa.UniqueConstraint('repository_id', 'digest', name=op.f('uq_manifests_repository_id_digest'))
    )
    with op.batch_alter_table('manifests', schema=None) as batch_op:
        batch_op.create_index('ix_manifests_repository_id_subject_digest', ['repository_id', 'subject_digest'], unique=False)

    op.create_table('registry_tokens',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('registry_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('scope_map_id', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('password1_hash', sa.String(length=255), nullable=True),
    sa.Column('password1_created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('password1_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('password2_hash', sa.String(length=255), nullable=True),
    sa.Column('password2_created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('password2_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], name=op.f('fk_registry_tokens_registry_id_registries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['scope_map_id'], ['scope_maps.id'], name=op.f('fk_registry_tokens_scope_map_id_scope_maps')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_tokens')),
    sa.UniqueConstraint('registry_id', 'name', name=op.f('uq_registry_tokens_registry_id_name')),
    sqlite_autoincrement=True
    )
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
    sa.Column('delete_enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('write_enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('read_enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('list_enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
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
    op.drop_table('registry_tokens')
    with op.batch_alter_table('manifests', schema=None) as batch_op:
        batch_op.drop_index('ix_manifests_repository_id_subject_digest')

    op.drop_table('manifests')
    with op.batch_alter_table('signing_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_signing_keys_registry_id')

    op.drop_table('signing_keys')
    op.drop_table('scope_maps')
    op.drop_table('role_assignments')
    op.drop_table('repositories')
    op.drop_table('network_rules')
    op.drop_table('admin_credentials')
    op.drop_table('registries')
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_login_failures_key_at')

    op.drop_table('login_failures')
    op.drop_table('identities')
    op.drop_table('blobs')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_identity')
        batch_op.drop_index('ix_audit_events_at')

    op.drop_table('audit_events')
