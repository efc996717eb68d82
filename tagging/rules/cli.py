"""`flask tagging rules`: list the auto-tagging rules, or dry-run one."""

from __future__ import annotations

import json

import click

from core.settings import settings

from .service import dry_run, get_rule, list_rules


@click.command("rules")
@click.option("--dry-run", "dry_run_id", type=int, help="Try this rule on existing customers.")
def rules_command(dry_run_id: int | None) -> None:
    """List the auto-tagging rules, or dry-run one."""
    corp_id = settings().WECOM_CORP_ID
    if dry_run_id is not None:
        rule = get_rule(corp_id, dry_run_id)
        if rule is None:
            raise click.ClickException(f"no rule {dry_run_id}")
        click.echo(json.dumps(dry_run(rule), ensure_ascii=False, indent=2))
        return
    for rule in list_rules(corp_id):
        click.echo(f"{rule.id:5} {'on ' if rule.enabled else 'off'} {rule.trigger:18} {rule.name}")
