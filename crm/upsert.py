"""Set-based writes of what WeCom reports about customers, shared by the full sync and the worker.

A page of the full sync (100 relations) or a burst of callbacks (a hundred customers re-read with
`externalcontact/get`) is written in a fixed number of statements, whatever its size: one upsert of
the customers, one of their relations, one insert and one delete of tag assignments, and the reads
that decide them. The ORM's one round trip per row cost a sync of a million relations hours and
capped the worker at tens of events a second.

The rules are those of `crm.handlers` and `crm.sync`, written once:
- customers and relations are upserted by WeCom id (`corp_id, external_userid` and
  `corp_id, customer_id, userid`); a relation WeCom lists is active, whatever it was;
- a relation in `protected` (the sync's protectors: a local change waits in the outbox) keeps its
  values and tags and only records that WeCom listed it (`synced_at`);
- a relation with `pending` outbox commands (the handlers) follows WeCom except in what those
  commands change: its remark while a `remark` waits, the tags a `mark_tag` adds or removes;
- for a customer reported `complete` (`externalcontact/get` lists every relation), an active
  relation WeCom no longer lists is lost ("sync"), unless a command on it is pending.

Everything flushes in the caller's transaction; nothing commits.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import JSON, Integer, any_, cast, delete, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY

from core.db import UTCDateTime, db, from_epoch, utcnow

from .models import Customer, FollowRelation, Staff, Tag, TagAssignment, TagGroup

CHUNK = 500  # rows per statement: well under SQLite's and PostgreSQL's bind-parameter limits
REMARK_FIELDS = ("remark", "description", "remark_corp_name", "remark_mobiles")


@dataclass
class Follow:
    """One relation of a customer as WeCom reports it."""

    userid: str
    info: dict[str, Any]  # a `follow_info` (batch/get_by_user) or `follow_user` entry (externalcontact/get)
    tag_ids: list[str]  # the corp tags WeCom lists on it


@dataclass
class Reported:
    """One customer as WeCom reports it: the contact and (some or all of) their relations."""

    contact: dict[str, Any]
    follows: list[Follow]
    complete: bool = False  # True when `follows` is every relation WeCom has for this customer

    @property
    def external_userid(self) -> str:
        return str(self.contact["external_userid"])


@dataclass
class Written:
    """What the write did, for counters, audits and signals."""

    customer_ids: dict[str, int] = field(default_factory=dict)  # external_userid → id
    relation_ids: dict[tuple[str, str], int] = field(default_factory=dict)  # (external_userid, userid) → id
    created_customers: set[str] = field(default_factory=set)
    created_relations: set[tuple[str, str]] = field(default_factory=set)
    healed_relations: int = 0  # listed again after being lost
    protected_relations: int = 0
    lost_relations: list[int] = field(default_factory=list)
    tags_before: dict[int, set[int]] = field(default_factory=dict)  # relation id → tag pks before the write
    tags_after: dict[int, set[int]] = field(default_factory=dict)
    tags_added: int = 0
    tags_removed: int = 0
    unknown_tag_ids: int = 0


def _postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _converter(column: Any) -> Callable[[Any], Any]:
    """How a Python value of this column goes to the driver (what its SQLAlchemy type would do)."""
    if isinstance(column.type, JSON):
        return lambda v: None if v is None else json.dumps(v)
    if isinstance(column.type, UTCDateTime):
        return lambda v: None if v is None else v.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return lambda v: v


_SQL_CACHE: dict[tuple[Any, ...], str] = {}


def _write(table: Any, rows: Sequence[dict[str, Any]], *, conflict: Sequence[str], update: Sequence[str] = (),
           returning: Sequence[str] = ()) -> list[Any]:
    """INSERT rows … ON CONFLICT (conflict) DO UPDATE SET update (or DO NOTHING) RETURNING returning, as one
    statement of SQL written once per shape, run on the session's connection.

    PostgreSQL gets one array parameter per column (`SELECT * FROM unnest(…)`): a short statement that
    psycopg parses once, whatever the number of rows. SQLite gets a multi-row VALUES. Either way the
    values pass through the columns' own conversions (`_converter`), not SQLAlchemy's compiler, which
    cost more than the database's work for a page of a hundred rows."""
    if not rows:
        return []
    columns = list(rows[0])
    converters = [_converter(table.c[c]) for c in columns]
    postgres = _postgres()
    key = (table.name, tuple(columns), tuple(conflict), tuple(update), tuple(returning),
           "pg" if postgres else len(rows))
    sql = _SQL_CACHE.get(key)
    if sql is None:
        if postgres:
            casts = ", ".join(f"CAST(%(c{i})s AS {table.c[c].type.compile(dialect=postgresql.dialect())}[])"
                              for i, c in enumerate(columns))
            source = f"SELECT * FROM unnest({casts})"
        else:
            marks = "(" + ", ".join("?" for _ in columns) + ")"
            source = "VALUES " + ", ".join(marks for _ in rows)
        action = ("DO UPDATE SET " + ", ".join(f'"{c}" = excluded."{c}"' for c in update)) if update else "DO NOTHING"
        sql = (f"INSERT INTO {table.name} ({', '.join(f'{chr(34)}{c}{chr(34)}' for c in columns)}) {source} "
               f"ON CONFLICT ({', '.join(conflict)}) {action}"
               + (f" RETURNING {', '.join(returning)}" if returning else ""))
        _SQL_CACHE[key] = sql
    if postgres:
        params: Any = {f"c{i}": [convert(row[c]) for row in rows]
                       for i, (c, convert) in enumerate(zip(columns, converters))}
    else:
        params = tuple(convert(row[c]) for row in rows for c, convert in zip(columns, converters))
    result = db.session.connection().exec_driver_sql(sql, params)
    return list(result) if returning else []


