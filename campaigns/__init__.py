"""Mass messages (群发) to the customers of a segment or to customer group chats: planned at send time,
quota-aware, sent through the outbox, followed to delivery, with console pages and an API.

Imports `tagging` (segments, tag assignments), `crm`, `identity`, `wecom` and `core`.

- `planning`: the audience and who sends each customer, in set-based SQL chunks; the preview's counts;
- `sending`: the send job, the outbox commands and their hooks and reconciler, cancel, remind;
- `following`: polling WeCom's results to the end, closing campaigns, mass messages we did not send;
- `media`: uploaded attachments and WeCom's temporary copies of them;
- `service`: composing, reading, exporting, the corp's settings; `api`, `routes`, `jobs`, `cli`.
"""

from __future__ import annotations

from typing import Any

from flask import Flask


def init_app(app: Flask) -> None:
    from core.api import register

    from . import jobs, models  # noqa: F401  (tables known to migrations; the scheduled jobs)
    from .api import bp as api_bp
    from .cli import campaigns_cli
    from .routes import bp
    from .sending import register_hooks

    register(app, api_bp)
    app.register_blueprint(bp)
    register_hooks(app)
    app.cli.add_command(campaigns_cli)


def subscriptions() -> list[tuple[Any, Any]]:
    """(domain signal, receiver) pairs that `create_app` connects: none (campaigns read state at send time)."""
    return []
