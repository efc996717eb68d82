"""Bulk tag jobs: one job (with progress, resumable) for a tag edit of many customers or a rule's
backfill. The last of tagging's areas: imports `rules`, `segments` and `assignments`."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from core.api import register

    from . import jobs  # noqa: F401  (registers the runner of jobs whose process died)
    from . import models  # noqa: F401  (tables known to migrations)
    from .api import bp as api_bp
    from .routes import bp

    register(app, api_bp)
    app.register_blueprint(bp)