def _ids_in(column: Any, ids: Sequence[int]) -> Any:
    """`column IN ids`: on PostgreSQL one array parameter (`= ANY`), so the statement stays short."""
    if _postgres():
        return column == any_(cast(list(ids), ARRAY(Integer)))
    return column.in_(list(ids))


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def contact_values(contact: dict[str, Any], seen_at: dt.datetime) -> dict[str, Any]:
    """The customer columns an `external_contact` sets."""
    return {"name": contact.get("name", "") or "", "type": int(contact.get("type", 1) or 1),
            "gender": int(contact.get("gender", 0) or 0), "avatar": contact.get("avatar", "") or "",
            "unionid": contact.get("unionid") or None, "position": contact.get("position", "") or "",
            "corp_name": contact.get("corp_name", "") or "", "corp_full_name": contact.get("corp_full_name", "") or "",
            "gone_at": None, "synced_at": seen_at}


def follow_values(info: dict[str, Any], seen_at: dt.datetime) -> dict[str, Any]:
    """The relation columns a `follow_info` / `follow_user` entry sets (a listed relation is active)."""
    return {"remark": info.get("remark", "") or "", "description": info.get("description", "") or "",
            "remark_corp_name": info.get("remark_corp_name", "") or "",
            "remark_mobiles": list(info.get("remark_mobiles") or []), "added_at": from_epoch(info.get("createtime")),
            "add_way": int(info.get("add_way", 0) or 0), "state": info.get("state", "") or "",
            "oper_userid": info.get("oper_userid", "") or "", "status": "active", "lost_at": None,
            "lost_reason": None, "synced_at": seen_at}


def write_tag_catalog(corp_id: str, groups: list[dict[str, Any]], seen_at: dt.datetime) -> dict[str, int]:
    """The whole corp tag catalog as `get_corp_tag_list` returns it: groups and tags upserted by WeCom
    id (safe while the worker applies a tag callback at the same moment), and what WeCom no longer
    has tombstoned (`deleted_at`; the rows stay so history reads). Counts, with `healed`: rows that
    differed from WeCom before."""
    before_groups = {gid: (name, deleted) for gid, name, deleted in db.session.execute(
        select(TagGroup.group_id, TagGroup.name, TagGroup.deleted_at).where(TagGroup.corp_id == corp_id))}
    before_tags = {tid: (name, group_pk, deleted) for tid, name, group_pk, deleted in db.session.execute(
        select(Tag.tag_id, Tag.name, Tag.group_pk, Tag.deleted_at).where(Tag.corp_id == corp_id))}
    group_rows = [{"corp_id": corp_id, "group_id": g["group_id"], "name": g.get("group_name") or "",
                   "order": int(g.get("order") or 0), "wecom_created_at": from_epoch(g.get("create_time")),
                   "deleted_at": None, "synced_at": seen_at} for g in groups]
    group_pks = {gid: pk for pk, gid in _write(TagGroup.__table__, group_rows, conflict=("corp_id", "group_id"),
                                               update=("name", "order", "wecom_created_at", "deleted_at", "synced_at"),
                                               returning=("id", "group_id"))}
    tag_rows = [{"corp_id": corp_id, "tag_id": t["id"], "group_pk": group_pks[g["group_id"]], "name": t.get("name") or "",
                 "order": int(t.get("order") or 0), "wecom_created_at": from_epoch(t.get("create_time")),
                 "deleted_at": None, "synced_at": seen_at} for g in groups for t in g.get("tag") or []]
    tag_pks: dict[str, int] = {}
    for part in _chunks(tag_rows):
        tag_pks.update({tid: pk for pk, tid in _write(
            Tag.__table__, part, conflict=("corp_id", "tag_id"),
            update=("group_pk", "name", "order", "wecom_created_at", "deleted_at", "synced_at"),
            returning=("id", "tag_id"))})
    healed = sum(1 for r in group_rows if r["group_id"] in before_groups
                 and before_groups[r["group_id"]] != (r["name"], None))
    healed += sum(1 for r in tag_rows if r["tag_id"] in before_tags
                  and before_tags[r["tag_id"]] != (r["name"], r["group_pk"], None))
    gone_groups = [gid for gid, (_, deleted) in before_groups.items() if gid not in group_pks and deleted is None]
    gone_tags = [tid for tid, (_, _, deleted) in before_tags.items() if tid not in tag_pks and deleted is None]
    for model, column, gone in ((TagGroup, TagGroup.group_id, gone_groups), (Tag, Tag.tag_id, gone_tags)):
        for part in _chunks(gone):
            db.session.execute(update(model).where(model.corp_id == corp_id, column.in_(list(part)))
                               .values(deleted_at=seen_at).execution_options(synchronize_session=False))
    _expire(TagGroup, Tag)
    return {"tag_groups": len(group_rows), "tags": len(tag_rows), "tags_healed": healed + len(gone_groups) + len(gone_tags)}


