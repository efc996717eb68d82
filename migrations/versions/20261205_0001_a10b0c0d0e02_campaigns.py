"""campaigns: mass messages, their tasks and per-customer results

Revision ID: a10b0c0d0e02
Revises: a10b0c0d0e01
Create Date: 2026-12-05 00:01:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a10b0c0d0e02'
down_revision = 'a10b0c0d0e01'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
