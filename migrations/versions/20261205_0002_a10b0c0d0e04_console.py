"""console: overview pre-aggregates (daily and monthly events, current customers and tags, refresh state), customer exports

Revision ID: a10b0c0d0e04
Revises: a10b0c0d0e03
Create Date: 2026-12-05 00:02:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a10b0c0d0e04'
down_revision = 'a10b0c0d0e03'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('overview_daily',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=64), nullable=False),
    sa.Column('added', sa.Integer(), nullable=False),
    sa.Column('lost', sa.Integer(), nullable=False),
    sa.Column('followups', sa.Integer(), nullable=False),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_overview_daily')),
    sa.UniqueConstraint('corp_id', 'day', 'userid', 'state', name=op.f('uq_overview_daily_corp_id_day_userid_state'))
    )
    op.create_table('overview_monthly',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('added', sa.Integer(), nullable=False),
    sa.Column('lost', sa.Integer(), nullable=False),
    sa.Column('followups', sa.Integer(), nullable=False),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_overview_monthly')),
    sa.UniqueConstraint('corp_id', 'month', 'userid', name=op.f('uq_overview_monthly_corp_id_month_userid'))
    )
    op.create_table('overview_current',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=64), nullable=False),
    sa.Column('stage', sa.String(length=32), nullable=False),
    sa.Column('customers', sa.Integer(), nullable=False),
    sa.Column('relations', sa.Integer(), nullable=False),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_overview_current')),
    sa.UniqueConstraint('corp_id', 'userid', 'state', 'stage',
                        name=op.f('uq_overview_current_corp_id_userid_state_stage'))
    )
    op.create_table('overview_tag_counts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('userid', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=64), nullable=False),
    sa.Column('tag_pk', sa.Integer(), nullable=False),
    sa.Column('customers', sa.Integer(), nullable=False),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_overview_tag_counts')),
    sa.UniqueConstraint('corp_id', 'userid', 'state', 'tag_pk',
                        name=op.f('uq_overview_tag_counts_corp_id_userid_state_tag_pk'))
    )
    op.create_table('overview_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('relation_watermark', sa.Integer(), nullable=False),
    sa.Column('days_refreshed_at', sa.DateTime(), nullable=True),
    sa.Column('current_refreshed_at', sa.DateTime(), nullable=True),
    sa.Column('full_rebuilt_at', sa.DateTime(), nullable=True),
    sa.Column('rebuild_requested', sa.Boolean(), nullable=False),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_overview_state')),
    sa.UniqueConstraint('corp_id', name=op.f('uq_overview_state_corp_id'))
    )
    op.create_table('customer_exports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('userid', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('parts', sa.Integer(), nullable=False),
    sa.Column('cursor', sa.String(length=256), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=96), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_exports'))
    )
    with op.batch_alter_table('customer_exports', schema=None) as batch_op:
        batch_op.create_index('ix_customer_exports_corp_status', ['corp_id', 'status'], unique=False)

    op.create_table('customer_export_parts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('export_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['export_id'], ['customer_exports.id'],
                            name=op.f('fk_customer_export_parts_export_id_customer_exports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_export_parts')),
    sa.UniqueConstraint('export_id', 'seq', name=op.f('uq_customer_export_parts_export_id_seq'))
    )


def downgrade():
    op.drop_table('customer_export_parts')
    with op.batch_alter_table('customer_exports', schema=None) as batch_op:
        batch_op.drop_index('ix_customer_exports_corp_status')

    op.drop_table('customer_exports')
    op.drop_table('overview_state')
    op.drop_table('overview_tag_counts')
    op.drop_table('overview_current')
    op.drop_table('overview_monthly')
    op.drop_table('overview_daily')
