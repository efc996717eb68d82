"""The customer base: its models, the handlers that apply WeCom events, the full sync, the worker."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import models  # noqa: F401  (tables known to migrations)
    from wecom.cli import wecom_cli

    from .cli import sync_command, tokens_cli
    from .routes import bp

    app.register_blueprint(bp)
    app.cli.add_command(tokens_cli)
    wecom_cli.add_command(sync_command)
