"""staff roles: who is admin, manager or marketer in the console and the sidebar

Revision ID: 66b0bcd5e963
Revises: df00c36e22a7
Create Date: 2026-11-24 04:07:44.730617

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '66b0bcd5e963'
down_revision = 'df00c36e22a7'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('staff_roles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('granted_by', sa.String(length=96), nullable=False),
    sa.Column('granted_at', sa.DateTime(), nullable=False),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_roles')),
    sa.UniqueConstraint('corp_id', 'userid', name=op.f('uq_staff_roles_corp_id_userid'))
    )


def downgrade():
    op.drop_table('staff_roles')
