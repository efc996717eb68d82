"""handover: transfer jobs, their customers and chats

Revision ID: a10b0c0d0e01
Revises: 3667daa6f6cc
Create Date: 2026-12-05 00:01:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a10b0c0d0e01'
down_revision = '3667daa6f6cc'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
