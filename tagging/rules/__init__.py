"""Auto-tagging rules: WHEN a trigger IF a condition (a segment filter) THEN tags, a stage, a notice.

Triggered by the domain signals (`core.signals`, subscribed in `create_app`) and run by the worker
from the durable task queue, never inside the request that changed the customer. Imports
`segments`, `lifecycle` and `assignments`; `bulk` imports it for backfills.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from core.api import register
    from core.tasks import register_task

    from . import jobs  # noqa: F401  (registers the daily inactivity rules)
    from . import models  # noqa: F401  (tables known to migrations)
    from .api import bp as api_bp
    from .routes import bp
    from .service import FIRE_TASK, run_fire_task

    register(app, api_bp)
    app.register_blueprint(bp)
    register_task(app, FIRE_TASK, run_fire_task)
