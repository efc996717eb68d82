"""The web console's shared shell: layout, navigation, sign-in identity, roles, CSRF and CSP.

Feature packages (handover, tagging, campaigns, analytics) build their console pages on it:

    from console.identity import require_role, current_principal
    from console import register_nav
    register_nav(app, "handover.jobs", "客户交接", roles=("manager",), order=20)

and extend `console/base.html` in their templates (blocks `title`, `content`, `head`).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app

# Strict by default: our own scripts and styles only, no inline script, no plugins, no framing.
# Avatars come from WeCom's CDN over https; the official JS-SDK may open WeCom's own frames.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
       "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-src https://open.work.weixin.qq.com https://login.work.weixin.qq.com; frame-ancestors 'self'")


def register_nav(app: Flask, endpoint: str, label: str, *, roles: tuple[str, ...] = (), order: int = 100) -> None:
    """Add a console navigation entry; shown to admins and to the `roles` given (everyone if none)."""
    items = app.extensions.setdefault("scrm.console.nav", [])
    items.append({"endpoint": endpoint, "label": label, "roles": tuple(roles), "order": order})
    items.sort(key=lambda i: i["order"])


def _security_headers(response: Response) -> Response:
    if response.mimetype == "text/html":
        csp = CSP
        if current_app.extensions["scrm.settings"].SCRM_DEMO:  # the emulator's avatars are plain http
            csp = csp.replace("img-src 'self' data: https:", "img-src 'self' data: https: http:")
        response.headers.setdefault("Content-Security-Policy", csp)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # The OAuth code must never leak to another site through Referer.
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def init_app(app: Flask) -> None:
    from extensions import settings as _settings

    from . import models  # noqa: F401  (tables known to migrations)
    from .cli import roles_cli
    from .identity import csrf_token, current_principal
    from .routes import bp

    app.register_blueprint(bp)
    app.cli.add_command(roles_cli)
    app.after_request(_security_headers)
    if app.extensions["scrm.settings"].SCRM_PUBLIC_URL.startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    register_nav(app, "console.home", "概览", order=0)
    register_nav(app, "console.roles", "角色与权限", roles=("admin",), order=900)

    @app.context_processor
    def _console_context() -> dict[str, Any]:
        def nav_items() -> list[dict[str, Any]]:
            principal = current_principal()
            if principal is None:
                return []
            return [i for i in app.extensions.get("scrm.console.nav", [])
                    if i["endpoint"] in app.view_functions and (not i["roles"] or principal.has_role(*i["roles"]))]

        return {"csrf_token": csrf_token, "current_principal": current_principal, "console_nav": nav_items,
                "scrm_settings": _settings}
