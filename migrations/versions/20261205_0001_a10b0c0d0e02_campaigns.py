"""campaigns: mass messages, their tasks and per-customer results

Revision ID: a10b0c0d0e02
Revises: a10b0c0d0e01
Create Date: 2026-12-05 00:01:00

Campaigns (what was composed and where it stands), one task per add_msg_template call, one recipient row
per customer or chat (narrow, and without a foreign key: a campaign may have a million), uploaded
attachments (the bytes), reminders, the corp's settings, and the mass messages this product did not send
(for the receive quota).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a10b0c0d0e02'
down_revision = 'a10b0c0d0e01'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('campaign_foreign_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('msgid', sa.String(length=64), nullable=False),
    sa.Column('chat_type', sa.String(length=8), nullable=False),
    sa.Column('create_type', sa.Integer(), nullable=False),
    sa.Column('creator', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('final', sa.Boolean(), nullable=False),
    sa.Column('checked_at', sa.DateTime(), nullable=True),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_foreign_messages')),
    sa.UniqueConstraint('corp_id', 'msgid', name=op.f('uq_campaign_foreign_messages_corp_id_msgid'))
    )
    op.create_table('campaign_foreign_receipts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('msgid', sa.String(length=64), nullable=False),
    sa.Column('chat_type', sa.String(length=8), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('target_pk', sa.Integer(), nullable=True),
    sa.Column('sent_at', sa.DateTime(), nullable=False),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_foreign_receipts')),
    sa.UniqueConstraint('corp_id', 'msgid', 'target', name=op.f('uq_campaign_foreign_receipts_corp_id_msgid_target'))
    )
    with op.batch_alter_table('campaign_foreign_receipts', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_foreign_receipts_corp_target_pk', ['corp_id', 'target_pk', 'sent_at'], unique=False)

    op.create_table('campaign_recipients',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('target_pk', sa.Integer(), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('sender_userid', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=True),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_recipients')),
    sa.UniqueConstraint('campaign_id', 'target_pk', name=op.f('uq_campaign_recipients_campaign_id_target_pk'))
    )
    with op.batch_alter_table('campaign_recipients', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_recipients_campaign_sender', ['campaign_id', 'sender_userid', 'target_pk'], unique=False)

    op.create_table('campaign_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('quota_count', sa.Integer(), nullable=False),
    sa.Column('quota_period', sa.String(length=8), nullable=False),
    sa.Column('follow_days', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('updated_by', sa.String(length=96), nullable=False),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_settings')),
    sa.UniqueConstraint('corp_id', name=op.f('uq_campaign_settings_corp_id'))
    )
    op.create_table('campaign_uploads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('media_id', sa.String(length=128), nullable=True),
    sa.Column('media_uploaded_at', sa.DateTime(), nullable=True),
    sa.Column('created_by', sa.String(length=96), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_uploads'))
    )
    with op.batch_alter_table('campaign_uploads', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_uploads_corp_sha256', ['corp_id', 'sha256'], unique=False)

    op.create_table('campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('chat_type', sa.String(length=8), nullable=False),
    sa.Column('segment_id', sa.Integer(), nullable=True),
    sa.Column('filter', sa.JSON(), nullable=True),
    sa.Column('owners', sa.JSON(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('attachments', sa.JSON(), nullable=False),
    sa.Column('sender_rule', sa.String(length=16), nullable=False),
    sa.Column('preferred_userids', sa.JSON(), nullable=False),
    sa.Column('scope_userids', sa.JSON(), nullable=True),
    sa.Column('tag_id', sa.String(length=64), nullable=True),
    sa.Column('send_at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=96), nullable=False),
    sa.Column('creator_userid', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('planning_started_at', sa.DateTime(), nullable=True),
    sa.Column('planned_at', sa.DateTime(), nullable=True),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('follow_until', sa.DateTime(), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(), nullable=True),
    sa.Column('cancelled_by', sa.String(length=96), nullable=True),
    sa.Column('plan_cursor', sa.Integer(), nullable=False),
    sa.Column('progress', sa.JSON(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_campaigns_segment_id_segments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index('ix_campaigns_corp_created', ['corp_id', 'created_at'], unique=False)
        batch_op.create_index('ix_campaigns_corp_status_send_at', ['corp_id', 'status', 'send_at'], unique=False)

    op.create_table('campaign_reminders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=96), nullable=False),
    sa.Column('tasks', sa.Integer(), nullable=False),
    sa.Column('refused', sa.Integer(), nullable=False),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_reminders_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_reminders'))
    )
    with op.batch_alter_table('campaign_reminders', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_reminders_campaign_at', ['campaign_id', 'at'], unique=False)

    op.create_table('campaign_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('sender_userid', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('first_pk', sa.Integer(), nullable=False),
    sa.Column('last_pk', sa.Integer(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('command_id', sa.Integer(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('msgid', sa.String(length=64), nullable=True),
    sa.Column('fail_count', sa.Integer(), nullable=False),
    sa.Column('errcode', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('complete', sa.Boolean(), nullable=False),
    sa.Column('notified', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('msg_created_at', sa.DateTime(), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(), nullable=True),
    sa.Column('polled_at', sa.DateTime(), nullable=True),
    sa.Column('next_poll_at', sa.DateTime(), nullable=True),
    sa.Column('polls', sa.Integer(), nullable=False),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_tasks_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_tasks')),
    sa.UniqueConstraint('campaign_id', 'sender_userid', 'seq', name=op.f('uq_campaign_tasks_campaign_id_sender_userid_seq'))
    )
    with op.batch_alter_table('campaign_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_tasks_corp_msgid', ['corp_id', 'msgid'], unique=False)
        batch_op.create_index('ix_campaign_tasks_status_next_poll', ['status', 'next_poll_at'], unique=False)


def downgrade():
    with op.batch_alter_table('campaign_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_tasks_status_next_poll')
        batch_op.drop_index('ix_campaign_tasks_corp_msgid')

    op.drop_table('campaign_tasks')
    with op.batch_alter_table('campaign_reminders', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_reminders_campaign_at')

    op.drop_table('campaign_reminders')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index('ix_campaigns_corp_status_send_at')
        batch_op.drop_index('ix_campaigns_corp_created')

    op.drop_table('campaigns')
    with op.batch_alter_table('campaign_uploads', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_uploads_corp_sha256')

    op.drop_table('campaign_uploads')
    op.drop_table('campaign_settings')
    with op.batch_alter_table('campaign_recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_recipients_campaign_sender')

    op.drop_table('campaign_recipients')
    with op.batch_alter_table('campaign_foreign_receipts', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_foreign_receipts_corp_target_pk')

    op.drop_table('campaign_foreign_receipts')
    op.drop_table('campaign_foreign_messages')
