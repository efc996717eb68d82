"""`flask roles …`: who is admin, manager or marketer (everyone else is staff)."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from crm.service import ROLES, UserValueError, ensure_corp
from extensions import db, settings

from .identity import set_role
from .models import StaffRole

roles_cli = AppGroup("roles", help="Roles of staff members in the console and the sidebar.")


@roles_cli.command("grant")
@click.argument("userid")
@click.argument("role", type=click.Choice(ROLES))
def grant(userid: str, role: str) -> None:
    """Give USERID the ROLE (admin, manager, marketer or staff)."""
    corp_id = settings().WECOM_CORP_ID
    ensure_corp(corp_id)
    try:
        set_role(corp_id, userid, role, granted_by="cli")
    except UserValueError as exc:
        raise click.UsageError(str(exc)) from None
    db.session.commit()
    click.echo(f"{userid} is now {role}")


@roles_cli.command("list")
def list_roles() -> None:
    """Staff members with a role other than the default `staff`."""
    corp_id = settings().WECOM_CORP_ID
    for row in db.session.scalars(select(StaffRole).where(StaffRole.corp_id == corp_id).order_by(StaffRole.userid)):
        click.echo(f"{row.userid}\t{row.role}\t(by {row.granted_by}, {row.granted_at:%Y-%m-%d})")
