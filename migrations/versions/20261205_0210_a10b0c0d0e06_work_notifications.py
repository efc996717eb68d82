"""work notifications: a new inbox event, outbox command or task wakes every `flask worker` at once

PostgreSQL only. A statement-level trigger on each queue table sends `NOTIFY scrm_work, '<table>'`;
PostgreSQL delivers it when the inserting transaction commits (several in one transaction arrive as
one), to every session that listens (`core.queue.WorkListener`, started by each `flask worker`). The
workers still poll, slowly, in case a notification is lost with a dropped connection. SQLite needs
none of this: its worker runs in the web process and is woken in memory.

Revision ID: a10b0c0d0e06
Revises: a10b0c0d0e05
Create Date: 2026-12-05 02:10:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'a10b0c0d0e06'
down_revision = 'a10b0c0d0e05'
branch_labels = None
depends_on = None

TABLES = ("wecom_inbox", "wecom_outbox", "tasks")


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("""
        CREATE FUNCTION scrm_notify_work() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('scrm_work', TG_TABLE_NAME);
            RETURN NULL;
        END
        $$""")
    for table in TABLES:
        op.execute(f"CREATE TRIGGER scrm_notify_{table} AFTER INSERT ON {table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION scrm_notify_work()")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS scrm_notify_{table} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS scrm_notify_work()")
