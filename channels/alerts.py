"""Channel alerts: an app message to the channel's owner (through the outbox), once per condition.

Conditions, checked by the hourly job for every active or paused channel:

- `no_new`: nobody was added through the channel for N days (`no_new_days`, default 7); the key is the
  day of the last arrival (or of the channel's creation), so the alert fires again only after new
  customers came and then stopped again;
- `near_limit`: a staff member on the code follows at least `near_limit_ratio` × `customer_limit`
  customers (WeCom's limit per member: 50,000 by default); key: the member;
- `resigned`: a staff member on the code has left the corp; key: the member;
- `loss_rate`: of the relations added through the channel in the last 30 days and at least 7 days old
  (at least `min_sample` of them), the share lost within 7 days exceeds `loss_rate_7` (default 30%);
  key: the ISO week, so at most one such alert a week.

The settings are the corp's (`tagging` settings table, key `channels.alerts`), with the defaults below.
`ChannelAlert` is unique on (corp, channel, kind, key): a condition that already fired is skipped.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import and_, case, func, literal, select

from core.db import db, utcnow
from core.settings import settings
from core.signals import StaffResigned
from core.time import CHINA
from crm.models import FollowRelation, Staff
from tagging.lifecycle.stages import get_setting
from wecom.service import enqueue

from .models import ACTIVE, JOIN, PAUSED, Channel, ChannelAlert
from .reports import join_members

log = logging.getLogger("scrm.channels.alerts")

SETTINGS_KEY = "channels.alerts"
DEFAULTS: dict[str, Any] = {"no_new_days": 7, "customer_limit": 50000, "near_limit_ratio": 0.9,
                            "loss_rate_7": 0.3, "min_sample": 20}
KIND = "channel_alert"


def alert_settings(corp_id: str) -> dict[str, Any]:
    stored = get_setting(corp_id, SETTINGS_KEY, {}) or {}
    return {**DEFAULTS, **{k: v for k, v in stored.items() if k in DEFAULTS}}


def _fire(channel: Channel, kind: str, key: str, message: str) -> ChannelAlert | None:
    exists = db.session.scalar(select(ChannelAlert.id).where(
        ChannelAlert.corp_id == channel.corp_id, ChannelAlert.channel_id == channel.id, ChannelAlert.kind == kind,
        ChannelAlert.key == key))
    if exists is not None:
        return None
    text = f"【渠道活码预警】「{channel.name}」{message}"
    row = ChannelAlert(corp_id=channel.corp_id, channel_id=channel.id, kind=kind, key=key[:64], message=text,
                       notified=[])
    agent = settings().WECOM_AGENT_ID
    to = [u for u in [channel.owner_userid] if u]
    if to and agent.isdigit():
        command = enqueue(channel.corp_id, KIND, "send_app_message",
                          {"agentid": int(agent), "touser": to, "text": text})
        row.notified, row.command_id = to, command.id
    db.session.add(row)
    db.session.flush()
    log.info("channels.alert channel=%s kind=%s key=%s", channel.id, kind, key)
    return row


def check_alerts(corp_id: str, now: dt.datetime | None = None) -> list[ChannelAlert]:
    """Check every live channel; the alerts that fired now (flushes)."""
    now = now or utcnow()
    conf = alert_settings(corp_id)
    channels = list(db.session.scalars(select(Channel).where(Channel.corp_id == corp_id,
                                                             Channel.status.in_((ACTIVE, PAUSED)))))
    if not channels:
        return []
    fr = FollowRelation
    states = [c.state for c in channels]
    recent = now - dt.timedelta(days=30)
    cut7 = now - dt.timedelta(days=7)
    if db.session.get_bind().dialect.name == "postgresql":
        days = func.extract("epoch", fr.lost_at - fr.added_at) / 86400.0
    else:
        days = func.julianday(fr.lost_at) - func.julianday(fr.added_at)
    lost7 = and_(fr.status != "active", func.coalesce(fr.lost_reason, "") != "transferred", days < 7)
    stats = {s: (last, eligible, lost) for s, last, eligible, lost in db.session.execute(
        select(fr.state, func.max(fr.added_at),
               func.coalesce(func.sum(case((and_(fr.added_at >= recent, fr.added_at <= cut7), literal(1)), else_=0)), 0),
               func.coalesce(func.sum(case((and_(fr.added_at >= recent, fr.added_at <= cut7, lost7), literal(1)),
                                           else_=0)), 0))
        .where(fr.corp_id == corp_id, fr.state.in_(states)).group_by(fr.state)).tuples()}
    for state, last, eligible, lost in _join_stats(corp_id, [c for c in channels if c.kind == JOIN], recent, cut7):
        stats[state] = (last, eligible, lost)
    members = sorted({u for c in channels for u in c.users})
    staff = dict(db.session.execute(select(Staff.userid, Staff.status).where(
        Staff.corp_id == corp_id, Staff.userid.in_(members))).tuples().all())
    names = dict(db.session.execute(select(Staff.userid, Staff.name).where(
        Staff.corp_id == corp_id, Staff.userid.in_(members))).tuples().all())
    load = dict(db.session.execute(select(fr.userid, func.count()).where(
        fr.corp_id == corp_id, fr.userid.in_(members), fr.status == "active").group_by(fr.userid)).tuples().all())
    limit = int(conf["customer_limit"])
    near = int(limit * float(conf["near_limit_ratio"]))
    fired: list[ChannelAlert] = []

    def fire(channel: Channel, kind: str, key: str, message: str) -> None:
        row = _fire(channel, kind, key, message)
        if row is not None:
            fired.append(row)

    for channel in channels:
        last, eligible, lost = stats.get(channel.state, (None, 0, 0))
        quiet_since = last or channel.created_at
        n = int(conf["no_new_days"])
        if quiet_since <= now - dt.timedelta(days=n):
            fire(channel, "no_new", quiet_since.astimezone(CHINA).date().isoformat(),
                 f"已连续 {n} 天没有{'客户入群' if channel.kind == JOIN else '新增客户'}")
        for userid in channel.users:
            who = names.get(userid) or userid
            if channel.kind == JOIN:  # the chats' owners: a chat whose owner left waits for its handover
                if staff.get(userid, "active") != "active":
                    fire(channel, "resigned", userid, f"的客户群群主 {who} 已离职，请在「客户交接」中转移其客户群")
                continue
            if staff.get(userid, "active") != "active":
                fire(channel, "resigned", userid, f"的接待成员 {who} 已离职或停用，请更换接待成员")
            elif load.get(userid, 0) >= near:
                fire(channel, "near_limit", userid,
                     f"的接待成员 {who} 已有 {load[userid]} 位客户，接近企业微信上限 {limit} 位")
        if eligible and int(eligible) >= int(conf["min_sample"]) and int(lost) / int(eligible) > float(conf["loss_rate_7"]):
            year, week, _ = now.astimezone(CHINA).isocalendar()
            fire(channel, "loss_rate", f"{year}-W{week:02d}",
                 f"近 30 天新增客户的 7 天流失率为 {int(lost) / int(eligible):.0%}，超过 {float(conf['loss_rate_7']):.0%}")
    return fired


def _join_stats(corp_id: str, channels: list[Channel], recent: dt.datetime,
                cut7: dt.datetime) -> list[tuple[str, Any, int, int]]:
    """For join ways: (state, last join, joined in the last 30 days and at least 7 days ago, of whom left
    within 7 days): the same figures as for contact ways, with leaving the chat as the loss."""
    out = []
    rows = join_members(corp_id, [c.state for c in channels])
    for channel in channels:
        mine = [(joined, left) for state, joined, left, _, _ in rows if state == channel.state]
        window = [(j, lf) for j, lf in mine if recent <= j <= cut7]
        out.append((channel.state, max((j for j, _ in mine), default=None), len(window),
                    sum(1 for j, lf in window if lf is not None and lf - j < dt.timedelta(days=7))))
    return out


def on_staff_resigned(event: StaffResigned) -> None:
    """A staff member left: alert the owners of the live channels that route to them now, not at the next
    hourly check (the same `resigned` condition, so it still fires once)."""
    names = dict(db.session.execute(select(Staff.userid, Staff.name).where(
        Staff.corp_id == event.corp_id, Staff.userid == event.userid)).tuples().all())
    who = names.get(event.userid) or event.userid
    for channel in db.session.scalars(select(Channel).where(Channel.corp_id == event.corp_id,
                                                            Channel.status.in_((ACTIVE, PAUSED)))):
        if event.userid in (channel.users or []):
            _fire(channel, "resigned", event.userid, f"的接待成员 {who} 已离职或停用，请更换接待成员")


def recent_alerts(corp_id: str, limit: int = 20) -> list[ChannelAlert]:
    return list(db.session.scalars(select(ChannelAlert).where(ChannelAlert.corp_id == corp_id)
                                   .order_by(ChannelAlert.id.desc()).limit(limit)))
