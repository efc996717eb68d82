"""Customer facets: on PostgreSQL, one narrow row per customer holding what the costly segment filter
nodes read (whether it is still followed, the tags of its active relations, the range of dates it was
added, stage, last follow-up), so a segment over a million customers is one scan of one table.

The table, the `customer_facets_expected` view that defines each row from the source tables, and
the statement-level triggers that refresh rows whenever a source row changes are created by the
migrations `3f7a9c2e5b10` and `a10b0c0d0e05` (read the latter for the locking argument). Nothing in Python writes facets; this
module only describes the table for queries, and checks or rebuilds it against the view
(`flask tagging facets`).

SQLite (the embedded default) has no facets: segments there are answered from the relation tables.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, text
from sqlalchemy.dialects.postgresql import ARRAY

from core.db import UTCDateTime, db, rowcount

log = logging.getLogger("scrm.tagging")

COLUMNS = ("corp_id", "followed", "tag_pks", "added_min", "added_max", "stage", "last_followup_at")

# Its own MetaData: the table exists on PostgreSQL only, outside the ORM models (and autogenerate).
facets = Table(
    "customer_facets", MetaData(),
    Column("customer_id", Integer, primary_key=True),
    Column("corp_id", String(64), nullable=False),
    Column("followed", Boolean, nullable=False),  # has an active follow relation
    Column("tag_pks", ARRAY(Integer), nullable=False),
    Column("added_min", UTCDateTime()),
    Column("added_max", UTCDateTime()),
    Column("stage", String(32)),
    Column("last_followup_at", UTCDateTime()),
)


def enabled() -> bool:
    """True when segment queries should read `customer_facets` (PostgreSQL)."""
    return db.session.get_bind().dialect.name == "postgresql"


def _differs() -> str:
    """FROM … WHERE of the corp's (`:corp`) facets rows that differ from the view."""
    row = ", ".join(f"f.{c}" for c in COLUMNS)
    expected = ", ".join(f"e.{c}" for c in COLUMNS)
    return (f"FROM customer_facets_expected e FULL JOIN customer_facets f ON f.customer_id = e.customer_id "
            f"WHERE coalesce(e.corp_id, f.corp_id) = :corp AND ({row}) IS DISTINCT FROM ({expected})")


def check(corp_id: str, sample: int = 20) -> dict[str, Any]:
    """Compare every facets row of the corp with what the source tables say it should be.

    Returns `{"customers": n, "differing": k, "sample": [customer ids…]}`; `differing` is 0 unless
    someone changed the tables with the triggers disabled (a bulk load, `session_replication_role`).
    """
    if not enabled():
        return {"customers": 0, "differing": 0, "sample": [], "enabled": False}
    params = {"corp": corp_id}
    total = db.session.scalar(text("SELECT count(*) FROM customer_facets WHERE corp_id = :corp"), params)
    ids = list(db.session.scalars(text(
        f"SELECT coalesce(e.customer_id, f.customer_id) AS id {_differs()} ORDER BY 1"), params))
    return {"customers": int(total or 0), "differing": len(ids), "sample": ids[:sample], "enabled": True}


def rebuild(corp_id: str) -> int:
    """Rewrite every facets row of the corp that differs from the source tables; returns how many.

    For after a bulk load done with the triggers off. Takes the same table lock as a large refresh,
    so concurrent writers wait (about 20 s per million customers).
    """
    if not enabled():
        return 0
    db.session.execute(text("LOCK TABLE customer_facets IN SHARE ROW EXCLUSIVE MODE"))
    # Fresh statistics first: right after a bulk load the planner would otherwise take the new tables
    # for empty ones and scan them once per customer.
    db.session.execute(text("ANALYZE customers, follow_relations, tag_assignments, followups"))
    columns = ", ".join(COLUMNS)
    result = db.session.execute(text(
        f"INSERT INTO customer_facets AS f (customer_id, {columns}) "
        f"SELECT e.customer_id, {', '.join('e.' + c for c in COLUMNS)} FROM customer_facets_expected e "
        f"WHERE e.corp_id = :corp "
        f"ON CONFLICT (customer_id) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in COLUMNS)} "
        f"WHERE ({', '.join('f.' + c for c in COLUMNS)}) IS DISTINCT FROM "
        f"({', '.join('EXCLUDED.' + c for c in COLUMNS)})"), {"corp": corp_id})
    changed = rowcount(result)
    db.session.execute(text("ANALYZE customer_facets"))
    log.info("tagging.facets.rebuilt corp=%s changed=%s", corp_id, changed)
    return changed


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic autogenerate filter: `customer_facets` is created by its own migration, not by a model,
    so a comparison of models and database must not propose to drop it."""
    return not (type_ == "table" and name == facets.name and reflected)
