"""The customer list (客户): search, the segment builder's filters, three sort orders, keyset pages.

Visibility is the sidebar's (`identity.web.scope_for`): a principal sees a customer through a follow
relation of a staff member in their scope. The status filter says which relations count:

- 跟进中 (active, the default): an active relation in scope;
- 已流失 (lost): a relation in scope, and none of those relations is active any more (for a staff
  member: the customer deleted them, or they the customer; for an admin: nobody follows the customer);
- 全部 (all): any relation in scope.

The filters are the segment builder's form fields compiled by `tagging.segments` into the filter tree F
(`tags` means WeCom's semantics: any tag within a group, every group), so "has tag T" means the same in
the list, in segments, in rules and in campaigns.

Sort orders, each a keyset (never OFFSET), so page 500 costs what page 1 costs:

- 最近添加 (added): walks the relations in scope by `added_at` (an index), taking each customer at their
  newest relation; then the customers whose relations have no time at all;
- 客户名称 (name): walks the customers by name (an index);
- 最近跟进 (followup): walks the follow-ups by time (an index), taking each customer at their newest
  note; then the customers nobody wrote a note about.

The cursor is opaque: base64 of [phase, key, id].
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from sqlalchemy import ColumnElement, String, and_, cast, exists, func, or_, select
from sqlalchemy.orm import aliased

from core.db import db
from core.errors import UserValueError
from crm.models import Customer, FollowRelation, FollowUp, Tag, TagAssignment, TagGroup
from identity.service import Principal, Scope
from identity.web import scope_for
from tagging.segments.routes import LIST_FIELDS, filter_from_form
from tagging.segments.service import count as segment_count
from tagging.segments.service import filter_condition

from ..labels import staff_names

SORTS = {"added": "最近添加", "name": "客户名称", "followup": "最近跟进"}
STATUSES = {"active": "跟进中", "lost": "已流失", "all": "全部"}
SCALAR_FIELDS = ("added_from", "added_to", "no_followup_days", "event_type", "event_path", "event_min_count",
                 "event_within_days")
PAGE_SIZE = 50
MAX_PAGE = 500
Q_MAX = 100


@dataclass(frozen=True)
class ListParams:
    """What the list shows: a search, the filter tree F, the status and the sort."""

    q: str = ""
    tree: dict[str, Any] = field(default_factory=lambda: {"all": []})
    status: str = "active"
    sort: str = "added"

    def as_dict(self) -> dict[str, Any]:
        return {"q": self.q, "tree": self.tree, "status": self.status, "sort": self.sort}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ListParams":
        return cls(q=str(data.get("q") or ""), tree=data.get("tree") or {"all": []},
                   status=str(data.get("status") or "active"), sort=str(data.get("sort") or "added"))

    @property
    def filtered(self) -> bool:
        return bool(self.q or self.tree.get("all"))


def params_from_args(args: Any) -> ListParams:
    """The page's query string → ListParams; a malformed date or number is a `UserValueError`."""
    q = (args.get("q") or "").strip()
    if len(q) > Q_MAX:
        raise UserValueError(f"搜索词最多 {Q_MAX} 个字", field="q")
    status = args.get("status") if args.get("status") in STATUSES else "active"
    sort = args.get("sort") if args.get("sort") in SORTS else "added"
    return ListParams(q=q, tree=filter_from_form(args), status=status, sort=sort)


def form_of(args: Any) -> dict[str, Any]:
    """The filter fields as the page's form shows them again."""
    form: dict[str, Any] = {k: [v for v in args.getlist(k) if v] for k in LIST_FIELDS}
    form.update({k: args.get(k, "") for k in SCALAR_FIELDS})
    return form


# ---------------------------------------------------------------- conditions