def ensure_staff(corp_id: str, names: dict[str, str]) -> None:
    """Staff rows for these userids (name as given), added where missing; existing rows untouched."""
    now = utcnow()
    rows = [{"corp_id": corp_id, "userid": u, "name": n or u, "department_ids": [], "status": "active",
             "created_at": now} for u, n in sorted(names.items())]
    for part in _chunks(rows):
        _write(Staff.__table__, part, conflict=("corp_id", "userid"))


def write_customers(corp_id: str, reported: Sequence[Reported], seen_at: dt.datetime, *, tag_pks: dict[str, int],
                    source: str, protected: Iterable[int] | Callable[[list[int]], set[int]] = (),
                    pending: dict[int, list[Any]] | Callable[[list[int]], dict[int, list[Any]]] | None = None
                    ) -> Written:
    """Upsert customers, their listed relations and those relations' tags (see the module docstring).

    `tag_pks` maps WeCom tag ids to local pks (a tag id not in it is counted and skipped); `protected`
    is a set of relation ids, or a function that names them among the customers' existing relations;
    `pending` maps relation ids to their pending outbox commands (objects with `.method` and `.args`),
    or is a function that does so for the customers' existing relations.
    """
    out = Written()
    if not reported:
        return out
    by_ext = _merged(reported)
    _write_contacts(corp_id, by_ext, seen_at, out)
    listed = [(ext, f) for ext, item in by_ext.items() for f in item.follows]
    existing = _existing_relations(corp_id, list(out.customer_ids.values()))
    existing_ids = [rel["id"] for rel in existing.values()]
    protected_ids = set(protected(existing_ids)) if callable(protected) else set(protected)
    waiting = (pending(existing_ids) if callable(pending) else pending) or {}
    rows: list[dict[str, Any]] = []
    skipped: list[int] = []
    for ext, follow in listed:
        key = (out.customer_ids[ext], follow.userid)
        rel = existing.get(key)
        if rel is not None and rel["id"] in protected_ids:
            skipped.append(rel["id"])
            out.relation_ids[(ext, follow.userid)] = rel["id"]
            continue
        values = {"corp_id": corp_id, "customer_id": key[0], "userid": follow.userid,
                  **follow_values(follow.info, seen_at), "created_at": seen_at}
        if rel is not None and any(c.method == "remark" for c in waiting.get(rel["id"], ())):
            values.update({name: rel[name] for name in REMARK_FIELDS})  # the pending remark wins
        if rel is None:
            out.created_relations.add((ext, follow.userid))
        elif rel["status"] != "active":
            out.healed_relations += 1
        rows.append(values)
    out.protected_relations = len(skipped)
    for part in _chunks(skipped):
        db.session.execute(update(FollowRelation).where(_ids_in(FollowRelation.id, part)).values(synced_at=seen_at)
                           .execution_options(synchronize_session=False))
    by_customer = {cid: ext for ext, cid in out.customer_ids.items()}
    updated = [c for c in (rows[0] if rows else {}) if c not in ("corp_id", "customer_id", "userid", "created_at")]
    for part in _chunks(rows):
        for rid, cid, userid in _write(FollowRelation.__table__, part, conflict=("corp_id", "customer_id", "userid"),
                                       update=updated, returning=("id", "customer_id", "userid")):
            out.relation_ids[(by_customer[cid], userid)] = rid
    _mark_unlisted_lost(by_ext, existing, out, waiting)
    _write_tags(corp_id, by_ext, tag_pks, source, set(skipped), waiting, out)
    _expire(Customer, FollowRelation, TagAssignment, Staff)  # rows the session holds were changed under it
    return out


