"""facets refresh: row locks instead of advisory locks, set-based, the same plan with or without statistics

The refresh of `3f7a9c2e5b10` had two faults at scale (issue #12):

- It took one advisory lock per customer, held to commit. PostgreSQL keeps those in a shared table
  of a few thousand slots: 20,000 customers inserted in one transaction failed with "out of shared
  memory", and other sessions on the server could fail while the table was full.
- It computed each customer through the `customer_facets_expected` view (LATERAL subqueries joined
  on corp_id and customer_id). On tables without statistics (a first sync into fresh tables,
  autovacuum off) the planner picked the owner index (corp_id, userid, customer_id) and scanned the
  whole corp once per customer: the sync turned quadratic.

Now a refresh of the customers a statement touched:

1. inserts their missing facets rows (ON CONFLICT DO NOTHING: a concurrent insert of the same row
   is waited for);
2. locks their facets rows FOR UPDATE in customer id order: one refresher per customer at a time,
   as before, but a row lock lives in the row itself, not in the shared lock table, so a
   transaction may hold any number of them;
3. recomputes them in one UPDATE, from a snapshot taken after the lock was granted (so it includes
   what the previous holder committed), reading every source table only by `= ANY(array)` on a
   column an index leads with: the relations of these customers, the tags of those relations, their
   follow-ups. There is no other plan to pick, so none depends on statistics; the cost is
   proportional to what the statement touched.

The view `customer_facets_expected`, which `flask tagging facets` checks and rebuilds against, is
rewritten the same way: aggregates grouped by customer and hash-joined, instead of a LATERAL lookup
per customer that fell into the same index trap (a check of a million customers right after a first
sync would have taken hours).

Revision ID: a10b0c0d0e05
Revises: a10b0c0d0e04 (the console's)
Create Date: 2026-12-05 02:00:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'a10b0c0d0e05'
down_revision = 'a10b0c0d0e04'
branch_labels = None
depends_on = None

REFRESH = """
CREATE OR REPLACE FUNCTION scrm_refresh_customer_facets(ids integer[]) RETURNS void
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    active integer[];
BEGIN
    SELECT array_agg(DISTINCT u ORDER BY u) INTO ids FROM unnest(ids) AS u WHERE u IS NOT NULL;
    IF ids IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO customer_facets (customer_id, corp_id)
    SELECT c.id, c.corp_id FROM customers c WHERE c.id = ANY (ids) ORDER BY c.id
    ON CONFLICT (customer_id) DO NOTHING;
    PERFORM 1 FROM customer_facets f WHERE f.customer_id = ANY (ids) ORDER BY f.customer_id FOR UPDATE;
    -- No condition on status here: the partial indexes on active relations would then qualify, and
    -- without statistics the planner took one of them and filtered the whole corp.
    SELECT coalesce(array_agg(fr.id) FILTER (WHERE fr.status = 'active'), '{}') INTO active
    FROM follow_relations fr WHERE fr.customer_id = ANY (ids);
    UPDATE customer_facets f
    SET corp_id = c.corp_id, followed = coalesce(r.n, 0) > 0, tag_pks = coalesce(t.pks, '{}'),
        added_min = r.added_min, added_max = r.added_max, stage = c.stage, last_followup_at = fu.last_at
    FROM customers c
    LEFT JOIN (SELECT fr.customer_id, count(*) AS n, min(fr.added_at) AS added_min, max(fr.added_at) AS added_max
               FROM follow_relations fr WHERE fr.id = ANY (active) GROUP BY fr.customer_id) r
           ON r.customer_id = c.id
    LEFT JOIN (SELECT fr.customer_id, array_agg(DISTINCT ta.tag_pk ORDER BY ta.tag_pk) AS pks
               FROM tag_assignments ta JOIN follow_relations fr ON fr.id = ta.relation_id
               WHERE ta.relation_id = ANY (active) AND fr.id = ANY (active) GROUP BY fr.customer_id) t
           ON t.customer_id = c.id
    LEFT JOIN (SELECT fu.customer_id, max(fu.created_at) AS last_at
               FROM followups fu WHERE fu.customer_id = ANY (ids) GROUP BY fu.customer_id) fu
           ON fu.customer_id = c.id
    WHERE c.id = ANY (ids) AND f.customer_id = ANY (ids) AND f.customer_id = c.id
      AND (f.corp_id, f.followed, f.tag_pks, f.added_min, f.added_max, f.stage, f.last_followup_at)
          IS DISTINCT FROM (c.corp_id, coalesce(r.n, 0) > 0, coalesce(t.pks, '{}'), r.added_min, r.added_max,
                            c.stage, fu.last_at);
