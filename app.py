"""The application factory: settings, the shared plumbing, then each package's `init_app` in one ordered
list (the order of the dependencies, bottom up), then every package's domain-signal subscriptions
(each package lists its (signal, receiver) pairs in `subscriptions()`; they are connected here).

Nothing happens at import time: `flask --app app run`, `gunicorn 'app:create_app()'` and the tests all
call `create_app()`.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

from flask import Flask

import core.api
import core.db
import core.settings
import core.time
import core.uow
from core.cli import tasks_cli
from core.queue import install_wake_listener
from core.settings import Settings


def create_app(config_override: Mapping[str, Any] | None = None) -> Flask:
    override = dict(config_override or {})
    if not override.get("TESTING"):
        from dotenv import load_dotenv

        load_dotenv(os.path.join(os.getcwd(), ".env"))
    app = Flask(__name__, instance_relative_config=True)
    conf = Settings.load(override=override)
    conf.check()
    conf.ensure_secret_key(app.instance_path)
    app.config.update(
        SECRET_KEY=conf.SECRET_KEY,
        SQLALCHEMY_DATABASE_URI=conf.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(conf),
        MAX_CONTENT_LENGTH=conf.MAX_CONTENT_LENGTH,
        JSON_AS_ASCII=False,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.config.update(conf.extra)
    _configure_logging(app)

    core.settings.init_app(app, conf)
    core.db.init_app(app, conf)
    core.uow.init_app(app)
    core.api.init_app(app)
    core.time.init_app(app)
    app.cli.add_command(tasks_cli)
    install_wake_listener()

    import campaigns
    import channels
    import console
    import crm
    import handover
    import identity
    import sidebar
    import tagging
    import wecom

    packages = (wecom, crm, identity, tagging, handover, campaigns, channels, sidebar, console)
    for package in packages:
        package.init_app(app)
    for package in (identity, tagging, handover, campaigns, channels):
        for signal, receiver in package.subscriptions():
            signal.connect(receiver)
    return app


def _engine_options(conf: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {"pool_pre_ping": True}
    if conf.is_postgres:
        # psycopg 3 prepares a statement on the server after 5 runs, and PostgreSQL may then reuse a
        # generic plan made while a table was small: the sync's "customers with these 100
        # external_userids" lookup became a sequential scan (100–400 ms a page at 100k customers).
        # Planning each statement with its real parameters costs far less than such a plan.
        options["connect_args"] = {"prepare_threshold": None}
    return options


class _RequestIdFilter(logging.Filter):
    """Adds the request id (see `core.api`) to every log record made while a request is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        from flask import g, has_request_context

        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def _configure_logging(app: Flask) -> None:
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logger = logging.getLogger("scrm")
    logger.setLevel(level)
    if not logger.handlers and not app.testing:
        handler = logging.StreamHandler()
        handler.addFilter(_RequestIdFilter())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
        logger.addHandler(handler)
