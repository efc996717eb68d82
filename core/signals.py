"""Domain signals: a service says what happened; rules, mirrors, alerts and other features subscribe.

Each signal carries one frozen dataclass, so a subscriber's parameter says exactly what it gets:

    tags_changed.send(TagsChanged(corp_id, customer_id, relation_id, added, removed, actor))
    tags_changed.connect(on_tags_changed)        # def on_tags_changed(event: TagsChanged) -> None

Built on blinker (Flask's own signal library). Signals are sent inside the sender's transaction and
subscribers run synchronously in it; a subscriber that has slow or failure-prone work to do queues a
task (`core.tasks.enqueue_task`) instead, so the user's request answers first and the work still
happens exactly once. `create_app` connects the subscribers, in one place.

`cascade` carries the chain of auto-tagging rules applied in the current cascade, so that a change a
rule makes is announced with the chain that caused it, and the rules can stop a loop.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

from blinker import Namespace

_signals = Namespace()
E = TypeVar("E")

cascade: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar("scrm_rule_cascade", default=())


class DomainSignal(Generic[E]):
    """A named blinker signal whose payload is one event object of type E."""

    def __init__(self, name: str, doc: str) -> None:
        self.name = name
        self._signal = _signals.signal(name, doc=doc)

    def connect(self, receiver: Callable[[E], None]) -> None:
        """Subscribe `receiver(event)` (strongly held; connecting the same function twice is harmless)."""
        self._signal.connect(receiver, weak=False)

    def disconnect(self, receiver: Callable[[E], None]) -> None:
        self._signal.disconnect(receiver)

    def send(self, event: E) -> None:
        self._signal.send(event)

    @property
    def receivers(self) -> int:
        return len(self._signal.receivers)


@dataclass(frozen=True)
class CustomerAdded:
    """A staff member and a customer became contacts (a callback; a transfer taking effect too)."""

    corp_id: str
    customer_id: int
    relation_id: int
    userid: str
    state: str = ""
    add_way: int = 0


@dataclass(frozen=True)
class TagsChanged:
    """Corp tags were added to / removed from one follow relation, here or in the WeCom client."""

    corp_id: str
    customer_id: int
    relation_id: int
    added: tuple[str, ...]
    removed: tuple[str, ...]
    actor: str
    chain: tuple[int, ...] = ()


@dataclass(frozen=True)
class StageChanged:
    corp_id: str
    customer_id: int
    from_stage: str | None
    to_stage: str | None
    actor: str
    chain: tuple[int, ...] = ()


@dataclass(frozen=True)
class FollowupWritten:
    corp_id: str
    customer_id: int
    followup_id: int
    userid: str


@dataclass(frozen=True)
class EventsReceived:
    """Behaviour events (page views, orders, …) were stored for these customers."""

    corp_id: str
    customer_ids: tuple[int, ...]
    types: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class JoinedGroupChat:
    corp_id: str
    customer_id: int
    chat_id: str
    state: str = ""


@dataclass(frozen=True)
class RelationLost:
    """A follow relation ended: the staff member deleted the customer, the customer deleted them, or sync."""

    corp_id: str
    customer_id: int
    relation_id: int
    userid: str
    reason: str


@dataclass(frozen=True)
class TransferFailed:
    """WeCom says a customer handed over to `takeover_userid` was not taken over (`transfer_fail`)."""

    corp_id: str
    external_userid: str
    takeover_userid: str
    reason: str  # customer_refused | customer_limit_exceed


@dataclass(frozen=True)
class StaffResigned:
    """WeCom says a staff member left the corp (a contact callback, or the sync learned it)."""

    corp_id: str
    userid: str


customer_added: DomainSignal[CustomerAdded] = DomainSignal("customer-added", "a customer added a staff member")
tags_changed: DomainSignal[TagsChanged] = DomainSignal("tags-changed", "tags changed on a follow relation")
stage_changed: DomainSignal[StageChanged] = DomainSignal("stage-changed", "a customer's lifecycle stage changed")
followup_written: DomainSignal[FollowupWritten] = DomainSignal("followup-written", "a follow-up note was written")
events_received: DomainSignal[EventsReceived] = DomainSignal("events-received", "behaviour events were stored")
joined_group_chat: DomainSignal[JoinedGroupChat] = DomainSignal("joined-group-chat", "a customer joined a chat")
relation_lost: DomainSignal[RelationLost] = DomainSignal("relation-lost", "a follow relation ended")
transfer_failed: DomainSignal[TransferFailed] = DomainSignal("transfer-failed", "a handed-over customer was not taken over")
staff_resigned: DomainSignal[StaffResigned] = DomainSignal("staff-resigned", "a staff member left the corp")
