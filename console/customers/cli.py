"""`flask console exports`: run the customer exports waiting to run (the worker does it every 30 s)."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from core.settings import settings

from .exports import run_pending


@click.command("exports")
@with_appcontext
def exports_command() -> None:
    """Run the customer exports waiting to run now."""
    click.echo(f"{run_pending(settings().WECOM_CORP_ID)} export(s) run")
