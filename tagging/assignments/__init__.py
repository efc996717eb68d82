"""Tag assignments: corp tags added to and removed from follow relations here (sidebar, API, rules,
bulk edits), applied locally at once and sent to WeCom through the outbox, refusals rolled back.

First of tagging's areas: imports only `crm`, `wecom` and `core`.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from core.api import register
    from wecom.dispatch import register_outbox_hooks

    from .api import bp
    from .service import on_mark_tag_failed

    register(app, bp)
    register_outbox_hooks(app, "mark_tag", on_failed=on_mark_tag_failed)
