"""The handlers that apply WeCom's callbacks (wecom-api.md §3) to the customer base.

`register(app)` puts them into `wecom.dispatch`'s (Event, ChangeType) table. The worker calls a
handler with the stored `InboxEvent` inside the transaction that marks the event done: handlers
flush, never commit, and raise to have the event retried (a transient `WeComError`) or failed.

Rules every handler follows:
- **Re-read, do not trust the event.** Customers, group chats and corp tags are read again from
  WeCom (`externalcontact/get`, `groupchat/get`, `get_corp_tag_list`) and WeCom's current state is
  applied, so applying an event twice, or events out of order, ends in WeCom's current state.
  WeCom is called BEFORE the first write, so SQLite's write lock is never held across a call.
- **A customer (or chat) WeCom no longer knows** (40096/84061, 49008/40050) is recorded, not
  crashed on.
- **Local changes still waiting in the outbox win**: a relation's tags touched by a pending
  `mark_tag` and its remark while a `remark` is pending keep their local value; the rest follows WeCom.
- **Every handler writes one audit row** (actor "wecom", with the inbox id), so "applied exactly
  once" can be checked.
- **The bot replies through the outbox**: a welcome message within 20 s of the add event, an app
  message to the member (and their manager) whom a customer deleted.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable

from flask import Flask, current_app
from sqlalchemy import delete, select, update

from core.db import db, from_epoch, utcnow
from core.settings import settings
from core.signals import (CustomerAdded, JoinedGroupChat, RelationLost, StaffResigned, TagsChanged, TransferFailed,
                          customer_added, joined_group_chat, relation_lost, staff_resigned, tags_changed,
                          transfer_failed)
from wecom import dispatch
from wecom.client import WeComError, contact_client
from wecom.models import InboxEvent, OutboxCommand
from wecom.service import enqueue, find_command, pending_commands, pending_relation_ids

from .models import Customer, FollowRelation, GroupChat, Staff, Tag, TagAssignment, TagGroup, WelcomeMessage
from .service import audit, ensure_corp
from .sync import apply_contact, apply_follow_info, apply_group_chat_fields, register_protector
from .upsert import Follow, Reported, ensure_staff, write_customers

log = logging.getLogger("scrm.crm.handlers")

ACTOR = "wecom"
CUSTOMER_GONE = frozenset({40096, 84061})  # invalid external userid / no relationship
CHAT_GONE = frozenset({49008})  # dismissed
CHAT_UNKNOWN = frozenset({40050, 90501})  # no such chat / not a customer group
WELCOME_WINDOW = dt.timedelta(seconds=20)  # a WelcomeCode is valid 20 s (wecom-api.md §7.6)
DEFAULT_WELCOME = "您好，我是{staff_name}，很高兴为您服务！"
TRANSFER_SOURCE = "DELETE_BY_TRANSFER"


# ---------------------------------------------------------------- small helpers


def _field(event: InboxEvent, name: str) -> str:
    """A text field of the event ('' when absent or an empty element, which xmltodict gives as None)."""
    value = (event.data or {}).get(name)
    return "" if value is None or isinstance(value, (dict, list)) else str(value).strip()


def event_time(event: InboxEvent) -> dt.datetime:
    """When WeCom says the event happened (CreateTime), else when we received it."""
    try:
        return from_epoch(_field(event, "CreateTime") or None) or event.received_at
    except (TypeError, ValueError, OverflowError):
        return event.received_at


def _audit(event: InboxEvent, action: str, target_type: str, target_id: str, **detail: Any) -> None:
    audit(event.corp_id, ACTOR, action, target_type, target_id,
          {"inbox_id": event.id, "event": event.event, "change_type": event.change_type, **detail})


def _ensure_staff(corp_id: str, userid: str, name: str | None = None) -> Staff:
    staff = db.session.scalar(select(Staff).where(Staff.corp_id == corp_id, Staff.userid == userid))
    if staff is None:
        staff = Staff(corp_id=corp_id, userid=userid, name=name or userid, status="active")
        db.session.add(staff)
        db.session.flush()
    return staff


def _new_staff_names(corp_id: str, userids: Iterable[str], client: Any) -> dict[str, str]:
    """Names of members we have no row for yet, read from WeCom (the userid when it will not say)."""
    wanted = set(userids)
    if not wanted:
        return {}
    known = set(db.session.scalars(select(Staff.userid).where(Staff.corp_id == corp_id,
                                                              Staff.userid.in_(sorted(wanted)))))
    names: dict[str, str] = {}
    for userid in sorted(wanted - known):
        try:
            names[userid] = str(client.get_user(userid).get("name") or userid)
        except WeComError as exc:
            if exc.transient:
                raise
            names[userid] = userid  # the contact secret may not read members (48002/60011)
    return names


def _customer(corp_id: str, external_userid: str) -> Customer | None:
    return db.session.scalar(select(Customer).where(Customer.corp_id == corp_id,
                                                    Customer.external_userid == external_userid))


def _relation(corp_id: str, external_userid: str, userid: str) -> FollowRelation | None:
    return db.session.scalar(select(FollowRelation).join(Customer, Customer.id == FollowRelation.customer_id)
                             .where(Customer.corp_id == corp_id, Customer.external_userid == external_userid,
                                    FollowRelation.userid == userid))


def _relation_tag_ids(relation_ids: list[int]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {rid: set() for rid in relation_ids}
    if relation_ids:
        for rid, tag_id in db.session.execute(select(TagAssignment.relation_id, Tag.tag_id)
                                              .join(Tag, Tag.id == TagAssignment.tag_pk)
                                              .where(TagAssignment.relation_id.in_(relation_ids))):
            out[rid].add(tag_id)
    return out


# ---------------------------------------------------------------- customers


def read_customer(external_userid: str, client: Any = None) -> dict[str, Any] | None:
    """`externalcontact/get` of one customer, or None when WeCom no longer knows them."""
    client = client or contact_client()
    try:
        return client.get_external_contact(external_userid)
    except WeComError as exc:
        if exc.errcode in CUSTOMER_GONE:
            return None
        raise


def _wanted_tag_ids(info: dict[str, Any]) -> list[str]:
    """Corp tag ids of a `follow_user` entry (type 1; personal tags have no id)."""
    return [t["tag_id"] for t in info.get("tags") or [] if t.get("tag_id") and int(t.get("type", 1) or 1) == 1]


def _tag_pks(corp_id: str, tag_ids: Iterable[str], client: Any) -> dict[str, int]:
    """Local pks of these corp tags; tags we have not seen yet are read from WeCom and added."""
    wanted = set(tag_ids)
    if not wanted:
        return {}
    known = dict(db.session.execute(select(Tag.tag_id, Tag.id).where(
        Tag.corp_id == corp_id, Tag.tag_id.in_(sorted(wanted)), Tag.deleted_at.is_(None))).all())
    missing = sorted(wanted - set(known))
    if missing:
        apply_tag_groups(corp_id, client.get_corp_tag_list(tag_ids=missing), tag_ids=missing)
        known = dict(db.session.execute(select(Tag.tag_id, Tag.id).where(
            Tag.corp_id == corp_id, Tag.tag_id.in_(sorted(wanted)), Tag.deleted_at.is_(None))).all())
    return known


def _pending_by_relation(corp_id: str, relation_ids: list[int]) -> dict[int, list[OutboxCommand]]:
    out: dict[int, list[OutboxCommand]] = {}
    for command in pending_commands(corp_id, relation_ids):
        out.setdefault(int(command.relation_id or 0), []).append(command)
    return out


def apply_customer_detail(corp_id: str, data: dict[str, Any], client: Any = None,
                          *, seen_at: dt.datetime | None = None) -> tuple[Customer, dict[str, FollowRelation]]:
    """Upsert a customer and every relation WeCom lists from an `externalcontact/get` answer.

    Tags and remarks are merged with the relation's pending outbox commands (those keep their local
    value); active relations WeCom no longer lists are marked lost ("sync"), unless a command on
    them is pending. Returns the customer and its relations by userid.
    """
    client = client or contact_client()
    seen_at = seen_at or utcnow()
    contact = data.get("external_contact") or {}
    listed = {f["userid"]: f for f in data.get("follow_user") or [] if f.get("userid")}
    # Every read (and the tag catalog call, if a tag is new to us) before the first write.
    tag_pks = _tag_pks(corp_id, [t for info in listed.values() for t in _wanted_tag_ids(info)], client)
    staff_names = _new_staff_names(corp_id, listed, client)
    ensure_corp(corp_id)
    ext = contact["external_userid"]
    customer = _customer(corp_id, ext)
    if customer is None:
        customer = Customer(corp_id=corp_id, external_userid=ext)
        db.session.add(customer)
    apply_contact(customer, contact, seen_at)
    db.session.flush()
    relations = {r.userid: r for r in db.session.scalars(
        select(FollowRelation).where(FollowRelation.customer_id == customer.id))}
    pending = _pending_by_relation(corp_id, [r.id for r in relations.values()])
    for userid, info in listed.items():
        _ensure_staff(corp_id, userid, staff_names.get(userid))
        rel = relations.get(userid)
        if rel is None:
            rel = FollowRelation(corp_id=corp_id, customer_id=customer.id, userid=userid)
            db.session.add(rel)
            relations[userid] = rel
        waiting = pending.get(rel.id or -1, [])
        kept = (rel.remark, rel.description, rel.remark_corp_name, list(rel.remark_mobiles or []))
        apply_follow_info(rel, info, seen_at)
        if any(c.method == "remark" for c in waiting):
            rel.remark, rel.description, rel.remark_corp_name, rel.remark_mobiles = kept
        db.session.flush()
        touched = {str(t) for c in waiting if c.method == "mark_tag"
                   for t in list(c.args.get("add_tag") or []) + list(c.args.get("remove_tag") or [])}
        _merge_tags(corp_id, rel, {pk for tid, pk in tag_pks.items() if tid in _wanted_tag_ids(info)},
                    {tag_pks[t] for t in touched if t in tag_pks} | _pks_of(corp_id, touched - set(tag_pks)))
    now = utcnow()
    for userid, rel in relations.items():
        if userid not in listed and rel.status == "active" and rel.id not in pending:
            rel.status, rel.lost_at, rel.lost_reason = "lost", now, "sync"
    db.session.flush()
    return customer, relations


def _pks_of(corp_id: str, tag_ids: set[str]) -> set[int]:
    if not tag_ids:
        return set()
    return set(db.session.scalars(select(Tag.id).where(Tag.corp_id == corp_id, Tag.tag_id.in_(sorted(tag_ids)))))


def _merge_tags(corp_id: str, rel: FollowRelation, wanted: set[int], keep_local: set[int]) -> None:
    """Make the relation's tags WeCom's, except the tags a pending command is changing."""
    current = {a.tag_pk: a for a in db.session.scalars(
        select(TagAssignment).where(TagAssignment.relation_id == rel.id))}
    for pk in wanted - set(current) - keep_local:
        db.session.add(TagAssignment(corp_id=corp_id, relation_id=rel.id, tag_pk=pk,
                                     customer_id=rel.customer_id, source="wecom"))
    for pk in set(current) - wanted - keep_local:
        db.session.delete(current[pk])


def refresh_customer(corp_id: str, external_userid: str, client: Any = None) -> Customer | None:
    """Re-read one customer from WeCom and apply it; None when WeCom no longer knows them."""
    client = client or contact_client()
    data = read_customer(external_userid, client)
    if data is None:
        return None
    return apply_customer_detail(corp_id, data, client)[0]


# ---------------------------------------------------------------- change_external_contact


def on_add_external_contact(event: InboxEvent) -> None:
    """add_external_contact / add_half_external_contact: upsert the customer and relation (with
    State), and answer with the channel's welcome message when WeCom gave a WelcomeCode."""
    corp_id, ext, userid = event.corp_id, _field(event, "ExternalUserID"), _field(event, "UserID")
    state, code = _field(event, "State"), _field(event, "WelcomeCode")
    client = contact_client()
    data = read_customer(ext, client)
    if data is None:
        _audit(event, "customer.unknown", "customer", ext, userid=userid, state=state)
        return
    customer, relations = apply_customer_detail(corp_id, data, client)
    rel = relations.get(userid)
    if rel is not None and state and not rel.state:
        rel.state = state
    welcome = None
    if code:
        welcome = _enqueue_welcome(event, customer, userid, state, code)
    _audit(event, "customer.added" if event.change_type == "add_external_contact" else "customer.half_added",
           "customer", ext, userid=userid, state=state, relation_id=rel.id if rel is not None else None,
           welcome_command_id=welcome.id if welcome is not None else None)
    if rel is not None and event.change_type == "add_external_contact":
        customer_added.send(CustomerAdded(corp_id, customer.id, rel.id, userid, rel.state, rel.add_way))


