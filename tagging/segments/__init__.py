"""Segments: a filter tree F compiled to one SQL query of customer ids (over `customer_facets` on
PostgreSQL), its live count and sample, and saved segments.

Imports `lifecycle` (stages, tiers and events are filter nodes) and `catalog`; `rules`, `bulk` and the
campaigns import it.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from core.api import register

    from . import models  # noqa: F401  (tables known to migrations)
    from .api import bp as api_bp
    from .routes import bp

    register(app, api_bp)
    app.register_blueprint(bp)
