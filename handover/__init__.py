"""Handover of a departing (resigned) or moving (on-job) colleague's customers and group chats: transfer
jobs sent in batches through the outbox, followed to their end, with console pages and an API.

Imports `crm`, `identity`, `wecom` and `core`.
"""

from __future__ import annotations

from typing import Any

from flask import Flask


def init_app(app: Flask) -> None:
    from . import models  # noqa: F401  (tables known to migrations)


def subscriptions() -> list[tuple[Any, Any]]:
    """(domain signal, receiver) pairs that `create_app` connects."""
    return []
