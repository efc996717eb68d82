"""`flask worker` and `flask wecom sync` (added to the wecom group by `crm.init_app`)."""

from __future__ import annotations

import click

from core.settings import settings


@click.command("sync")
@click.option("--full", is_flag=True, default=True, help="Reconcile everything (the only mode for now).")
@click.option("--restart", is_flag=True, help="Start over instead of resuming an interrupted sync.")
def sync_command(full: bool, restart: bool) -> None:
    """Reconcile with WeCom now: staff, corp tags, customers and their tags, group chats."""
    from wecom.client import WeComError, contact_client

    from .sync import FullSync, Progress, SyncBusy

    corp_id = settings().WECOM_CORP_ID
    with click.progressbar(length=1, label="同步 staff", show_pos=True, width=30,
                           item_show_func=lambda x: x) as bar:
        def report(p: Progress) -> None:
            if p.staff_batches_total and bar.length != p.staff_batches_total:
                bar.length = p.staff_batches_total
            bar.label = f"同步 {p.phase:<11}"
            bar.pos = min(p.staff_batches_done, bar.length)
            bar.update(0, f"{p.counts.get('rows', 0)} rows, {p.counts.get('customers_created', 0)} new customers")

        try:
            run = FullSync(contact_client(), corp_id, progress=report).run(resume=not restart)
        except SyncBusy as exc:
            raise click.ClickException(f"{exc}; wait for it to finish, or run again in 10 minutes") from None
        except WeComError as exc:
            raise click.ClickException(
                f"WeCom refused {exc.path}: errcode {exc.errcode} {exc.errmsg}. The sync saved its place; "
                "run `flask wecom sync` again to resume") from None
        bar.pos = bar.length
    counts = run.counts
    click.echo("Done: " + ", ".join(f"{k}={counts[k]}" for k in
                                   ("staff", "customers", "relations", "tag_groups", "tags", "tag_assignments",
                                    "group_chats", "relations_lost", "tags_healed") if k in counts))


@click.command("worker")
@click.option("--lease", default=60.0, show_default=True, type=float,
              help="Seconds a claimed row stays ours; a killed worker's rows come back after it.")
@click.option("--poll", default=None, type=float,
              help="Seconds between polls when idle [default: 5 when woken by PostgreSQL NOTIFY, else 1].")
@click.option("--batch", default=10, show_default=True, type=int, help="Outbox commands and tasks claimed at a time.")
@click.option("--event-batch", default=100, show_default=True, type=int,
              help="Inbox events claimed at a time (applied together where their handler allows).")
@click.option("--no-scheduler", is_flag=True, help="Do not run the scheduled jobs in this process.")
@click.option("--once", is_flag=True, help="Handle what is due now, then exit.")
def worker_command(lease: float, poll: float | None, batch: int, event_batch: int, no_scheduler: bool, once: bool) -> None:
    """Apply inbox events and send outbox commands (and run the schedule) until SIGTERM/SIGINT."""
    import signal

    from flask import current_app

    from .worker import Worker, drain

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    worker = Worker(app, lease=lease, poll_interval=poll or 1.0, batch=batch, event_batch=event_batch)
    if once:
        click.echo(f"handled {drain(app, worker=worker)} rows")
        return
    scheduler = None
    if not no_scheduler:
        from core.jobs import start_scheduler

        scheduler = start_scheduler(app, owner=worker.name)

    def stop(signum: int, _frame: object) -> None:
        click.echo(f"signal {signum}: finishing the current row, then stopping", err=True)
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    listening = worker.listen() is not None
    worker.poll_interval = poll or (5.0 if listening else 1.0)
    woken = "woken by PostgreSQL NOTIFY, " if listening else ""
    click.echo(f"worker {worker.name} running ({woken}lease {lease:g}s, poll {worker.poll_interval:g}s); SIGTERM or Ctrl-C stops",
               err=True)
    try:
        worker.run()
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)
    click.echo(f"worker stopped: {worker.counts}", err=True)
