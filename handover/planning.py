"""Who goes to whom, and who cannot move and why, decided before anything is sent to WeCom.

`plan` takes the customers and chats a manager chose (`Candidate`, `ChatCandidate`), checks WeCom's limits
from local history, and distributes the rest to the takeover colleagues in calls of ≤100:

- already in transfer (40129): an open item of any job (queued, or waiting for WeCom's 24 h);
- transferred twice in 90 days (40128, on-job only): two entries in the local `TransferLog`;
- the takeover at the customer limit (`HandoverSettings.customer_limit`, WeCom's 50,000 by default): their
  active customers plus those on their way to them; what no takeover can take cannot move;
- chats: 2 on-job transfers per chat in 90 days, 300 chats a day from one owner (China day), the owner
  outside the app's visibility (not among the staff WeCom lists), a chat already being moved.

Distribution (`allocate`): the target share of each takeover (even; by current load = fewest active
customers first, filling up to a common level; department = only the takeovers sharing a department with
the person handing over, evenly), then whole calls of 100 are given to whoever is furthest below their target,
so a job of n customers costs ⌈n/100⌉ calls whatever the number of takeovers (a partial call only at the end,
or where a takeover's capacity runs out).

Everything is read set-based, a chunk of ids at a time: a plan of 10,000 customers is a few dozen queries.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

from sqlalchemy import func, select

from core.db import db
from core.time import CHINA, china_day_start
from crm.models import FollowRelation, GroupChat, Staff

from .models import (H_QUEUED, ONJOB, OPEN_CUSTOMER, SUBJECT_CHAT, SUBJECT_CUSTOMER, HandoverChat, HandoverCustomer,
                     HandoverSettings, TransferLog)

PER_CALL = 100  # customers or chats per WeCom call (wecom-api.md §5.1, §5.5)
WINDOW = dt.timedelta(days=90)  # on-job transfers: at most 2 per customer (or chat) in 90 natural days
MAX_PER_WINDOW = 2
CHATS_PER_DAY = 300  # chats handed over from one owner per day
DEFAULT_LIMIT = 50_000  # WeCom's customers per member
CHUNK = 500
DISTRIBUTIONS = ("even", "load", "department")
DISTRIBUTION_LABELS = {"even": "平均分配", "load": "按当前客户数（少者优先）", "department": "同部门成员平均分配"}

# Why a customer or chat cannot move, or did not: local checks, WeCom's codes, transfer outcomes. Plain Chinese.
REASONS: dict[str, str] = {
    "40128": "90 天内已在职转接过 2 次（企业微信限制每位客户 90 天内最多 2 次）",
    "40129": "该客户正在转接中，需等当前转接结束",
    "40130": "接替成员与原跟进成员相同",
    "40131": "不是原跟进成员的客户（可能已删除或已流失）",
    "not_waiting": "不在该离职成员的待分配客户中（可能已分配）",
    "limit": "接替成员的客户数已达上限",
    "40096": "客户 ID 无效",
    "40097": "原跟进成员尚未离职，请使用在职转接",
    "40098": "接替成员尚未实名认证",
    "40099": "接替成员的客户数已达上限",
    "40100": "该成员的客户已在转接流程中",
    "41054": "接替成员未激活或已离职",
    "60111": "成员不存在",
    "84061": "客户与原跟进成员已不是好友",
    "84074": "接替成员没有客户联系权限",
    "40058": "请求参数不正确",
    "refused": "客户拒绝了转接",
    "takeover_limit": "接替成员的客户数已达企业微信上限",
    "no_record": "企业微信没有接替记录（客户在接替前已与原跟进成员解除关系）",
    "unknown": "企业微信未应答，转接结果未知",
    "no_takeover": "没有可用的接替成员",
    "error": "企业微信拒绝了此次转接",
    # chats (wecom-api.md §5.5)
    "chat_not_owned": "不是该成员作为群主的客户群",
    "chat_busy": "该群正在转接中",
    "chat_90d": "该群 90 天内已在职转接过 2 次（企业微信限制）",
    "chat_daily": "今天从该成员转出的群已达 300 个（企业微信限制），请明天再转接",
    "chat_visibility": "群主不在应用的可见范围内，无法转接",
    "chat_gone": "该群已解散",
    "90500": "群主并未离职，请使用在职转接",
    "90501": "该群不是客户群",
    "90502": "群主已经离职，请使用离职继承",
    "90503": "群成员已满，新群主无法加入",
    "90504": "新群主与原群主相同",
    "90507": "离职成员的群正在继承处理中",
    "90508": "离职成员的群已经被继承",
    "90509": "不是企业微信的客户群",
    "49008": "该群已解散",
    "45009": "今天从该成员转出的群已达上限，请明天再转接",
}


def describe(reason: str | None, errcode: int | None = None, limit: int | None = None) -> str:
    """The plain-Chinese reason of a cannot-move or a failure (with WeCom's code where it gave one)."""
    key = reason or (str(errcode) if errcode is not None else "")
    text = REASONS.get(key) or (REASONS.get(str(errcode)) if errcode is not None else None)
    if text is None:
        return f"企业微信拒绝了此次转接（错误码 {errcode}）" if errcode is not None else "未知原因"
    if key == "limit" and limit:
        return f"{text}（{limit:,} 位）"
    code = key if key.isdigit() else (str(errcode) if errcode else "")
    return f"{text}（{code}）" if code else text


@dataclass
class Candidate:
    """A customer to hand over: who, their relation to the person handing over, and (retry) a fixed takeover."""

    external_userid: str
    customer_id: int | None
    relation_id: int | None
    name: str
    takeover: str | None = None


@dataclass
class ChatCandidate:
    chat_id: str
    name: str
    members: int = 0
    new_owner: str | None = None


@dataclass
class Move:
    external_userid: str
    customer_id: int | None
    relation_id: int | None
    name: str
    takeover: str


@dataclass
class Skip:
    external_userid: str
    customer_id: int | None
    relation_id: int | None
    name: str
    reason: str
    takeover: str | None = None


@dataclass
class ChatMove:
    chat_id: str
    name: str
    new_owner: str


@dataclass
class ChatSkip:
    chat_id: str
    name: str
    reason: str
    new_owner: str | None = None


@dataclass
class Plan:
    """The outcome of `plan`: moves grouped in calls (`batches`: takeover, indices into `moves`), skips."""

    kind: str
    handover_userid: str
    takeovers: list[str]
    distribution: str
    limit: int
    loads: dict[str, int]
    moves: list[Move] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    batches: list[tuple[str, list[int]]] = field(default_factory=list)
    chat_moves: list[ChatMove] = field(default_factory=list)
    chat_skips: list[ChatSkip] = field(default_factory=list)
    chat_batches: list[tuple[str, list[int]]] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return len(self.batches) + len(self.chat_batches)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def customer_limit(corp_id: str) -> int:
    """The corp's customer limit per takeover (WeCom's 50,000 unless the admin set another)."""
    value = db.session.scalar(select(HandoverSettings.customer_limit).where(HandoverSettings.corp_id == corp_id))
    return int(value) if value else DEFAULT_LIMIT


# ---------------------------------------------------------------- reading what the checks need


def in_transfer(corp_id: str, external_userids: Sequence[str]) -> set[str]:
    """Customers with an open item in any job (queued or waiting for WeCom's 24 h)."""
    busy: set[str] = set()
    for part in chunks(list(external_userids)):
        busy.update(db.session.scalars(select(HandoverCustomer.external_userid).where(
            HandoverCustomer.corp_id == corp_id, HandoverCustomer.external_userid.in_(list(part)),
            HandoverCustomer.status.in_(OPEN_CUSTOMER))))
    return busy


def recent_transfers(corp_id: str, subject: str, targets: Sequence[str], now: dt.datetime) -> Counter[str]:
    """On-job transfers of each target started in the last 90 days (the local log)."""
    counts: Counter[str] = Counter()
    for part in chunks(list(targets)):
        counts.update(dict(db.session.execute(
            select(TransferLog.target, func.count()).where(
                TransferLog.corp_id == corp_id, TransferLog.subject == subject, TransferLog.kind == ONJOB,
                TransferLog.target.in_(list(part)), TransferLog.started_at >= now - WINDOW)
            .group_by(TransferLog.target)).tuples().all()))
    return counts


def customer_loads(corp_id: str, userids: Sequence[str]) -> dict[str, int]:
    """Active customers of each takeover, plus customers on their way to them (open items of any job)."""
    loads = {u: 0 for u in userids}
    if not userids:
        return loads
    for userid, n in db.session.execute(
            select(FollowRelation.userid, func.count()).where(
                FollowRelation.corp_id == corp_id, FollowRelation.userid.in_(list(userids)),
                FollowRelation.status == "active").group_by(FollowRelation.userid)).tuples():
        loads[userid] += int(n)
    for taker, n in db.session.execute(
            select(HandoverCustomer.takeover_userid, func.count()).where(
                HandoverCustomer.corp_id == corp_id, HandoverCustomer.takeover_userid.in_(list(userids)),
                HandoverCustomer.status.in_(OPEN_CUSTOMER)).group_by(HandoverCustomer.takeover_userid)).tuples():
        loads[str(taker)] += int(n)
    return loads


def chat_loads(corp_id: str, userids: Sequence[str]) -> dict[str, int]:
    """Customer group chats each colleague owns (their chat "load")."""
    loads = {u: 0 for u in userids}
    for userid, n in db.session.execute(
            select(GroupChat.owner_userid, func.count()).where(
                GroupChat.corp_id == corp_id, GroupChat.owner_userid.in_(list(userids)),
                GroupChat.dismissed_at.is_(None)).group_by(GroupChat.owner_userid)).tuples():
        loads[userid] = int(n)
    return loads


def chats_moved_today(corp_id: str, handover_userid: str, now: dt.datetime) -> int:
    """Chats handed over from this owner since midnight (China time): WeCom allows 300 a day."""
    start = china_day_start(now.astimezone(CHINA).date()).astimezone(dt.timezone.utc)
    return int(db.session.scalar(select(func.count()).select_from(TransferLog).where(
        TransferLog.corp_id == corp_id, TransferLog.subject == SUBJECT_CHAT,
        TransferLog.handover_userid == handover_userid, TransferLog.started_at >= start)) or 0)


def chats_in_transfer(corp_id: str, chat_ids: Sequence[str]) -> set[str]:
    busy: set[str] = set()
    for part in chunks(list(chat_ids)):
        busy.update(db.session.scalars(select(HandoverChat.chat_id).where(
            HandoverChat.corp_id == corp_id, HandoverChat.chat_id.in_(list(part)), HandoverChat.status == H_QUEUED)))
    return busy


def departments(corp_id: str, userids: Iterable[str]) -> dict[str, set[int]]:
    rows = db.session.execute(select(Staff.userid, Staff.department_ids).where(
        Staff.corp_id == corp_id, Staff.userid.in_(sorted(set(userids))))).tuples()
    return {u: {int(d) for d in (depts or [])} for u, depts in rows}


# ---------------------------------------------------------------- distribution


def targets(n: int, takeovers: Sequence[str], distribution: str, loads: dict[str, int]) -> dict[str, float]:
    """How many of n each takeover should get: even shares, or (load) filling the least loaded up to a common
    level so that everyone ends as close to equal as n allows."""
    if not takeovers:
        return {}
    if distribution != "load":
        return {t: n / len(takeovers) for t in takeovers}
    ordered = sorted(takeovers, key=lambda t: (loads.get(t, 0), takeovers.index(t)))
    level, total = 0.0, 0
    for k, t in enumerate(ordered, start=1):  # raise the water level over the k least loaded
        total += loads.get(t, 0)
        level = (n + total) / k
        if k == len(ordered) or level <= loads.get(ordered[k], 0):
            break
    return {t: max(0.0, level - loads.get(t, 0)) for t in takeovers}


def allocate(n: int, takeovers: Sequence[str], share: dict[str, float], capacity: dict[str, int],
             per_call: int = PER_CALL) -> list[tuple[str, int]]:
    """Cut n items into calls of ≤`per_call` (and no larger than the biggest share), each given to the takeover furthest below their `share` who
    still has `capacity`; returns (takeover, size) in order. What fits nowhere is left out (the sizes then
    sum to less than n)."""
    if share:  # a few items over several takeovers are spread (30 to three: 10 each), not one full call
        per_call = min(per_call, max(1, math.ceil(max(share.values()))))
    given = {t: 0 for t in takeovers}
    room = {t: max(0, capacity.get(t, 0)) for t in takeovers}
    calls: list[tuple[str, int]] = []
    left = n
    while left > 0:
        open_ = [t for t in takeovers if room[t] > 0]
        if not open_:
            break
        best = max(open_, key=lambda t: (share.get(t, 0) - given[t], -takeovers.index(t)))
        size = min(per_call, left, room[best])
        calls.append((best, size))
        given[best] += size
        room[best] -= size
        left -= size
    return calls


def _assign(items: list[Any], takeovers: list[str], share: dict[str, float],
            capacity: dict[str, int]) -> tuple[list[tuple[str, list[int]]], list[int]]:
    """Calls over `items` (indices), and the indices left out for want of capacity."""
    batches: list[tuple[str, list[int]]] = []
    start = 0
    for takeover, size in allocate(len(items), takeovers, share, capacity):
        batches.append((takeover, list(range(start, start + size))))
        start += size
    return batches, list(range(start, len(items)))


# ---------------------------------------------------------------- the plan


def plan(corp_id: str, kind: str, handover_userid: str, candidates: list[Candidate],
         chat_candidates: list[ChatCandidate], takeovers: list[str], distribution: str, now: dt.datetime, *,
         handover_visible: bool = True) -> Plan:
    """Check and distribute (see the module docstring). With `takeovers` empty, each candidate keeps the
    takeover it names (a retry to the same colleague)."""
    limit = customer_limit(corp_id)
    everyone = sorted(set(takeovers) | {c.takeover for c in candidates if c.takeover}
                      | {c.new_owner for c in chat_candidates if c.new_owner})
    loads = customer_loads(corp_id, everyone)
    result = Plan(kind, handover_userid, list(takeovers), distribution, limit, loads)
    eligible = eligible_takeovers(corp_id, handover_userid, takeovers, distribution) or list(takeovers)
    _plan_customers(result, corp_id, candidates, eligible, now)
    _plan_chats(result, corp_id, chat_candidates, eligible, now, handover_visible)
    return result


def eligible_takeovers(corp_id: str, handover_userid: str, takeovers: list[str], distribution: str) -> list[str]:
    """The takeovers a distribution uses: all, or (department) those sharing a department with the person."""
    if distribution != "department" or not takeovers:
        return list(takeovers)
    depts = departments(corp_id, [handover_userid, *takeovers])
    mine = depts.get(handover_userid, set())
    return [t for t in takeovers if depts.get(t, set()) & mine]


def _plan_customers(result: Plan, corp_id: str, candidates: list[Candidate], eligible: list[str],
                    now: dt.datetime) -> None:
    exts = [c.external_userid for c in candidates]
    busy = in_transfer(corp_id, exts)
    recent = recent_transfers(corp_id, SUBJECT_CUSTOMER, exts, now) if result.kind == ONJOB else Counter()
    movable: list[Candidate] = []
    for cand in candidates:
        if cand.takeover == result.handover_userid:
            result.skips.append(_skip(cand, "40130"))
        elif cand.external_userid in busy:
            result.skips.append(_skip(cand, "40129"))
        elif recent[cand.external_userid] >= MAX_PER_WINDOW:
            result.skips.append(_skip(cand, "40128"))
        else:
            movable.append(cand)
    capacity = {t: result.limit - result.loads.get(t, 0) for t in result.loads}
    groups = _groups(movable, eligible, lambda c: c.takeover)
    for takeovers, items in groups:
        if not takeovers:
            result.skips += [_skip(c, "no_takeover") for c in items]
            continue
        share = targets(len(items), takeovers, result.distribution, result.loads)
        batches, left = _assign(items, takeovers, share, capacity)
        for takeover, indices in batches:
            capacity[takeover] -= len(indices)
            first = len(result.moves)
            result.moves += [Move(items[i].external_userid, items[i].customer_id, items[i].relation_id, items[i].name,
                                  takeover) for i in indices]
            result.batches.append((takeover, list(range(first, len(result.moves)))))
        result.skips += [_skip(items[i], "limit") for i in left]


def _groups(items: list[Any], eligible: list[str], fixed: Any) -> list[tuple[list[str], list[Any]]]:
    """(takeovers, items) to distribute: everything over the eligible takeovers, or (a retry to the same
    colleague) each item to the takeover it names."""
    if eligible:
        return [(eligible, items)] if items else []
    by: dict[str, list[Any]] = {}
    for item in items:
        by.setdefault(fixed(item) or "", []).append(item)
    return [([t] if t else [], group) for t, group in by.items()]


def _skip(cand: Candidate, reason: str) -> Skip:
    return Skip(cand.external_userid, cand.customer_id, cand.relation_id, cand.name, reason, cand.takeover)


def _plan_chats(result: Plan, corp_id: str, candidates: list[ChatCandidate], eligible: list[str],
                now: dt.datetime, handover_visible: bool) -> None:
    if not candidates:
        return
    ids = [c.chat_id for c in candidates]
    busy = chats_in_transfer(corp_id, ids)
    recent = recent_transfers(corp_id, SUBJECT_CHAT, ids, now) if result.kind == ONJOB else Counter()
    budget = max(0, CHATS_PER_DAY - chats_moved_today(corp_id, result.handover_userid, now))
    movable: list[ChatCandidate] = []
    for chat in candidates:
        reason = ("chat_visibility" if not handover_visible else "90504" if chat.new_owner == result.handover_userid
                  else "chat_busy" if chat.chat_id in busy else "chat_90d" if recent[chat.chat_id] >= MAX_PER_WINDOW
                  else "chat_daily" if len(movable) >= budget else None)
        if reason:
            result.chat_skips.append(ChatSkip(chat.chat_id, chat.name, reason, chat.new_owner))
        else:
            movable.append(chat)
    owners = sorted(set(eligible) | {c.new_owner for c in movable if c.new_owner})
    loads = chat_loads(corp_id, owners)
    for takeovers, items in _groups(movable, eligible, lambda c: c.new_owner):
        if not takeovers:
            result.chat_skips += [ChatSkip(c.chat_id, c.name, "no_takeover") for c in items]
            continue
        share = targets(len(items), takeovers, result.distribution, loads)
        batches, _ = _assign(items, takeovers, share, {t: len(items) for t in takeovers})
        for owner, indices in batches:
            first = len(result.chat_moves)
            result.chat_moves += [ChatMove(items[i].chat_id, items[i].name, owner) for i in indices]
            result.chat_batches.append((owner, list(range(first, len(result.chat_moves)))))


# ---------------------------------------------------------------- what the preview shows


PREVIEW_ROWS = 1000


def preview_dict(result: Plan, names: dict[str, str]) -> dict[str, Any]:
    """The preview as the API and the wizard show it: per takeover, who goes where (the first 1,000), who
    cannot move and why (the first 1,000, and counts per reason), the calls it will take."""
    per = Counter(m.takeover for m in result.moves)
    chats_per = Counter(m.new_owner for m in result.chat_moves)
    who = sorted(set(result.takeovers) | set(per) | set(chats_per), key=lambda u: result.takeovers.index(u)
                 if u in result.takeovers else len(result.takeovers))
    reasons = Counter(s.reason for s in result.skips)
    chat_reasons = Counter(s.reason for s in result.chat_skips)
    return {
        "kind": result.kind, "handover_userid": result.handover_userid,
        "handover_name": names.get(result.handover_userid, result.handover_userid),
        "distribution": result.distribution, "customer_limit": result.limit,
        "customers": {"total": len(result.moves) + len(result.skips), "movable": len(result.moves),
                      "excluded": len(result.skips)},
        "chats": {"total": len(result.chat_moves) + len(result.chat_skips), "movable": len(result.chat_moves),
                  "excluded": len(result.chat_skips)},
        "calls": {"customers": len(result.batches), "chats": len(result.chat_batches)},
        "takeovers": [{"userid": u, "name": names.get(u, u), "customers": per.get(u, 0), "chats": chats_per.get(u, 0),
                       "current_customers": result.loads.get(u, 0), "calls": sum(1 for t, _ in result.batches if t == u)}
                      for u in who],
        "moves": [{"external_userid": m.external_userid, "name": m.name, "takeover_userid": m.takeover,
                   "takeover_name": names.get(m.takeover, m.takeover)} for m in result.moves[:PREVIEW_ROWS]],
        "excluded": [{"external_userid": s.external_userid, "name": s.name, "reason": s.reason,
                      "reason_text": describe(s.reason, limit=result.limit)} for s in result.skips[:PREVIEW_ROWS]],
        "excluded_by_reason": [{"reason": r, "reason_text": describe(r, limit=result.limit), "count": n}
                               for r, n in reasons.most_common()],
        "chat_moves": [{"chat_id": m.chat_id, "name": m.name, "new_owner": m.new_owner,
                        "new_owner_name": names.get(m.new_owner, m.new_owner)} for m in result.chat_moves],
        "chat_excluded": [{"chat_id": s.chat_id, "name": s.name, "reason": s.reason,
                           "reason_text": describe(s.reason)} for s in result.chat_skips],
        "chat_excluded_by_reason": [{"reason": r, "reason_text": describe(r), "count": n}
                                    for r, n in chat_reasons.most_common()],
    }
