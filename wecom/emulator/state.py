"""The emulator's in-memory world: staff, customers, follow relations, corp tags, group chats,
transfers, mass messages, contact ways, media and the codes WeCom hands out.

Records use `__slots__` and relations are shared objects indexed twice (per customer and per
staff member, append-only with tombstones), so a million relations fit in a few hundred MB and
`batch/get_by_user` pages by position without scanning the corp.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import random
import string
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Callable

from .clock import Clock

# Relation status
ACTIVE = 0  # both sides are friends
CUSTOMER_DELETED = 1  # the customer deleted/blocked the member: still listed, writes -> 84061
HALF = 2  # add_half_external_contact: the member has not confirmed; hidden, writes -> 84061
GONE = 3  # the member deleted the customer or the customer was transferred away: hidden

VISIBLE = (ACTIVE, CUSTOMER_DELETED)

# Member status (user/get)
MEMBER_ACTIVE = 1
MEMBER_RESIGNED = 5

# Transfer status (transfer_result, wecom-api.md §5.2): 1 taken over, 2 waiting, 3 refused by the customer,
# 4 the takeover member at their customer limit, 5 no takeover record (the relation ended before the 24 h passed)
T_DONE, T_WAITING, T_REFUSED, T_LIMIT, T_NONE = 1, 2, 3, 4, 5
TRANSFER_DELAY = 24 * 3600
TRANSFER_WINDOW = 90 * 86400

_ID_CHARS = string.ascii_letters + string.digits


class Member:
    __slots__ = ("userid", "name", "department", "status", "position", "dimission_time", "customer_contact")

    def __init__(self, userid: str, name: str, department: list[int], position: str = "") -> None:
        self.userid = userid
        self.name = name
        self.department = department
        self.status = MEMBER_ACTIVE
        self.position = position
        self.dimission_time = 0
        self.customer_contact = True

    @property
    def resigned(self) -> bool:
        return self.status == MEMBER_RESIGNED


class Customer:
    __slots__ = ("external_userid", "name", "type", "gender", "corp_name", "corp_full_name", "position",
                 "unionid", "follows")

    def __init__(self, external_userid: str, name: str, type_: int = 1, gender: int = 0,
                 corp_name: str | None = None, corp_full_name: str | None = None,
                 position: str | None = None, unionid: str | None = None) -> None:
        self.external_userid = external_userid
        self.name = name
        self.type = type_
        self.gender = gender
        self.corp_name = corp_name
        self.corp_full_name = corp_full_name
        self.position = position
        self.unionid = unionid
        self.follows: list[Relation] = []

    @property
    def avatar(self) -> str:
        return f"http://wx.qlogo.cn/mmhead/{self.external_userid[2:14]}/0"


class Relation:
    """One follow relation (member × customer); `tags` is a tuple of corp tag ids."""

    __slots__ = ("userid", "external_userid", "remark", "description", "createtime", "tags", "add_way",
                 "oper_userid", "state", "remark_corp_name", "remark_mobiles", "status")

    def __init__(self, userid: str, external_userid: str, createtime: int, add_way: int = 0,
                 oper_userid: str | None = None, state: str = "", tags: tuple[str, ...] = (),
                 remark: str = "", description: str = "", status: int = ACTIVE) -> None:
        self.userid = userid
        self.external_userid = external_userid
        self.createtime = createtime
        self.add_way = add_way
        self.oper_userid = oper_userid or userid
        self.state = state
        self.tags = tags
        self.remark = remark
        self.description = description
        self.remark_corp_name = ""
        self.remark_mobiles: tuple[str, ...] = ()
        self.status = status

    def __repr__(self) -> str:
        return f"<Relation {self.userid}→{self.external_userid} status={self.status} tags={self.tags}>"


class TagGroup:
    __slots__ = ("group_id", "name", "create_time", "order", "deleted", "tag_ids")

    def __init__(self, group_id: str, name: str, create_time: int, order: int = 0) -> None:
        self.group_id = group_id
        self.name = name
        self.create_time = create_time
        self.order = order
        self.deleted = False
        self.tag_ids: list[str] = []


class Tag:
    __slots__ = ("id", "name", "group_id", "create_time", "order", "deleted")

    def __init__(self, tag_id: str, name: str, group_id: str, create_time: int, order: int = 0) -> None:
        self.id = tag_id
        self.name = name
        self.group_id = group_id
        self.create_time = create_time
        self.order = order
        self.deleted = False


class ChatMember:
    __slots__ = ("userid", "type", "join_time", "join_scene", "invitor", "group_nickname", "name", "state")

    def __init__(self, userid: str, type_: int, join_time: int, join_scene: int, invitor: str | None,
                 name: str, state: str = "") -> None:
        self.userid = userid
        self.type = type_
        self.join_time = join_time
        self.join_scene = join_scene
        self.invitor = invitor
        self.group_nickname = ""
        self.name = name
        self.state = state


class GroupChat:
    __slots__ = ("chat_id", "name", "owner", "create_time", "notice", "members", "admin_list",
                 "member_version", "status", "dismissed", "transfers")

    def __init__(self, chat_id: str, name: str, owner: str, create_time: int) -> None:
        self.chat_id = chat_id
        self.name = name
        self.owner = owner
        self.create_time = create_time
        self.notice = ""
        self.members: list[ChatMember] = []
        self.admin_list: list[str] = []
        self.member_version = ""
        self.status = 0  # 0 normal, 1 owner resigned, 2 inheritance running, 3 inheritance done
        self.dismissed = False
        self.transfers: list[int] = []  # start times of on-job transfers (2 per 90 days)

    def member_ids(self) -> list[str]:
        return [m.userid for m in self.members]


class Transfer:
    """One customer handed over: started by `transfer_customer` (kind "onjob") or
    `resigned/transfer_customer` ("resigned"); waiting (2) until `takeover_time`, 24 h after the start on
    the emulator clock, then taken over (1), refused (3), stopped at the takeover's limit (4) or without a
    record (5: the relation to the handover member ended meanwhile)."""

    __slots__ = ("kind", "handover", "takeover", "external_userid", "start", "takeover_time", "status",
                 "refuse")

    def __init__(self, kind: str, handover: str, takeover: str, external_userid: str, start: int) -> None:
        self.kind = kind  # "onjob" | "resigned"
        self.handover = handover
        self.takeover = takeover
        self.external_userid = external_userid
        self.start = start
        self.takeover_time = start + TRANSFER_DELAY
        self.status = T_WAITING
        self.refuse = False

    def __lt__(self, other: "Transfer") -> bool:
        return self.takeover_time < other.takeover_time

    def result(self) -> dict[str, Any]:
        """The row `transfer_result` lists: takeover_time is the (future) takeover time, 0 when it ended without one."""
        return {"external_userid": self.external_userid, "status": self.status, "takeover_time": self.takeover_time}


# Mass-message quota periods (wecom-api.md §7.1 ⚠): the 2023 spec says 1 per day, older texts 4 per natural month.
QUOTA_DAY, QUOTA_MONTH = "day", "month"
CHINA_OFFSET = 8 * 3600


def quota_period(period: str, when: int) -> tuple[str, int]:
    """The China calendar day (or natural month) `when` falls in, as a key of `State.received`."""
    china = when + CHINA_OFFSET
    if period == QUOTA_MONTH:
        day = dt.datetime.fromtimestamp(china, dt.timezone.utc)
        return (QUOTA_MONTH, day.year * 12 + day.month - 1)
    return (QUOTA_DAY, china // 86400)


class MsgTask:
    """One member's task in a mass message: the targets it was given and, once the member confirmed
    (sent) it, a result per target: 1 sent, 2 not a friend (or not the chat's owner), 3 quota reached."""

    __slots__ = ("userid", "status", "send_time", "targets", "results")

    def __init__(self, userid: str, targets: list[str]) -> None:
        self.userid = userid
        self.status = 0  # 0 not sent, 2 sent
        self.send_time = 0
        self.targets = targets  # external_userids (single) or chat ids (group)
        self.results: dict[str, tuple[int, int]] = {}  # target -> (status, send_time)


class MsgTemplate:
    """A mass message (企业群发): created by the API (create_type 0) or by a member in the client (1)."""

    __slots__ = ("msgid", "chat_type", "create_time", "create_type", "creator", "text", "attachments",
                 "tasks", "cancelled", "reminders", "confirm_at")

    def __init__(self, msgid: str, chat_type: str, create_time: int, text: dict[str, Any] | None,
                 attachments: list[dict[str, Any]]) -> None:
        self.msgid = msgid
        self.chat_type = chat_type
        self.create_time = create_time
        self.create_type = 0  # 0 created by the corp (API), 1 by a member
        self.creator: str | None = None
        self.text = text
        self.attachments = attachments
        self.tasks: dict[str, MsgTask] = {}
        self.cancelled = False
        self.reminders: list[int] = []
        self.confirm_at: int | None = None  # every member confirms at this time (`State.groupmsg_auto_confirm`)

    def confirm(self, state: "State", userid: str, at: int, chat_ids: list[str] | None = None) -> dict[str, int]:
        """The member sends their task at `at`: each target gets 1, 2 or 3; the quota is spent on 1.

        For a group message the owner picks the chats when confirming (`chat_ids`, default all); chats
        not picked stay unsent and are never listed in the results (wecom-api.md §7.4).
        """
        task = self.tasks[userid]
        counts = {1: 0, 2: 0, 3: 0}
        picked = set(task.targets if chat_ids is None else chat_ids)
        for target in task.targets:
            if self.chat_type == "group" and target not in picked:
                continue
            if self.chat_type == "single":
                rel = state.relation(userid, target)
                ok = rel is not None and rel.status == ACTIVE
            else:
                chat = state.group_chats.get(target)
                ok = chat is not None and not chat.dismissed and chat.owner == userid
            key = (target, *quota_period(state.groupmsg_quota_period, at))
            if not ok:
                status = 2
            elif state.received.get(key, 0) >= state.groupmsg_quota:
                status = 3
            else:
                status = 1
                state.received[key] = state.received.get(key, 0) + 1
            task.results[target] = (status, at if status == 1 else 0)
            counts[status] += 1
        task.status, task.send_time = 2, at
        return {"sent": counts[1], "not_friend": counts[2], "quota": counts[3]}

    @staticmethod
    def settle(state: "State", now: int) -> None:
        """Confirm, in order of their time, the tasks whose automatic confirmation time has come
        (as if every member had pressed 发送 then), so the quota is spent in the right order."""
        due = sorted((t for t in state.msg_templates.values()
                      if t.confirm_at is not None and t.confirm_at <= now and not t.cancelled),
                     key=lambda t: (t.confirm_at or 0, t.create_time))
        for tpl in due:
            for userid, task in tpl.tasks.items():
                if not task.status:
                    tpl.confirm(state, userid, tpl.confirm_at or now)
            tpl.confirm_at = None


class RelationsView(Mapping[tuple[str, str], Relation]):
    """Read-only view of the follow relations WeCom still lists, keyed by (userid, external_userid)."""

    def __init__(self, state: "State") -> None:
        self._state = state

    def __getitem__(self, key: tuple[str, str]) -> Relation:
        rel = self._state.relation(*key)
        if rel is None or rel.status not in VISIBLE:
            raise KeyError(key)
        return rel

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for rels in list(self._state.by_user.values()):
            for rel in rels:
                if rel.status in VISIBLE:
                    yield (rel.userid, rel.external_userid)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class State:
    """Everything the emulated corp knows. Guard every read-modify-write with `state.lock`."""

    def __init__(self, corp_id: str, clock: Clock, rng_seed: int = 7) -> None:
        self.corp_id = corp_id
        self.clock = clock
        self.lock = threading.RLock()
        self.rng = random.Random(rng_seed)
        self.staff: dict[str, Member] = {}
        self.customers: dict[str, Customer] = {}
        self.by_user: dict[str, list[Relation]] = {}
        self.tag_groups: dict[str, TagGroup] = {}
        self.tags: dict[str, Tag] = {}
        self.group_chats: dict[str, GroupChat] = {}
        self.transfers: list[Transfer] = []
        self._pending: list[Transfer] = []  # heap on takeover_time
        self.pending_by_customer: dict[str, Transfer] = {}
        self.refusals: set[str] = set()
        self.customer_limit: int | None = None  # takeover member's cap (status 4) when set
        self.msg_templates: dict[str, MsgTemplate] = {}
        self.groupmsg_quota = 1  # mass messages one customer/group may receive per period
        self.groupmsg_quota_period = QUOTA_DAY  # QUOTA_DAY (China calendar day) | QUOTA_MONTH (natural month)
        self.groupmsg_auto_confirm: int | None = None  # members confirm new tasks this many seconds after creation
        self.received: dict[tuple[str, str, int], int] = {}  # (target, period kind, period) -> received
        self.contact_ways: dict[str, dict[str, Any]] = {}
        self.join_ways: dict[str, dict[str, Any]] = {}  # 「加入群聊」 ways by config_id (§9.1)
        self.media: dict[str, dict[str, Any]] = {}
        self.messages: list[dict[str, Any]] = []  # app messages sent with message/send
        self.welcome_codes: dict[str, dict[str, Any]] = {}
        self.welcome_messages: list[dict[str, Any]] = []
        self.oauth_codes: dict[str, tuple[str, int]] = {}
        self.emit: Callable[[str, str, list[tuple[str, Any]]], None] = lambda *a: None
        self.relations = RelationsView(self)

    # ------------------------------------------------------------ ids

    def new_id(self, prefix: str, length: int = 32) -> str:
        body = "".join(self.rng.choice(_ID_CHARS) for _ in range(length - len(prefix) - 3))
        return prefix + body + "AAA"

    # ------------------------------------------------------------ relations

    def add_member(self, userid: str, name: str, department: list[int], position: str = "") -> Member:
        member = Member(userid, name, list(department), position)
        self.staff[userid] = member
        self.by_user.setdefault(userid, [])
        return member

    def add_relation(self, userid: str, customer: Customer, createtime: int, **fields: Any) -> Relation:
        rel = Relation(userid, customer.external_userid, createtime, **fields)
        customer.follows.append(rel)
        self.by_user.setdefault(userid, []).append(rel)
        return rel

    def relation(self, userid: str, external_userid: str) -> Relation | None:
        """The current (not GONE) relation between a member and a customer."""
        customer = self.customers.get(external_userid)
        if customer is None:
            return None
        for rel in customer.follows:
            if rel.userid == userid and rel.status != GONE:
                return rel
        return None

    def drop_relation(self, rel: Relation) -> None:
        rel.status = GONE
        customer = self.customers.get(rel.external_userid)
        if customer is not None and rel in customer.follows:
            customer.follows.remove(rel)

    def visible_follows(self, customer: Customer) -> list[Relation]:
        return [r for r in customer.follows if r.status in VISIBLE]

    def live_tags(self, rel: Relation) -> list[str]:
        """Tag ids of a relation, without tags deleted since they were marked."""
        tags = self.tags
        return [t for t in rel.tags if t in tags and not tags[t].deleted]

    def relation_tags(self, userid: str, external_userid: str) -> set[str]:
        rel = self.relation(userid, external_userid)
        return set(self.live_tags(rel)) if rel is not None else set()

    def follow_users(self) -> list[str]:
        return [m.userid for m in self.staff.values() if m.customer_contact and not m.resigned]

    # ------------------------------------------------------------ chats

    def bump_member_version(self, chat: GroupChat) -> None:
        seed = f"{chat.chat_id}|{chat.member_version}|{','.join(chat.member_ids())}|{self.rng.random()}"
        chat.member_version = hashlib.md5(seed.encode()).hexdigest()

    def display_name(self, userid: str) -> str:
        if userid in self.staff:
            return self.staff[userid].name
        customer = self.customers.get(userid)
        return customer.name if customer else userid

    # ------------------------------------------------------------ transfers

    def start_transfer(self, kind: str, handover: str, takeover: str, external_userid: str) -> Transfer:
        transfer = Transfer(kind, handover, takeover, external_userid, self.clock.now())
        if external_userid in self.refusals:
            self.refusals.discard(external_userid)
            transfer.refuse = True
        self.transfers.append(transfer)
        self.pending_by_customer[external_userid] = transfer
        heapq.heappush(self._pending, transfer)
        return transfer

    def tick(self) -> None:
        """Complete the transfers whose 24 h have passed on the emulator clock, oldest first.

        What a completion needs to know about earlier ones (who already had the customer by transfer, how
        many customers a takeover member has) is read once per tick, not once per customer, so a clock
        advance past ten thousand transfers takes a moment, not minutes."""
        now = self.clock.now()
        with self.lock:
            if not self._pending or self._pending[0].takeover_time > now:
                return
            had_by_transfer = {(t.external_userid, t.takeover) for t in self.transfers if t.status == T_DONE}
            loads: dict[str, int] = {}
            while self._pending and self._pending[0].takeover_time <= now:
                self._complete(heapq.heappop(self._pending), had_by_transfer, loads)

    def _load(self, userid: str, loads: dict[str, int]) -> int:
        """How many customers `userid` has (counted once per tick, then kept up to date by `_complete`)."""
        if userid not in loads:
            loads[userid] = sum(1 for r in self.by_user.get(userid, ()) if r.status in VISIBLE)
        return loads[userid]

    def _complete(self, t: Transfer, had_by_transfer: set[tuple[str, str]] | None = None,
                  loads: dict[str, int] | None = None) -> None:
        """The 24 h of `t` have passed (wecom-api.md §5.1, §3.1): no relation to hand over any more → 5; the
        customer refused → 3 and `transfer_fail` (customer_refused); the takeover at their limit → 4 and
        `transfer_fail` (customer_limit_exceed); else taken over → 1. The takeover gets the relation (remark,
        tags, channel carried over) and an `add_external_contact` callback, unless they were already the
        customer's friend or had the customer before by a transfer; an on-job handover member loses the
        customer with `del_external_contact` Source=DELETE_BY_TRANSFER (a resigned member gets no callback)."""
        had_by_transfer = had_by_transfer if had_by_transfer is not None else \
            {(x.external_userid, x.takeover) for x in self.transfers if x.status == T_DONE}
        loads = loads if loads is not None else {}
        if self.pending_by_customer.get(t.external_userid) is t:
            self.pending_by_customer.pop(t.external_userid, None)
        customer = self.customers.get(t.external_userid)
        old = self.relation(t.handover, t.external_userid)
        if customer is None or old is None or old.status not in VISIBLE:
            t.status, t.takeover_time = T_NONE, 0
            return
        if t.refuse:
            t.status, t.takeover_time = T_REFUSED, 0
            self.emit("change_external_contact", "transfer_fail", [
                ("FailReason", "customer_refused"), ("UserID", t.takeover), ("ExternalUserID", t.external_userid)])
            return
        existing = self.relation(t.takeover, t.external_userid)
        friends = existing is not None and existing.status == ACTIVE
        if self.customer_limit is not None and not friends and self._load(t.takeover, loads) >= self.customer_limit:
            t.status, t.takeover_time = T_LIMIT, 0
            self.emit("change_external_contact", "transfer_fail", [
                ("FailReason", "customer_limit_exceed"), ("UserID", t.takeover),
                ("ExternalUserID", t.external_userid)])
            return
        t.status = T_DONE
        if not friends:
            if existing is not None:
                self.drop_relation(existing)
            rel = self.add_relation(t.takeover, customer, t.takeover_time, add_way=202, oper_userid=t.handover,
                                    tags=tuple(self.live_tags(old)), remark=old.remark,
                                    description=old.description, state=old.state)
            rel.remark_mobiles = old.remark_mobiles
            if t.takeover in loads:
                loads[t.takeover] += 1
            if (t.external_userid, t.takeover) not in had_by_transfer:
                self.emit("change_external_contact", "add_external_contact", [
                    ("UserID", t.takeover), ("ExternalUserID", t.external_userid)])
        had_by_transfer.add((t.external_userid, t.takeover))
        self.drop_relation(old)
        if t.handover in loads:
            loads[t.handover] -= 1
        if t.kind == "onjob":
            self.emit("change_external_contact", "del_external_contact", [
                ("UserID", t.handover), ("ExternalUserID", t.external_userid), ("Source", "DELETE_BY_TRANSFER")])

    def onjob_transfers_since(self, external_userid: str, since: int) -> int:
        """On-job transfers of the customer started since `since` (WeCom allows 2 in 90 days: 40128)."""
        return sum(1 for t in self.transfers
                   if t.kind == "onjob" and t.external_userid == external_userid and t.start >= since)

    # ------------------------------------------------------------ summary

    def summary(self) -> dict[str, int]:
        with self.lock:
            relations = sum(1 for rels in self.by_user.values() for r in rels if r.status in VISIBLE)
            return {
                "staff": len(self.staff),
                "follow_users": len(self.follow_users()),
                "customers": len(self.customers),
                "relations": relations,
                "tag_groups": sum(1 for g in self.tag_groups.values() if not g.deleted),
                "tags": sum(1 for t in self.tags.values() if not t.deleted),
                "group_chats": sum(1 for c in self.group_chats.values() if not c.dismissed),
            }
