"""Channels (渠道活码): contact ways and group join ways per channel with their welcome messages and tags,
attribution reports, alerts, and the interaction radar (tracked links).

Imports `tagging`, `crm`, `identity`, `wecom` and `core`; nothing below imports it (the names other
packages show come from `crm.models.ChannelLabel`, which `service` writes).

- `service`: create, edit, pause, resume, retire; naming States no channel knows; reading;
- `ways`: the contact ways in WeCom through the outbox (commands, hooks, the add reconciler);
- `reports`: attribution per channel and period (one set-based query), CSV;
- `alerts`: no new customers, staff near the limit or resigned, 7-day loss rate; once per condition;
- `radar`: tracked links, signed per-recipient URLs, opens as behaviour events, staff notifications;
- `api`, `routes` (console pages and the public `/l/<token>`), `jobs`.
"""

from __future__ import annotations

from typing import Any

from flask import Flask


def init_app(app: Flask) -> None:
    from core.api import register

    from . import jobs, models  # noqa: F401  (tables known to migrations; the scheduled jobs)
    from .api import bp as api_bp
    from .routes import bp, links_bp
    from .ways import register_hooks

    register(app, api_bp)
    app.register_blueprint(bp)
    app.register_blueprint(links_bp)
    register_hooks(app)


def subscriptions() -> list[tuple[Any, Any]]:
    """(domain signal, receiver) pairs that `create_app` connects: a resignation alerts the owners of the
    channels that route to that member at once. (Welcome messages and arrival tags ride on crm's welcome
    path and the tagging rules; reports and the other alerts read the relations.)"""
    from core import signals

    from .alerts import on_staff_resigned

    return [(signals.staff_resigned, on_staff_resigned)]
