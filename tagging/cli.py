"""The `flask tagging …` command group; each area adds its commands in `tagging.init_app`."""

from __future__ import annotations

from flask.cli import AppGroup

tagging_cli = AppGroup("tagging", help="Corp tags: drift report, auto-tagging rules, bulk jobs, segment facets.")
