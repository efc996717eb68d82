"""What marketers do with channel codes (渠道活码): create one, edit it, pause, resume and retire it; name
a State that no channel knows (made in WeCom's admin console); read channels for the API and pages.

Services flush; the request, job or command that calls them commits once.

A channel's parts live where the rest of the product already looks for them:

- its name: `crm.ChannelLabel(state → name)`, read by the sidebar, segments, the customer list, exports;
- its welcome message: `crm.WelcomeMessage(state=…)`, which the add-contact handler already picks by
  State (single and batch paths), within WeCom's 20 s;
- its arrival tags: a tagging rule (`customer_added` with the channel's State → `add_tags`), so they are
  marked through the existing rules (worker, outbox, audit, loop detection);
- the code itself: a WeCom contact way, written through the outbox (`channels.ways`).

A join channel (「加入群聊」, kind `join`) has chats instead of staff: customers who scan it join one of its
≤5 chats (or a chat WeCom opens when they are full), carrying its State in `groupchat/get`, which is
how `channels.reports` attributes them; its arrival tags are a `joined_group_chat` rule with the State;
its welcome message is the chats' own, set in WeCom.

Pause and retire: a paused channel keeps its code in WeCom (printed posters keep working and customers
are still attributed to it), but its own welcome message is removed (the corp's default welcome applies)
and its arrival-tag rule is disabled; resume restores both. Retire deletes the way in WeCom
(`del_contact_way`), removes the welcome message and disables the rule for good; the channel row, its
name and its history stay, so reports still name it.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import distinct, func, select

from core.db import db, utcnow
from core.errors import Conflict, NotFound, UserValueError
from core.time import CHINA
from crm.models import FollowRelation, GroupChat, GroupChatMember, Staff, WelcomeMessage
from crm.service import audit, save_state_label, state_labels
from identity.service import Principal
from tagging.assignments.service import tags_by_id
from tagging.rules.service import get_rule, save_rule

from . import ways
from .models import ACTIVE, CONTACT, FAILED, JOIN, PAUSED, PENDING, RETIRED, Channel

ROLES = ("marketer", "manager")
MAX_USERS = 100
MAX_TAGS = 20
MAX_WELCOME_BYTES = 4000
STATE_MAX = 30
STATE_RE = re.compile(r"^[A-Za-z0-9_\-]{1,30}$")
SCHEDULE_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")

STATUS_LABELS = {PENDING: "创建中", ACTIVE: "使用中", PAUSED: "已暂停", RETIRED: "已停用", FAILED: "创建失败"}
KIND_LABELS = {CONTACT: "联系我（加好友）", JOIN: "加入群聊"}
EXTERNAL = "external"  # an adopted State: its code is managed in WeCom's admin console
SYNC_LABELS = {"pending": "同步中", "done": "已同步", "failed": "同步失败", EXTERNAL: "二维码在企业微信后台管理"}


# ---------------------------------------------------------------- checking


def new_state(corp_id: str) -> str:
    """A fresh State: `ch` and 12 hex digits (14 characters, WeCom allows 30), unique in the corp, and
    unlike any State already seen in follow relations or group members."""
    for _ in range(20):
        state = "ch" + secrets.token_hex(6)
        taken = db.session.scalar(select(Channel.id).where(Channel.corp_id == corp_id, Channel.state == state)) \
            or db.session.scalar(select(FollowRelation.id).where(FollowRelation.corp_id == corp_id,
                                                                 FollowRelation.state == state).limit(1)) \
            or db.session.scalar(select(GroupChatMember.id).where(GroupChatMember.corp_id == corp_id,
                                                                  GroupChatMember.state == state).limit(1))
        if not taken:
            return state
    raise Conflict("无法生成渠道标识，请重试")  # pragma: no cover


def _name(value: Any) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name:
        raise UserValueError("请填写渠道名称", field="name")
    if len(name) > 64:
        raise UserValueError("渠道名称最多 64 个字", field="name")
    return name


def _users(corp_id: str, value: Any, field: str = "users") -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(u, str) and u for u in value):
        raise UserValueError("请选择接待成员（至少一位）", field=field)
    wanted = list(dict.fromkeys(value))
    if len(wanted) > MAX_USERS:
        raise UserValueError(f"接待成员最多 {MAX_USERS} 位", field=field)
    rows = dict(db.session.execute(select(Staff.userid, Staff.status).where(
        Staff.corp_id == corp_id, Staff.userid.in_(wanted))).tuples().all())
    unknown = [u for u in wanted if u not in rows]
    if unknown:
        raise UserValueError(f"成员不存在：{'、'.join(unknown)}", field=field)
    gone = [u for u in wanted if rows[u] != "active"]
    if gone:
        raise UserValueError(f"成员已离职或停用，不能接待客户：{'、'.join(gone)}", field=field)
    return wanted


def _schedule(corp_id: str, value: Any) -> list[dict[str, Any]] | None:
    """[{"days": [1..7] (Monday = 1), "start": "09:00", "end": "18:00", "users": [...]}, …] in China time;
    outside every entry the channel's own staff receive the customers."""
    if value in (None, []):
        return None
    if not isinstance(value, list) or len(value) > 14:
        raise UserValueError("排班应为列表（最多 14 段）", field="schedule")
    out = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise UserValueError(f"第 {i + 1} 段排班格式不对", field="schedule")
        days = entry.get("days") or [1, 2, 3, 4, 5, 6, 7]
        if not isinstance(days, list) or not all(isinstance(d, int) and 1 <= d <= 7 for d in days):
            raise UserValueError(f"第 {i + 1} 段排班的星期应为 1–7", field="schedule")
        start, end = entry.get("start"), entry.get("end")
        if not (isinstance(start, str) and SCHEDULE_TIME.match(start) and isinstance(end, str)
                and SCHEDULE_TIME.match(end) and start < end):
            raise UserValueError(f"第 {i + 1} 段排班的时间应为 HH:MM，且开始早于结束", field="schedule")
        out.append({"days": sorted(set(days)), "start": start, "end": end,
                    "users": _users(corp_id, entry.get("users"), "schedule")})
    return out


