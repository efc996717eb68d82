"""`flask console overview-refresh [--full]`: bring the overview's figures up to date now."""

from __future__ import annotations

import datetime as dt
import os
import socket

import click
from flask.cli import with_appcontext

from core.jobs import acquire, release
from core.settings import settings
from core.uow import unit_of_work

from .refresh import refresh


@click.command("overview-refresh")
@click.option("--full", is_flag=True, help="rebuild every day, not only the recent ones")
@with_appcontext
def overview_refresh_command(full: bool) -> None:
    """Refresh the overview's pre-aggregates now (the worker does it every few minutes)."""
    corp_id, owner = settings().WECOM_CORP_ID, f"cli:{socket.gethostname()}:{os.getpid()}"
    if not acquire(corp_id, "overview_refresh", owner, dt.timedelta(minutes=30)):
        raise click.ClickException("another refresh is running; try again in a minute")
    try:
        with unit_of_work():
            stats = refresh(corp_id, full=full)
    finally:
        release(corp_id, "overview_refresh", owner)
    days = "every day" if stats.full else f"days {stats.first_day} to {stats.last_day}"
    click.echo(f"overview refreshed in {stats.seconds:.1f} s ({days}): {stats.daily_rows} daily rows, "
               f"{stats.current_rows} current rows, {stats.tag_rows} tag rows")
