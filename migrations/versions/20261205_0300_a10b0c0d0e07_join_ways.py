"""join ways and welcome attachments: a channel can be a group-chat 「加入群聊」 way (its auto-created
rooms), group members are found by the State they joined through, and a welcome message carries links

Revision ID: a10b0c0d0e07
Revises: a10b0c0d0e06
Create Date: 2026-12-05 03:00:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = 'a10b0c0d0e07'
down_revision = 'a10b0c0d0e06'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('channels') as batch:
        batch.add_column(sa.Column('auto_create_room', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('room_base_name', sa.String(length=40), nullable=True))
        batch.add_column(sa.Column('room_base_id', sa.Integer(), nullable=True))
    op.create_index('ix_group_chat_members_corp_state', 'group_chat_members', ['corp_id', 'state'])
    with op.batch_alter_table('welcome_messages') as batch:
        batch.add_column(sa.Column('attachments', sa.JSON(), nullable=False, server_default='[]'))


def downgrade():
    with op.batch_alter_table('welcome_messages') as batch:
        batch.drop_column('attachments')
    op.drop_index('ix_group_chat_members_corp_state', table_name='group_chat_members')
    with op.batch_alter_table('channels') as batch:
        batch.drop_column('room_base_id')
        batch.drop_column('room_base_name')
        batch.drop_column('auto_create_room')
