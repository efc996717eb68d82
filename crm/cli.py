"""`flask tokens …` (and `flask wecom sync`, added to the wecom group by `crm.init_app`)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from extensions import db, settings

from . import service

tokens_cli = AppGroup("tokens", help="API tokens for other systems.")


@tokens_cli.command("create")
@click.option("--name", required=True, help="Who or what uses the token, e.g. 'erp'.")
@click.option("--role", required=True, type=click.Choice(service.ROLES), help="What the token may do.")
@click.option("--userid", default=None, help="The staff member a staff token acts as.")
def create_token(name: str, role: str, userid: str | None) -> None:
    """Create a token and print it as the last line (only its hash is stored)."""
    corp_id = settings().WECOM_CORP_ID
    try:
        service.ensure_corp(corp_id)
        row, secret = service.create_api_token(corp_id, name, role, userid)
    except service.UserValueError as exc:
        raise click.UsageError(str(exc)) from None
    db.session.commit()
    click.echo(f"Created token #{row.id} '{row.name}' ({row.role}). Store it now; it is not shown again:",
               err=True)
    click.echo(secret)
