"""The application factory: settings, extensions, blueprints and CLI, wired in one ordered list.

Nothing happens at import time: `flask --app app run`, `gunicorn 'app:create_app()'` and the
tests all call `create_app()`.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

from flask import Flask

import extensions
from settings import Settings


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

    extensions.init_app(app, conf)

    from wecom import init_app as init_wecom
    from crm import init_app as init_crm

    init_wecom(app)
    init_crm(app)

    from console import init_app as init_console
    from sidebar import init_app as init_sidebar

    init_console(app)
    init_sidebar(app)

    from tagging import init_app as init_tagging

    init_tagging(app)
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


def _configure_logging(app: Flask) -> None:
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logger = logging.getLogger("scrm")
    logger.setLevel(level)
    if not logger.handlers and not app.testing:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
