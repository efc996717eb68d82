"""Corp tag catalog, two-way tag sync, auto-tagging rules, segments and campaigns.

Part 1 (this `init_app`): segments (`segments.compile_filter`), lifecycle stages (`stages`),
behaviour events (`events`, with the `register_events_hook` registry) and value tiers (`tiers`).
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from console import register_nav

    from . import jobs  # noqa: F401  (registers the nightly value-tier job)
    from . import models  # noqa: F401  (tables known to migrations)
    from .api import bp as api_bp
    from .routes import bp

    app.register_blueprint(api_bp)
    app.register_blueprint(bp)
    register_nav(app, "tagging.segments", "客户分群", roles=("marketer", "manager"), order=30)
    register_nav(app, "tagging.stages", "阶段与分层", roles=("admin",), order=80)
