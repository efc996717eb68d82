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
    from . import rule_models  # noqa: F401  (part 2: rules, jobs, drift reports)
    from .api import bp as api_bp
    from .routes import bp

    app.register_blueprint(api_bp)
    app.register_blueprint(bp)
    register_nav(app, "tagging.segments_page", "客户分群", roles=("marketer", "manager"), order=30)
    register_nav(app, "tagging.stages_page", "阶段与分层", roles=("admin",), order=80)
    _init_part2(app)


def _init_part2(app: Flask) -> None:
    """Part 2: the tag catalog both ways, assignments, drift report, auto-tagging rules."""
    from console import register_nav
    from wecom.dispatch import register_outbox_hooks

    from . import drift, rule_jobs  # noqa: F401  (register the nightly drift heal, rules and job runners)
    from . import catalog, rules
    from .catalog_api import bp as catalog_api_bp
    from .catalog_routes import bp as catalog_bp
    from .cli import tagging_cli
    from .rules_routes import bp as rules_bp
    from .service import on_mark_tag_failed

    app.register_blueprint(catalog_api_bp)
    app.register_blueprint(catalog_bp)
    app.register_blueprint(rules_bp)
    app.cli.add_command(tagging_cli)
    catalog.register_hooks(app)
    register_outbox_hooks(app, "mark_tag", on_failed=on_mark_tag_failed)
    rules.register(app)
    register_nav(app, "tagging_catalog.catalog", "标签管理", roles=("admin", "marketer"), order=35)
    register_nav(app, "tagging_rules.rules", "自动打标签", roles=("admin", "marketer"), order=36)
