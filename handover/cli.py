"""`flask handover …`: refresh the waiting list, follow transfers now (as the scheduled jobs do), and show a
job's progress."""

from __future__ import annotations

import click

from core.db import db, utcnow
from core.settings import settings
from core.uow import unit_of_work
from wecom.client import contact_client

from .following import mend, poll_due
from .models import HandoverJob
from .service import CUSTOMER_LABELS, KIND_LABELS, STATUS_LABELS, job_dict
from .waiting import refresh_waiting

handover_cli = click.Group("handover", help="客户交接：刷新离职待分配列表、跟踪转接结果、查看任务进度。")


@handover_cli.command("refresh")
def refresh_command() -> None:
    """Read the resigned colleagues' waiting customers and chats from WeCom now."""
    with unit_of_work():
        row = refresh_waiting(settings().WECOM_CORP_ID, contact_client(), reason="cli")
        status, counts, error = row.status, dict(row.counts or {}), row.error
    if status != "done":
        raise click.ClickException(error or "refresh failed")
    click.echo(f"{counts.get('staff', 0)} resigned colleague(s): {counts.get('customers', 0)} customer(s) and "
               f"{counts.get('chats', 0)} chat(s) waiting")


@handover_cli.command("poll")
@click.option("--all", "force", is_flag=True, help="Read every pair with a waiting customer, not only those due.")
def poll_command(force: bool) -> None:
    """Read transfer_result and move each customer to its state (what the 3-minute job does)."""
    corp_id, now = settings().WECOM_CORP_ID, utcnow()
    with unit_of_work():
        pairs = poll_due(corp_id, now, contact_client(), force=force)
        mended = mend(corp_id, now)
    click.echo(f"{pairs} (handover, takeover) pair(s) read from WeCom; mended {mended}")


@handover_cli.command("show")
@click.argument("job_id", type=int)
def show_command(job_id: int) -> None:
    """A job's status, a progress bar and its customers by state."""
    job = db.session.get(HandoverJob, job_id)
    if job is None or job.corp_id != settings().WECOM_CORP_ID:
        raise click.ClickException(f"no handover job {job_id}")
    info = job_dict(job)
    progress = info["progress"]
    bar = "#" * (progress["percent"] // 5) + "-" * (20 - progress["percent"] // 5)
    click.echo(f"#{job.id} {KIND_LABELS[job.kind]} {info['handover_name']} → "
               f"{', '.join(t['name'] for t in info['takeovers'])}  {STATUS_LABELS.get(job.status, job.status)}")
    click.echo(f"[{bar}] {progress['percent']}% ({progress['final']}/{progress['total']} final)")
    for status, n in sorted(info["counts"]["customers"].items()):
        click.echo(f"  customers {CUSTOMER_LABELS.get(status, status)} ({status}): {n}")
    for status, n in sorted(info["counts"]["chats"].items()):
        click.echo(f"  chats {status}: {n}")
    db.session.rollback()
