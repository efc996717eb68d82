"""`flask tasks …`: the queue of local work the worker runs (auto-tagging rules, …)."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from core.db import db
from core.models import Task
from core.queue import wake
from core.settings import settings
from core.tasks import replay_tasks
from core.uow import unit_of_work

tasks_cli = AppGroup("tasks", help="Local tasks the worker runs: counts, failures, replay.")


@tasks_cli.command("list")
@click.option("--failed", is_flag=True, help="List the failed tasks with their errors.")
def list_tasks(failed: bool) -> None:
    """How many tasks of each kind are pending, done or failed (and, with --failed, why they failed)."""
    corp_id = settings().WECOM_CORP_ID
    rows = db.session.execute(select(Task.kind, Task.status, func.count()).where(Task.corp_id == corp_id)
                              .group_by(Task.kind, Task.status).order_by(Task.kind, Task.status)).all()
    for kind, status, count in rows:
        click.echo(f"{kind:24} {status:8} {count}")
    if failed:
        for task in db.session.scalars(select(Task).where(Task.corp_id == corp_id, Task.status == "failed")
                                       .order_by(Task.id.desc()).limit(50)):
            click.echo(f"#{task.id} {task.kind} after {task.attempts} attempt(s): {task.last_error}")


@tasks_cli.command("replay")
def replay_command() -> None:
    """Put every failed task back to pending so the worker runs it again (handlers are idempotent)."""
    with unit_of_work():
        count = replay_tasks(settings().WECOM_CORP_ID)
    wake()
    click.echo(f"{count} task(s) put back to pending")