def _relations(alias: Any, corp_id: str, scope: Scope, status: str) -> list[ColumnElement[bool]]:
    """The relations that make a customer show up under this status, for this scope."""
    conds: list[ColumnElement[bool]] = [alias.corp_id == corp_id]
    if not scope.all:
        conds.append(alias.userid.in_(sorted(scope.userids)))
    if status == "active":
        conds.append(alias.status == "active")
    elif status == "lost":
        conds.append(alias.status != "active")
    return conds


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _search(corp_id: str, scope: Scope, q: str) -> ColumnElement[bool]:
    """Name, corp name, or a relation in scope's remark, remark corp name, description or phone numbers."""
    pattern = _like(q)
    fr = FollowRelation
    remarks = select(fr.customer_id).where(fr.corp_id == corp_id, or_(
        fr.remark.ilike(pattern, escape="\\"), fr.remark_corp_name.ilike(pattern, escape="\\"),
        fr.description.ilike(pattern, escape="\\"), cast(fr.remark_mobiles, String).ilike(pattern, escape="\\")))
    if not scope.all:  # a colleague's remark outside the caller's scope is not searched
        remarks = remarks.where(fr.userid.in_(sorted(scope.userids)))
    return or_(Customer.name.ilike(pattern, escape="\\"), Customer.corp_name.ilike(pattern, escape="\\"),
               Customer.corp_full_name.ilike(pattern, escape="\\"), Customer.external_userid == q,
               Customer.id.in_(remarks))


@dataclass
class _Query:
    corp_id: str
    scope: Scope
    params: ListParams

    def customer_conditions(self) -> list[ColumnElement[bool]]:
        """Conditions on `Customer`: the filters, the search, and for 已流失 no active relation in scope."""
        conds: list[ColumnElement[bool]] = [Customer.corp_id == self.corp_id]
        if self.params.tree.get("all"):
            conds.append(filter_condition(self.corp_id, self.params.tree))
        if self.params.q:
            conds.append(_search(self.corp_id, self.scope, self.params.q))
        if self.params.status == "lost":
            active = select(FollowRelation.customer_id).where(
                *_relations(FollowRelation, self.corp_id, self.scope, "active"))
            conds.append(Customer.id.not_in(active))
        return conds

    def members(self, alias: Any = FollowRelation) -> ColumnElement[bool]:
        return Customer.id.in_(select(alias.customer_id).where(*self.rel(alias)))

    def rel(self, alias: Any) -> list[ColumnElement[bool]]:
        return _relations(alias, self.corp_id, self.scope, self.params.status)


# ---------------------------------------------------------------- keyset pages


Key = tuple[int, Any, int]  # (phase, sort key, id)


def encode_cursor(key: Key) -> str:
    phase, value, row_id = key
    raw = json.dumps([phase, value.isoformat() if isinstance(value, dt.datetime) else value, row_id],
                     ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str, sort: str) -> Key:
    """A cursor made by `encode_cursor` for this sort; anything else is a `UserValueError`."""
    try:
        phase, value, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(row_id, int) or phase not in (1, 2):
            raise ValueError(cursor)
        if sort != "name" and phase == 1:
            value = dt.datetime.fromisoformat(value)
            if value.tzinfo is None:
                raise ValueError(cursor)
        elif sort == "name" and not isinstance(value, str):
            raise ValueError(cursor)
    except (ValueError, TypeError, UnicodeDecodeError, binascii.Error, json.JSONDecodeError):
        raise UserValueError("翻页链接已失效，请从第一页重新查看", field="cursor") from None
    return int(phase), value, row_id


def _newest_first(key_col: Any, id_col: Any, after: Key | None) -> list[ColumnElement[bool]]:
    if after is None or after[0] != 1:
        return []
    return [or_(key_col < after[1], and_(key_col == after[1], id_col < after[2]))]


def _ids_added(qy: _Query, after: Key | None, limit: int) -> list[Key]:
    r, r2 = aliased(FollowRelation), aliased(FollowRelation)
    cust = qy.customer_conditions()
    rows: list[Key] = []
    if after is None or after[0] == 1:
        newer = exists().where(r2.customer_id == r.customer_id, *qy.rel(r2), r2.added_at.is_not(None),
                               or_(r2.added_at > r.added_at, and_(r2.added_at == r.added_at, r2.id > r.id)))
        query = (select(r.customer_id, r.added_at, r.id).join(Customer, Customer.id == r.customer_id)
                 .where(*qy.rel(r), r.added_at.is_not(None), ~newer, *cust,
                        *_newest_first(r.added_at, r.id, after))
                 .order_by(r.added_at.desc(), r.id.desc()).limit(limit))
        rows = [(1, at, rid) for _, at, rid in db.session.execute(query)]
        after = None
    if len(rows) < limit:  # then the customers whose relations carry no time
        timed = select(r.customer_id).where(*qy.rel(r), r.added_at.is_not(None))
        untimed = select(r2.customer_id).where(*qy.rel(r2), r2.added_at.is_(None))
        rest = (select(Customer.id).where(*cust, Customer.id.in_(untimed), Customer.id.not_in(timed),
                                          *([Customer.id < after[2]] if after else []))
                .order_by(Customer.id.desc()).limit(limit - len(rows)))
        rows += [(2, None, cid) for cid in db.session.scalars(rest)]
    return rows


