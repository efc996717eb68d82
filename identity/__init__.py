"""Who is asking and what they may do: sign-in sessions, API tokens, roles and visibility scopes.

Shared by the sidebar, the console and the JSON API of every feature (`identity.web` for views,
`identity.service` for the rest). Imports `crm` (the staff) and `core`; every feature package
above may import it.
"""

from __future__ import annotations

from typing import Any

from flask import Flask


def init_app(app: Flask) -> None:
    from crm.routes import DETAIL_KEY as HEALTH_DETAIL_KEY

    from . import models  # noqa: F401  (tables known to migrations)
    from .cli import roles_cli, tokens_cli

    app.cli.add_command(tokens_cli)
    app.cli.add_command(roles_cli)
    app.extensions[HEALTH_DETAIL_KEY] = _health_detail  # /healthz shows its figures to admins only


def _health_detail() -> bool:
    from .web import current_principal

    found = current_principal()
    return found is not None and found.role == "admin"


def subscriptions() -> list[tuple[Any, Any]]:
    """(domain signal, receiver) pairs that `create_app` connects: a resignation ends sessions and tokens."""
    from core import signals

    from .service import on_staff_resigned

    return [(signals.staff_resigned, on_staff_resigned)]
