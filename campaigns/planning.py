"""Planning a campaign at send time: who receives it, who sends each one, who is left out and why.

Everything here is set-based SQL; nothing loops over customers in Python. One query, `decisions`, says
for every customer of the audience (in a range of customer ids) who sends it or why it is excluded:

- the audience is the campaign's filter F (a saved segment's, read now) compiled by
  `tagging.segments.service.compile_filter` within the composer's scope: customers with an ACTIVE
  relation with a staff member the composer may see;
- the sender is ONE of the customer's active relations whose staff member is still active (never a
  colleague who no longer follows them), picked by the campaign's rule: the one who wrote the latest
  follow-up on them (else the earliest relation), the earliest, the latest, or chosen colleagues first;
- excluded, with the reason counted: no active sender (every follower resigned or inactive), and the
  receive quota: a customer who already received `quota_count` corp mass messages this period (our
  deliveries in the period, our messages still waiting for their senders, and what WeCom reported of
  mass messages we did not send: `ForeignReceipt`);
- customers that match F but are no longer followed by anyone in scope are excluded as "lost"
  (`lost_query`, one statement for the whole audience).

`sending.plan` runs the decisions chunk by chunk (one INSERT … SELECT and one commit each, resuming from
`Campaign.plan_cursor`): on PostgreSQL the audience is resolved once (`audience_members`, one scan of the
segment facets) and cut into chunks of `CHUNK` customers; on SQLite the chunks are ranges of customer ids
that each evaluate F. Then `task_ranges` splits each sender's recipients into calls of at most 10,000
customers (2,000 chats) in one GROUP BY. `preview_counts` aggregates the same decisions without writing,
so the composer's counts are what planning will do. (bench/campaigns.py: a million customers.)
"""

from __future__ import annotations

import datetime as dt
import logging
from array import array
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from sqlalchemy import (ColumnElement, Integer, Select, and_, bindparam, case, exists, func, insert, literal, null, or_,
                        select, text, union_all)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by

from core.db import db, rowcount
from core.errors import UserValueError
from core.time import CHINA, to_china
from crm.models import Customer, FollowRelation, FollowUp, GroupChat, Staff
from identity.service import Scope
from tagging.segments.service import compile_filter, filter_condition, get_segment, validate_filter

from .models import (CANCELLED, FOLLOWING, PLANNING, R_DELIVERED, R_EXCLUDED, R_PLANNED, SENDING, X_LOST,
                     X_NO_SENDER, X_QUOTA, Campaign, CampaignRecipient, CampaignSettings, ForeignReceipt)

log = logging.getLogger("scrm.campaigns")

MAX_CUSTOMERS_PER_CALL = 10_000  # add_msg_template's external_userid (wecom-api.md §7.1)
MAX_CHATS_PER_CALL = 2_000  # add_msg_template's chat_id_list
CHUNK = 100_000  # customers (SQLite: customer ids) per planning statement and commit
SENDER_RULES = ("followup", "earliest", "latest", "preferred")
QUOTA_PERIODS = ("day", "month")

R = CampaignRecipient


@dataclass(frozen=True)
class Audience:
    """What the decisions need to know about a campaign, resolved at planning (or preview) time."""

    corp_id: str
    chat_type: str  # single | group
    tree: Any  # F (single)
    owners: tuple[str, ...]  # group: whose chats
    scope_userids: frozenset[str] | None  # None: every staff member
    sender_rule: str
    preferred: tuple[str, ...]
    quota_count: int
    period: tuple[dt.datetime, dt.datetime]  # the quota period planning falls in, [start, end)
    campaign_id: int = 0  # this campaign's own rows are never counted against its quota

    @property
    def scope(self) -> Scope:
        return Scope(all=True) if self.scope_userids is None else Scope(all=False, userids=self.scope_userids)

    @property
    def per_call(self) -> int:
        return MAX_CUSTOMERS_PER_CALL if self.chat_type == "single" else MAX_CHATS_PER_CALL


def corp_settings(corp_id: str) -> CampaignSettings:
    """The corp's campaign settings (defaults, not saved, when never set: 1 per China day, 3 days)."""
    row = db.session.scalar(select(CampaignSettings).where(CampaignSettings.corp_id == corp_id))
    return row if row is not None else CampaignSettings(corp_id=corp_id, quota_count=1, quota_period="day",
                                                         follow_days=3, updated_by="")