def _ids_name(qy: _Query, after: Key | None, limit: int) -> list[Key]:
    conds = [*qy.customer_conditions(), qy.members()]
    if after is not None:
        conds.append(or_(Customer.name > after[1], and_(Customer.name == after[1], Customer.id > after[2])))
    query = select(Customer.id, Customer.name).where(*conds).order_by(Customer.name, Customer.id).limit(limit)
    return [(1, name, cid) for cid, name in db.session.execute(query)]


def _ids_followup(qy: _Query, after: Key | None, limit: int) -> list[Key]:
    f, f2 = aliased(FollowUp), aliased(FollowUp)
    cust = [*qy.customer_conditions(), qy.members()]
    rows: list[Key] = []
    if after is None or after[0] == 1:
        newer = exists().where(f2.customer_id == f.customer_id,
                               or_(f2.created_at > f.created_at, and_(f2.created_at == f.created_at, f2.id > f.id)))
        query = (select(f.customer_id, f.created_at, f.id).join(Customer, Customer.id == f.customer_id)
                 .where(f.corp_id == qy.corp_id, ~newer, *cust, *_newest_first(f.created_at, f.id, after))
                 .order_by(f.created_at.desc(), f.id.desc()).limit(limit))
        rows = [(1, at, fid) for _, at, fid in db.session.execute(query)]
        after = None
    if len(rows) < limit:  # then the customers nobody wrote a note about
        noted = select(FollowUp.customer_id).where(FollowUp.corp_id == qy.corp_id)
        rest = (select(Customer.id).where(*cust, Customer.id.not_in(noted),
                                          *([Customer.id < after[2]] if after else []))
                .order_by(Customer.id.desc()).limit(limit - len(rows)))
        rows += [(2, None, cid) for cid in db.session.scalars(rest)]
    return rows


SORT_WALKS = {"added": _ids_added, "name": _ids_name, "followup": _ids_followup}


# ---------------------------------------------------------------- a page


def list_page(principal: Principal, params: ListParams, cursor: str = "", limit: int = PAGE_SIZE) -> dict[str, Any]:
    """One page: `{"rows": [...], "next_cursor": "" | str}` (see the module docstring for the rules)."""
    limit = max(1, min(limit, MAX_PAGE))
    qy = _Query(principal.corp_id, scope_for(principal), params)
    after = decode_cursor(cursor, params.sort) if cursor else None
    keys = _walk(qy, after, limit + 1)
    more = len(keys) > limit
    keys = keys[:limit]
    ids = [cid for cid, _ in keys]
    return {"rows": describe(qy, ids), "next_cursor": encode_cursor(keys[-1][1]) if more and keys else ""}


def _walk(qy: _Query, after: Key | None, limit: int) -> list[tuple[int, Key]]:
    """(customer id, key) pairs of the next `limit` customers in the sort order."""
    sort = qy.params.sort
    if sort == "name":
        return [(k[2], k) for k in _ids_name(qy, after, limit)]
    if sort == "added":
        keys = _ids_added(qy, after, limit)
        customers = _owners_of_relations([k[2] for k in keys if k[0] == 1])
    else:
        keys = _ids_followup(qy, after, limit)
        customers = _customers_of_notes([k[2] for k in keys if k[0] == 1])
    return [(customers[k[2]] if k[0] == 1 else k[2], k) for k in keys]


def _owners_of_relations(relation_ids: list[int]) -> dict[int, int]:
    if not relation_ids:
        return {}
    return dict(db.session.execute(select(FollowRelation.id, FollowRelation.customer_id)
                                   .where(FollowRelation.id.in_(relation_ids))).tuples().all())


def _customers_of_notes(note_ids: list[int]) -> dict[int, int]:
    if not note_ids:
        return {}
    return dict(db.session.execute(select(FollowUp.id, FollowUp.customer_id).where(FollowUp.id.in_(note_ids))).tuples().all())


