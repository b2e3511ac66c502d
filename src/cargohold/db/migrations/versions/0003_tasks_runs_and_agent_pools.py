"""ACR Tasks: runs, live logs, build sources, tasks, taskRuns, agent pools

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 10:57:29.679117
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agent_pools',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('registry_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=20), nullable=False),
    sa.Column('location', sa.String(length=64), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('tier', sa.String(length=8), nullable=False),
    sa.Column('os', sa.String(length=16), nullable=False),
    sa.Column('subnet', sa.String(length=400), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], name=op.f('fk_agent_pools_registry_id_registries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_pools')),
    sa.UniqueConstraint('registry_id', 'name', name=op.f('uq_agent_pools_registry_id_name'))
    )
    op.create_table('build_sources',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('registry_id', sa.Integer(), nullable=False),
    sa.Column('relative_path', sa.String(length=200), nullable=False),
    sa.Column('digest', sa.String(length=160), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], name=op.f('fk_build_sources_registry_id_registries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_build_sources')),
    sa.UniqueConstraint('relative_path', name=op.f('uq_build_sources_relative_path'))
    )
    op.create_table('task_run_counters',
    sa.Column('registry_id', sa.Integer(), nullable=False),
    sa.Column('last_number', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], name=op.f('fk_task_run_counters_registry_id_registries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('registry_id', name=op.f('pk_task_run_counters'))
    )
    op.create_table('task_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('registry_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('run_type', sa.String(length=16), nullable=False),
    sa.Column('task_name', sa.String(length=50), nullable=True),
    sa.Column('agent_pool', sa.String(length=50), nullable=True),
    sa.Column('platform', sa.Text(), nullable=False),
    sa.Column('request_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('principal', sa.String(length=80), nullable=False),
    sa.Column('endpoint', sa.String(length=300), nullable=False),
    sa.Column('timeout', sa.Integer(), nullable=False),
    sa.Column('is_archive_enabled', sa.Boolean(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('output_images', sa.Text(), nullable=False),
    sa.Column('base_images', sa.Text(), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('log_digest', sa.String(length=160), nullable=True),
    sa.Column('log_size', sa.BigInteger(), nullable=False),
    sa.Column('job_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], name=op.f('fk_task_runs_registry_id_registries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_runs')),
    sa.UniqueConstraint('registry_id', 'number', name=op.f('uq_task_runs_registry_id_number')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('task_runs', schema=None) as batch_op:
        batch_op.create_index('ix_task_runs_registry_id_status', ['registry_id', 'status'], unique=False)

    op.create_table('tasks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('registry_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('location', sa.String(length=64), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('properties', sa.Text(), nullable=False),
    sa.Column('credentials_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], name=op.f('fk_tasks_registry_id_registries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks')),
    sa.UniqueConstraint('registry_id', 'name', name=op.f('uq_tasks_registry_id_name'))
    )
    op.create_table('task_run_log_chunks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['task_runs.id'], name=op.f('fk_task_run_log_chunks_run_id_task_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_run_log_chunks')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('task_run_log_chunks', schema=None) as batch_op:
        batch_op.create_index('ix_task_run_log_chunks_run_id_position', ['run_id', 'position'], unique=False)

    op.create_table('task_run_resources',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('registry_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('location', sa.String(length=64), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('request_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('force_update_tag', sa.String(length=200), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['registry_id'], ['registries.id'], name=op.f('fk_task_run_resources_registry_id_registries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['task_runs.id'], name=op.f('fk_task_run_resources_run_id_task_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_run_resources')),
    sa.UniqueConstraint('registry_id', 'name', name=op.f('uq_task_run_resources_registry_id_name'))
    )


def downgrade() -> None:
    op.drop_table('task_run_resources')
    with op.batch_alter_table('task_run_log_chunks', schema=None) as batch_op:
        batch_op.drop_index('ix_task_run_log_chunks_run_id_position')

    op.drop_table('task_run_log_chunks')
    op.drop_table('tasks')
    with op.batch_alter_table('task_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_task_runs_registry_id_status')

    op.drop_table('task_runs')
    op.drop_table('task_run_counters')
    op.drop_table('build_sources')
    op.drop_table('agent_pools')
