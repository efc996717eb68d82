"""`flask tokens …` (API tokens for other systems) and `flask roles …` (who is admin, manager or marketer)."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from core.db import db, utcnow
from core.errors import UserValueError
from core.settings import settings
from core.uow import unit_of_work
from crm.service import audit, ensure_corp

from .models import ApiToken, StaffRole
from .service import ROLES, create_api_token, set_role

tokens_cli = AppGroup("tokens", help="API tokens for other systems.")
roles_cli = AppGroup("roles", help="Roles of staff members in the console and the sidebar.")


@tokens_cli.command("create")
@click.option("--name", required=True, help="Who or what uses the token, e.g. 'erp'.")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the token may do.")
@click.option("--userid", default=None, help="The staff member a staff token acts as.")
def create_token(name: str, role: str, userid: str | None) -> None:
    """Create a token and print it as the last line (only its hash is stored)."""
    corp_id = settings().WECOM_CORP_ID
    try:
        with unit_of_work():
            ensure_corp(corp_id)
            row, secret = create_api_token(corp_id, name, role, userid)
    except UserValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"Created token #{row.id} '{row.name}' ({row.role}). Store it now; it is not shown again:",
               err=True)
    click.echo(secret)


@tokens_cli.command("list")
def list_tokens() -> None:
    """Every token: id, name, role, who it acts as, when it was last used, and whether it is revoked."""
    corp_id = settings().WECOM_CORP_ID
    for row in db.session.scalars(select(ApiToken).where(ApiToken.corp_id == corp_id).order_by(ApiToken.id)):
        used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never"
        state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "live"
        click.echo(f"#{row.id}\t{row.name}\t{row.role}\t{row.userid or '-'}\tlast used {used}\t{state}")


@tokens_cli.command("revoke")
@click.argument("token_id", type=int)
def revoke_token(token_id: int) -> None:
    """Revoke token TOKEN_ID (see `flask tokens list`); it is refused from the next request on."""
    corp_id = settings().WECOM_CORP_ID
    with unit_of_work():
        row = db.session.get(ApiToken, token_id)
        if row is None or row.corp_id != corp_id:
            raise click.ClickException(f"no token #{token_id}")
        row.revoked_at = row.revoked_at or utcnow()
        audit(corp_id, "cli", "token.revoke", "api_token", row.name, {"id": row.id})
    click.echo(f"token #{token_id} '{row.name}' revoked")


@roles_cli.command("grant")
@click.argument("userid")
@click.argument("role", type=click.Choice(ROLES))
def grant(userid: str, role: str) -> None:
    """Give USERID the ROLE (admin, manager, marketer or staff)."""
    corp_id = settings().WECOM_CORP_ID
    try:
        with unit_of_work():
            ensure_corp(corp_id)
            set_role(corp_id, userid, role, granted_by="cli")
    except UserValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"{userid} is now {role}")


@roles_cli.command("list")
def list_roles() -> None:
    """Staff members with a role other than the default `staff`."""
    corp_id = settings().WECOM_CORP_ID
    for row in db.session.scalars(select(StaffRole).where(StaffRole.corp_id == corp_id).order_by(StaffRole.userid)):
        click.echo(f"{row.userid}\t{row.role}\t(by {row.granted_by}, {row.granted_at:%Y-%m-%d})")