def _expire(*models: Any) -> None:
    """Expire the session's instances of these models (not the caller's other objects, e.g. the events)."""
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, models):
            db.session.expire(obj)


def _merged(reported: Sequence[Reported]) -> dict[str, Reported]:
    """One report per customer: a sync page lists a customer once per relation. The last contact and
    the last entry of each relation win."""
    by_ext: dict[str, Reported] = {}
    for item in reported:
        known = by_ext.get(item.external_userid)
        if known is None:
            by_ext[item.external_userid] = Reported(item.contact, list({f.userid: f for f in item.follows}.values()),
                                                    item.complete)
            continue
        follows = {f.userid: f for f in known.follows}
        follows.update({f.userid: f for f in item.follows})
        by_ext[item.external_userid] = Reported(item.contact, list(follows.values()), known.complete or item.complete)
    return by_ext


def _write_contacts(corp_id: str, by_ext: dict[str, Reported], seen_at: dt.datetime, out: Written) -> None:
    exts = sorted(by_ext)
    postgres = _postgres()
    if not postgres:  # PostgreSQL tells which rows the upsert inserted (xmax = 0); SQLite is asked first
        known: set[str] = set()
        for part in _chunks(exts):
            known.update(db.session.scalars(select(Customer.external_userid).where(
                Customer.corp_id == corp_id, Customer.external_userid.in_(list(part)))))
        out.created_customers = set(exts) - known
    now = utcnow()
    rows = [{"corp_id": corp_id, "external_userid": ext, **contact_values(by_ext[ext].contact, seen_at),
             "created_at": now, "updated_at": now} for ext in exts]
    updated = [c for c in rows[0] if c not in ("corp_id", "external_userid", "created_at")]
    returning = ("id", "external_userid", "(xmax = 0)") if postgres else ("id", "external_userid")
    for part in _chunks(rows):
        for found in _write(Customer.__table__, part, conflict=("corp_id", "external_userid"), update=updated,
                            returning=returning):
            out.customer_ids[found[1]] = found[0]
            if postgres and found[2]:
                out.created_customers.add(found[1])


def _by_keys(table: str, key: str, key_type: str, columns: Sequence[str], keys: Sequence[Any]) -> list[Any]:
    """PostgreSQL: rows of `table` whose `key` is one of `keys`, one index lookup per key.

    Written as a LATERAL subquery per key on purpose: a plain `key = ANY(…)` next to `corp_id = …`
    leaves the planner a choice, and on tables without statistics (a first sync, autovacuum off) it
    took an index on corp_id alone and filtered the whole corp for every page. `OFFSET 0` keeps the
    subquery from being flattened into a join (which the planner then answered with a sequential scan
    and a hash, thinking the table small): one index lookup per key, whatever the statistics say."""
    sql = _SQL_CACHE.get((table, key, tuple(columns)))
    if sql is None:
        sql = (f"SELECT {', '.join('t.' + c for c in columns)} FROM unnest(CAST(%(keys)s AS {key_type}[])) AS k(v) "
               f"CROSS JOIN LATERAL (SELECT {', '.join(columns)} FROM {table} WHERE {key} = k.v OFFSET 0) AS t")
        _SQL_CACHE[(table, key, tuple(columns))] = sql
    return list(db.session.connection().exec_driver_sql(sql, {"keys": list(keys)}))


def _existing_relations(corp_id: str, customer_ids: list[int]) -> dict[tuple[int, str], dict[str, Any]]:
    found: dict[tuple[int, str], dict[str, Any]] = {}
    names = ("id", "customer_id", "userid", "status", *REMARK_FIELDS)
    if _postgres():
        mobiles = names.index("remark_mobiles")
        for part in _chunks(sorted(customer_ids)):
            for values in _by_keys("follow_relations", "customer_id", "integer", names, part):
                row = dict(zip(names, values))
                if isinstance(values[mobiles], str):
                    row["remark_mobiles"] = json.loads(values[mobiles])
                found[(row["customer_id"], row["userid"])] = row
        return found
    columns = [getattr(FollowRelation, name) for name in names]
    for part in _chunks(sorted(customer_ids)):
        for row in db.session.execute(select(*columns).where(FollowRelation.corp_id == corp_id,
                                                             FollowRelation.customer_id.in_(list(part)))):
            found[(row.customer_id, row.userid)] = dict(row._mapping)
    return found


