"""What managers do with handovers: preview one (who goes where, who cannot move and why), start it, retry or
reassign what did not move, read where it stands, export it; the corp's handover settings.

Services flush; the request, job or command that calls them commits once. The checks and the distribution
are in `planning`, writing and sending in `sending`, following WeCom's results in `following`, what moves
with a customer in `moving`, the resigned colleagues' waiting list in `waiting`.

Who may: managers (and admins). A manager hands over only the customers of colleagues in their scope
(`identity.web.scope_for`: their team and department), to colleagues in their scope, and sees those jobs.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from sqlalchemy import ColumnElement, func, select, true, update

from core.db import db, utcnow
from core.errors import Forbidden, NotFound, UserValueError
from core.time import china_datetime
from crm.models import Customer, FollowRelation, GroupChat, Staff
from crm.service import audit
from identity.service import Principal
from identity.web import scope_for

from .models import (C_EXCLUDED, C_QUEUED, C_WAITING, CHAT_STATUSES, CUSTOMER_STATUSES, DONE, H_EXCLUDED, H_QUEUED,
                     KINDS, ONJOB, RESIGNED, RETRYABLE_CHAT, RETRYABLE_CUSTOMER, RUNNING, HandoverChat,
                     HandoverCustomer, HandoverJob, HandoverSettings)
from .planning import (DEFAULT_LIMIT, DISTRIBUTION_LABELS, DISTRIBUTIONS, Candidate, ChatCandidate, Plan, Skip,
                       ChatSkip, describe, eligible_takeovers, plan, preview_dict)
from .sending import enqueue_chats, enqueue_customers, forget_waiting, settle, staff_names, write_job
from .waiting import is_waiting, waiting_chats, waiting_customers

log = logging.getLogger("scrm.handover")

ROLES = ("manager",)
MAX_TAKEOVERS = 20
NOTICE_MAX = 200
MAX_CHOSEN = 50_000
KIND_LABELS = {RESIGNED: "离职继承", ONJOB: "在职转接"}
STATUS_LABELS = {RUNNING: "进行中", DONE: "已结束"}
CUSTOMER_LABELS = {"excluded": "无法转接", "queued": "提交中", "waiting": "等待接替", "done": "已接替",
                   "refused": "客户拒绝", "limit": "接替成员已达上限", "no_record": "无接替记录", "failed": "转接失败"}
CHAT_LABELS = {"excluded": "无法转接", "queued": "提交中", "done": "已转接", "failed": "转接失败"}
NOTICE_DEFAULT = "您好，您的服务已升级，后续将由我的同事{接替成员}接替我的工作，继续为您服务。"


@dataclass
class JobRequest:
    """A handover as asked for (API body or wizard form), checked by `clean`."""

    kind: str
    handover_userid: str
    takeover_userids: list[str]
    external_userids: list[str] | None
    group_chats: bool
    chat_ids: list[str] | None
    distribution: str
    notice: str


# ---------------------------------------------------------------- checking a request


def _staff(corp_id: str, userid: str) -> Staff | None:
    return db.session.scalar(select(Staff).where(Staff.corp_id == corp_id, Staff.userid == userid))


def _ids(value: Any, field: str, what: str, maximum: int) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and 0 < len(v) <= 64 for v in value):
        raise UserValueError(f"{what}格式不对", field=field)
    if len(value) > maximum:
        raise UserValueError(f"{what}最多 {maximum:,} 个", field=field)
    return list(dict.fromkeys(v.strip() for v in value if v.strip()))


def check_takeovers(p: Principal, handover_userid: str, userids: Any, field: str = "takeover_userids") -> list[str]:
    """Active colleagues in the manager's scope, not the person handing over (WeCom's 40130)."""
    chosen = _ids(userids, field, "接替成员", MAX_TAKEOVERS) or []
    if not chosen:
        raise UserValueError("请至少选择一位接替成员", field=field)
    scope = scope_for(p)
    for userid in chosen:
        if userid == handover_userid:
            raise UserValueError("接替成员不能是原跟进成员本人（40130）", field=field)
        staff = _staff(p.corp_id, userid)
        if staff is None or staff.status != "active":
            raise UserValueError(f"{(staff.name if staff else '') or userid} 不是可以接替客户的在职成员", field=field)
        if not scope.allows(userid):
            raise Forbidden(f"{staff.name or userid} 不在您的团队中，不能作为接替成员")
    return chosen


def clean(p: Principal, body: dict[str, Any]) -> JobRequest:
    """A request's meaning checked against who may do what; `UserValueError` names the field."""
    kind = body.get("kind")
    if kind not in KINDS:
        raise UserValueError("请选择交接类型：离职继承或在职转接", field="kind")
    handover = str(body.get("handover_userid") or "").strip()
    if not handover:
        raise UserValueError("请选择原跟进成员", field="handover_userid")
    if not scope_for(p).allows(handover):
        raise Forbidden("您只能交接自己团队成员的客户")
    staff = _staff(p.corp_id, handover)
    if kind == RESIGNED and (staff is None or staff.status != "resigned") and not is_waiting(p.corp_id, handover):
        raise UserValueError("该成员尚未离职，请选择在职转接（40097）", field="kind")
    if kind == ONJOB:
        if staff is None:
            raise UserValueError("找不到该成员", field="handover_userid")
        if staff.status == "resigned":
            raise UserValueError("该成员已离职，请选择离职继承", field="kind")
    takeovers = check_takeovers(p, handover, body.get("takeover_userids"))
    distribution = body.get("distribution") or "even"
    if distribution not in DISTRIBUTIONS:
        raise UserValueError("分配方式应为平均分配、按客户数或同部门", field="distribution")
    if distribution == "department" and not eligible_takeovers(p.corp_id, handover, takeovers, distribution):
        raise UserValueError(f"所选接替成员中没有与 {(staff.name if staff else '') or handover} 同部门的成员",
                             field="distribution")
    notice = str(body.get("notice") or "").strip()
    if len(notice) > NOTICE_MAX:
        raise UserValueError(f"转接提示语最多 {NOTICE_MAX} 字", field="notice")
    if notice and kind == RESIGNED:
        raise UserValueError("离职继承不会给客户发送转接提示语，请留空", field="notice")
    return JobRequest(kind, handover, takeovers, _ids(body.get("external_userids"), "external_userids", "客户",
                                                      MAX_CHOSEN),
                      bool(body.get("group_chats", True)), _ids(body.get("chat_ids"), "chat_ids", "客户群", 5000),
                      distribution, notice)


