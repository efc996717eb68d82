"""facets refresh: planned for the customers it is given, every time (plan_cache_mode force_custom_plan)

PL/pgSQL caches the plans of a function's statements per session. After five calls a session may switch
to a generic plan, in which the `ids` array is a parameter of unknown size: a `= ANY(ids)` the plan
keeps as a filter on the inner side of a join is then compared element by element, once per row, and
a refresh of many customers turns quadratic. Measured on PostgreSQL 15 with 25,000 customers: one
refresh of all of them took 255.7 s in a session that had made twenty small refreshes before, and
0.5 s with custom plans (the array is a constant: index conditions, hashed filters). A one-customer
refresh costs the same either way (1.8–1.9 ms both, 2,000 calls each). Large refreshes come from any
statement that touches many customers: a bulk tag job, a handover, a sync page, an import.

Revision ID: a10b0c0d0e08
Revises: a10b0c0d0e07
Create Date: 2026-12-05 03:10:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'a10b0c0d0e08'
down_revision = 'a10b0c0d0e07'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER FUNCTION scrm_refresh_customer_facets(integer[]) SET plan_cache_mode = force_custom_plan")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER FUNCTION scrm_refresh_customer_facets(integer[]) RESET plan_cache_mode")