def _mark_unlisted_lost(by_ext: dict[str, Reported], existing: dict[tuple[int, str], dict[str, Any]],
                        out: Written, waiting: dict[int, list[Any]]) -> None:
    """Active relations of `complete` customers that WeCom no longer lists (no command pending on them)."""
    listed = {(out.customer_ids[ext], f.userid) for ext, item in by_ext.items() for f in item.follows}
    complete = {out.customer_ids[ext] for ext, item in by_ext.items() if item.complete}
    lost = [rel["id"] for key, rel in existing.items()
            if key[0] in complete and key not in listed and rel["status"] == "active" and rel["id"] not in waiting]
    now = utcnow()
    for part in _chunks(lost):
        db.session.execute(update(FollowRelation).where(_ids_in(FollowRelation.id, part),
                                                        FollowRelation.status == "active")
                           .values(status="lost", lost_at=now, lost_reason="sync")
                           .execution_options(synchronize_session=False))
    out.lost_relations = lost


def _touched_tags(commands: Iterable[Any], tag_pks: dict[str, int]) -> set[int]:
    """Local pks of the tags pending `mark_tag` commands add or remove (those keep their local state)."""
    return {tag_pks[str(t)] for c in commands if c.method == "mark_tag"
            for t in list((c.args or {}).get("add_tag") or []) + list((c.args or {}).get("remove_tag") or [])
            if str(t) in tag_pks}


def _write_tags(corp_id: str, by_ext: dict[str, Reported], tag_pks: dict[str, int], source: str,
                skipped: set[int], waiting: dict[int, list[Any]], out: Written) -> None:
    wanted: dict[int, set[int]] = {}
    customer_of: dict[int, int] = {}
    for ext, item in by_ext.items():
        for follow in item.follows:
            rid = out.relation_ids.get((ext, follow.userid))
            if rid is None or rid in skipped:
                continue
            pks = set()
            for tag_id in follow.tag_ids:
                pk = tag_pks.get(tag_id)
                if pk is None:
                    out.unknown_tag_ids += 1  # rule-group or personal tags, not in the corp catalog
                else:
                    pks.add(pk)
            wanted[rid] = pks
            customer_of[rid] = out.customer_ids[ext]
    current: dict[int, dict[int, int]] = {rid: {} for rid in wanted}
    for part in _chunks(sorted(wanted)):
        rows = (_by_keys("tag_assignments", "relation_id", "integer", ("id", "relation_id", "tag_pk"), part)
                if _postgres() else
                db.session.execute(select(TagAssignment.id, TagAssignment.relation_id, TagAssignment.tag_pk)
                                   .where(TagAssignment.relation_id.in_(list(part)))))
        for aid, rid, pk in rows:
            current[rid][pk] = aid
    # pending mark_tag commands name WeCom tag ids; resolve them through every tag the corp has
    touched_ids = {str(t) for rid in wanted for c in waiting.get(rid, ()) if c.method == "mark_tag"
                   for t in list((c.args or {}).get("add_tag") or []) + list((c.args or {}).get("remove_tag") or [])}
    resolve = dict(tag_pks)
    if touched_ids - set(resolve):
        resolve.update(db.session.execute(select(Tag.tag_id, Tag.id).where(
            Tag.corp_id == corp_id, Tag.tag_id.in_(sorted(touched_ids - set(resolve))))).tuples().all())
    now = utcnow()
    adds: list[dict[str, Any]] = []
    removes: list[int] = []
    for rid, pks in wanted.items():
        keep = _touched_tags(waiting.get(rid, ()), resolve)
        have = current[rid]
        out.tags_before[rid] = set(have)
        for pk in sorted(pks - set(have) - keep):
            adds.append({"corp_id": corp_id, "relation_id": rid, "tag_pk": pk, "customer_id": customer_of[rid],
                         "source": source, "created_at": now})
        gone = set(have) - pks - keep
        removes += [have[pk] for pk in gone]
        out.tags_after[rid] = (set(have) - gone) | (pks - set(have) - keep)
    for part in _chunks(adds):
        _write(TagAssignment.__table__, part, conflict=("relation_id", "tag_pk"))
    for part in _chunks(sorted(removes)):
        db.session.execute(delete(TagAssignment).where(_ids_in(TagAssignment.id, part))
                           .execution_options(synchronize_session=False))
    out.tags_added, out.tags_removed = len(adds), len(removes)