# ---------------------------------------------------------------- what can be handed over


def onjob_customers(corp_id: str, userid: str) -> list[Candidate]:
    """An active colleague's customers (active relations), oldest first."""
    rows = db.session.execute(
        select(Customer.external_userid, Customer.id, FollowRelation.id, Customer.name, FollowRelation.remark)
        .join(Customer, Customer.id == FollowRelation.customer_id)
        .where(FollowRelation.corp_id == corp_id, FollowRelation.userid == userid, FollowRelation.status == "active")
        .order_by(FollowRelation.added_at, FollowRelation.id)).tuples()
    return [Candidate(ext, cid, rid, name or remark or "") for ext, cid, rid, name, remark in rows]


def onjob_chats(corp_id: str, userid: str) -> list[ChatCandidate]:
    rows = db.session.execute(select(GroupChat.chat_id, GroupChat.name).where(
        GroupChat.corp_id == corp_id, GroupChat.owner_userid == userid, GroupChat.dismissed_at.is_(None))
        .order_by(GroupChat.name, GroupChat.id)).tuples()
    return [ChatCandidate(c, n or "") for c, n in rows]


def candidates_of(corp_id: str, kind: str, userid: str) -> tuple[list[Candidate], list[ChatCandidate]]:
    """Everything of `userid` a handover of `kind` may take: resigned → WeCom's waiting list; on-job → their
    active customers and the chats they own."""
    if kind == RESIGNED:
        return waiting_customers(corp_id, userid), waiting_chats(corp_id, userid)
    return onjob_customers(corp_id, userid), onjob_chats(corp_id, userid)


