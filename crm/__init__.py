"""The customer base: its models, the handlers that apply WeCom events, the full sync, the worker."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import models  # noqa: F401  (tables known to migrations)
    from wecom.cli import wecom_cli

    from . import handlers, jobs  # noqa: F401  (jobs: registers the nightly sync and the claim sweep)
    from .cli import sync_command, worker_command
    from core.tasks import register_task

    from .routes import bp
    from .sync import STAFF_NAMES_TASK, refresh_staff
    from .worker import install_embedded

    app.register_blueprint(bp)
    app.cli.add_command(worker_command)
    wecom_cli.add_command(sync_command)
    handlers.register(app)  # (Event, ChangeType) → handler, the sync protector, outbox after-hooks
    register_task(app, STAFF_NAMES_TASK, refresh_staff)  # members' names and departments, after a sync
    install_embedded(app)  # the embedded default: a worker thread in the process that serves requests
