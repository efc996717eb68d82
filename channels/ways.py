"""The channel codes in WeCom: add, update and delete 「联系我」 contact ways and 「加入群聊」 join ways
through the outbox, and what happens when WeCom answers.

- `add_contact_way` is not repeatable (a second send would make a second code): the outbox marks it on
  its way before sending, and if WeCom's answer is lost, `reconcile_add` lists the contact ways created
  since the command and reads each: the one whose `state` is the channel's is ours (its config_id and
  qr_code are taken as the answer); none means WeCom did not act, and the command is sent again.
- `update_contact_way` and `del_contact_way` are repeatable (they overwrite or delete by config_id).
- `add_join_way` is not repeatable either, but WeCom has no list of join ways to look in: when its answer
  is lost, `reconcile_join_add` sends it again. The worst case is one extra way in WeCom that nobody is
  shown, carrying the channel's State, so anyone who ever joined through it is still attributed right.
  The client reads the new way's QR code (`get_join_way`); when that read fails, `on_add_done` leaves
  the code empty and `refresh_qr_codes` (the channels job) reads it again.

The hooks run in the transaction that records the outcome: the channel gets its config_id and QR code
(`active`) or WeCom's error (`failed`).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Callable

from flask import Flask
from sqlalchemy import select

from core.db import db, utcnow
from wecom.client import WeComClient, WeComError
from wecom.dispatch import CommandView, Reconciled, register_outbox_hooks, register_reconciler
from wecom.models import OutboxCommand
from wecom.service import enqueue

from .models import ACTIVE, FAILED, JOIN, PAUSED, PENDING, Channel

log = logging.getLogger("scrm.channels")

ADD, UPDATE, DELETE = "channel_add_way", "channel_update_way", "channel_del_way"
JOIN_ADD, JOIN_UPDATE, JOIN_DELETE = "channel_add_join_way", "channel_update_join_way", "channel_del_join_way"
# A way not found this soon after the send may still be in the making in WeCom: ask again later, do not resend.
RECONCILE_SETTLE = dt.timedelta(seconds=60)


def way_fields(channel: Channel, users: list[str] | None = None) -> dict[str, Any]:
    """The contact way as WeCom takes it (wecom-api.md §9.1): a QR code (scene 2) for one or several
    members, with the channel's State."""
    routed = list(users if users is not None else channel.users)
    return {"type": 2 if channel.multi or len(routed) > 1 else 1, "scene": 2, "style": 1,
            "remark": channel.name[:30], "skip_verify": bool(channel.skip_verify), "state": channel.state,
            "user": routed}


def join_way_fields(channel: Channel) -> dict[str, Any]:
    """The join way as WeCom takes it (wecom-api.md §9.1): a QR code (scene 2) for ≤5 chats, with the
    channel's State, and the rooms WeCom opens when they are full."""
    fields: dict[str, Any] = {"scene": 2, "remark": channel.name[:30], "state": channel.state,
                              "chat_id_list": list(channel.chat_ids),
                              "auto_create_room": 1 if channel.auto_create_room else 0}
    if channel.auto_create_room:
        fields["room_base_name"] = channel.room_base_name or channel.name[:40]
        fields["room_base_id"] = channel.room_base_id or 1
    return fields


def enqueue_add(channel: Channel) -> OutboxCommand:
    if channel.kind == JOIN:
        command = enqueue(channel.corp_id, JOIN_ADD, "add_join_way",
                          {"channel_id": channel.id, "fields": join_way_fields(channel)},
                          dedupe_key=f"channel:{channel.id}:add")
        channel.command_id, channel.sync_state = command.id, "pending"
        return command
    users = list(channel.routed_users or channel.users)
    command = enqueue(channel.corp_id, ADD, "add_contact_way",
                      {"channel_id": channel.id, "fields": way_fields(channel, users)},
                      dedupe_key=f"channel:{channel.id}:add")
    channel.command_id, channel.sync_state = command.id, "pending"
    return command


def enqueue_update(channel: Channel) -> OutboxCommand | None:
    """Overwrite the way in WeCom with the channel's routing (nothing while WeCom has not created it)."""
    if not channel.config_id:
        return None
    if channel.kind == JOIN:  # WeCom overwrites the whole way: scene and chats every time
        command = enqueue(channel.corp_id, JOIN_UPDATE, "update_join_way",
                          {"channel_id": channel.id, "config_id": channel.config_id, "fields": join_way_fields(channel)})
        channel.command_id, channel.sync_state = command.id, "pending"
        return command
    fields = way_fields(channel, list(channel.routed_users or channel.users))
    fields.pop("type"), fields.pop("scene"), fields.pop("style")  # fixed at creation
    command = enqueue(channel.corp_id, UPDATE, "update_contact_way",
                      {"channel_id": channel.id, "config_id": channel.config_id, "fields": fields})
    channel.command_id, channel.sync_state = command.id, "pending"
    return command


