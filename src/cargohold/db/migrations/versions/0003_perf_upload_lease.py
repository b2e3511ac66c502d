"""upload lease: one request at a time writes to an upload

Revision ID: 0003_perf
Revises: 0002
Create Date: 2026-11-29 11:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003_perf'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_token', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_column('lease_expires_at')
        batch_op.drop_column('lease_token')