def total(principal: Principal, params: ListParams) -> int:
    """How many customers the list holds (the segment counter, on facets, for the plain active list)."""
    scope = scope_for(principal)
    if params.status == "active" and not params.q:
        return segment_count(principal.corp_id, params.tree, scope)
    qy = _Query(principal.corp_id, scope, params)
    return int(db.session.scalar(select(func.count()).select_from(Customer)
                                 .where(*qy.customer_conditions(), qy.members())) or 0)


# ---------------------------------------------------------------- what a row shows


def describe(qy: _Query, ids: list[int]) -> list[dict[str, Any]]:
    """The rows of these customers, in this order: who, owners, tags, stage, channels, times."""
    if not ids:
        return []
    customers = {c.id: c for c in db.session.scalars(select(Customer).where(Customer.id.in_(ids)))}
    relations: dict[int, list[FollowRelation]] = {i: [] for i in ids}
    fr = FollowRelation
    scoped = [fr.customer_id.in_(ids)] + ([] if qy.scope.all else [fr.userid.in_(sorted(qy.scope.userids))])
    for rel in db.session.scalars(select(fr).where(*scoped).order_by(fr.added_at.desc(), fr.id)):
        relations[rel.customer_id].append(rel)
    notes = dict(db.session.execute(select(FollowUp.customer_id, func.max(FollowUp.created_at))
                                    .where(FollowUp.customer_id.in_(ids)).group_by(FollowUp.customer_id)).tuples().all())
    tags = _tags(ids, relations)
    userids = {r.userid for rels in relations.values() for r in rels}
    names = staff_names(qy.corp_id, userids)
    rows = []
    for cid in ids:
        c, rels = customers.get(cid), relations[cid]
        if c is None:
            continue
        active = [r for r in rels if r.status == "active"]
        shown = active or rels
        last_note = notes.get(cid)
        if isinstance(last_note, str):  # SQLite hands back an aggregated datetime as text
            last_note = dt.datetime.fromisoformat(last_note).replace(tzinfo=dt.timezone.utc)
        rows.append({
            "id": c.id, "external_userid": c.external_userid, "name": c.name, "avatar": c.avatar, "type": c.type,
            "corp_name": c.corp_name or c.corp_full_name, "position": c.position, "stage": c.stage,
            "remark": next((r.remark for r in shown if r.remark and r.remark != c.name), ""),
            "owners": [{"userid": r.userid, "name": names.get(r.userid, r.userid), "active": r.status == "active"}
                       for r in shown],
            "channels": list(dict.fromkeys(r.state for r in shown)),
            "mobiles": list(dict.fromkeys(m for r in shown for m in (r.remark_mobiles or []) if isinstance(m, str))),
            "tags": tags.get(cid, []),
            "added_at": max((r.added_at for r in shown if r.added_at), default=None),
            "last_followup_at": last_note,
            "lost": not active,
            "lost_at": max((r.lost_at for r in rels if r.lost_at), default=None) if not active else None,
            "lost_reason": next((r.lost_reason for r in rels if r.lost_reason), None) if not active else None,
        })
    return rows


def _tags(ids: list[int], relations: dict[int, list[FollowRelation]]) -> dict[int, list[dict[str, str]]]:
    """Live tags per customer: those on its active relations in view (a lost customer's as they were)."""
    wanted = {r.id for rels in relations.values()
              for r in ([x for x in rels if x.status == "active"] or rels)}
    out: dict[int, list[dict[str, str]]] = {}
    if not wanted:
        return out
    seen: set[tuple[int, str]] = set()
    for cid, rid, tag_id, name, group in db.session.execute(
            select(TagAssignment.customer_id, TagAssignment.relation_id, Tag.tag_id, Tag.name, TagGroup.name)
            .join(Tag, Tag.id == TagAssignment.tag_pk).join(TagGroup, TagGroup.id == Tag.group_pk)
            .where(TagAssignment.customer_id.in_(ids), Tag.deleted_at.is_(None))
            .order_by(TagGroup.order.desc(), TagGroup.id, Tag.order.desc(), Tag.id)):
        if rid in wanted and (cid, tag_id) not in seen:
            seen.add((cid, tag_id))
            out.setdefault(cid, []).append({"tag_id": tag_id, "name": name, "group_name": group})
    return out