def enqueue_delete(channel: Channel) -> OutboxCommand | None:
    if not channel.config_id:
        return None
    join = channel.kind == JOIN
    command = enqueue(channel.corp_id, JOIN_DELETE if join else DELETE, "del_join_way" if join else "del_contact_way",
                      {"channel_id": channel.id, "config_id": channel.config_id},
                      dedupe_key=f"channel:{channel.id}:del")
    channel.command_id, channel.sync_state = command.id, "pending"
    return command


def _channel(cmd: OutboxCommand) -> Channel | None:
    channel_id = (cmd.args or {}).get("channel_id")
    channel = db.session.get(Channel, channel_id) if isinstance(channel_id, int) else None
    return channel if channel is not None and channel.corp_id == cmd.corp_id else None


def on_add_done(cmd: OutboxCommand) -> None:
    channel = _channel(cmd)
    result = cmd.result if isinstance(cmd.result, dict) else {}
    if channel is None:
        return
    channel.config_id = str(result.get("config_id") or "") or None
    channel.qr_code = str(result.get("qr_code") or "") or None
    if channel.status in (PENDING, FAILED):
        channel.status = ACTIVE
    channel.sync_state, channel.last_error = "done", None
    log.info("channels.way.created channel=%s config_id=%s", channel.id, channel.config_id)
    if channel.retired_at is not None:  # retired while WeCom was creating it: delete it there too
        enqueue_delete(channel)


def on_add_failed(cmd: OutboxCommand) -> None:
    channel = _channel(cmd)
    if channel is None:
        return
    channel.status, channel.sync_state = FAILED, "failed"
    channel.last_error = _error(cmd)


def on_change_done(cmd: OutboxCommand) -> None:
    channel = _channel(cmd)
    if channel is not None and channel.command_id == cmd.id:
        channel.sync_state, channel.last_error = "done", None


def on_change_failed(cmd: OutboxCommand) -> None:
    channel = _channel(cmd)
    if channel is not None:
        channel.sync_state, channel.last_error = "failed", _error(cmd)


def _error(cmd: OutboxCommand) -> str:
    code = f"（错误码 {cmd.last_errcode}）" if cmd.last_errcode is not None else ""
    return f"企业微信未能完成操作{code}：{cmd.last_error or ''}".strip("：")


def reconcile_add(view: CommandView, client: WeComClient) -> Reconciled:
    """Did WeCom create the way whose answer was lost? Look for a way with the channel's State among
    those created since the command (list_contact_way), reading each (get_contact_way)."""
    state = str((view.args.get("fields") or {}).get("state") or "")
    since = int((view.created_at.replace(tzinfo=view.created_at.tzinfo or dt.timezone.utc)
                 - dt.timedelta(minutes=10)).timestamp())
    for config_id in client.iter_contact_ways(start_time=since):
        way = client.get_contact_way(config_id)
        if state and way.get("state") == state:
            return Reconciled("done", result={"config_id": config_id, "qr_code": way.get("qr_code"),
                                              "reconciled": True})
    if view.sending_at is not None and utcnow() - view.sending_at < RECONCILE_SETTLE:
        return Reconciled("retry", error="add_contact_way: not in WeCom yet; asking again before any resend")
    return Reconciled("resend")


def reconcile_join_add(view: CommandView, client: WeComClient) -> Reconciled:
    """add_join_way whose answer was lost: WeCom cannot be asked (there is no list of join ways), so it is
    sent again (see the module's docstring for why that is safe)."""
    log.warning("channels.join_way.resend command=%s (WeCom keeps no list of join ways to check)", view.id)
    return Reconciled("resend")


def refresh_qr_codes(corp_id: str, client: Callable[[], WeComClient]) -> int:
    """Join ways whose QR code could not be read when they were created: read it now (the client is made
    only when there is one); how many were filled."""
    filled = 0
    for channel in db.session.scalars(select(Channel).where(
            Channel.corp_id == corp_id, Channel.kind == JOIN, Channel.config_id.is_not(None),
            Channel.qr_code.is_(None), Channel.status.in_((ACTIVE, PAUSED)))).all():
        try:
            channel.qr_code = str(client().get_join_way(str(channel.config_id)).get("qr_code") or "") or None
        except WeComError as exc:  # try again at the next run
            log.warning("channels.join_way.qr_code_unread channel=%s error=%s", channel.id, exc)
            continue
        filled += channel.qr_code is not None
    db.session.flush()
    return filled


def register_hooks(app: Flask) -> None:
    register_outbox_hooks(app, ADD, on_done=on_add_done, on_failed=on_add_failed)
    register_reconciler(app, ADD, reconcile_add)
    register_outbox_hooks(app, JOIN_ADD, on_done=on_add_done, on_failed=on_add_failed)
    register_reconciler(app, JOIN_ADD, reconcile_join_add)
    for kind in (UPDATE, DELETE, JOIN_UPDATE, JOIN_DELETE):
        register_outbox_hooks(app, kind, on_done=on_change_done, on_failed=on_change_failed)


def latest_command(channel: Channel) -> OutboxCommand | None:
    if channel.command_id is None:
        return None
    return db.session.scalar(select(OutboxCommand).where(OutboxCommand.id == channel.command_id))
