"""The corp tag catalog: groups and tags edited here and in WeCom, both ways through the outbox;
governance (usage, unused and near-duplicate tags) and merge.

Imports `assignments` (merge re-tags relations); every later area may import it.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from core.api import register

    from .api import bp as api_bp
    from .routes import bp
    from .service import register_hooks

    register(app, api_bp)
    app.register_blueprint(bp)
    register_hooks(app)
