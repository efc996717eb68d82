"""Mass messages (群发) to the customers of a segment or to customer group chats: planned at send time,
quota-aware, sent through the outbox, followed to delivery, with console pages and an API.

Imports `tagging` (segments), `crm`, `identity`, `wecom` and `core`.
"""

from __future__ import annotations

from typing import Any

from flask import Flask


def init_app(app: Flask) -> None:
    from . import models  # noqa: F401  (tables known to migrations)


def subscriptions() -> list[tuple[Any, Any]]:
    """(domain signal, receiver) pairs that `create_app` connects."""
    return []