def on_edit_external_contact(event: InboxEvent) -> None:
    """edit_external_contact: re-read and merge remark and tags (pending local changes win)."""
    corp_id, ext, userid = event.corp_id, _field(event, "ExternalUserID"), _field(event, "UserID")
    client = contact_client()
    data = read_customer(ext, client)
    if data is None:
        mark_all_lost(corp_id, ext, event_time(event), "sync")
        _audit(event, "customer.unknown", "customer", ext, userid=userid)
        return
    before_rel = _relation(corp_id, ext, userid)
    before = _relation_tag_ids([before_rel.id])[before_rel.id] if before_rel is not None else set()
    customer, relations = apply_customer_detail(corp_id, data, client)
    rel = relations.get(userid)
    _audit(event, "customer.edited", "customer", ext, userid=userid,
           relation_id=rel.id if rel is not None else None)
    if rel is not None and rel.id is not None:
        after = _relation_tag_ids([rel.id])[rel.id]
        if after != before:
            tags_changed.send(TagsChanged(corp_id, customer.id, rel.id, tuple(sorted(after - before)),
                                          tuple(sorted(before - after)), ACTOR))


BATCHED = ("add_external_contact", "add_half_external_contact", "edit_external_contact")
READ_THREADS = 8  # externalcontact/get calls in flight at once for a batch


