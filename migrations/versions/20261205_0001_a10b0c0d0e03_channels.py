"""channels: contact ways, join ways, attribution, tracked links

Revision ID: a10b0c0d0e03
Revises: a10b0c0d0e02
Create Date: 2026-12-05 00:01:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a10b0c0d0e03'
down_revision = 'a10b0c0d0e02'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
