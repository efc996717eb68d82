"""The interaction radar (互动雷达): tracked links staff share with customers, and what happens when a
customer opens one.

- A `TrackedLink` is a title and a target URL (http/https).
- Each recipient gets their own URL `/l/<token>`: the token is signed with the app's secret
  (itsdangerous, salt `channels.link`) and carries the corp, the link id, the customer's external_userid
  and the staff member who shared it. A forged or altered token is refused before anything is read or
  recorded.
- Opening it records a behaviour event `link_open` (`tagging.lifecycle.events.store_events`, so rules with
  the `event` trigger and an `{"event": {"type": "link_open", "path_prefix": "/links/<id>/", …}}` condition
  can tag on it: "opened the price sheet twice in 3 days" → 高意向), a `LinkOpen` row, and, at most once per
  customer and link per hour, an app message to the staff member; then redirects to the target.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select

from core.db import db, utcnow
from core.errors import NotFound, UserValueError
from core.settings import settings
from crm.models import Customer, FollowRelation
from crm.service import audit
from identity.service import Principal
from tagging.lifecycle.events import store_events
from wecom.service import enqueue

from .models import LinkOpen, TrackedLink

log = logging.getLogger("scrm.channels.radar")

SALT = "channels.link"
EVENT_TYPE = "link_open"
NOTIFY_EVERY = dt.timedelta(hours=1)
NOTIFY_KIND = "channel_link_notify"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def event_path(link_id: int) -> str:
    """The `path` of a link's open events (rules select one link with `path_prefix`)."""
    return f"/links/{link_id}/"


def create_link(p: Principal, title: Any, url: Any) -> TrackedLink:
    title = title.strip() if isinstance(title, str) else ""
    if not title or len(title) > 128:
        raise UserValueError("请填写链接标题（最多 128 个字）", field="title")
    url = url.strip() if isinstance(url, str) else ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000:
        raise UserValueError("链接地址应为 http:// 或 https:// 开头的网址", field="url")
    link = TrackedLink(corp_id=p.corp_id, title=title, url=url, created_by=p.actor)
    db.session.add(link)
    db.session.flush()
    audit(p.corp_id, p.actor, "link.create", "link", str(link.id), {"title": title, "url": url})
    return link


def get_link(p: Principal, link_id: int) -> TrackedLink:
    link = db.session.get(TrackedLink, link_id)
    if link is None or link.corp_id != p.corp_id:
        raise NotFound("找不到该链接")
    return link


def list_links(p: Principal, limit: int = 100) -> list[TrackedLink]:
    return list(db.session.scalars(select(TrackedLink).where(TrackedLink.corp_id == p.corp_id)
                                   .order_by(TrackedLink.id.desc()).limit(limit)))


def share_url(p: Principal, link: TrackedLink, external_userid: Any, userid: Any = None) -> str:
    """The signed URL for one customer, shared by `userid` (staff: themselves; others name the member,
    who must follow the customer)."""
    sender = p.userid if p.role == "staff" or not userid else userid
    if not isinstance(sender, str) or not sender:
        raise UserValueError("请指定分享链接的成员", field="userid")
    if not isinstance(external_userid, str) or not external_userid:
        raise UserValueError("请指定客户", field="external_userid")
    follows = db.session.scalar(select(FollowRelation.id).join(Customer, Customer.id == FollowRelation.customer_id)
                                .where(FollowRelation.corp_id == p.corp_id, FollowRelation.userid == sender,
                                       Customer.external_userid == external_userid))
    if follows is None:
        raise UserValueError("该成员没有添加这位客户", field="external_userid")
    token = _serializer().dumps({"c": p.corp_id, "l": link.id, "e": external_userid, "u": sender})
    return f"{settings().SCRM_PUBLIC_URL.rstrip('/')}/l/{token}"


def read_token(token: str) -> dict[str, Any] | None:
    """The token's content when its signature is ours, else None."""
    try:
        data = _serializer().loads(token)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("c", "e", "u")) \
            or not isinstance(data.get("l"), int):
        return None
    return data


def open_link(token: str) -> TrackedLink | None:
    """A customer opened a signed URL: record the event and the open, notify the staff member (at most
    once per customer and link per hour); the link to redirect to, or None (forged, or gone)."""
    data = read_token(token)
    if data is None:
        return None
    link = db.session.get(TrackedLink, data["l"])
    if link is None or link.corp_id != data["c"]:
        return None
    corp_id, ext, userid = link.corp_id, data["e"], data["u"]
    now = utcnow()
    event_id = f"link:{link.id}:{secrets.token_hex(8)}"
    result = store_events(corp_id, [{"id": event_id, "type": EVENT_TYPE, "external_userid": ext,
                                     "properties": {"path": event_path(link.id), "url": link.url,
                                                    "title": link.title, "link_id": link.id, "userid": userid}}],
                          actor=f"link:{link.id}")
    if result["stored"] != 1:  # a customer this corp no longer knows: redirect, record nothing
        log.info("channels.link.unknown-customer link=%s", link.id)
        return link
    recent = db.session.scalar(select(LinkOpen.id).where(
        LinkOpen.corp_id == corp_id, LinkOpen.link_id == link.id, LinkOpen.external_userid == ext,
        LinkOpen.notified.is_(True), LinkOpen.at > now - NOTIFY_EVERY).limit(1))
    row = LinkOpen(corp_id=corp_id, link_id=link.id, external_userid=ext, userid=userid, event_id=event_id,
                   notified=recent is None, at=now)
    db.session.add(row)
    if recent is None:
        _notify(link, ext, userid)
    db.session.flush()
    return link


def _notify(link: TrackedLink, ext: str, userid: str) -> None:
    agent = settings().WECOM_AGENT_ID
    if not agent.isdigit():
        return
    name = db.session.scalar(select(Customer.name).where(Customer.corp_id == link.corp_id,
                                                         Customer.external_userid == ext)) or "客户"
    enqueue(link.corp_id, NOTIFY_KIND, "send_app_message",
            {"agentid": int(agent), "touser": [userid], "text": f"【互动雷达】{name} 刚刚打开了您分享的「{link.title}」"})


def link_dict(link: TrackedLink) -> dict[str, Any]:
    opens = db.session.scalars(select(LinkOpen.external_userid).where(LinkOpen.link_id == link.id)).all()
    return {"id": link.id, "title": link.title, "url": link.url, "created_by": link.created_by,
            "created_at": link.created_at.isoformat(), "opens": len(opens), "customers": len(set(opens)),
            "event_path": event_path(link.id)}
