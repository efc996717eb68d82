"""Channels (渠道活码): contact ways and group join ways per channel with their welcome messages and tags,
attribution reports, alerts, and the interaction radar (tracked links).

Imports `tagging`, `crm`, `identity`, `wecom` and `core`.
"""

from __future__ import annotations

from typing import Any

from flask import Flask


def init_app(app: Flask) -> None:
    from . import models  # noqa: F401  (tables known to migrations)


def subscriptions() -> list[tuple[Any, Any]]:
    """(domain signal, receiver) pairs that `create_app` connects."""
    return []