def audience_of(campaign: Campaign, now: dt.datetime, conf: CampaignSettings | None = None) -> Audience:
    """The campaign's audience as planning at `now` sees it (F read now; the quota period of `now`).
    Raises `UserValueError` when the saved segment is gone (and `FilterError` when F no longer compiles)."""
    conf = conf or corp_settings(campaign.corp_id)
    tree = None
    if campaign.chat_type == "single":
        tree = campaign_filter(campaign)
        if tree is None:
            raise UserValueError("所选的客户分群已被删除")
        validate_filter(campaign.corp_id, tree)  # a tag deleted since: FilterError, named
    scope = frozenset(campaign.scope_userids) if campaign.scope_userids is not None else None
    return Audience(corp_id=campaign.corp_id, chat_type=campaign.chat_type, tree=tree, owners=tuple(campaign.owners or ()),
                    scope_userids=scope, sender_rule=campaign.sender_rule,
                    preferred=tuple(campaign.preferred_userids or ()), quota_count=max(1, conf.quota_count),
                    period=quota_window(conf.quota_period, now), campaign_id=campaign.id or 0)


def quota_window(period: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The China calendar day (or natural month) `now` falls in, as aware UTC [start, end)."""
    china = to_china(now)
    assert china is not None
    if period == "month":
        start = dt.datetime(china.year, china.month, 1, tzinfo=CHINA)
        end = dt.datetime(china.year + china.month // 12, china.month % 12 + 1, 1, tzinfo=CHINA)
    else:
        start = dt.datetime.combine(china.date(), dt.time(0, 0), tzinfo=CHINA)
        end = start + dt.timedelta(days=1)
    return start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)


def campaign_filter(campaign: Campaign) -> Any:
    """The campaign's F as it is NOW: a saved segment is read at send time, not when composed."""
    if campaign.segment_id is not None:
        segment = get_segment(campaign.corp_id, campaign.segment_id)
        if segment is None:
            return None
        return segment.filter
    return campaign.filter


# ---------------------------------------------------------------- the parts of a decision


def _in_range(column: Any, lo: int | None, hi: int | None) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if lo is not None:
        conds.append(column >= lo)
    if hi is not None:
        conds.append(column < hi)
    return conds


def _nulls_last(column: Any) -> ColumnElement[int]:
    return case((column.is_(None), 1), else_=0)


def sender_choice(a: Audience, lo: int | None, hi: int | None) -> Any:
    """(customer_id, userid): the one sender of each customer with an active relation to an active staff
    member in scope, by the campaign's rule (ties: the older relation)."""
    r = FollowRelation
    conds = [r.corp_id == a.corp_id, r.status == "active", Staff.status == "active", *_in_range(r.customer_id, lo, hi)]
    if a.scope_userids is not None:
        conds.append(r.userid.in_(sorted(a.scope_userids)))
    order: list[Any] = []
    query = select(r.customer_id, r.userid).join(Staff, and_(Staff.corp_id == r.corp_id, Staff.userid == r.userid))
    if a.sender_rule == "preferred" and a.preferred:
        order.append(case({u: i for i, u in enumerate(a.preferred)}, value=r.userid, else_=len(a.preferred)))
    if a.sender_rule in ("followup", "preferred"):
        last = (select(FollowUp.customer_id, FollowUp.userid, func.max(FollowUp.created_at).label("last_at"))
                .where(FollowUp.corp_id == a.corp_id, *_in_range(FollowUp.customer_id, lo, hi))
                .group_by(FollowUp.customer_id, FollowUp.userid).subquery("last_followup"))
        query = query.outerjoin(last, and_(last.c.customer_id == r.customer_id, last.c.userid == r.userid))
        order += [_nulls_last(last.c.last_at), last.c.last_at.desc()]
    if a.sender_rule == "latest":
        order += [_nulls_last(r.added_at), r.added_at.desc()]
    else:
        order += [_nulls_last(r.added_at), r.added_at.asc()]
    order.append(r.id)
    ranked = query.add_columns(func.row_number().over(partition_by=r.customer_id, order_by=order).label("rn")) \
        .where(*conds).subquery("ranked")
    return select(ranked.c.customer_id, ranked.c.userid).where(ranked.c.rn == 1).subquery("chosen")


def open_campaign_ids(a: Audience) -> tuple[list[int], list[int]]:
    """(campaigns whose planned recipients may still receive, campaigns that may have delivered in the
    period): the other campaigns of the same kind whose rows count against this one's quota."""
    others = [Campaign.corp_id == a.corp_id, Campaign.chat_type == a.chat_type, Campaign.id != a.campaign_id]
    in_flight = list(db.session.scalars(select(Campaign.id).where(
        *others, or_(Campaign.status.in_((PLANNING, SENDING, FOLLOWING)),
                     (Campaign.status == CANCELLED) & Campaign.finished_at.is_(None)))))
    recent = list(db.session.scalars(select(Campaign.id).where(
        *others, Campaign.planned_at.is_not(None), Campaign.planned_at < a.period[1],
        or_(Campaign.finished_at.is_(None), Campaign.finished_at >= a.period[0]))))
    return in_flight, recent


def over_quota(a: Audience, lo: int | None, hi: int | None, ids: tuple[list[int], list[int]]) -> Select[Any]:
    """Ids of the customers (chats) that already have `quota_count` corp mass messages this period: what we
    delivered in it, what we sent that may still be confirmed, and what WeCom reported of the others."""
    in_flight, recent = ids
    start, end = a.period
    parts: list[Select[Any]] = [
        select(ForeignReceipt.target_pk.label("target_pk")).where(
            ForeignReceipt.corp_id == a.corp_id, ForeignReceipt.chat_type == a.chat_type,
            ForeignReceipt.target_pk.is_not(None), ForeignReceipt.sent_at >= start, ForeignReceipt.sent_at < end,
            *_in_range(ForeignReceipt.target_pk, lo, hi))]
    if in_flight:
        parts.append(select(R.target_pk).where(R.campaign_id.in_(in_flight), R.status == R_PLANNED,
                                               *_in_range(R.target_pk, lo, hi)))
    if recent:
        parts.append(select(R.target_pk).where(R.campaign_id.in_(recent), R.status == R_DELIVERED,
                                               R.sent_at >= start, R.sent_at < end, *_in_range(R.target_pk, lo, hi)))
    every = union_all(*parts).subquery("received") if len(parts) > 1 else parts[0].subquery("received")
    return select(every.c.target_pk).group_by(every.c.target_pk).having(func.count() >= a.quota_count)


def _verdict(sender: Any, over: ColumnElement[bool], *gone: ColumnElement[bool]) -> tuple[Any, Any]:
    """(status, reason) columns: lost (group: dismissed), no sender, over quota, else planned."""
    whens_status = [(cond, literal(R_EXCLUDED)) for cond in gone] + [
        (sender.is_(None), literal(R_EXCLUDED)), (over, literal(R_EXCLUDED))]
    whens_reason = [(cond, literal(X_LOST)) for cond in gone] + [
        (sender.is_(None), literal(X_NO_SENDER)), (over, literal(X_QUOTA))]
    return (case(*whens_status, else_=literal(R_PLANNED)).label("status"),
            case(*whens_reason, else_=null()).label("reason"))


def decisions(a: Audience, lo: int | None = None, hi: int | None = None,
              ids: tuple[list[int], list[int]] | None = None, members: Sequence[int] | None = None) -> Select[Any]:
    """SELECT target_pk, target, sender_userid, status, reason for the audience's customers (chats) with
    ids in [lo, hi): one row each (lost customers excepted: see `lost_query`).

    Written so that both databases read each table once: the audience, the chosen senders and the
    over-quota ids are each computed once (common table expressions); the senders drive, customers are
    looked up by id, every other set is an uncorrelated IN (a hashed semi-join on PostgreSQL, an ephemeral
    index on SQLite), and the audience without any sender is a NOT IN the senders. The audience is F
    compiled by the segments, or, on PostgreSQL while planning, the chunk's customer ids already resolved
    (`members`, see `audience_members`): F is then evaluated once per campaign, not once per chunk.
    """
    ids = ids if ids is not None else open_campaign_ids(a)
    over = over_quota(a, lo, hi, ids).cte("over_quota")
    if a.chat_type == "group":
        return _chat_decisions(a, lo, hi, select(over.c.target_pk))
    if members is not None:
        chosen_ids = select(func.unnest(bindparam("members", list(members), type_=ARRAY(Integer))).label("id"))
    else:
        chosen_ids = compile_filter(a.corp_id, a.tree, scope=a.scope).where(*_in_range(Customer.id, lo, hi)) \
            .correlate(None)  # an uncorrelated set, evaluated once (never per outer row)
    audience = chosen_ids.cte("audience")
    chosen = sender_choice(a, lo, hi)
    sender = select(chosen.c.customer_id, chosen.c.userid).cte("sender")
    status, reason = _verdict(sender.c.userid, sender.c.customer_id.in_(select(over.c.target_pk)))
    sent = (select(sender.c.customer_id.label("target_pk"), Customer.external_userid.label("target"),
                   sender.c.userid.label("sender_userid"), status, reason)
            .select_from(sender).join(Customer, Customer.id == sender.c.customer_id)
            .where(sender.c.customer_id.in_(select(audience.c.id))))
    unsent = select(audience.c.id).where(audience.c.id.not_in(select(sender.c.customer_id)))
    nobody = (select(Customer.id.label("target_pk"), Customer.external_userid.label("target"),
                     null().label("sender_userid"), literal(R_EXCLUDED).label("status"),
                     literal(X_NO_SENDER).label("reason"))
              .where(*_in_range(Customer.id, lo, hi), Customer.id.in_(unsent)))
    return select(union_all(sent, nobody).subquery("decided"))


def resolves_once(a: Audience) -> bool:
    """True when planning resolves the audience once and passes each chunk its ids (PostgreSQL, customers)."""
    return a.chat_type == "single" and db.session.get_bind().dialect.name == "postgresql"


def audience_members(a: Audience) -> array[int]:
    """Every customer id of the audience, in order, in one compact array (4 bytes each: a million is 4 MB):
    F is evaluated once (one scan of the segment facets, aggregated by the server into one array) and each
    chunk gets its own slice. PostgreSQL only (see `resolves_once`)."""
    tune()
    ids = compile_filter(a.corp_id, a.tree, scope=a.scope).subquery("audience")
    found = db.session.scalar(select(func.array_agg(aggregate_order_by(ids.c.id, ids.c.id))))
    return array("i", found or [])


def _chat_decisions(a: Audience, lo: int | None, hi: int | None, over: Select[Any]) -> Select[Any]:
    """The chats of the chosen owners (in scope): sent by their owner, unless the owner left (no sender),
    the chat was dismissed (lost) or it is over its quota."""
    owners = [o for o in a.owners if a.scope_userids is None or o in a.scope_userids]
    active_owner = case((Staff.status == "active", GroupChat.owner_userid), else_=null())
    status, reason = _verdict(active_owner, GroupChat.id.in_(over), GroupChat.dismissed_at.is_not(None))
    return (select(GroupChat.id.label("target_pk"), GroupChat.chat_id.label("target"),
                   active_owner.label("sender_userid"), status, reason)
            .select_from(GroupChat)
            .outerjoin(Staff, and_(Staff.corp_id == GroupChat.corp_id, Staff.userid == GroupChat.owner_userid))
            .where(GroupChat.corp_id == a.corp_id, GroupChat.owner_userid.in_(owners or [""]),
                   *_in_range(GroupChat.id, lo, hi)))


def lost_query(a: Audience) -> Select[Any]:
    """Customers matching F (its conditions on the customer) that had a relation in scope and have no
    active one left: no longer followed, so nobody may send them anything."""
    r = FollowRelation
    scoped = [r.userid.in_(sorted(a.scope_userids))] if a.scope_userids is not None else []
    had = select(r.customer_id).where(r.corp_id == a.corp_id, *scoped)
    active = exists().where(r.customer_id == Customer.id, r.corp_id == a.corp_id, r.status == "active", *scoped)
    return (select(Customer.id.label("target_pk"), Customer.external_userid.label("target"),
                   null().label("sender_userid"), literal(R_EXCLUDED).label("status"), literal(X_LOST).label("reason"))
            .where(Customer.corp_id == a.corp_id, filter_condition(a.corp_id, a.tree), Customer.id.in_(had), ~active))


# ---------------------------------------------------------------- writing and counting


def _insert(a: Audience, query: Select[Any]) -> int:
    """INSERT the decided rows as the campaign's recipients; how many."""
    rows = query.subquery("decided")
    source = select(literal(a.corp_id), literal(a.campaign_id), rows.c.target_pk, rows.c.target,
                    rows.c.sender_userid, rows.c.status, rows.c.reason)
    stmt = insert(R).from_select(["corp_id", "campaign_id", "target_pk", "target", "sender_userid", "status",
                                  "reason"], source)
    return rowcount(db.session.execute(stmt))


def tune() -> None:
    """PostgreSQL, for this transaction: memory to hash a chunk's ids (never a subplan per customer), and
    no JIT compilation (it costs more than it saves on these statements)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL work_mem = '64MB'"))
        db.session.execute(text("SET LOCAL jit = off"))


def id_bounds(a: Audience) -> tuple[int, int]:
    """The smallest and largest customer (chat) id of the corp: the range the chunks walk."""
    model = GroupChat if a.chat_type == "group" else Customer
    lo, hi = db.session.execute(select(func.min(model.id), func.max(model.id))
                                .where(model.corp_id == a.corp_id)).one()
    return int(lo or 0), int(hi or 0)


def chunks(start: int, lo: int, hi: int, size: int | None = None) -> Iterator[tuple[int, int]]:
    """[lo, hi) ranges of `size` (default `CHUNK`) ids covering [max(start, lo), hi]."""
    size = size or CHUNK
    at = max(start, lo)
    while at <= hi:
        yield at, at + size
        at += size


def plan_chunk(a: Audience, lo: int, hi: int, ids: tuple[list[int], list[int]],
               members: Sequence[int] | None = None) -> int:
    """Decide and write the recipients with ids in [lo, hi) (flushes; the caller commits)."""
    tune()
    return _insert(a, decisions(a, lo, hi, ids, members))


def plan_lost(a: Audience) -> int:
    """Write the lost customers of the whole audience as excluded (single campaigns; flushes)."""
    if a.chat_type != "single":
        return 0
    tune()
    return _insert(a, lost_query(a))


def task_ranges(campaign_id: int, per_call: int) -> list[tuple[str, int, int, int, int]]:
    """(sender, seq, first_pk, last_pk, size) of each call: every sender's planned recipients in id order,
    cut every `per_call` rows, in one GROUP BY over a window."""
    numbered = select(R.sender_userid, R.target_pk, func.row_number().over(
        partition_by=R.sender_userid, order_by=R.target_pk).label("rn")) \
        .where(R.campaign_id == campaign_id, R.status == R_PLANNED).subquery("numbered")
    seq = ((numbered.c.rn - 1) // int(per_call)).label("seq")
    rows = db.session.execute(select(numbered.c.sender_userid, seq, func.min(numbered.c.target_pk),
                                     func.max(numbered.c.target_pk), func.count())
                              .group_by(numbered.c.sender_userid, seq)
                              .order_by(numbered.c.sender_userid, seq)).all()
    return [(str(s), int(q), int(first), int(last), int(n)) for s, q, first, last, n in rows]


def recipient_counts(campaign_id: int) -> dict[str, Any]:
    """Recipients by status, and the excluded by reason: what the pages and the API show."""
    rows = db.session.execute(select(R.status, R.reason, func.count()).where(R.campaign_id == campaign_id)
                              .group_by(R.status, R.reason)).all()
    return summarise((str(s), r, int(n)) for s, r, n in rows)


def summarise(rows: Any) -> dict[str, Any]:
    """(status, reason, n) rows → {"total", "excluded": {reason: n}, status: n…}."""
    counts: dict[str, Any] = {"total": 0, "excluded": {X_LOST: 0, X_QUOTA: 0, X_NO_SENDER: 0}}
    for status, reason, n in rows:
        counts["total"] += n
        if status == R_EXCLUDED:
            counts["excluded"][reason or X_NO_SENDER] = counts["excluded"].get(reason or X_NO_SENDER, 0) + n
        else:
            counts[status] = counts.get(status, 0) + n
    counts["excluded_total"] = sum(counts["excluded"].values())
    return counts


# ---------------------------------------------------------------- preview


def preview_counts(a: Audience, sample_size: int = 10) -> dict[str, Any]:
    """What planning now would do: recipients to send, exclusions by reason, senders and calls, and a
    sample of recipients (the newest customers or chats), without writing anything."""
    tune()
    ids = open_campaign_ids(a)
    decided = decisions(a, ids=ids).subquery("decided")
    per = db.session.execute(select(decided.c.sender_userid, decided.c.status, decided.c.reason, func.count())
                             .group_by(decided.c.sender_userid, decided.c.status, decided.c.reason)).all()
    rows: list[tuple[str, str | None, int]] = [(str(s), r, int(n)) for _, s, r, n in per]
    if a.chat_type == "single":
        lost = int(db.session.scalar(select(func.count()).select_from(lost_query(a).subquery())) or 0)
        rows.append((R_EXCLUDED, X_LOST, lost))
    counts = summarise(rows)
    senders: dict[str, int] = {}
    for sender, status, _, n in per:
        if status == R_PLANNED and sender:
            senders[str(sender)] = senders.get(str(sender), 0) + int(n)
    sample = db.session.execute(select(decided.c.target, decided.c.sender_userid)
                                .where(decided.c.status == R_PLANNED)
                                .order_by(decided.c.target_pk.desc()).limit(sample_size)).all() if sample_size else []
    return {"count": counts.get(R_PLANNED, 0), "total": counts["total"], "excluded": counts["excluded"],
            "excluded_total": counts["excluded_total"], "senders": len(senders),
            "calls": sum(-(-n // a.per_call) for n in senders.values()),
            "per_sender": dict(sorted(senders.items(), key=lambda kv: -kv[1])),
            "sample": [{"target": t, "sender_userid": s} for t, s in sample]}
