"""`flask campaigns …`: send what is due and follow what was sent now (as the scheduled jobs do), and
show a campaign's progress."""

from __future__ import annotations

import click

from core.db import db, utcnow
from core.settings import settings
from wecom.client import contact_client

from .following import follow_due
from .models import Campaign
from .sending import dispatch_due
from .service import STATUS_LABELS, counts_of, progress_of, rates

campaigns_cli = click.Group("campaigns", help="群发：立即处理到期的群发、跟踪结果、查看进度。")


@campaigns_cli.command("send-due")
def send_due_command() -> None:
    """Plan and send every campaign whose time has come (what the 30-second job does)."""
    handled = dispatch_due(settings().WECOM_CORP_ID, utcnow(), contact_client())
    click.echo(f"{handled} campaign(s) handled")


@campaigns_cli.command("follow")
@click.option("--all", "force", is_flag=True, help="Poll every open task now, not only those due.")
def follow_command(force: bool) -> None:
    """Poll WeCom for confirmations and results (what the one-minute job does)."""
    read = follow_due(settings().WECOM_CORP_ID, utcnow(), contact_client(), force=force)
    click.echo(f"{read} task(s) read from WeCom")


@campaigns_cli.command("show")
@click.argument("campaign_id", type=int)
def show_command(campaign_id: int) -> None:
    """A campaign's status, progress bar and results."""
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None or campaign.corp_id != settings().WECOM_CORP_ID:
        raise click.ClickException(f"no campaign {campaign_id}")
    progress, counts = progress_of(campaign), counts_of(campaign)
    bar = "#" * (progress["percent"] // 5) + "-" * (20 - progress["percent"] // 5)
    click.echo(f"{campaign.name}  {STATUS_LABELS.get(campaign.status, campaign.status)}  "
               f"[{bar}] {progress['percent']}% ({progress['stage']} {progress['done']}/{progress['total']})")
    reach = rates(counts)
    click.echo(f"recipients {counts.get('total', 0)}, excluded {counts.get('excluded', {})}, sent {reach['sent']}, "
               f"delivered {reach['delivered']}, not a friend {counts.get('not_friend', 0)}, "
               f"quota {counts.get('quota', 0)}, unsent {counts.get('unsent', 0)}, waiting {counts.get('planned', 0)}")
    db.session.rollback()
