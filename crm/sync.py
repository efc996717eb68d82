"""The full sync: reconcile the local customer base with WeCom and heal whatever drifted.

Order: staff (follow users), corp tags, customers with their follow relations and tags (through
`batch/get_by_user`, 100 staff a call, 100 rows a page), then group chats. Each page is applied
and committed on its own, and the cursor is saved with it, so an interrupted sync resumes where
it stopped and memory does not grow with the corp.

Rules:
- Upserts by WeCom id. What WeCom no longer returns gets a tombstone (tags, groups, chats) or is
  marked lost (relations, with reason "sync"); history (follow-ups, stages, audit) is never touched.
- A relation with a local change still waiting to reach WeCom (an outbox command) is left as it
  is: the protectors registered in `app.extensions["scrm.sync.protectors"]` name those relations.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from flask import current_app
from sqlalchemy import select, text, update

from core.db import db, from_epoch, utcnow
from core.signals import StaffResigned, staff_resigned
from core.tasks import enqueue_task
from wecom.client import WeComError

from .models import (Customer, FollowRelation, GroupChat, GroupChatMember, Staff, SyncRun, Tag, TagAssignment,
                     TagGroup)
from .service import ensure_corp
from .upsert import Follow, Reported, write_customers, write_tag_catalog

log = logging.getLogger("scrm.crm.sync")

USERS_PER_CALL = 100  # batch/get_by_user accepts at most 100 userids
PAGE_LIMIT = 100  # and returns at most 100 rows a page
STALE_RUN = dt.timedelta(minutes=10)  # a "running" sync silent this long has died
STAFF_NAMES_TASK = "crm.staff_names"
NAMES_PER_TASK = 200  # user/get calls one task makes; it queues itself again for the next members


class SyncBusy(RuntimeError):
    """Another sync of this corp is running right now."""


class Protector(Protocol):
    def __call__(self, corp_id: str, relation_ids: list[int]) -> set[int]: ...


@dataclass
class Progress:
    """What the CLI progress bar (or a console page) shows."""

    phase: str = "staff"
    staff_batches_done: int = 0
    staff_batches_total: int = 0
    counts: dict[str, int] = field(default_factory=dict)


ProgressFn = Callable[[Progress], None]


def protected_relations(corp_id: str, relation_ids: list[int]) -> set[int]:
    """Relations whose local changes are still pending in the outbox (see module docstring)."""
    protected: set[int] = set()
    if relation_ids:
        for protector in current_app.extensions.get("scrm.sync.protectors", []):
            protected |= protector(corp_id, relation_ids)
    return protected


class FullSync:
    """One run of the reconcile. `run()` commits as it goes; call it outside a request."""

    def __init__(self, client: Any, corp_id: str, *, progress: ProgressFn | None = None) -> None:
        self.client = client
        self.corp_id = corp_id
        self.progress = Progress()
        self._report = progress or (lambda p: None)
        self.tag_pks: dict[str, int] = {}

    # ------------------------------------------------------------------ run

    def run(self, *, resume: bool = True) -> SyncRun:
        ensure_corp(self.corp_id)
        run = self._start_run(resume)
        db.session.commit()
        self.run_id, self.run_started = run.id, run.started_at
        self.progress.counts = dict(run.counts or {})
        try:
            state = dict(run.progress or {})
            if not state.get("staff_done"):
                follow_users = self.sync_staff()
                self.sync_tags()
                state = {"staff_done": True, "follow_users": follow_users, "batch": 0, "cursor": ""}
                self._save(state)
            else:
                self._load_tag_pks()
            self.sync_customers(state)
            if not state.get("chats_done"):
                self.sync_group_chats(state["follow_users"])
                state["chats_done"] = True
                self._save(state)
            self.mark_lost_relations(state["follow_users"])
            run = self._run()
            run.status = "done"
            run.finished_at = utcnow()
            run.counts = {**self.progress.counts, **local_counts(self.corp_id)}
            enqueue_task(self.corp_id, STAFF_NAMES_TASK, {}, dedupe_key=STAFF_NAMES_TASK)
            db.session.commit()
            log.info("crm.sync.done corp=%s counts=%s", self.corp_id, run.counts)
            return run
        except BaseException as exc:
            db.session.rollback()
            failed = self._run()
            if failed is not None:
                failed.status = "failed"
                failed.error = f"{exc.__class__.__name__}: {exc}"
                failed.counts = dict(self.progress.counts)
                db.session.commit()
            log.warning("crm.sync.failed corp=%s error=%s", self.corp_id, exc)
            raise

    def _start_run(self, resume: bool) -> SyncRun:
        last = db.session.scalar(select(SyncRun).where(SyncRun.corp_id == self.corp_id, SyncRun.kind == "full")
                                 .order_by(SyncRun.id.desc()).limit(1))
        if last is not None and last.status == "running":
            beat = dt.datetime.fromisoformat(last.progress.get("heartbeat", last.started_at.isoformat()))
            if utcnow() - beat < STALE_RUN:
                raise SyncBusy(f"a full sync (#{last.id}) is already running since {last.started_at:%Y-%m-%d %H:%M} UTC")
        if resume and last is not None and last.status in ("running", "failed") and last.progress.get("staff_done"):
            last.status = "running"
            last.error = None
            log.info("crm.sync.resume corp=%s run=%s batch=%s", self.corp_id, last.id, last.progress.get("batch"))
            return last
        run = SyncRun(corp_id=self.corp_id, kind="full", status="running",
                      progress={"heartbeat": utcnow().isoformat()}, counts={})
        db.session.add(run)
        return run

    def _run(self) -> SyncRun:
        run = db.session.get(SyncRun, self.run_id)
        assert run is not None
        return run

    def _save(self, state: dict[str, Any]) -> None:
        """Commit the page with the run's cursor, so an interruption resumes right after it."""
        _relaxed_commit()
        run = self._run()
        state["heartbeat"] = utcnow().isoformat()
        run.progress = dict(state)
        run.counts = dict(self.progress.counts)
        db.session.commit()
        self._report(self.progress)

    def _count(self, key: str, n: int = 1) -> None:
        if n:
            self.progress.counts[key] = self.progress.counts.get(key, 0) + n

    # ------------------------------------------------------------------ staff

    def sync_staff(self) -> list[str]:
        """Follow users are active; known staff missing from the list are resigned (if WeCom says
        their customers wait for handover) or inactive. New members are named by their userid until
        the `crm.staff_names` task (queued when the sync ends) reads every member's name and
        departments: the sync itself makes only the calls it cannot do without (the follow-user list,
        the tag list, the pages, the chats)."""
        self.progress.phase = "staff"
        follow_users = sorted(set(self.client.get_follow_user_list()))
        now = utcnow()
        known = {s.userid: s for s in db.session.scalars(select(Staff).where(Staff.corp_id == self.corp_id))}
        for userid in follow_users:
            staff = known.get(userid) or Staff(corp_id=self.corp_id, userid=userid, name=userid)
            if staff.id is None:
                db.session.add(staff)
            staff.status = "active"
            staff.resigned_at = None
            staff.synced_at = now
        following = set(follow_users)
        missing = [s for uid, s in known.items() if uid not in following]
        if missing:
            resigned = self._resigned_userids()
            for staff in missing:
                if staff.userid in resigned:
                    if staff.status != "resigned":
                        staff.status, staff.resigned_at = "resigned", resigned[staff.userid] or now
                        db.session.flush()
                        staff_resigned.send(StaffResigned(self.corp_id, staff.userid))
                else:
                    staff.status = "inactive"
        db.session.commit()
        self.progress.counts["staff"] = len(follow_users)
        self.progress.staff_batches_total = -(-len(follow_users) // USERS_PER_CALL)
        self._report(self.progress)
        return follow_users

    def _resigned_userids(self) -> dict[str, dt.datetime | None]:
        resigned: dict[str, dt.datetime | None] = {}
        for row in self.client.iter_unassigned():
            resigned.setdefault(row["handover_userid"], from_epoch(row.get("dimission_time")))
        return resigned

    # ------------------------------------------------------------------ tags

    def sync_tags(self) -> None:
        """Upsert corp tag groups and tags by WeCom id; tombstone what WeCom no longer has (`crm.upsert`:
        set-based, and safe while the worker applies a tag callback for the same group)."""
        self.progress.phase = "tags"
        counts = write_tag_catalog(self.corp_id, self.client.get_corp_tag_list(), utcnow())
        db.session.commit()
        self.progress.counts.update(counts)
        self._load_tag_pks()

    def _load_tag_pks(self) -> None:
        self.tag_pks = dict(db.session.execute(
            select(Tag.tag_id, Tag.id).where(Tag.corp_id == self.corp_id, Tag.deleted_at.is_(None))).all())

    # ------------------------------------------------------------------ customers

    def sync_customers(self, state: dict[str, Any]) -> None:
        """Every (customer, follow user) row of `batch/get_by_user`, a page at a time."""
        self.progress.phase = "customers"
        follow_users: list[str] = state["follow_users"]
        batches = [follow_users[i:i + USERS_PER_CALL] for i in range(0, len(follow_users), USERS_PER_CALL)]
        self.progress.staff_batches_total = len(batches)
        run_started = self.run_started
        for index in range(int(state.get("batch", 0)), len(batches)):
            self.progress.staff_batches_done = index
            cursor = state.get("cursor", "") if index == state.get("batch", 0) else ""
            for page in self.client.iter_batch_get_by_user(batches[index], cursor=cursor, limit=PAGE_LIMIT):
                self.apply_rows(page.items, run_started)
                state.update(batch=index, cursor=page.next_cursor)
                self._save(state)  # the commit expires the page; the weak identity map lets it go
            state.update(batch=index + 1, cursor="")
            self.progress.staff_batches_done = index + 1
            self._save(state)

    def apply_rows(self, rows: list[dict[str, Any]], seen_at: dt.datetime) -> None:
        """Upsert one page of `batch/get_by_user` rows: customers, relations and their tags, set-based
        (`crm.upsert`: a handful of statements a page). Relations a protector names keep their state."""
        if not rows:
            return
        reported = [Reported(row["external_contact"],
                             [Follow(row["follow_info"]["userid"], row["follow_info"],
                                     list(row["follow_info"].get("tag_id") or []))]) for row in rows]
        written = write_customers(self.corp_id, reported, seen_at, tag_pks=self.tag_pks, source="sync",
                                  protected=lambda ids: protected_relations(self.corp_id, ids))
        self._count("customers_created", len(written.created_customers))
        self._count("relations_created", len(written.created_relations))
        self._count("relations_protected", written.protected_relations)
        self._count("relations_healed", written.healed_relations)
        self._count("tags_added", written.tags_added)
        self._count("tags_removed", written.tags_removed)
        self._count("unknown_tag_ids", written.unknown_tag_ids)
        self._count("rows", len(rows))

    def mark_lost_relations(self, follow_users: list[str]) -> None:
        """Active relations of synced staff that WeCom did not return this run are lost."""
        if not follow_users:
            return
        lost = 0
        for i in range(0, len(follow_users), 500):
            result = db.session.execute(
                update(FollowRelation)
                .where(FollowRelation.corp_id == self.corp_id, FollowRelation.status == "active",
                       FollowRelation.userid.in_(follow_users[i:i + 500]),
                       (FollowRelation.synced_at.is_(None)) | (FollowRelation.synced_at < self.run_started))
                .values(status="lost", lost_at=utcnow(), lost_reason="sync")
                .execution_options(synchronize_session=False))
            lost += result.rowcount or 0
        db.session.commit()
        self.progress.counts["relations_lost"] = lost

    # ------------------------------------------------------------------ group chats

    def sync_group_chats(self, follow_users: list[str]) -> None:
        """List the chats of every follow user (100 owners a call), read each, tombstone the rest."""
        self.progress.phase = "group_chats"
        now = utcnow()
        seen: set[str] = set()
        statuses: dict[str, int] = {}
        owners = follow_users + self._resigned_staff_userids()
        for i in range(0, len(owners), USERS_PER_CALL):
            for item in self.client.iter_groupchats(owner_userids=owners[i:i + USERS_PER_CALL]):
                statuses[item["chat_id"]] = int(item.get("status", 0))
        for chat_id, status in statuses.items():
            self.apply_group_chat(self.client.get_groupchat(chat_id), status, now)
            seen.add(chat_id)
            if len(seen) % 100 == 0:
                db.session.commit()
                self._report(self.progress)
        gone = db.session.scalars(select(GroupChat).where(GroupChat.corp_id == self.corp_id,
                                                          GroupChat.dismissed_at.is_(None)))
        dismissed = 0
        for chat in gone:
            if chat.chat_id not in seen:
                chat.dismissed_at = now
                dismissed += 1
        db.session.commit()
        self.progress.counts.update(group_chats=len(seen), group_chats_dismissed=dismissed)

    def _resigned_staff_userids(self) -> list[str]:
        return list(db.session.scalars(select(Staff.userid).where(Staff.corp_id == self.corp_id,
                                                                  Staff.status == "resigned")))

    def apply_group_chat(self, data: dict[str, Any], status: int | None, now: dt.datetime) -> GroupChat:
        """Upsert a chat from `groupchat/get`; members who left keep their row with `left_at`."""
        chat = db.session.scalar(select(GroupChat).where(GroupChat.corp_id == self.corp_id,
                                                         GroupChat.chat_id == data["chat_id"]))
        if chat is None:
            chat = GroupChat(corp_id=self.corp_id, chat_id=data["chat_id"])
            db.session.add(chat)
        apply_group_chat_fields(chat, data, status, now)
        return chat


def apply_group_chat_fields(chat: GroupChat, data: dict[str, Any], status: int | None, now: dt.datetime) -> None:
    """Copy `groupchat/get` into a chat row and its members (shared with the chat event handlers)."""
    chat.name = data.get("name", "") or ""
    chat.owner_userid = data.get("owner", "") or ""
    chat.notice = data.get("notice", "") or ""
    chat.member_version = data.get("member_version", "") or ""
    chat.wecom_created_at = from_epoch(data.get("create_time"))
    if status is not None:
        chat.status = status
    chat.dismissed_at, chat.synced_at = None, now
    admins = {a["userid"] for a in data.get("admin_list", [])}
    members = {m.member_id: m for m in chat.members}
    present: set[str] = set()
    for m in data.get("member_list", []):
        member = members.get(m["userid"])
        if member is None:
            member = GroupChatMember(corp_id=chat.corp_id, member_id=m["userid"])
            chat.members.append(member)
        member.type = int(m.get("type", 2))
        member.name = m.get("name", "") or ""
        member.group_nickname = m.get("group_nickname", "") or ""
        member.unionid = m.get("unionid")
        member.join_time = from_epoch(m.get("join_time"))
        member.join_scene = int(m.get("join_scene", 0) or 0)
        member.invitor = (m.get("invitor") or {}).get("userid", "")
        member.state = m.get("state", "") or ""
        member.is_admin = m["userid"] in admins
        member.left_at = None
        present.add(m["userid"])
    for member_id, member in members.items():
        if member_id not in present and member.left_at is None:
            member.left_at = now


def apply_contact(customer: Customer, c: dict[str, Any], seen_at: dt.datetime) -> None:
    customer.name = c.get("name", "") or ""
    customer.type = int(c.get("type", 1))
    customer.gender = int(c.get("gender", 0) or 0)
    customer.avatar = c.get("avatar", "") or ""
    customer.unionid = c.get("unionid") or None
    customer.position = c.get("position", "") or ""
    customer.corp_name = c.get("corp_name", "") or ""
    customer.corp_full_name = c.get("corp_full_name", "") or ""
    customer.gone_at = None
    customer.synced_at = seen_at


def apply_follow_info(rel: FollowRelation, info: dict[str, Any], seen_at: dt.datetime) -> None:
    rel.remark = info.get("remark", "") or ""
    rel.description = info.get("description", "") or ""
    rel.remark_corp_name = info.get("remark_corp_name", "") or ""
    rel.remark_mobiles = list(info.get("remark_mobiles") or [])
    rel.added_at = from_epoch(info.get("createtime"))
    rel.add_way = int(info.get("add_way", 0) or 0)
    rel.state = info.get("state", "") or ""
    rel.oper_userid = info.get("oper_userid", "") or ""
    if rel.status != "active":
        rel.status, rel.lost_at, rel.lost_reason = "active", None, None
    rel.synced_at = seen_at


def _relaxed_commit() -> None:
    """On PostgreSQL, do not wait for the WAL flush of a sync page: a page lost in a crash is
    simply read again on resume, and waiting for the disk at every page dominated the sync time."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL synchronous_commit = off"))


def register_protector(app: Any, protector: Protector) -> None:
    """Let another part of the product (the outbox) shield relations with pending local changes."""
    app.extensions.setdefault("scrm.sync.protectors", []).append(protector)


def local_counts(corp_id: str) -> dict[str, int]:
    """What the local database holds, in the emulator's summary terms (for checks and benchmarks)."""
    from sqlalchemy import func

    def count(stmt: Any) -> int:
        return int(db.session.scalar(stmt) or 0)

    return {
        "staff": count(select(func.count()).select_from(Staff).where(Staff.corp_id == corp_id,
                                                                       Staff.status == "active")),
        "customers": count(select(func.count(func.distinct(FollowRelation.customer_id)))
                           .where(FollowRelation.corp_id == corp_id, FollowRelation.status == "active")),
        "relations": count(select(func.count()).select_from(FollowRelation)
                           .where(FollowRelation.corp_id == corp_id, FollowRelation.status == "active")),
        "tag_groups": count(select(func.count()).select_from(TagGroup)
                            .where(TagGroup.corp_id == corp_id, TagGroup.deleted_at.is_(None))),
        "tags": count(select(func.count()).select_from(Tag).where(Tag.corp_id == corp_id, Tag.deleted_at.is_(None))),
        "tag_assignments": count(select(func.count()).select_from(TagAssignment)
                                 .join(FollowRelation, FollowRelation.id == TagAssignment.relation_id)
                                 .where(TagAssignment.corp_id == corp_id, FollowRelation.status == "active")),
        "group_chats": count(select(func.count()).select_from(GroupChat)
                             .where(GroupChat.corp_id == corp_id, GroupChat.dismissed_at.is_(None))),
    }


def refresh_staff(task: Any) -> None:
    """The `crm.staff_names` task, queued when a sync ends: read every active member's name and
    departments (`user/get`, NAMES_PER_TASK at a time, in id order), then queue itself for the next
    ones. Departments decide a manager's scope, so they are read for everyone, not only new members;
    this is work of its own, after the sync, so the sync makes only the calls it cannot do without. A
    member the contact secret may not read (48002/60011) keeps what we have."""
    from wecom.client import contact_client

    client = contact_client()
    corp_id = task.corp_id
    after = int((task.payload or {}).get("after_id") or 0)
    members = list(db.session.scalars(select(Staff).where(
        Staff.corp_id == corp_id, Staff.status == "active", Staff.id > after)
        .order_by(Staff.id).limit(NAMES_PER_TASK + 1)))
    for staff in members[:NAMES_PER_TASK]:
        try:
            info = client.get_user(staff.userid)
        except WeComError as exc:
            if exc.transient:
                raise
            continue  # may not read members: keep what we have
        staff.name = str(info.get("name") or staff.name or staff.userid)
        staff.department_ids = list(info.get("department") or [])
    if len(members) > NAMES_PER_TASK:
        last = members[NAMES_PER_TASK - 1].id
        enqueue_task(corp_id, STAFF_NAMES_TASK, {"after_id": last}, dedupe_key=f"{STAFF_NAMES_TASK}:{last}")
