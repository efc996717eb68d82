"""The drift report: every difference between the local tag catalog and assignments and WeCom's,
healed on demand and every night (relations with a pending change are not drift).

Imports `catalog`'s rules of identity (provisional ids) through `crm`; nothing in tagging imports it.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import jobs  # noqa: F401  (registers the nightly heal)
    from . import models  # noqa: F401  (tables known to migrations)
    from .routes import bp

    app.register_blueprint(bp)
