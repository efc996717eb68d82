"""Handover of a departing (resigned) or moving (on-job) colleague's customers and group chats: transfer
jobs sent in batches through the outbox, followed to their end, with console pages and an API.

Imports `tagging` (re-applying tags on the takeover's relation), `crm`, `identity`, `wecom` and `core`.

- `planning`: the checks made before anything is sent (WeCom's limits from local history) and the
  distribution to the takeover colleagues, in calls of ≤100; the preview;
- `sending`: writing a job and its outbox commands, WeCom's answers, the reconcilers, the job's end;
- `following`: polling transfer_result, the callbacks (through crm's signals), the safety net;
- `moving`: what moves with a customer (relations, the handover note, tags);
- `waiting`: the resigned colleagues' customers and chats waiting for a takeover;
- `service`: requests, preview, start, retry/reassign, reading, export, settings; `api`, `routes`, `jobs`, `cli`.
"""

from __future__ import annotations

from typing import Any

from flask import Flask


def init_app(app: Flask) -> None:
    from core.api import register
    from core.tasks import register_task

    from . import jobs, models  # noqa: F401  (tables known to migrations; the scheduled jobs)
    from .api import bp as api_bp
    from .cli import handover_cli
    from .routes import bp
    from .sending import register_hooks
    from .waiting import REFRESH_TASK, run_refresh_task

    register(app, api_bp)
    app.register_blueprint(bp)
    register_hooks(app)
    register_task(app, REFRESH_TASK, run_refresh_task)
    app.cli.add_command(handover_cli)


def subscriptions() -> list[tuple[Any, Any]]:
    """(domain signal, receiver) pairs that `create_app` connects: WeCom's transfer callbacks as crm announces
    them, and resignations (the waiting list is read again)."""
    from core import signals

    from .following import on_customer_added, on_relation_lost, on_staff_resigned, on_transfer_failed

    return [(signals.transfer_failed, on_transfer_failed), (signals.relation_lost, on_relation_lost),
            (signals.customer_added, on_customer_added), (signals.staff_resigned, on_staff_resigned)]