def _visible(corp_id: str, userid: str, kind: str) -> bool:
    """Whether the chat owner is within the app's visibility (among the staff WeCom lists to us)."""
    staff = _staff(corp_id, userid)
    return staff is not None and staff.status in (("active", "resigned") if kind == RESIGNED else ("active",))


def make_plan(corp_id: str, req: JobRequest, now: dt.datetime) -> Plan:
    """The request's customers and chats, checked and distributed."""
    customers, chats = candidates_of(corp_id, req.kind, req.handover_userid)
    absent: list[Candidate] = []
    missing: list[str] = []
    if req.external_userids is not None:
        by_ext = {c.external_userid: c for c in customers}
        customers = [by_ext[e] for e in req.external_userids if e in by_ext]
        absent = [Candidate(e, None, None, "") for e in req.external_userids if e not in by_ext]
    if not req.group_chats:
        chats = []
    elif req.chat_ids is not None:
        by_id = {c.chat_id: c for c in chats}
        chats = [by_id[c] for c in req.chat_ids if c in by_id]
        missing = [c for c in req.chat_ids if c not in by_id]
    result = plan(corp_id, req.kind, req.handover_userid, customers, chats, req.takeover_userids, req.distribution,
                  now, handover_visible=_visible(corp_id, req.handover_userid, req.kind))
    reason = "not_waiting" if req.kind == RESIGNED else "40131"
    result.skips += [Skip(c.external_userid, None, None, c.name, reason) for c in _named(corp_id, absent)]
    if req.group_chats and req.chat_ids is not None:
        result.chat_skips += [ChatSkip(c, "", "chat_not_owned") for c in missing]
    return result


def _named(corp_id: str, cands: list[Candidate]) -> list[Candidate]:
    """Names (where we know the customer) for customers outside the candidates."""
    if not cands:
        return cands
    names = dict(db.session.execute(select(Customer.external_userid, Customer.name).where(
        Customer.corp_id == corp_id, Customer.external_userid.in_([c.external_userid for c in cands[:1000]])))
        .tuples().all())
    for cand in cands:
        cand.name = names.get(cand.external_userid, "")
    return cands


