"""`flask tagging facets`: check (and repair) the segment facets on PostgreSQL."""

from __future__ import annotations

import click

from core.settings import settings
from core.uow import unit_of_work

from . import facets


@click.command("facets")
@click.option("--rebuild", is_flag=True, help="Rewrite the rows that differ, then check again.")
def facets_command(rebuild: bool) -> None:
    """Check the segment facets (PostgreSQL) against the tables they are derived from.

    Exits with status 1 when rows differ and --rebuild was not given. Rows differ only if the tables
    were written with the triggers off (a bulk load with session_replication_role = replica).
    """
    corp_id = settings().WECOM_CORP_ID
    if not facets.enabled():
        click.echo("segment facets are used on PostgreSQL only; this database answers segments from its tables")
        return
    result = facets.check(corp_id)
    if result["differing"] and rebuild:
        with unit_of_work():
            changed = facets.rebuild(corp_id)
        click.echo(f"rebuilt {changed:,} facet rows")
        result = facets.check(corp_id)
    click.echo(f"{result['customers']:,} customers, {result['differing']:,} facet rows differ from the tables"
               + (f" (e.g. customer ids {', '.join(map(str, result['sample']))})" if result["differing"] else ""))
    if result["differing"]:
        raise SystemExit(1)
