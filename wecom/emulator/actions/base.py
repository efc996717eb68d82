"""What the actions share: the emulator's state, sending a callback, lookups that fail with `ActionError`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..state import ACTIVE, Customer, State

if TYPE_CHECKING:
    from ..server import Emulator

WELCOME_CODE_TTL = 20
CONTACT = "change_external_contact"
CHAT = "change_external_chat"
TAG = "change_external_tag"


class ActionError(ValueError):
    """The action makes no sense in the current state (unknown member, no such chat…)."""


class ActionBase:
    """What every kind of action shares: the emulator's state, its callbacks, lookups that fail plainly."""

    def __init__(self, emu: "Emulator") -> None:
        self._emu = emu

    @property
    def _state(self) -> State:
        return self._emu.state

    def _emit(self, event: str, change_type: str, fields: list[tuple[str, Any]]) -> None:
        self._state.emit(event, change_type, fields)

    def _member(self, userid: str) -> Any:
        member = self._state.staff.get(userid)
        if member is None:
            raise ActionError(f"unknown staff member {userid!r}")
        return member

    def _customer(self, external_userid: str) -> Customer:
        customer = self._state.customers.get(external_userid)
        if customer is None:
            raise ActionError(f"unknown customer {external_userid!r}")
        return customer

    def _active_relation(self, userid: str, external_userid: str) -> Any:
        rel = self._state.relation(userid, external_userid)
        if rel is None or rel.status != ACTIVE:
            raise ActionError(f"{userid!r} and {external_userid!r} are not friends")
        return rel
