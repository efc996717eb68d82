"""The `flask wecom …` command group; other packages add their commands to it in `init_app`."""

from __future__ import annotations

import click
from flask.cli import AppGroup

wecom_cli = AppGroup("wecom", help="Talk to WeCom: sync, replay, and the local WeCom emulator.")