def _welcome(value: Any) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if value is not None and not isinstance(value, str):
        raise UserValueError("欢迎语应为文字", field="welcome_text")
    if len(text.encode("utf-8")) > MAX_WELCOME_BYTES:
        raise UserValueError("欢迎语太长（最多 4000 字节，约 1300 个汉字）", field="welcome_text")
    return text


MAX_ATTACHMENTS = 9  # WeCom: a welcome message carries at most 9 attachments


def _attachments(value: Any) -> list[dict[str, Any]]:
    """Link attachments of the welcome message, [{"title", "url", "desc"?, "picurl"?}] → WeCom's
    {"msgtype": "link", "link": {...}} (a link needs no upload, so it always fits in WeCom's 20 s)."""
    if value in (None, []):
        return []
    if not isinstance(value, list) or len(value) > MAX_ATTACHMENTS:
        raise UserValueError(f"欢迎语附件最多 {MAX_ATTACHMENTS} 个链接", field="welcome_attachments")
    out = []
    for i, item in enumerate(value):
        found = item.get("link", item) if isinstance(item, dict) else None
        link: dict[str, Any] = found if isinstance(found, dict) else {}
        title, url = link.get("title"), link.get("url")
        if not isinstance(title, str) or not title.strip() or len(title.encode("utf-8")) > 128:
            raise UserValueError(f"第 {i + 1} 个链接的标题不能为空，最多 128 字节（约 42 个汉字）",
                                 field="welcome_attachments")
        if not isinstance(url, str) or not re.match(r"^https?://\S+$", url) or len(url) > 2048:
            raise UserValueError(f"第 {i + 1} 个链接的网址应以 http:// 或 https:// 开头", field="welcome_attachments")
        clean: dict[str, Any] = {"title": title.strip(), "url": url}
        for key, limit in (("desc", 512), ("picurl", 2048)):
            extra = link.get(key)
            if isinstance(extra, str) and extra.strip():
                if len(extra.encode("utf-8")) > limit:
                    raise UserValueError(f"第 {i + 1} 个链接的{'描述' if key == 'desc' else '图片地址'}太长",
                                         field="welcome_attachments")
                clean[key] = extra.strip()
        out.append({"msgtype": "link", "link": clean})
    return out


def _tags(corp_id: str, value: Any) -> list[str]:
    if value in (None, []):
        return []
    if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
        raise UserValueError("标签应为标签 id 列表", field="tag_ids")
    wanted = list(dict.fromkeys(value))
    if len(wanted) > MAX_TAGS:
        raise UserValueError(f"最多 {MAX_TAGS} 个标签", field="tag_ids")
    try:
        tags_by_id(corp_id, wanted)
    except UserValueError as exc:
        raise UserValueError(exc.message, field="tag_ids") from None
    return wanted


