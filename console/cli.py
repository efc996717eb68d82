"""`flask console …`: the console's maintenance commands, and the demo's activity."""

from __future__ import annotations

import click
from flask.cli import AppGroup, with_appcontext

from core.settings import settings
from core.uow import unit_of_work

from .customers.cli import exports_command
from .demo import demo_activity
from .overview.cli import overview_refresh_command

console_cli = AppGroup("console", help="The web console: overview figures, customer exports, the demo's activity.")
console_cli.add_command(overview_refresh_command)
console_cli.add_command(exports_command)


@console_cli.command("demo-activity")
@with_appcontext
def demo_activity_command() -> None:
    """Demo mode only: give the demo corp stages, follow-ups, behaviour events and value tiers."""
    conf = settings()
    if not conf.SCRM_DEMO:
        raise click.ClickException("demo-activity writes made-up activity; it runs in demo mode only (SCRM_DEMO=1)")
    with unit_of_work():
        done = demo_activity(conf.WECOM_CORP_ID)
    if not done["applied"]:
        click.echo("the demo's activity was added before; nothing to do")
        return
    click.echo(f"demo activity: {done['stages']} stages, {done['followups']} follow-ups, {done['events']} events; "
               f"tiers {done['tiers']}")
