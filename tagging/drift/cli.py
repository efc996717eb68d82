"""`flask tagging drift`: compare local tags with WeCom's from the command line."""

from __future__ import annotations

import json

import click

from core.settings import settings
from wecom.client import contact_client

from .service import run_report


@click.command("drift")
@click.option("--heal", is_flag=True, help="Apply WeCom's state where it differs, then check again.")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def drift_command(heal: bool, as_json: bool) -> None:
    """Compare local tags and tag assignments with WeCom and list every difference."""
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
