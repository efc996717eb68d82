"""The table of writes the outbox may send to WeCom: what each command calls, with which app's
token, and whether a send whose outcome is unknown may simply be sent again.

A command is stored as a method name and its keyword arguments (JSON). The worker looks the method
up here, never with `getattr`, so a reader can see every write the product makes:

- `repeatable`: sending it twice does no harm (marking tags, renaming, deleting, a welcome message
  whose code is single-use, an app notification where a duplicate beats a lost one). After a send
  whose outcome is unknown (a read timeout, a 5xx, a crash between WeCom's answer and our commit)
  it is simply sent again.
- not repeatable (a transfer, a mass-message task, a new contact way …): sending it twice would
  transfer twice or message customers twice. Before such a command is sent the outbox records that
  it is on its way; if its outcome is then unknown, the command's *reconciler* (registered by the
  feature that owns the kind, in `create_app`) reads WeCom and says whether it took effect. Without
  a reconciler the command is failed "outcome unknown" and never resent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .client import WeComClient

Call = Callable[[WeComClient, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Command:
    client: str  # "contact" (customer-contact secret) | "agent" (the self-built app)
    call: Call
    repeatable: bool
    # For a repeatable command: errcodes that, answering a second (or later) attempt, say an earlier
    # attempt whose answer was lost took effect (a welcome code already used: 41051). The command is
    # then done, not failed.
    done_if_resent: frozenset[int] = frozenset()


def _opt(args: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {n: args[n] for n in names if n in args}


COMMANDS: dict[str, Command] = {
    # §4 customers and tags
    "mark_tag": Command("contact", lambda c, a: c.mark_tag(a["userid"], a["external_userid"], a.get("add_tag", ()),
                                                           a.get("remove_tag", ())), repeatable=True),
    "remark": Command("contact", lambda c, a: c.remark(a["userid"], a["external_userid"], **_opt(
        a, "remark", "description", "remark_company", "remark_mobiles", "remark_pic_mediaid")), repeatable=True),
    "add_corp_tag": Command("contact", lambda c, a: c.add_corp_tag(**_opt(a, "group_id", "group_name", "order"),
                                                                   tags=a["tags"]), repeatable=False),
    "edit_corp_tag": Command("contact", lambda c, a: c.edit_corp_tag(a["id"], **_opt(a, "name", "order")),
                             repeatable=True),
    "del_corp_tag": Command("contact", lambda c, a: c.del_corp_tag(**_opt(a, "tag_ids", "group_ids")),
                            repeatable=True),
    # §5 handover
    "transfer_customer": Command("contact", lambda c, a: c.transfer_customer(
        a["handover_userid"], a["takeover_userid"], a["external_userids"], a.get("transfer_success_msg")),
        repeatable=False),
    "resigned_transfer_customer": Command("contact", lambda c, a: c.resigned_transfer_customer(
        a["handover_userid"], a["takeover_userid"], a["external_userids"]), repeatable=False),
    "groupchat_transfer": Command("contact", lambda c, a: c.groupchat_transfer(a["chat_ids"], a["new_owner"]),
                                  repeatable=False),
    "groupchat_onjob_transfer": Command("contact", lambda c, a: c.groupchat_onjob_transfer(
        a["chat_ids"], a["new_owner"]), repeatable=False),
    # §7 mass messages and welcome messages
    "add_msg_template": Command("contact", lambda c, a: c.add_msg_template(dict(a["body"])), repeatable=False),
    "remind_groupmsg_send": Command("contact", lambda c, a: c.remind_groupmsg_send(a["msgid"]), repeatable=False),
    "cancel_groupmsg_send": Command("contact", lambda c, a: c.cancel_groupmsg_send(a["msgid"]), repeatable=True),
    "send_welcome_msg": Command("contact", lambda c, a: c.send_welcome_msg(
        a["welcome_code"], a.get("text"), a.get("attachments")), repeatable=True, done_if_resent=frozenset({41051})),
    # app messages (the self-built app): a duplicate notification beats a lost one
    "send_app_message": Command("agent", lambda c, a: c.send_app_message(
        int(a["agentid"]), list(a["touser"]), **_opt(a, "text", "textcard")), repeatable=True),
    # §9 contact ways
    "add_contact_way": Command("contact", lambda c, a: c.add_contact_way(**dict(a["fields"])), repeatable=False),
    "update_contact_way": Command("contact", lambda c, a: c.update_contact_way(a["config_id"], **dict(a["fields"])),
                                  repeatable=True),
    "del_contact_way": Command("contact", lambda c, a: c.del_contact_way(a["config_id"]), repeatable=True),
    "add_join_way": Command("contact", lambda c, a: c.add_join_way(**dict(a["fields"])), repeatable=False),
    "update_join_way": Command("contact", lambda c, a: c.update_join_way(a["config_id"], **dict(a["fields"])),
                               repeatable=True),
    "del_join_way": Command("contact", lambda c, a: c.del_join_way(a["config_id"]), repeatable=True),
}


def command(method: str) -> Command:
    """The table entry of `method`; `ValueError` for a method the outbox does not send."""
    try:
        return COMMANDS[method]
    except KeyError:
        raise ValueError(f"{method!r} is not a WeCom write the outbox sends (see wecom.commands.COMMANDS)") from None