_READERS: list[Any] = []  # (pid, executor): one pool per process, made at first use


def _reader_pool() -> ThreadPoolExecutor:
    if not _READERS or _READERS[0][0] != os.getpid():
        _READERS[:] = [(os.getpid(), ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="scrm-wecom-read"))]
    pool: ThreadPoolExecutor = _READERS[0][1]
    return pool


def _read_all(exts: list[str], client: Any) -> dict[str, dict[str, Any] | None | BaseException]:
    """`externalcontact/get` of every customer, several at once: the answer, None (WeCom no longer
    knows them) or the error."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def read(ext: str) -> dict[str, Any] | None | BaseException:
        with app.app_context():  # the token store may read the database
            try:
                return read_customer(ext, client)
            except Exception as exc:  # noqa: BLE001 - returned: the event is then applied alone, which retries
                return exc

    if len(exts) == 1:
        return {exts[0]: read(exts[0])}
    return dict(zip(exts, _reader_pool().map(read, exts)))


def apply_customer_events(events: list[InboxEvent]) -> set[int]:
    """The batch form of the add and edit handlers: WeCom is read once per customer (a burst of one
    customer's events costs one `externalcontact/get`), several customers at once, before the first
    write; then every customer, relation and tag is written set-based (`crm.upsert`), and each event
    gets its audit row, its welcome message and its signals exactly as its handler would give them.

    Events whose customer WeCom no longer knows, or could not be read now, are left to their handler.
    """
    if not events:
        return set()
    corp_id = events[0].corp_id
    events = [e for e in events if e.corp_id == corp_id and e.change_type in BATCHED and _field(e, "ExternalUserID")]
    client = contact_client()
    exts = sorted({_field(e, "ExternalUserID") for e in events})
    answers = _read_all(exts, client)
    details = {ext: data for ext, data in answers.items() if isinstance(data, dict)}
    events = [e for e in events if _field(e, "ExternalUserID") in details]
    if not events:
        return set()
    listed = {ext: {f["userid"]: f for f in data.get("follow_user") or [] if f.get("userid")}
              for ext, data in details.items()}
    # Every read before the first write: unknown tags from the catalog, new members' names.
    tag_pks = _tag_pks(corp_id, [t for follows in listed.values() for info in follows.values()
                                 for t in _wanted_tag_ids(info)], client)
    staff_names = _new_staff_names(corp_id, {u for follows in listed.values() for u in follows}, client)
    ensure_corp(corp_id)
    ensure_staff(corp_id, staff_names)
    reported = [Reported(data["external_contact"],
                         [Follow(u, info, _wanted_tag_ids(info)) for u, info in listed[ext].items()], complete=True)
                for ext, data in details.items()]
    written = write_customers(corp_id, reported, utcnow(), tag_pks=tag_pks, source="wecom",
                              pending=lambda ids: _pending_by_relation(corp_id, ids))
    names = {ext: str(data["external_contact"].get("name") or "") for ext, data in details.items()}
    signalled: set[int] = set()
    for event in events:
        ext, userid = _field(event, "ExternalUserID"), _field(event, "UserID")
        rid = written.relation_ids.get((ext, userid))
        cid = written.customer_ids[ext]
        if event.change_type == "edit_external_contact":
            _audit(event, "customer.edited", "customer", ext, userid=userid, relation_id=rid)
            if rid is not None and rid not in signalled:
                before, after = written.tags_before.get(rid, set()), written.tags_after.get(rid, set())
                if before != after:
                    tags_changed.send(TagsChanged(corp_id, cid, rid, tuple(sorted(after - before)),
                                                  tuple(sorted(before - after)), ACTOR))
                signalled.add(rid)
            continue
        state, code = _field(event, "State"), _field(event, "WelcomeCode")
        info = listed[ext].get(userid) or {}
        if rid is not None and state and not (info.get("state") or ""):
            db.session.execute(update(FollowRelation).where(FollowRelation.id == rid, FollowRelation.state == "")
                               .values(state=state).execution_options(synchronize_session=False))
        rel_state = (info.get("state") or state) if rid is not None else ""
        welcome = _enqueue_welcome_to(event, names[ext], userid, state, code) if code else None
        _audit(event, "customer.added" if event.change_type == "add_external_contact" else "customer.half_added",
               "customer", ext, userid=userid, state=state, relation_id=rid,
               welcome_command_id=welcome.id if welcome is not None else None)
        if rid is not None and event.change_type == "add_external_contact":
            customer_added.send(CustomerAdded(corp_id, cid, rid, userid, rel_state, int(info.get("add_way", 0) or 0)))
    db.session.flush()
    return {e.id for e in events}


def on_del_external_contact(event: InboxEvent) -> None:
    """del_external_contact: the member deleted the customer (relation lost), or the customer was
    handed over (Source=DELETE_BY_TRANSFER: lost_reason "transferred", not a loss)."""
    corp_id, ext, userid = event.corp_id, _field(event, "ExternalUserID"), _field(event, "UserID")
    reason = "transferred" if _field(event, "Source") == TRANSFER_SOURCE else "del_external_contact"
    client = contact_client()
    data = read_customer(ext, client)
    if data is not None and any(f.get("userid") == userid for f in data.get("follow_user") or []):
        # WeCom lists the relation again (re-added since): this event is stale.
        apply_customer_detail(corp_id, data, client)
        _audit(event, "relation.delete_stale", "customer", ext, userid=userid, reason=reason)
        return
    rel = _relation(corp_id, ext, userid)
    if rel is not None and (rel.status == "active" or rel.lost_reason in (None, "sync")):
        rel.status, rel.lost_at, rel.lost_reason = "lost", rel.lost_at or event_time(event), reason
        db.session.flush()
    if data is not None:
        customer, _ = apply_customer_detail(corp_id, data, client)
        if rel is None:  # a relation we never saw (its add came later or never): keep that it ended
            _ensure_staff(corp_id, userid)
            rel = FollowRelation(corp_id=corp_id, customer_id=customer.id, userid=userid, status="lost",
                                 lost_at=event_time(event), lost_reason=reason)
            db.session.add(rel)
            db.session.flush()
    elif rel is None:
        _audit(event, "customer.unknown", "customer", ext, userid=userid, reason=reason)
        return
    _audit(event, "relation.transferred" if reason == "transferred" else "relation.deleted", "customer", ext,
           userid=userid, relation_id=rel.id if rel is not None else None, reason=reason)
    if rel is not None and rel.id is not None:
        relation_lost.send(RelationLost(corp_id, rel.customer_id, rel.id, userid, reason))


def on_del_follow_user(event: InboxEvent) -> None:
    """del_follow_user: the customer deleted the member. The relation is lost (history kept) and
    the member, and their manager, get an app message linking to the customer in the sidebar."""
    corp_id, ext, userid = event.corp_id, _field(event, "ExternalUserID"), _field(event, "UserID")
    at = event_time(event)
    rel = _relation(corp_id, ext, userid)
    if rel is None:  # we never saw this relation: learn the customer first
        client = contact_client()
        data = read_customer(ext, client)
        if data is not None:
            apply_customer_detail(corp_id, data, client)
            rel = _relation(corp_id, ext, userid)
    if rel is None:
        _audit(event, "customer.unknown", "customer", ext, userid=userid)
        return
    if rel.added_at is not None and at < rel.added_at:  # re-added after this event: stale
        _audit(event, "relation.delete_stale", "customer", ext, userid=userid, reason="del_follow_user")
        return
    first = rel.lost_reason != "del_follow_user"
    rel.status, rel.lost_reason = "lost", "del_follow_user"
    rel.lost_at = at if first or rel.lost_at is None else rel.lost_at
    db.session.flush()
    notified = _notify_deleted(event, rel) if first else []
    _audit(event, "relation.deleted_by_customer", "customer", ext, userid=userid, relation_id=rel.id,
           notified=notified)
    if first:
        relation_lost.send(RelationLost(corp_id, rel.customer_id, rel.id, userid, "del_follow_user"))


def on_transfer_fail(event: InboxEvent) -> None:
    """transfer_fail: the takeover failed (customer_refused, customer_limit_exceed); recorded."""
    ext, userid, reason = _field(event, "ExternalUserID"), _field(event, "UserID"), _field(event, "FailReason")
    rel = _relation(event.corp_id, ext, userid)
    _audit(event, "transfer.failed", "customer", ext, takeover_userid=userid, fail_reason=reason,
           relation_id=rel.id if rel is not None else None)
    transfer_failed.send(TransferFailed(event.corp_id, ext, userid, reason))


def on_msg_audit_approved(event: InboxEvent) -> None:
    """msg_audit_approved: the customer agreed to chat archiving; recorded."""
    _audit(event, "customer.msg_audit_approved", "customer", _field(event, "ExternalUserID"),
           userid=_field(event, "UserID"))


def mark_all_lost(corp_id: str, ext: str, at: dt.datetime, reason: str) -> None:
    customer = _customer(corp_id, ext)
    if customer is None:
        return
    protected = pending_relation_ids(corp_id, [r.id for r in customer.relations])
    for rel in customer.relations:
        if rel.status == "active" and rel.id not in protected:
            rel.status, rel.lost_at, rel.lost_reason = "lost", at, reason
    if all(r.status != "active" for r in customer.relations):
        customer.gone_at = customer.gone_at or at


# ---------------------------------------------------------------- change_contact (the address book)


def on_contact_delete_user(event: InboxEvent) -> None:
    """change_contact / delete_user: the member was removed from the corp (离职). They are marked resigned
    at once, and the news goes out (`staff_resigned`): their sessions and API tokens end, their customers
    wait for a handover."""
    userid = _field(event, "UserID")
    if not userid:
        _audit(event, "staff.unknown", "staff", "")
        return
    staff = _ensure_staff(event.corp_id, userid)
    first = staff.status != "resigned"
    if first:
        staff.status, staff.resigned_at = "resigned", event_time(event)
    _audit(event, "staff.resigned", "staff", userid, first=first)
    db.session.flush()
    if first:
        staff_resigned.send(StaffResigned(event.corp_id, userid))


# ---------------------------------------------------------------- the bot's replies


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def welcome_message(corp_id: str, state: str, *, staff_name: str, customer_name: str) -> tuple[str, list[dict[str, Any]]]:
    """The welcome text and attachments of the channel (State), else the corp's default (seeded on first
    use); a channel with attachments but no text of its own sends them with the default text."""
    rows = {w.state: w for w in db.session.scalars(select(WelcomeMessage).where(
        WelcomeMessage.corp_id == corp_id, WelcomeMessage.state.in_({state, ""})))}
    row = rows.get(state) or rows.get("")
    if row is None:
        row = WelcomeMessage(corp_id=corp_id, state="", text=DEFAULT_WELCOME)
        db.session.add(row)
        db.session.flush()
    raw = row.text or (rows[""].text if "" in rows else DEFAULT_WELCOME)  # a channel with attachments only
    try:
        text = raw.format_map(_Blank(staff_name=staff_name, customer_name=customer_name))
    except (ValueError, IndexError, AttributeError):  # stray braces in a hand-written text
        text = raw
    return text, list(row.attachments or [])


def _enqueue_welcome(event: InboxEvent, customer: Customer, userid: str, state: str,
                     code: str) -> OutboxCommand | None:
    return _enqueue_welcome_to(event, customer.name, userid, state, code)


def _enqueue_welcome_to(event: InboxEvent, customer_name: str, userid: str, state: str,
                        code: str) -> OutboxCommand | None:
    key = f"welcome:{code}"
    if find_command(event.corp_id, key) is not None:  # applied before (a replay): the code is single-use
        return None
    staff = _ensure_staff(event.corp_id, userid)
    text, attachments = welcome_message(event.corp_id, state, staff_name=staff.name or userid,
                                        customer_name=customer_name)
    args: dict[str, Any] = {"welcome_code": code, "text": text}
    if attachments:
        args["attachments"] = attachments
    return enqueue(event.corp_id, "welcome", "send_welcome_msg", args, dedupe_key=key,
                   not_after=event_time(event) + WELCOME_WINDOW)


def customer_link(external_userid: str) -> str:
    """The customer in the sidebar (the sidebar's URL contract)."""
    return f"{settings().SCRM_PUBLIC_URL.rstrip('/')}/sidebar/customer/{external_userid}"


def _notify_deleted(event: InboxEvent, rel: FollowRelation) -> list[str]:
    """Queue the app messages about a customer who deleted a member; the userids notified."""
    conf = settings()
    if not conf.WECOM_AGENT_ID.isdigit():
        log.warning("crm.handlers.no-agent-id: cannot tell %s that a customer deleted them", rel.userid)
        return []
    customer = db.session.get(Customer, rel.customer_id)
    name = (customer.name if customer is not None else "") or rel.remark or "未命名客户"
    ext = customer.external_userid if customer is not None else _field(event, "ExternalUserID")
    link = customer_link(ext)
    staff = _ensure_staff(event.corp_id, rel.userid)
    messages = [(rel.userid, f"客户「{name}」已将您删除，与其的跟进记录已保留。\n查看客户：{link}")]
    manager = (staff.manager_userid or "").strip()
    if manager and manager != rel.userid:
        messages.append((manager, f"您团队成员{staff.name or rel.userid}（{rel.userid}）的客户「{name}」"
                                  f"已将其删除，跟进记录已保留。\n查看客户：{link}"))
    for touser, text in messages:
        enqueue(event.corp_id, "notify_deleted", "send_app_message",
                {"agentid": int(conf.WECOM_AGENT_ID), "touser": [touser], "text": text},
                dedupe_key=f"del_follow_user:{event.id}:{touser}")
    return [m[0] for m in messages]


# ---------------------------------------------------------------- change_external_chat


def _chat(corp_id: str, chat_id: str) -> GroupChat | None:
    return db.session.scalar(select(GroupChat).where(GroupChat.corp_id == corp_id, GroupChat.chat_id == chat_id))


def on_chat_changed(event: InboxEvent) -> None:
    """create / update (any UpdateDetail): re-read `groupchat/get` and apply it whole."""
    corp_id, chat_id = event.corp_id, _field(event, "ChatId")
    detail = {"update_detail": _field(event, "UpdateDetail") or None,
              "mem_change_list": list((event.data or {}).get("MemChangeList") or []) or None}
    try:
        data = contact_client().get_groupchat(chat_id)
    except WeComError as exc:
        if exc.errcode in CHAT_GONE:
            chat = _dismiss(corp_id, chat_id, event_time(event))
            if detail["update_detail"] == "del_member":  # the chat is gone, the event still says who left
                for member in chat.members:
                    if member.member_id in (detail["mem_change_list"] or []) and member.left_at is None:
                        member.left_at = event_time(event)
            _audit(event, "group_chat.dismissed", "group_chat", chat_id, errcode=exc.errcode, **detail)
            return
        if exc.errcode in CHAT_UNKNOWN:
            _audit(event, "group_chat.unknown", "group_chat", chat_id, errcode=exc.errcode, **detail)
            return
        raise
    ensure_corp(corp_id)
    chat = _chat(corp_id, chat_id)
    if chat is None:
        chat = GroupChat(corp_id=corp_id, chat_id=chat_id)
        db.session.add(chat)
    apply_group_chat_fields(chat, data, None, utcnow())
    db.session.flush()
    _audit(event, "group_chat.created" if event.change_type == "create" else "group_chat.updated",
           "group_chat", chat_id, member_version=chat.member_version, **detail)
    if detail["update_detail"] == "add_member" or event.change_type == "create":
        joined = set(detail["mem_change_list"] or []) if event.change_type != "create" else \
            {m.member_id for m in chat.members if m.type == 2}
        for member_id in sorted(joined):
            customer = _customer(corp_id, member_id)
            if customer is not None:
                member = next((m for m in chat.members if m.member_id == member_id), None)
                joined_group_chat.send(JoinedGroupChat(corp_id, customer.id, chat_id,
                                                       member.state if member is not None else ""))


def _dismiss(corp_id: str, chat_id: str, at: dt.datetime) -> GroupChat:
    ensure_corp(corp_id)
    chat = _chat(corp_id, chat_id)
    if chat is None:
        chat = GroupChat(corp_id=corp_id, chat_id=chat_id)
        db.session.add(chat)
    chat.dismissed_at = chat.dismissed_at or at
    db.session.flush()
    return chat


def on_chat_dismissed(event: InboxEvent) -> None:
    """dismiss: the owner dismissed the chat; it keeps its row and members with `dismissed_at`."""
    chat_id = _field(event, "ChatId")
    _dismiss(event.corp_id, chat_id, event_time(event))
    _audit(event, "group_chat.dismissed", "group_chat", chat_id)


# ---------------------------------------------------------------- change_external_tag


def apply_tag_groups(corp_id: str, groups: list[dict[str, Any]], *, tag_ids: Iterable[str] = (),
                     group_ids: Iterable[str] = (), complete: bool = False) -> dict[str, int]:
    """Upsert tag groups and tags from a `get_corp_tag_list` answer.

    What was asked for and is missing or `deleted` gets a tombstone (and loses its assignments):
    the `tag_ids` asked for, the `group_ids` asked for (with all their tags), or with `complete`
    (the whole catalog was read) everything not returned. Counts of what changed.
    """
    ensure_corp(corp_id)
    now = utcnow()
    counts = {"groups": 0, "tags": 0, "tombstoned": 0}
    all_groups = {g.group_id: g for g in db.session.scalars(select(TagGroup).where(TagGroup.corp_id == corp_id))}
    seen_groups: set[str] = set()
    seen_tags: set[str] = set()
    dead: list[Tag] = []
    asked_groups = set(group_ids)
    for g in groups:
        group = all_groups.get(g["group_id"])
        if group is None:
            group = TagGroup(corp_id=corp_id, group_id=g["group_id"], name=g.get("group_name") or "")
            db.session.add(group)
            all_groups[group.group_id] = group
        group.name = g.get("group_name") or group.name
        group.order = int(g.get("order") or 0)
        group.wecom_created_at = from_epoch(g.get("create_time")) or group.wecom_created_at
        group.synced_at = now
        group.deleted_at = (group.deleted_at or now) if g.get("deleted") else None
        seen_groups.add(group.group_id)
        counts["groups"] += 1
        db.session.flush()
        tags = {t.tag_id: t for t in db.session.scalars(select(Tag).where(Tag.corp_id == corp_id,
                                                                          Tag.group_pk == group.id))}
        returned: set[str] = set()
        for t in g.get("tag") or []:
            tag = tags.get(t["id"]) or db.session.scalar(select(Tag).where(Tag.corp_id == corp_id,
                                                                           Tag.tag_id == t["id"]))
            if tag is None:
                tag = Tag(corp_id=corp_id, tag_id=t["id"], group_pk=group.id, name=t.get("name") or "")
                db.session.add(tag)
            tag.name, tag.group_pk = t.get("name") or tag.name, group.id
            tag.order = int(t.get("order") or 0)
            tag.wecom_created_at = from_epoch(t.get("create_time")) or tag.wecom_created_at
            tag.synced_at = now
            if t.get("deleted") or group.deleted_at is not None:
                dead.append(tag)
            else:
                tag.deleted_at = None
            returned.add(t["id"])
            seen_tags.add(t["id"])
            counts["tags"] += 1
        if group.group_id in asked_groups or complete or group.deleted_at is not None:
            dead += [tag for tid, tag in tags.items() if tid not in returned]
    for gid in asked_groups - seen_groups:
        group = all_groups.get(gid)
        if group is not None:
            group.deleted_at = group.deleted_at or now
            dead += list(db.session.scalars(select(Tag).where(Tag.group_pk == group.id)))
    missing_tags = set(tag_ids) - seen_tags
    if missing_tags:
        dead += list(db.session.scalars(select(Tag).where(Tag.corp_id == corp_id,
                                                          Tag.tag_id.in_(sorted(missing_tags)))))
    if complete:
        for gid, group in all_groups.items():
            if gid not in seen_groups:
                group.deleted_at = group.deleted_at or now
                dead += list(db.session.scalars(select(Tag).where(Tag.group_pk == group.id)))
    counts["tombstoned"] = tombstone_tags(dead, now)
    db.session.flush()
    return counts


def tombstone_tags(tags: list[Tag], now: dt.datetime) -> int:
    """Mark tags deleted (the rows stay, so history reads) and drop their assignments."""
    fresh = [t for t in {id(t): t for t in tags}.values()]
    for tag in fresh:
        tag.deleted_at = tag.deleted_at or now
    pks = [t.id for t in fresh if t.id is not None]
    if pks:
        db.session.flush()
        db.session.execute(delete(TagAssignment).where(TagAssignment.tag_pk.in_(pks))
                           .execution_options(synchronize_session=False))
    return len(fresh)


def on_tag_changed(event: InboxEvent) -> None:
    """create / update / delete of a tag or a tag group: re-read it by id and apply."""
    obj_id, tag_type = _field(event, "Id"), _field(event, "TagType") or "tag"
    client = contact_client()
    if tag_type == "tag_group":
        counts = apply_tag_groups(event.corp_id, client.get_corp_tag_list(group_ids=[obj_id]), group_ids=[obj_id])
    else:
        counts = apply_tag_groups(event.corp_id, client.get_corp_tag_list(tag_ids=[obj_id]), tag_ids=[obj_id])
    _audit(event, f"{tag_type}.{event.change_type}", tag_type, obj_id, strategy_id=_field(event, "StrategyId") or None,
           **counts)


def on_tag_shuffle(event: InboxEvent) -> None:
    """shuffle: new `order` values in one group (Id) or in every group (no Id)."""
    group_id = _field(event, "Id")
    client = contact_client()
    if group_id:
        counts = apply_tag_groups(event.corp_id, client.get_corp_tag_list(group_ids=[group_id]), group_ids=[group_id])
    else:
        counts = apply_tag_groups(event.corp_id, client.get_corp_tag_list(), complete=True)
    _audit(event, "tag.shuffle", "tag_group", group_id or "*", **counts)


# ---------------------------------------------------------------- outbox after-hooks and wiring


def refresh_after_refusal(command: OutboxCommand) -> None:
    """A `mark_tag` WeCom refused (84061 no relationship, 40068 bad tag, …): the local change is
    undone by applying WeCom's current state of that customer (other pending changes still win)."""
    ext = str((command.args or {}).get("external_userid") or "")
    if not ext:
        return
    customer = refresh_customer(command.corp_id, ext)
    if customer is None:
        mark_all_lost(command.corp_id, ext, utcnow(), "sync")
    audit(command.corp_id, ACTOR, "outbox.refused", "relation", str(command.relation_id or ""),
          {"command_id": command.id, "kind": command.kind, "errcode": command.last_errcode,
           "error": command.last_error, "external_userid": ext})


HANDLERS: dict[tuple[str, str], dispatch.Handler] = {
    ("change_external_contact", "add_external_contact"): on_add_external_contact,
    ("change_external_contact", "add_half_external_contact"): on_add_external_contact,
    ("change_external_contact", "edit_external_contact"): on_edit_external_contact,
    ("change_external_contact", "del_external_contact"): on_del_external_contact,
    ("change_external_contact", "del_follow_user"): on_del_follow_user,
    ("change_external_contact", "transfer_fail"): on_transfer_fail,
    ("change_external_contact", "msg_audit_approved"): on_msg_audit_approved,
    ("change_external_chat", "create"): on_chat_changed,
    ("change_external_chat", "update"): on_chat_changed,
    ("change_external_chat", "dismiss"): on_chat_dismissed,
    ("change_external_tag", "create"): on_tag_changed,
    ("change_external_tag", "update"): on_tag_changed,
    ("change_external_tag", "delete"): on_tag_changed,
    ("change_external_tag", "shuffle"): on_tag_shuffle,
    ("change_contact", "delete_user"): on_contact_delete_user,
}


def _outbox_protector(corp_id: str, relation_ids: list[int]) -> set[int]:
    return pending_relation_ids(corp_id, relation_ids)


def register(app: Flask) -> None:
    """Wire the handlers, the sync protector and the outbox after-hooks into `app` (once)."""
    for (event, change_type), fn in HANDLERS.items():
        dispatch.register(app, event, change_type, fn)
    for change_type in BATCHED:
        dispatch.register_batch(app, "change_external_contact", change_type, apply_customer_events)
    protectors = app.extensions.setdefault("scrm.sync.protectors", [])
    if _outbox_protector not in protectors:
        register_protector(app, _outbox_protector)
    dispatch.register_outbox_hooks(app, "mark_tag", on_failed=refresh_after_refusal)
