"""Everything that speaks WeCom's protocol and nothing else.

The API client, callback crypto and parsing, the callback endpoint, the inbox and outbox
tables, JS-SDK signing and the WeCom emulator. Imports `extensions` only; handlers that apply
events to the customer base are registered into it by `create_app`.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import models  # noqa: F401  (tables known to migrations)
    from .cli import wecom_cli
    from .dispatch import EXTENSION_KEY
    from .routes import install as install_callback

    app.extensions.setdefault(EXTENSION_KEY, {})  # the (Event, ChangeType) → handler table
    install_callback(app)  # /wecom/callback, in front of Flask: no login, no CSRF, the signature guards it
    app.cli.add_command(wecom_cli)
