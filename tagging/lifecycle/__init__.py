"""The customer lifecycle: stages (the one place a customer's stage changes, with its history),
behaviour events from other touch points, value tiers, and their mirrors into WeCom tag groups.

Imports `assignments` and `catalog` (the mirrors create tags and mark them); `segments` and `rules`
import it.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from core.api import register

    from . import jobs  # noqa: F401  (registers the nightly tiers and the mirror job)
    from . import models  # noqa: F401  (tables known to migrations)
    from .api import bp as api_bp
    from .routes import bp

    register(app, api_bp)
    app.register_blueprint(bp)