END
$$
"""

EXPECTED = """
CREATE OR REPLACE VIEW customer_facets_expected AS
SELECT c.id AS customer_id, c.corp_id, coalesce(r.n, 0) > 0 AS followed, coalesce(t.pks, '{}') AS tag_pks,
       r.added_min, r.added_max, c.stage, fu.last_at AS last_followup_at
FROM customers c
LEFT JOIN (SELECT fr.customer_id, count(*) AS n, min(fr.added_at) AS added_min, max(fr.added_at) AS added_max
           FROM follow_relations fr WHERE fr.status = 'active' GROUP BY fr.customer_id) r ON r.customer_id = c.id
LEFT JOIN (SELECT fr.customer_id, array_agg(DISTINCT ta.tag_pk ORDER BY ta.tag_pk) AS pks
           FROM tag_assignments ta JOIN follow_relations fr ON fr.id = ta.relation_id
           WHERE fr.status = 'active' GROUP BY fr.customer_id) t ON t.customer_id = c.id
LEFT JOIN (SELECT fu.customer_id, max(fu.created_at) AS last_at FROM followups fu GROUP BY fu.customer_id) fu
       ON fu.customer_id = c.id
"""

OLD_EXPECTED = """
CREATE OR REPLACE VIEW customer_facets_expected AS
SELECT c.id AS customer_id, c.corp_id, r.followed, coalesce(t.pks, '{}') AS tag_pks,
       r.added_min, r.added_max, c.stage, fu.last_at AS last_followup_at
FROM customers c
LEFT JOIN LATERAL (
    SELECT count(*) > 0 AS followed, min(fr.added_at) AS added_min, max(fr.added_at) AS added_max
    FROM follow_relations fr WHERE fr.corp_id = c.corp_id AND fr.customer_id = c.id AND fr.status = 'active') r ON true
LEFT JOIN LATERAL (
    SELECT array_agg(DISTINCT ta.tag_pk ORDER BY ta.tag_pk) AS pks
    FROM tag_assignments ta JOIN follow_relations fr ON fr.id = ta.relation_id
    WHERE ta.customer_id = c.id AND fr.status = 'active') t ON true
LEFT JOIN LATERAL (
    SELECT max(fu.created_at) AS last_at FROM followups fu WHERE fu.customer_id = c.id) fu ON true
"""

# The function of 3f7a9c2e5b10, restored on downgrade.
OLD_REFRESH = """
CREATE OR REPLACE FUNCTION scrm_refresh_customer_facets(ids integer[]) RETURNS void
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    cid integer;
BEGIN
    SELECT array_agg(DISTINCT u ORDER BY u) INTO ids FROM unnest(ids) AS u WHERE u IS NOT NULL;
    IF ids IS NULL THEN
        RETURN;
    END IF;
    IF cardinality(ids) > 500 THEN
        LOCK TABLE customer_facets IN SHARE ROW EXCLUSIVE MODE;
    ELSE
        FOREACH cid IN ARRAY ids LOOP
            PERFORM pg_advisory_xact_lock(1667851, cid);
        END LOOP;
    END IF;
    INSERT INTO customer_facets AS f (customer_id, corp_id, followed, tag_pks, added_min, added_max, stage,
                                      last_followup_at)
    SELECT e.customer_id, e.corp_id, e.followed, e.tag_pks, e.added_min, e.added_max, e.stage, e.last_followup_at
    FROM customer_facets_expected e WHERE e.customer_id = ANY (ids)
    ON CONFLICT (customer_id) DO UPDATE SET corp_id = EXCLUDED.corp_id, followed = EXCLUDED.followed,
        tag_pks = EXCLUDED.tag_pks, added_min = EXCLUDED.added_min, added_max = EXCLUDED.added_max,
        stage = EXCLUDED.stage, last_followup_at = EXCLUDED.last_followup_at
    WHERE (f.corp_id, f.followed, f.tag_pks, f.added_min, f.added_max, f.stage, f.last_followup_at)
          IS DISTINCT FROM (EXCLUDED.corp_id, EXCLUDED.followed, EXCLUDED.tag_pks, EXCLUDED.added_min,
                            EXCLUDED.added_max, EXCLUDED.stage, EXCLUDED.last_followup_at);
END
$$
"""


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(REFRESH)
    op.execute(EXPECTED)


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(OLD_EXPECTED)
    op.execute(OLD_REFRESH)
