"""Tags and what is built on them, one subpackage per area, each importing only those before it:

    assignments → catalog → drift → lifecycle → segments → rules → bulk

- `assignments`: tags marked on follow relations here, sent to WeCom through the outbox, refusals undone;
- `catalog`: the corp tag catalog both ways, governance, merge;
- `drift`: every difference from WeCom, healed on demand and nightly;
- `lifecycle`: stages, behaviour events, value tiers, their WeCom tag-group mirrors;
- `segments`: the filter tree compiled to SQL, live counts, saved segments;
- `rules`: auto-tagging rules, run by the worker on domain signals;
- `bulk`: bulk tag edits and rule backfills as jobs with progress.

Each has the project's file roles (`models`, `service`, `schemas`, `api`, `routes`, `jobs`, `cli`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask

# Shared by the tagging pages: their stylesheet.
static_bp = Blueprint("tagging", __name__, static_folder="static", static_url_path="/console/tagging-static")


def init_app(app: Flask) -> None:
    from . import assignments, bulk, catalog, drift, lifecycle, rules, segments
    from .bulk.cli import jobs_command
    from .cli import tagging_cli
    from .drift.cli import drift_command
    from .rules.cli import rules_command
    from .segments.cli import facets_command

    app.register_blueprint(static_bp)
    for area in (assignments, catalog, drift, lifecycle, segments, rules, bulk):
        area.init_app(app)
    for command in (drift_command, rules_command, jobs_command, facets_command):
        tagging_cli.add_command(command)
    app.cli.add_command(tagging_cli)


def subscriptions() -> list[tuple[Any, Any]]:
    """(domain signal, receiver) pairs that `create_app` connects: what sets off the auto-tagging rules."""
    from core import signals

    from .rules import service as rules

    return [
        (signals.customer_added, rules.on_customer_added),
        (signals.tags_changed, rules.on_tags_changed),
        (signals.stage_changed, rules.on_stage_changed),
        (signals.followup_written, rules.on_followup_written),
        (signals.joined_group_chat, rules.on_joined_group_chat),
        (signals.events_received, rules.on_events_received),
    ]
