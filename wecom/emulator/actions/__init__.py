"""What people do in the WeCom client or admin console: each action changes the state and sends the
callback WeCom would send (wecom-api.md §3). API calls never go through here.

One module per area; `Actions` combines them. Every public method is an action: `emu.act.<name>(...)`,
and `POST /emulator/act/<name>` with the arguments as JSON.
"""

from __future__ import annotations

from .base import ActionError
from .customers import CustomerActions
from .groupchats import GroupChatActions
from .handover import HandoverActions
from .messages import MessageActions
from .tags import TagActions

__all__ = ["ActionError", "Actions"]


class Actions(CustomerActions, HandoverActions, GroupChatActions, TagActions, MessageActions):
    """`emu.act.<name>(...)`; also reachable as `POST /emulator/act/<name>`."""

    @classmethod
    def names(cls) -> frozenset[str]:
        """Every action: the public methods."""
        return frozenset(n for n in dir(cls) if not n.startswith("_") and n != "names" and callable(getattr(cls, n)))
