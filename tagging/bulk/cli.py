"""`flask tagging jobs`: run the pending bulk tag jobs and rule backfills now."""

from __future__ import annotations

import click

from core.settings import settings

from .service import run_pending_jobs


@click.command("jobs")
def jobs_command() -> None:
    """Run the pending bulk tag jobs and rule backfills now."""
    click.echo(f"{run_pending_jobs(settings().WECOM_CORP_ID)} job(s) run")