def _cost(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        raise UserValueError("渠道成本应为金额（元）", field="cost") from None
    if cost < 0 or cost > Decimal("1e11"):
        raise UserValueError("渠道成本应为 0 到 1000 亿元之间的金额", field="cost")
    return cost.quantize(Decimal("0.01"))


MAX_CHATS = 5  # WeCom: a join way serves at most 5 group chats (41091)


def _chats(corp_id: str, value: Any) -> tuple[list[str], list[str]]:
    """The join way's chats (1–5 customer group chats the corp knows, not dismissed, whose owner is
    still with the corp) and their owners."""
    if not isinstance(value, list) or not value or not all(isinstance(c, str) and c for c in value):
        raise UserValueError("请选择客户群（至少一个）", field="chat_ids")
    wanted = list(dict.fromkeys(value))
    if len(wanted) > MAX_CHATS:
        raise UserValueError(f"一个加入群聊活码最多 {MAX_CHATS} 个客户群（企业微信的限制）", field="chat_ids")
    rows = {chat_id: (name, owner, dismissed) for chat_id, name, owner, dismissed in db.session.execute(
        select(GroupChat.chat_id, GroupChat.name, GroupChat.owner_userid, GroupChat.dismissed_at)
        .where(GroupChat.corp_id == corp_id, GroupChat.chat_id.in_(wanted))).tuples()}
    unknown = [c for c in wanted if c not in rows]
    if unknown:
        raise UserValueError(f"客户群不存在：{'、'.join(unknown)}（请先同步客户群）", field="chat_ids")
    gone = [rows[c][0] or c for c in wanted if rows[c][2] is not None]
    if gone:
        raise UserValueError(f"客户群已解散：{'、'.join(gone)}", field="chat_ids")
    owners = list(dict.fromkeys(rows[c][1] for c in wanted if rows[c][1]))
    status = dict(db.session.execute(select(Staff.userid, Staff.status).where(
        Staff.corp_id == corp_id, Staff.userid.in_(owners))).tuples().all())
    orphaned = [rows[c][0] or c for c in wanted if status.get(rows[c][1]) != "active"]
    if orphaned:
        raise UserValueError(f"客户群的群主已离职或停用，请先在「客户交接」中转移：{'、'.join(orphaned)}", field="chat_ids")
    return wanted, owners


def _room(data: dict[str, Any], channel: Channel | None = None) -> tuple[bool, str | None, int | None]:
    """Whether WeCom opens a new chat when every chat is full, and the new chats' base name and number."""
    auto = bool(data.get("auto_create_room", channel.auto_create_room if channel is not None else False))
    if not auto:
        return False, None, None
    name = data.get("room_base_name", channel.room_base_name if channel is not None else None)
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 40:
        raise UserValueError("自动建群时请填写新群的名称前缀（最多 40 个字）", field="room_base_name")
    number = data.get("room_base_id", channel.room_base_id if channel is not None else None)
    if number in (None, ""):
        number = 1
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 10**9:
        raise UserValueError("新群的起始编号应为正整数", field="room_base_id")
    return True, name, number


def routed_users(channel: Channel, now: dt.datetime | None = None) -> list[str]:
    """Whom the code should route to at `now` (China time): the first schedule entry that covers it,
    else the channel's own staff."""
    local = (now or utcnow()).astimezone(CHINA)
    hhmm, day = local.strftime("%H:%M"), local.isoweekday()
    for entry in channel.schedule or []:
        if day in entry["days"] and entry["start"] <= hhmm < entry["end"]:
            return list(entry["users"])
    return list(channel.users)


# ---------------------------------------------------------------- welcome message and arrival tags


def _sync_welcome(channel: Channel) -> None:
    """The channel's WelcomeMessage row exists exactly when it is live and has a text or attachments
    (attachments without a text go with the corp's default text)."""
    row = db.session.scalar(select(WelcomeMessage).where(WelcomeMessage.corp_id == channel.corp_id,
                                                         WelcomeMessage.state == channel.state))
    live = channel.status in (PENDING, ACTIVE)
    text = channel.welcome_text if live else ""
    attachments = list(channel.welcome_attachments or []) if live else []
    if text or attachments:
        if row is None:
            db.session.add(WelcomeMessage(corp_id=channel.corp_id, state=channel.state, text=text,
                                          attachments=attachments))
        else:
            row.text, row.attachments = text, attachments
    elif row is not None:
        db.session.delete(row)


def rule_name(channel: Channel) -> str:
    return f"渠道活码#{channel.id}「{channel.name}」到达标签"[:64]


def _sync_rule(channel: Channel, actor: str) -> None:
    """The arrival tags as an auto-tagging rule: WHEN a customer is added with the channel's State (or,
    for a join way, joins a chat through it) THEN add the tags, enabled while the channel is live and has
    tags."""
    rule = get_rule(channel.corp_id, channel.rule_id) if channel.rule_id else None
    if not channel.tag_ids:
        if rule is not None and rule.enabled:  # tags removed: the rule stays, switched off
            rule.enabled = False
            audit(channel.corp_id, actor, "rule.disable", "tag_rule", str(rule.id), {"channel_id": channel.id})
        return
    trigger = "joined_group_chat" if channel.kind == JOIN else "customer_added"
    body = {"name": rule_name(channel), "trigger": trigger, "trigger_params": {"state": channel.state},
            "condition": None, "actions": [{"add_tags": list(channel.tag_ids)}],
            "enabled": channel.status in (PENDING, ACTIVE)}
    channel.rule_id = save_rule(channel.corp_id, actor, body, rule).id


# ---------------------------------------------------------------- create, edit, pause, retire


def create(p: Principal, data: dict[str, Any]) -> Channel:
    """A new channel: its name, welcome message and tag rule now, its contact way through the outbox."""
    corp_id = p.corp_id
    kind = data.get("kind") or CONTACT
    if kind == JOIN:
        return _create_join(p, data)
    if kind != CONTACT:
        raise UserValueError("渠道类型应为 contact（联系我）或 join（加入群聊）", field="kind")
    name = _name(data.get("name"))
    users = _users(corp_id, data.get("users"))
    multi = bool(data.get("multi")) or len(users) > 1
    schedule = _schedule(corp_id, data.get("schedule"))
    if schedule and not multi and any(e["users"] != users for e in schedule):
        multi = True  # routing changes between members: keep the way a multi-member one
    owner = data.get("owner_userid") or p.userid or users[0]
    owner = _users(corp_id, [owner], "owner_userid")[0]
    channel = Channel(corp_id=corp_id, name=name, kind=CONTACT, state=new_state(corp_id), users=users, multi=multi,
                      skip_verify=bool(data.get("skip_verify", True)), schedule=schedule, chat_ids=[],
                      welcome_text=_welcome(data.get("welcome_text")),
                      welcome_attachments=_attachments(data.get("welcome_attachments")),
                      tag_ids=_tags(corp_id, data.get("tag_ids")), cost=_cost(data.get("cost")), status=PENDING,
                      owner_userid=owner, created_by=p.actor)
    channel.routed_users = routed_users(channel)
    db.session.add(channel)
    db.session.flush()
    save_state_label(corp_id, channel.state, name)
    _sync_welcome(channel)
    _sync_rule(channel, p.actor)
    ways.enqueue_add(channel)
    audit(corp_id, p.actor, "channel.create", "channel", str(channel.id),
          {"name": name, "state": channel.state, "users": users, "tag_ids": channel.tag_ids})
    db.session.flush()
    return channel


def _create_join(p: Principal, data: dict[str, Any]) -> Channel:
    """A 「加入群聊」 channel: customers scan it and join one of its chats. Its welcome message is the
    chats' own (set in WeCom); arrival tags go to customers who join through it."""
    corp_id = p.corp_id
    name = _name(data.get("name"))
    if (data.get("welcome_text") or "").strip():
        raise UserValueError("加入群聊活码没有单独的欢迎语：入群欢迎语请在企业微信的群设置中配置", field="welcome_text")
    if data.get("users"):
        raise UserValueError("加入群聊活码不需要接待成员：客户直接进入所选客户群", field="users")
    if data.get("welcome_attachments"):
        raise UserValueError("加入群聊活码没有单独的欢迎语：入群欢迎语请在企业微信的群设置中配置",
                             field="welcome_attachments")
    chat_ids, owners = _chats(corp_id, data.get("chat_ids"))
    auto, base_name, base_id = _room(data)
    owner = data.get("owner_userid") or p.userid or owners[0]
    owner = _users(corp_id, [owner], "owner_userid")[0]
    channel = Channel(corp_id=corp_id, name=name, kind=JOIN, state=new_state(corp_id), users=owners, multi=False,
                      skip_verify=True, schedule=None, routed_users=owners, chat_ids=chat_ids,
                      auto_create_room=auto, room_base_name=base_name, room_base_id=base_id,
                      welcome_text="", welcome_attachments=[], tag_ids=_tags(corp_id, data.get("tag_ids")),
                      cost=_cost(data.get("cost")), status=PENDING, owner_userid=owner, created_by=p.actor)
    db.session.add(channel)
    db.session.flush()
    save_state_label(corp_id, channel.state, name)
    _sync_rule(channel, p.actor)
    ways.enqueue_add(channel)
    audit(corp_id, p.actor, "channel.create", "channel", str(channel.id),
          {"kind": JOIN, "name": name, "state": channel.state, "chat_ids": chat_ids, "tag_ids": channel.tag_ids})
    db.session.flush()
    return channel


def _update_join(channel: Channel, data: dict[str, Any], changed: dict[str, Any]) -> bool:
    """A join way's chats and rooms; True when WeCom must be told."""
    if data.get("users"):
        raise UserValueError("加入群聊活码不需要接待成员：客户直接进入所选客户群", field="users")
    if (data.get("welcome_text") or "").strip():
        raise UserValueError("加入群聊活码没有单独的欢迎语：入群欢迎语请在企业微信的群设置中配置", field="welcome_text")
    data.pop("welcome_text", None)
    routing = False
    if data.get("chat_ids") is not None:
        chat_ids, owners = _chats(channel.corp_id, data["chat_ids"])
        if chat_ids != channel.chat_ids:
            channel.chat_ids, channel.users, channel.routed_users = chat_ids, owners, owners
            changed["chat_ids"], routing = chat_ids, True
    if any(k in data for k in ("auto_create_room", "room_base_name", "room_base_id")):
        room = _room(data, channel)
        if room != (channel.auto_create_room, channel.room_base_name, channel.room_base_id):
            channel.auto_create_room, channel.room_base_name, channel.room_base_id = room
            changed["auto_create_room"], routing = room[0], True
    return routing


EDITABLE = ("name", "users", "multi", "skip_verify", "schedule", "welcome_text", "welcome_attachments", "tag_ids",
            "cost", "owner_userid",
            "chat_ids", "auto_create_room", "room_base_name", "room_base_id")


def update(p: Principal, channel: Channel, data: dict[str, Any]) -> Channel:
    """Change a channel; routing changes reach WeCom through update_contact_way (a join way's chats
    through update_join_way). `status` may be `paused` or `active` (resume)."""
    if channel.status == RETIRED:
        raise Conflict("渠道活码已停用，不能再修改")
    corp_id = p.corp_id
    changed: dict[str, Any] = {}
    routing = False  # the staff, or whether they confirm: must reach WeCom
    remark = False  # the way's remark (the name): reaches WeCom with the next update, not worth blocking on
    if "name" in data and data["name"] is not None:
        name = _name(data["name"])
        if name != channel.name:
            channel.name, changed["name"] = name, name
            save_state_label(corp_id, channel.state, name)
            remark = True
    if channel.kind == JOIN:
        data = dict(data)
        routing = _update_join(channel, data, changed)
    elif data.get("chat_ids") or data.get("auto_create_room"):
        raise UserValueError("“联系我”渠道活码没有客户群；要让客户扫码入群，请新建加入群聊活码", field="chat_ids")
    if channel.kind == CONTACT:  # the staff and how they receive customers
        if "users" in data and data["users"] is not None:
            users = _users(corp_id, data["users"])
            if users != channel.users:
                channel.users, changed["users"], routing = users, users, True
        if "multi" in data and data["multi"] is not None:
            if channel.config_id and bool(data["multi"]) != channel.multi:
                raise UserValueError("单人/多人活码创建后不能更改，请新建一个渠道活码", field="multi")
            channel.multi = bool(data["multi"])
        if channel.users and len(channel.users) > 1 and not channel.multi:
            if channel.config_id:
                raise UserValueError("单人活码只能有一位接待成员", field="users")
            channel.multi = True
        if "skip_verify" in data and data["skip_verify"] is not None:
            if bool(data["skip_verify"]) != channel.skip_verify:
                channel.skip_verify, changed["skip_verify"], routing = bool(data["skip_verify"]), data["skip_verify"], True
        if "schedule" in data:
            channel.schedule = _schedule(corp_id, data["schedule"])
            changed["schedule"] = channel.schedule
    if "welcome_text" in data and data["welcome_text"] is not None:
        channel.welcome_text = _welcome(data["welcome_text"])
        changed["welcome_text"] = channel.welcome_text
    if "welcome_attachments" in data and data["welcome_attachments"] is not None:
        if channel.kind == JOIN and data["welcome_attachments"]:
            raise UserValueError("加入群聊活码没有单独的欢迎语", field="welcome_attachments")
        channel.welcome_attachments = _attachments(data["welcome_attachments"])
        changed["welcome_attachments"] = channel.welcome_attachments
    if "tag_ids" in data and data["tag_ids"] is not None:
        channel.tag_ids = _tags(corp_id, data["tag_ids"])
        changed["tag_ids"] = channel.tag_ids
    if "cost" in data:
        channel.cost = _cost(data["cost"])
        changed["cost"] = str(channel.cost) if channel.cost is not None else None
    if data.get("owner_userid"):
        channel.owner_userid = _users(corp_id, [data["owner_userid"]], "owner_userid")[0]
        changed["owner_userid"] = channel.owner_userid
    status = data.get("status")
    if status is not None:
        if status not in (ACTIVE, PAUSED):
            raise UserValueError("状态只能改为 active（使用中）或 paused（暂停）；停用请删除渠道", field="status")
        if status == PAUSED and channel.status in (ACTIVE, PENDING):
            channel.status, changed["status"] = PAUSED, PAUSED
        elif status == ACTIVE and channel.status == PAUSED:
            channel.status, changed["status"] = (ACTIVE if channel.config_id else PENDING), ACTIVE
    new_route = routed_users(channel) if channel.kind == CONTACT else channel.routed_users
    if new_route != channel.routed_users:
        channel.routed_users, routing = new_route, True
    if routing and channel.sync_state == EXTERNAL:
        raise UserValueError("该二维码是在企业微信后台创建的，接待成员和验证方式请在企业微信后台修改", field="users")
    if routing or remark:
        if channel.sync_state == EXTERNAL:
            pass
        elif channel.status == FAILED:
            ways.enqueue_add(channel)  # try again with the new fields
            channel.status = PENDING
        elif channel.config_id:
            ways.enqueue_update(channel)
        elif routing:  # still being created with the old staff: change them once WeCom answered
            raise Conflict("渠道活码正在企业微信中创建，请稍后再修改" + ("客户群" if channel.kind == JOIN else "接待成员"))
    _sync_welcome(channel)
    _sync_rule(channel, p.actor)
    audit(corp_id, p.actor, "channel.update", "channel", str(channel.id), changed)
    db.session.flush()
    return channel


def retire(p: Principal, channel: Channel) -> Channel:
    """Stop the channel: delete the way in WeCom, remove its welcome message, disable its tag rule."""
    if channel.status == RETIRED:
        return channel
    channel.status, channel.retired_at = RETIRED, utcnow()
    ways.enqueue_delete(channel)  # when still being created, the add hook deletes it once created
    _sync_welcome(channel)
    _sync_rule(channel, p.actor)
    audit(p.corp_id, p.actor, "channel.retire", "channel", str(channel.id), {"config_id": channel.config_id})
    db.session.flush()
    return channel


def reroute_due(corp_id: str, now: dt.datetime | None = None) -> int:
    """Channels with a schedule whose routing changed at `now`: update their ways (the scheduled job)."""
    n = 0
    for channel in db.session.scalars(select(Channel).where(Channel.corp_id == corp_id,
                                                            Channel.status.in_((ACTIVE, PAUSED)),
                                                            Channel.kind == CONTACT, Channel.schedule.is_not(None))):
        route = routed_users(channel, now)
        if route != channel.routed_users and channel.config_id:
            channel.routed_users = route
            ways.enqueue_update(channel)
            n += 1
    db.session.flush()
    return n


# ---------------------------------------------------------------- unknown States


def unknown_states(corp_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """States seen in follow relations that no channel and no label knows (codes made in WeCom's admin
    console, or by another tool), with how many relations carry each."""
    known = select(Channel.state).where(Channel.corp_id == corp_id)
    named = state_labels(corp_id)
    rows = db.session.execute(
        select(FollowRelation.state, func.count()).where(FollowRelation.corp_id == corp_id, FollowRelation.state != "",
                                                         FollowRelation.state.not_in(known))
        .group_by(FollowRelation.state).order_by(func.count().desc()).limit(limit + len(named))).tuples().all()
    return [{"state": s, "relations": n} for s, n in rows if s not in named][:limit]


def name_state(p: Principal, state: Any, name: Any) -> str:
    """Name a State that no channel knows (it keeps working in WeCom; the name is shown everywhere)."""
    if not isinstance(state, str) or not state or len(state) > 64:
        raise UserValueError("渠道标识（state）不对", field="state")
    if db.session.scalar(select(Channel.id).where(Channel.corp_id == p.corp_id, Channel.state == state)):
        raise Conflict("该渠道标识属于已有的渠道活码，请在渠道活码中改名")
    clean = _name(name)
    save_state_label(p.corp_id, state, clean)
    audit(p.corp_id, p.actor, "channel.name_state", "state", state, {"name": clean})
    return clean


def adopt_state(p: Principal, state: Any, name: Any) -> Channel:
    """Make a State no channel knows (a code made in WeCom's admin console) a channel of its own, so it gets
    a name, a welcome message, arrival tags, a cost and alerts. Its QR code and staff stay managed in
    WeCom's admin console (no config_id here: `sync_state` "external")."""
    clean = name_state(p, state, name)
    if len(state) > STATE_MAX:
        raise UserValueError(f"渠道标识超过 {STATE_MAX} 个字符，只能命名，不能设为渠道活码", field="state")
    channel = Channel(corp_id=p.corp_id, name=clean, kind=CONTACT, state=state, users=[], routed_users=[], multi=False,
                      skip_verify=True, chat_ids=[], welcome_text="", welcome_attachments=[], tag_ids=[],
                      status=ACTIVE, sync_state=EXTERNAL, owner_userid=p.userid, created_by=p.actor)
    db.session.add(channel)
    db.session.flush()
    audit(p.corp_id, p.actor, "channel.adopt", "channel", str(channel.id), {"state": state, "name": clean})
    return channel


def known_states(corp_id: str) -> list[str]:
    return list(db.session.scalars(select(distinct(Channel.state)).where(Channel.corp_id == corp_id)))


# ---------------------------------------------------------------- reading


def list_channels(p: Principal, *, status: str | None = None) -> list[Channel]:
    query = select(Channel).where(Channel.corp_id == p.corp_id)
    if status:
        query = query.where(Channel.status == status)
    return list(db.session.scalars(query.order_by(Channel.id.desc())))


def get_channel(p: Principal, channel_id: int) -> Channel:
    channel = db.session.get(Channel, channel_id)
    if channel is None or channel.corp_id != p.corp_id:
        raise NotFound("找不到该渠道活码")
    return channel


def channel_dict(channel: Channel) -> dict[str, Any]:
    return {"id": channel.id, "name": channel.name, "kind": channel.kind, "kind_label": KIND_LABELS[channel.kind],
            "state": channel.state, "users": list(channel.users), "routed_users": list(channel.routed_users or []),
            "chat_ids": list(channel.chat_ids or []), "auto_create_room": bool(channel.auto_create_room),
            "room_base_name": channel.room_base_name, "room_base_id": channel.room_base_id,
            "multi": channel.multi, "skip_verify": channel.skip_verify, "schedule": channel.schedule,
            "welcome_text": channel.welcome_text,
            "welcome_attachments": [a["link"] for a in channel.welcome_attachments or [] if a.get("msgtype") == "link"],
            "tag_ids": list(channel.tag_ids), "rule_id": channel.rule_id,
            "cost": str(channel.cost) if channel.cost is not None else None,
            "status": channel.status, "status_label": STATUS_LABELS[channel.status],
            "sync_state": channel.sync_state, "sync_label": SYNC_LABELS.get(channel.sync_state, channel.sync_state),
            "config_id": channel.config_id, "qr_code": channel.qr_code, "owner_userid": channel.owner_userid,
            "last_error": channel.last_error, "created_by": channel.created_by,
            "created_at": channel.created_at.isoformat(),
            "updated_at": channel.updated_at.isoformat() if channel.updated_at else None,
            "retired_at": channel.retired_at.isoformat() if channel.retired_at else None}
