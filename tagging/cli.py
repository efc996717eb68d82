"""`flask tagging …`: the drift report, rules and tag jobs from the command line."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from extensions import db, settings

tagging_cli = AppGroup("tagging", help="Corp tags: drift report, auto-tagging rules, bulk jobs.")


@tagging_cli.command("drift")
@click.option("--heal", is_flag=True, help="Apply WeCom's state where it differs, then check again.")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def drift_command(heal: bool, as_json: bool) -> None:
    """Compare local tags and tag assignments with WeCom and list every difference."""
    from wecom.client import contact_client

    from .drift import run_report

    report = run_report(settings().WECOM_CORP_ID, contact_client(), do_heal=heal, trigger="cli")
    if as_json:
        click.echo(json.dumps({"counts": report.counts, "differences": report.differences,
                               "healed": report.healed}, ensure_ascii=False, indent=2))
        return
    for d in report.differences:
        rest = {k: v for k, v in d.items() if k != "kind"}
        click.echo(f"{d['kind']:28} {json.dumps(rest, ensure_ascii=False)}")
    click.echo(f"{report.counts.get('differences', 0)} differences; "
               f"{report.counts.get('relations_checked', 0)} relations checked, "
               f"{report.counts.get('relations_pending', 0)} with a pending change"
               + (f"; healed {report.counts.get('healed', 0)}, remaining {report.counts.get('remaining', 0)}"
                  if heal else ""))


@tagging_cli.command("rules")
@click.option("--dry-run", "dry_run_id", type=int, help="Try this rule on existing customers.")
def rules_command(dry_run_id: int | None) -> None:
    """List the auto-tagging rules, or dry-run one."""
    from .rules import dry_run, get_rule, list_rules

    corp_id = settings().WECOM_CORP_ID
    if dry_run_id is not None:
        rule = get_rule(corp_id, dry_run_id)
        if rule is None:
            raise click.ClickException(f"no rule {dry_run_id}")
        click.echo(json.dumps(dry_run(rule), ensure_ascii=False, indent=2))
        return
    for rule in list_rules(corp_id):
        click.echo(f"{rule.id:5} {'on ' if rule.enabled else 'off'} {rule.trigger:18} {rule.name}")


@tagging_cli.command("jobs")
def jobs_command() -> None:
    """Run the pending bulk tag jobs and rule backfills now."""
    from .service import run_pending_jobs

    click.echo(f"{run_pending_jobs(settings().WECOM_CORP_ID)} job(s) run")
    db.session.remove()


@tagging_cli.command("facets")
@click.option("--rebuild", is_flag=True, help="Rewrite the rows that differ, then check again.")
def facets_command(rebuild: bool) -> None:
    """Check the segment facets (PostgreSQL) against the tables they are derived from.

    Exits with status 1 when rows differ and --rebuild was not given. Rows differ only if the tables
    were written with the triggers off (a bulk load with session_replication_role = replica).
    """
    from . import facets

    corp_id = settings().WECOM_CORP_ID
    if not facets.enabled():
        click.echo("segment facets are used on PostgreSQL only; this database answers segments from its tables")
        return
    result = facets.check(corp_id)
    if result["differing"] and rebuild:
        changed = facets.rebuild(corp_id)
        db.session.commit()
        click.echo(f"rebuilt {changed:,} facet rows")
        result = facets.check(corp_id)
    click.echo(f"{result['customers']:,} customers, {result['differing']:,} facet rows differ from the tables"
               + (f" (e.g. customer ids {', '.join(map(str, result['sample']))})" if result["differing"] else ""))
    db.session.remove()
    if result["differing"]:
        raise SystemExit(1)
