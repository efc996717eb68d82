"""handover: transfer jobs, their customers and chats

Revision ID: a10b0c0d0e01
Revises: 3667daa6f6cc
Create Date: 2026-12-05 00:01:00

Handover jobs, one row per customer and per chat of a job (each names the outbox command, ≤100 customers
of one pair, that carries it), the local log of transfers WeCom accepted (the 90-day and daily rules), the
resigned colleagues' customers and chats waiting for a takeover with each refresh of that list, and the
corp's handover settings.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a10b0c0d0e01'
down_revision = '3667daa6f6cc'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('handover_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('handover_userid', sa.String(length=64), nullable=False),
    sa.Column('takeover_userids', sa.JSON(), nullable=False),
    sa.Column('distribution', sa.String(length=12), nullable=False),
    sa.Column('notice', sa.Text(), nullable=False),
    sa.Column('group_chats', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=96), nullable=False),
    sa.Column('creator_userid', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handover_jobs'))
    )
    op.create_index('ix_handover_jobs_corp_created', 'handover_jobs', ['corp_id', 'created_at'], unique=False)
    op.create_index('ix_handover_jobs_corp_handover', 'handover_jobs', ['corp_id', 'handover_userid'], unique=False)
    op.create_index('ix_handover_jobs_corp_status', 'handover_jobs', ['corp_id', 'status'], unique=False)
    op.create_table('handover_refreshes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('requested_by', sa.String(length=96), nullable=False),
    sa.Column('requested_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handover_refreshes'))
    )
    op.create_index('ix_handover_refreshes_corp_requested', 'handover_refreshes', ['corp_id', 'requested_at'], unique=False)
    op.create_table('handover_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_limit', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('updated_by', sa.String(length=96), nullable=False),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handover_settings')),
    sa.UniqueConstraint('corp_id', name=op.f('uq_handover_settings_corp_id'))
    )
    op.create_table('handover_transfer_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subject', sa.String(length=8), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('handover_userid', sa.String(length=64), nullable=False),
    sa.Column('takeover_userid', sa.String(length=64), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handover_transfer_log'))
    )
    op.create_index('ix_handover_transfer_log_from', 'handover_transfer_log', ['corp_id', 'subject', 'handover_userid', 'started_at'], unique=False)
    op.create_index('ix_handover_transfer_log_target', 'handover_transfer_log', ['corp_id', 'subject', 'target', 'started_at'], unique=False)
    op.create_table('handover_waiting',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subject', sa.String(length=8), nullable=False),
    sa.Column('handover_userid', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('dimission_at', sa.DateTime(), nullable=True),
    sa.Column('seen_at', sa.DateTime(), nullable=False),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handover_waiting')),
    sa.UniqueConstraint('corp_id', 'subject', 'handover_userid', 'target', name=op.f('uq_handover_waiting_corp_id_subject_handover_userid_target'))
    )
    op.create_index('ix_handover_waiting_corp_handover', 'handover_waiting', ['corp_id', 'handover_userid', 'subject'], unique=False)
    op.create_table('handover_chats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('chat_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('new_owner', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('errcode', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('command_id', sa.Integer(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['handover_jobs.id'], name=op.f('fk_handover_chats_job_id_handover_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handover_chats')),
    sa.UniqueConstraint('job_id', 'chat_id', name=op.f('uq_handover_chats_job_id_chat_id'))
    )
    op.create_index('ix_handover_chats_command', 'handover_chats', ['command_id'], unique=False)
    op.create_table('handover_customers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('external_userid', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('from_relation_id', sa.Integer(), nullable=True),
    sa.Column('takeover_userid', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('errcode', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('command_id', sa.Integer(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('takeover_at', sa.DateTime(), nullable=True),
    sa.Column('poll_after', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('tags_state', sa.String(length=8), nullable=False),
    sa.Column('noted', sa.Boolean(), nullable=False),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['handover_jobs.id'], name=op.f('fk_handover_customers_job_id_handover_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handover_customers')),
    sa.UniqueConstraint('job_id', 'external_userid', name=op.f('uq_handover_customers_job_id_external_userid'))
    )
    op.create_index('ix_handover_customers_command', 'handover_customers', ['command_id'], unique=False)
    op.create_index('ix_handover_customers_corp_ext_status', 'handover_customers', ['corp_id', 'external_userid', 'status'], unique=False)
    op.create_index('ix_handover_customers_corp_status_poll', 'handover_customers', ['corp_id', 'status', 'poll_after'], unique=False)
    op.create_index('ix_handover_customers_customer', 'handover_customers', ['customer_id'], unique=False)
    op.create_index('ix_handover_customers_job_status', 'handover_customers', ['job_id', 'status'], unique=False)


def downgrade():
    op.drop_index('ix_handover_customers_job_status', table_name='handover_customers')
    op.drop_index('ix_handover_customers_customer', table_name='handover_customers')
    op.drop_index('ix_handover_customers_corp_status_poll', table_name='handover_customers')
    op.drop_index('ix_handover_customers_corp_ext_status', table_name='handover_customers')
    op.drop_index('ix_handover_customers_command', table_name='handover_customers')
    op.drop_table('handover_customers')
    op.drop_index('ix_handover_chats_command', table_name='handover_chats')
    op.drop_table('handover_chats')
    op.drop_index('ix_handover_waiting_corp_handover', table_name='handover_waiting')
    op.drop_table('handover_waiting')
    op.drop_index('ix_handover_transfer_log_target', table_name='handover_transfer_log')
    op.drop_index('ix_handover_transfer_log_from', table_name='handover_transfer_log')
    op.drop_table('handover_transfer_log')
    op.drop_table('handover_settings')
    op.drop_index('ix_handover_refreshes_corp_requested', table_name='handover_refreshes')
    op.drop_table('handover_refreshes')
    op.drop_index('ix_handover_jobs_corp_status', table_name='handover_jobs')
    op.drop_index('ix_handover_jobs_corp_handover', table_name='handover_jobs')
    op.drop_index('ix_handover_jobs_corp_created', table_name='handover_jobs')
    op.drop_table('handover_jobs')
