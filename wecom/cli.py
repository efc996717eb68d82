"""The `flask wecom …` command group; other packages add their commands to it in `init_app`."""

from __future__ import annotations

import click
from flask.cli import AppGroup

wecom_cli = AppGroup("wecom", help="Talk to WeCom: sync, replay, and the local WeCom emulator.")


@wecom_cli.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8900, show_default=True, type=int)
@click.option("--seed", default=None, help="'demo' for a believable corp, or a number of customers.")
@click.option("--callback-url", default=None, help="Where to POST encrypted callbacks (e.g. …/wecom/callback).")
def emulator_command(host: str, port: int, seed: str | None, callback_url: str | None) -> None:
    """Run the local WeCom emulator in the foreground (Ctrl-C stops), with the app's credentials."""
    from core.settings import settings
    from wecom.emulator import Emulator
    from wecom.emulator.run import DEFAULTS, parse_seed, serve

    conf = settings()
    creds = {name: getattr(conf, env) or default for name, (env, default) in DEFAULTS.items()}
    try:
        parsed = parse_seed(seed)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--seed") from None
    serve(Emulator(**creds, callback_url=callback_url, seed=parsed), host, port, echo=click.echo)


@wecom_cli.command("replay")
@click.option("--failed", is_flag=True, help="Every failed inbox event.")
@click.option("--id", "ids", type=int, multiple=True, help="This inbox event, whatever its status (repeatable).")
def replay_command(failed: bool, ids: tuple[int, ...]) -> None:
    """Put inbox events back to pending so the worker applies them again (handlers are idempotent)."""
    from core.db import db
    from core.settings import settings

    from .service import replay_events, wake

    if not failed and not ids:
        raise click.UsageError("say what to replay: --failed, or --id N")
    count = replay_events(settings().WECOM_CORP_ID, failed=failed, ids=list(ids))
    db.session.commit()
    wake()
    click.echo(f"{count} event(s) put back to pending")
