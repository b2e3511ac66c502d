"""management plane, event log and job queue

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 08:44:48.783983
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('ordering_key', sa.String(length=100), nullable=True),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('run_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('leased_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_status_ordering_key_id', ['status', 'ordering_key', 'id'], unique=False)
        batch_op.create_index('ix_jobs_status_run_after', ['status', 'run_after'], unique=False)

    op.create_table('operations',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('resource_id', sa.String(length=400), nullable=False),
    sa.Column('location', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_operations'))
    )
    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('registry_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('repository', sa.String(length=256), nullable=True),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], name=op.f('fk_events_registry_id_registries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('uuid', name=op.f('uq_events_uuid')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_registry_id_id', ['registry_id', 'id'], unique=False)

    op.create_table('replications',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('registry_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('location', sa.String(length=64), nullable=False),
    sa.Column('region_endpoint_enabled', sa.Boolean(), nullable=False),
    sa.Column('zone_redundancy', sa.String(length=16), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], name=op.f('fk_replications_registry_id_registries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_replications')),
    sa.UniqueConstraint('registry_id', 'location', name=op.f('uq_replications_registry_id_location')),
    sa.UniqueConstraint('registry_id', 'name', name=op.f('uq_replications_registry_id_name'))
    )
    op.create_table('webhooks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('registry_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('location', sa.String(length=64), nullable=False),
    sa.Column('callback_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('actions', sa.Text(), nullable=False),
    sa.Column('scope', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], name=op.f('fk_webhooks_registry_id_registries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhooks')),
    sa.UniqueConstraint('registry_id', 'name', name=op.f('uq_webhooks_registry_id_name')),
    sqlite_autoincrement=True
    )
    op.create_table('delivery_attempts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('webhook_id', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('request_uri', sa.Text(), nullable=False),
    sa.Column('request_headers', sa.Text(), nullable=False),
    sa.Column('request_body', sa.Text(), nullable=False),
    sa.Column('response_status', sa.Integer(), nullable=True),
    sa.Column('response_reason', sa.String(length=200), nullable=True),
    sa.Column('response_headers', sa.Text(), nullable=True),
    sa.Column('response_body', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_delivery_attempts_event_id_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['webhook_id'], ['webhooks.id'], name=op.f('fk_delivery_attempts_webhook_id_webhooks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_attempts')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_attempts_webhook_id_id', ['webhook_id', 'id'], unique=False)

    with op.batch_alter_table('registries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subscription', sa.String(length=64), server_default='default', nullable=False))
        batch_op.add_column(sa.Column('resource_group', sa.String(length=90), server_default='default', nullable=False))
        batch_op.add_column(sa.Column('location', sa.String(length=64), server_default='local', nullable=False))
        batch_op.add_column(sa.Column('sku', sa.String(length=16), server_default='Standard', nullable=False))
        batch_op.add_column(sa.Column('tags', sa.Text(), server_default='{}', nullable=False))
        batch_op.add_column(sa.Column('settings', sa.Text(), server_default='{}', nullable=False))



    if op.get_bind().dialect.name == "postgresql":
        # Byte order for the spec's lexical listings, in the columns themselves so their indexes serve it.
        op.execute('ALTER TABLE repositories ALTER COLUMN name TYPE VARCHAR(256) COLLATE "C"')
        op.execute('ALTER TABLE tags ALTER COLUMN name TYPE VARCHAR(128) COLLATE "C"')


def downgrade() -> None:
    with op.batch_alter_table('registries', schema=None) as batch_op:
        batch_op.drop_column('settings')
        batch_op.drop_column('tags')
        batch_op.drop_column('sku')
        batch_op.drop_column('location')
        batch_op.drop_column('resource_group')
        batch_op.drop_column('subscription')

    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_attempts_webhook_id_id')

    op.drop_table('delivery_attempts')
    op.drop_table('webhooks')
    op.drop_table('replications')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_registry_id_id')

    op.drop_table('events')
    op.drop_table('operations')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_status_run_after')
        batch_op.drop_index('ix_jobs_status_ordering_key_id')

    op.drop_table('jobs')