def preview(p: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """Who would go to whom, who cannot move and why, how many calls — nothing is written."""
    req = clean(p, body)
    result = make_plan(p.corp_id, req, utcnow())
    return preview_dict(result, staff_names(p.corp_id, [req.handover_userid, *req.takeover_userids]))


# ---------------------------------------------------------------- starting, retrying


def create_job(p: Principal, body: dict[str, Any]) -> HandoverJob:
    """Check, plan and write a job with its outbox commands (flush); the worker sends them after the commit."""
    req = clean(p, body)
    now = utcnow()
    result = make_plan(p.corp_id, req, now)
    if not result.moves and not result.chat_moves:
        reasons = "；".join(sorted({describe(s.reason, limit=result.limit) for s in result.skips}
                                  | {describe(s.reason) for s in result.chat_skips}))[:300]
        raise UserValueError("没有可以转接的客户或群聊" + (f"：{reasons}" if reasons else ""), field="external_userids")
    job = HandoverJob(corp_id=p.corp_id, kind=req.kind, handover_userid=req.handover_userid,
                      takeover_userids=req.takeover_userids, distribution=req.distribution, notice=req.notice,
                      group_chats=req.group_chats, status=RUNNING, round=1, created_by=p.actor,
                      creator_userid=p.userid, created_at=now,
                      updated_at=now, counts={})
    db.session.add(job)
    db.session.flush()
    write_job(job, result)
    settle(job, now)
    audit(p.corp_id, p.actor, "handover.create", "handover_job", str(job.id),
          {"kind": job.kind, "handover_userid": job.handover_userid, "takeover_userids": req.takeover_userids,
           "distribution": req.distribution, "customers": len(result.moves), "excluded": len(result.skips),
           "chats": len(result.chat_moves), "calls": result.calls})
    log.info("handover.created job=%s kind=%s customers=%s excluded=%s chats=%s calls=%s", job.id, job.kind,
             len(result.moves), len(result.skips), len(result.chat_moves), result.calls)
    return job


def retry(p: Principal, job: HandoverJob, body: dict[str, Any]) -> HandoverJob:
    """Send what did not move again — to the same colleague (retry) or to others (reassign, with
    `takeover_userids`) — as a new round of the same job: checked and distributed like a new job (flush)."""
    takeovers = check_takeovers(p, job.handover_userid, body["takeover_userids"]) \
        if body.get("takeover_userids") else []
    distribution = body.get("distribution") or job.distribution
    if distribution not in DISTRIBUTIONS:
        raise UserValueError("分配方式应为平均分配、按客户数或同部门", field="distribution")
    if job.kind == ONJOB and (_staff(job.corp_id, job.handover_userid) or Staff(status="")).status != "active":
        raise UserValueError("原跟进成员已不在职，请新建离职继承", field="kind")
    items = _retryable_customers(job, _ids(body.get("external_userids"), "external_userids", "客户", MAX_CHOSEN))
    chats = _retryable_chats(job, _ids(body.get("chat_ids"), "chat_ids", "客户群", 5000))
    if not items and not chats:
        raise UserValueError("没有可以重试的客户或群聊（只有未成功的才能重试或改派）", field="external_userids")
    now = utcnow()
    result = _replan(job, items, chats, takeovers, distribution, now)
    job.round += 1
    job.status, job.finished_at = RUNNING, None
    job.takeover_userids = list(dict.fromkeys([*job.takeover_userids, *takeovers]))
    write_round(job, result, {i.external_userid: i.id for i in items}, {c.chat_id: c.id for c in chats}, now)
    settle(job, now)
    audit(p.corp_id, p.actor, "handover.retry" if not takeovers else "handover.reassign", "handover_job", str(job.id),
          {"round": job.round, "takeover_userids": takeovers, "customers": len(result.moves),
           "excluded": len(result.skips), "chats": len(result.chat_moves)})
    return job


def _retryable_customers(job: HandoverJob, exts: list[str] | None) -> list[HandoverCustomer]:
    query = select(HandoverCustomer).where(HandoverCustomer.job_id == job.id,
                                           HandoverCustomer.status.in_(RETRYABLE_CUSTOMER))
    if exts is not None:
        query = query.where(HandoverCustomer.external_userid.in_(exts[:MAX_CHOSEN]))
    return list(db.session.scalars(query.order_by(HandoverCustomer.id)))


def _retryable_chats(job: HandoverJob, chat_ids: list[str] | None) -> list[HandoverChat]:
    query = select(HandoverChat).where(HandoverChat.job_id == job.id, HandoverChat.status.in_(RETRYABLE_CHAT))
    if chat_ids is not None:
        query = query.where(HandoverChat.chat_id.in_(chat_ids))
    return list(db.session.scalars(query.order_by(HandoverChat.id)))


def _replan(job: HandoverJob, items: list[HandoverCustomer], chats: list[HandoverChat], takeovers: list[str],
            distribution: str, now: dt.datetime) -> Plan:
    """A retry's plan: to the new takeovers, or each to its own (those never assigned: the job's takeovers)."""
    live = _live_relations(job) if job.kind == ONJOB else {}
    cands, lost = [], []
    names = dict(db.session.execute(select(Customer.id, Customer.name).where(
        Customer.id.in_([i.customer_id for i in items if i.customer_id]))).tuples().all()) if items else {}
    for item in items:
        cand = Candidate(item.external_userid, item.customer_id, item.from_relation_id,
                         names.get(item.customer_id or 0, ""), None if takeovers else item.takeover_userid)
        if job.kind == ONJOB and item.customer_id not in live:
            lost.append(cand)
        else:
            cand.relation_id = live.get(item.customer_id or 0, cand.relation_id)
            cands.append(cand)
    chat_cands = [ChatCandidate(c.chat_id, c.name, 0, None if takeovers else c.new_owner) for c in chats]
    visible = _visible(job.corp_id, job.handover_userid, job.kind)
    fixed = [c for c in cands if c.takeover] if not takeovers else []
    free = [c for c in cands if not c.takeover] if not takeovers else cands
    fixed_chats = [c for c in chat_cands if c.new_owner] if not takeovers else []
    free_chats = [c for c in chat_cands if not c.new_owner] if not takeovers else chat_cands
    result = plan(job.corp_id, job.kind, job.handover_userid, fixed, fixed_chats, [], distribution, now,
                  handover_visible=visible)
    more = plan(job.corp_id, job.kind, job.handover_userid, free, free_chats, takeovers or list(job.takeover_userids),
                distribution, now, handover_visible=visible)
    _merge(result, more)
    result.skips += [Skip(c.external_userid, c.customer_id, c.relation_id, c.name, "40131", c.takeover) for c in lost]
    return result


def _merge(into: Plan, more: Plan) -> None:
    base, chat_base = len(into.moves), len(into.chat_moves)
    into.moves += more.moves
    into.skips += more.skips
    into.batches += [(t, [i + base for i in idx]) for t, idx in more.batches]
    into.chat_moves += more.chat_moves
    into.chat_skips += more.chat_skips
    into.chat_batches += [(t, [i + chat_base for i in idx]) for t, idx in more.chat_batches]
    into.loads.update(more.loads)


def _live_relations(job: HandoverJob) -> dict[int, int]:
    """customer id → the on-job colleague's active relation (a retry checks they are still the customer's)."""
    return dict(db.session.execute(select(FollowRelation.customer_id, FollowRelation.id).where(
        FollowRelation.corp_id == job.corp_id, FollowRelation.userid == job.handover_userid,
        FollowRelation.status == "active")).tuples().all())


def write_round(job: HandoverJob, result: Plan, item_ids: dict[str, int], chat_ids: dict[str, int],
                now: dt.datetime) -> None:
    """A retry's items updated in place (queued again with their new command, or excluded with the new
    reason), its commands enqueued (flush)."""
    rows: list[dict[str, Any]] = []
    for takeover, indices in result.batches:
        moves = [result.moves[i] for i in indices]
        command = enqueue_customers(job, takeover, [m.external_userid for m in moves])
        rows += [{"id": item_ids[m.external_userid], "status": C_QUEUED, "takeover_userid": takeover,
                  "command_id": command.id, "from_relation_id": m.relation_id, "errcode": None, "reason": None,
                  "started_at": None, "takeover_at": None, "poll_after": None, "finished_at": None,
                  "noted": False} for m in moves]
    rows += [{"id": item_ids[s.external_userid], "status": C_EXCLUDED, "takeover_userid": s.takeover,
              "command_id": None, "from_relation_id": s.relation_id, "errcode": None, "reason": s.reason,
              "started_at": None, "takeover_at": None, "poll_after": None, "finished_at": now, "noted": False}
             for s in result.skips]
    if rows:
        db.session.execute(update(HandoverCustomer), rows)
        moved = [r["id"] for r in rows if r["status"] == C_QUEUED]
        for start in range(0, len(moved), 500):
            db.session.execute(update(HandoverCustomer).where(HandoverCustomer.id.in_(moved[start:start + 500]))
                               .values(attempts=HandoverCustomer.attempts + 1)
                               .execution_options(synchronize_session=False))
    chats: list[dict[str, Any]] = []
    for owner, indices in result.chat_batches:
        moves_ = [result.chat_moves[i] for i in indices]
        command = enqueue_chats(job, owner, [m.chat_id for m in moves_])
        chats += [{"id": chat_ids[m.chat_id], "status": H_QUEUED, "new_owner": owner, "command_id": command.id,
                   "errcode": None, "reason": None, "finished_at": None} for m in moves_]
    chats += [{"id": chat_ids[s.chat_id], "status": H_EXCLUDED, "new_owner": s.new_owner, "command_id": None,
               "errcode": None, "reason": s.reason, "finished_at": now} for s in result.chat_skips]
    if chats:
        db.session.execute(update(HandoverChat), chats)
    forget_waiting(job.corp_id, job.handover_userid, [m.external_userid for m in result.moves],
                   [m.chat_id for m in result.chat_moves])
    db.session.flush()


# ---------------------------------------------------------------- reading


def _in_scope(p: Principal) -> ColumnElement[bool]:
    scope = scope_for(p)
    return true() if scope.all else HandoverJob.handover_userid.in_(sorted(scope.userids))


def list_jobs(p: Principal, *, status: str | None = None, kind: str | None = None, before: int | None = None,
              limit: int = 50) -> list[HandoverJob]:
    query = select(HandoverJob).where(HandoverJob.corp_id == p.corp_id, _in_scope(p))
    if status:
        query = query.where(HandoverJob.status == status)
    if kind:
        query = query.where(HandoverJob.kind == kind)
    if before:
        query = query.where(HandoverJob.id < before)
    return list(db.session.scalars(query.order_by(HandoverJob.id.desc()).limit(limit)))


def get_job(p: Principal, job_id: int) -> HandoverJob:
    """A job the principal may see (404 otherwise: no telling apart "none" and "not yours")."""
    job = db.session.scalar(select(HandoverJob).where(HandoverJob.corp_id == p.corp_id, HandoverJob.id == job_id,
                                                      _in_scope(p)))
    if job is None:
        raise NotFound("找不到该交接任务")
    return job


def job_dict(job: HandoverJob, names: dict[str, str] | None = None) -> dict[str, Any]:
    names = names if names is not None else staff_names(job.corp_id, [job.handover_userid, *job.takeover_userids,
                                                                      *([job.creator_userid] if job.creator_userid else [])])
    counts = job.counts or {}
    return {
        "id": job.id, "kind": job.kind, "kind_label": KIND_LABELS.get(job.kind, job.kind),
        "handover_userid": job.handover_userid, "handover_name": names.get(job.handover_userid, job.handover_userid),
        "takeovers": [{"userid": u, "name": names.get(u, u)} for u in job.takeover_userids],
        "distribution": job.distribution, "distribution_label": DISTRIBUTION_LABELS.get(job.distribution, ""),
        "notice": job.notice, "group_chats": job.group_chats, "status": job.status,
        "status_label": STATUS_LABELS.get(job.status, job.status), "round": job.round,
        "counts": {"customers": counts.get("customers", {}), "chats": counts.get("chats", {}),
                   "customers_total": counts.get("customers_total", 0), "chats_total": counts.get("chats_total", 0)},
        "progress": {"final": counts.get("final", 0), "total": counts.get("total", 0),
                     "percent": counts.get("percent", 0)},
        "created_by": job.created_by,
        "creator_name": names.get(job.creator_userid or "", job.created_by),
        "created_at": job.created_at.isoformat(), "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def per_takeover(job: HandoverJob) -> list[dict[str, Any]]:
    """Each takeover colleague's customers and chats by state."""
    rows: dict[str, dict[str, Any]] = {}
    for userid, status, n in db.session.execute(
            select(HandoverCustomer.takeover_userid, HandoverCustomer.status, func.count())
            .where(HandoverCustomer.job_id == job.id, HandoverCustomer.takeover_userid.is_not(None))
            .group_by(HandoverCustomer.takeover_userid, HandoverCustomer.status)).tuples():
        rows.setdefault(str(userid), {"userid": str(userid), "customers": {}, "chats": {}})["customers"][status] = int(n)
    for userid, status, n in db.session.execute(
            select(HandoverChat.new_owner, HandoverChat.status, func.count())
            .where(HandoverChat.job_id == job.id, HandoverChat.new_owner.is_not(None))
            .group_by(HandoverChat.new_owner, HandoverChat.status)).tuples():
        rows.setdefault(str(userid), {"userid": str(userid), "customers": {}, "chats": {}})["chats"][status] = int(n)
    names = staff_names(job.corp_id, rows)
    for userid, row in rows.items():
        row["name"] = names.get(userid, userid)
        row["customers_total"] = sum(row["customers"].values())
        row["chats_total"] = sum(row["chats"].values())
    return sorted(rows.values(), key=lambda r: (-r["customers_total"], r["userid"]))


def failures(job: HandoverJob) -> list[dict[str, Any]]:
    """Why customers and chats did not move, with how many each (the job page's summary)."""
    out = []
    for subject, model, statuses in (("customer", HandoverCustomer, RETRYABLE_CUSTOMER),
                                     ("chat", HandoverChat, RETRYABLE_CHAT)):
        for reason, errcode, n in db.session.execute(
                select(model.reason, model.errcode, func.count()).where(model.job_id == job.id,
                                                                        model.status.in_(statuses))
                .group_by(model.reason, model.errcode).order_by(func.count().desc())).tuples():
            out.append({"subject": subject, "reason": reason or "", "errcode": errcode, "count": int(n),
                        "reason_text": describe(reason, errcode, limit=_limit(job.corp_id))})
    return out


def _limit(corp_id: str) -> int:
    return get_settings(corp_id).customer_limit


def customers_page(job: HandoverJob, *, status: str | None = None, after: int = 0,
                   limit: int = 50) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the job's customers (keyset on the item id) and the next page's `after`."""
    query = (select(HandoverCustomer, Customer.name).outerjoin(Customer, Customer.id == HandoverCustomer.customer_id)
             .where(HandoverCustomer.job_id == job.id, HandoverCustomer.id > after))
    if status in CUSTOMER_STATUSES:
        query = query.where(HandoverCustomer.status == status)
    elif status == "problem":
        query = query.where(HandoverCustomer.status.in_(RETRYABLE_CUSTOMER))
    rows = db.session.execute(query.order_by(HandoverCustomer.id).limit(limit + 1)).tuples().all()
    more = len(rows) > limit
    rows = rows[:limit]
    names = staff_names(job.corp_id, {i.takeover_userid for i, _ in rows if i.takeover_userid})
    limit_value = _limit(job.corp_id)
    return [_customer_row(i, name, names, limit_value) for i, name in rows], (rows[-1][0].id if more and rows else None)


def _customer_row(item: HandoverCustomer, name: str | None, names: dict[str, str], limit: int) -> dict[str, Any]:
    failed = item.status in RETRYABLE_CUSTOMER
    return {"id": item.id, "external_userid": item.external_userid, "name": name or "",
            "takeover_userid": item.takeover_userid, "takeover_name": names.get(item.takeover_userid or "", ""),
            "status": item.status, "status_label": CUSTOMER_LABELS.get(item.status, item.status),
            "reason": item.reason, "errcode": item.errcode,
            "reason_text": describe(item.reason, item.errcode, limit=limit) if failed else "",
            "attempts": item.attempts, "started_at": _iso(item.started_at), "takeover_at": _iso(item.takeover_at),
            "finished_at": _iso(item.finished_at)}


def chats_page(job: HandoverJob, *, status: str | None = None, after: int = 0,
               limit: int = 100) -> tuple[list[dict[str, Any]], int | None]:
    query = select(HandoverChat).where(HandoverChat.job_id == job.id, HandoverChat.id > after)
    if status in CHAT_STATUSES:
        query = query.where(HandoverChat.status == status)
    rows = list(db.session.scalars(query.order_by(HandoverChat.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    names = staff_names(job.corp_id, {c.new_owner for c in rows if c.new_owner})
    return [{"id": c.id, "chat_id": c.chat_id, "name": c.name or "", "new_owner": c.new_owner,
             "new_owner_name": names.get(c.new_owner or "", ""), "status": c.status,
             "status_label": CHAT_LABELS.get(c.status, c.status), "reason": c.reason, "errcode": c.errcode,
             "reason_text": describe(c.reason, c.errcode) if c.status in RETRYABLE_CHAT else "",
             "finished_at": _iso(c.finished_at)} for c in rows], (rows[-1].id if more and rows else None)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def detail(job: HandoverJob) -> dict[str, Any]:
    return {**job_dict(job), "takeover_stats": per_takeover(job), "failures": failures(job)}


def waiting_now(job: HandoverJob) -> dt.datetime | None:
    """When the next customer of the job is due to be taken over (the page says so while waiting)."""
    return db.session.scalar(select(func.min(HandoverCustomer.takeover_at)).where(
        HandoverCustomer.job_id == job.id, HandoverCustomer.status == C_WAITING))


# ---------------------------------------------------------------- export


CSV_HEADER = ["类型", "客户/群 ID", "名称", "接替成员", "接替成员 ID", "状态", "原因", "错误码", "提交时间",
              "接替时间", "结束时间"]


def _cell(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula is quoted."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def export_csv(job: HandoverJob) -> Iterator[str]:
    """Every customer and chat of the job as CSV chunks (UTF-8 with a BOM, so Excel reads the Chinese)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(CSV_HEADER)
    after: int | None = 0
    while after is not None:
        rows, after = customers_page(job, after=after, limit=1000)
        for r in rows:
            writer.writerow([_cell(v) for v in ("客户", r["external_userid"], r["name"], r["takeover_name"],
                                                r["takeover_userid"] or "", r["status_label"], r["reason_text"],
                                                r["errcode"] or "", china_datetime(r["started_at"]),
                                                china_datetime(r["takeover_at"]), china_datetime(r["finished_at"]))])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    after = 0
    while after is not None:
        chats, after = chats_page(job, after=after, limit=1000)
        for c in chats:
            writer.writerow([_cell(v) for v in ("客户群", c["chat_id"], c["name"], c["new_owner_name"],
                                                c["new_owner"] or "", c["status_label"], c["reason_text"],
                                                c["errcode"] or "", "", "", china_datetime(c["finished_at"]))])
    yield buffer.getvalue()


def export_filename(job: HandoverJob) -> str:
    return f"handover-{job.id}.csv"


# ---------------------------------------------------------------- settings


def get_settings(corp_id: str) -> HandoverSettings:
    row = db.session.scalar(select(HandoverSettings).where(HandoverSettings.corp_id == corp_id))
    return row if row is not None else HandoverSettings(corp_id=corp_id, customer_limit=DEFAULT_LIMIT)


def save_settings(corp_id: str, actor: str, customer_limit: Any) -> HandoverSettings:
    """The takeover's customer limit checked before sending (1 to WeCom's 50,000); flushes."""
    if not isinstance(customer_limit, int) or isinstance(customer_limit, bool) or not 1 <= customer_limit <= DEFAULT_LIMIT:
        raise UserValueError(f"客户上限应为 1 到 {DEFAULT_LIMIT:,} 之间的整数", field="customer_limit")
    row = db.session.scalar(select(HandoverSettings).where(HandoverSettings.corp_id == corp_id))
    if row is None:
        row = HandoverSettings(corp_id=corp_id)
        db.session.add(row)
    before = row.customer_limit
    row.customer_limit, row.updated_at, row.updated_by = customer_limit, utcnow(), actor
    db.session.flush()
    audit(corp_id, actor, "handover.settings", "handover_settings", corp_id,
          {"customer_limit": [before, customer_limit]})
    return row


def takeover_choices(p: Principal, handover_userid: str | None = None) -> list[dict[str, Any]]:
    """Colleagues who may take customers over (active, in the manager's scope), with their current load
    and departments, for the wizard."""
    scope = scope_for(p)
    query = select(Staff).where(Staff.corp_id == p.corp_id, Staff.status == "active")
    if not scope.all:
        query = query.where(Staff.userid.in_(sorted(scope.userids)))
    staff = [s for s in db.session.scalars(query.order_by(Staff.name, Staff.userid)) if s.userid != handover_userid]
    loads = dict(db.session.execute(select(FollowRelation.userid, func.count()).where(
        FollowRelation.corp_id == p.corp_id, FollowRelation.status == "active",
        FollowRelation.userid.in_([s.userid for s in staff])).group_by(FollowRelation.userid)).tuples().all())
    person = _staff(p.corp_id, handover_userid) if handover_userid else None
    mine = set(person.department_ids or []) if person is not None else set()
    return [{"userid": s.userid, "name": s.name or s.userid, "customers": int(loads.get(s.userid, 0)),
             "same_department": bool(mine & set(s.department_ids or []))} for s in staff]


def onjob_choices(p: Principal) -> list[dict[str, Any]]:
    """Active colleagues in scope (those with customers first), to pick whose customers move on-job."""
    people = takeover_choices(p)
    return sorted(people, key=lambda c: (c["customers"] == 0, c["name"]))


def names_of(corp_id: str, userids: Sequence[str]) -> dict[str, str]:
    return staff_names(corp_id, userids)
