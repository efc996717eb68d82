"""The web console: its shell (layout and style, navigation, sign-in, roles, error pages), the customer
list and customer page (`customers/`), and the overview with its charts (`overview/`).

The top of the house: it may import every feature package; none imports it. Feature pages extend
`console/base.html` (blocks `title`, `content`, `head`) and use the classes of `static/console.css`;
the navigation is the table `NAV` below, filtered by the signed-in person's role (and by what this
build has). `error.html` is the page every 4xx/5xx of a page shows (`core.api.render_error_page`).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, request, url_for

from core.settings import settings
from identity.service import ROLE_LABELS
from identity.web import csrf_token, current_principal

# Strict by default: our own scripts and styles only, no inline script, no plugins, no framing.
# Avatars come from WeCom's CDN over https; the official JS-SDK may open WeCom's own frames.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
       "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-src https://open.work.weixin.qq.com https://login.work.weixin.qq.com; frame-ancestors 'self'")

# (endpoint, label, roles besides admin that see it; () = everyone)
NAV: list[tuple[str, str, tuple[str, ...]]] = [
    ("console.home", "概览", ()),
    ("console.customers", "客户", ()),
    ("segments.segments_page", "客户分群", ("marketer", "manager")),
    ("campaigns.index", "群发", ("marketer", "manager")),
    ("channels.index", "渠道活码", ("marketer", "manager")),
    ("handover.index", "客户交接", ("manager",)),
    ("tag_catalog.catalog", "标签管理", ("marketer",)),
    ("tag_rules.rules", "自动打标签", ("marketer",)),
    ("lifecycle.stages_page", "阶段与分层", ("admin",)),
    ("console.roles", "角色与权限", ("admin",)),
]


def role_label(role: str) -> str:
    return ROLE_LABELS.get(role, role)


def _security_headers(response: Response) -> Response:
    if response.mimetype == "text/html":
        csp = CSP
        if settings().SCRM_DEMO:  # the emulator's avatars are plain http
            csp = csp.replace("img-src 'self' data: https:", "img-src 'self' data: https: http:")
        response.headers.setdefault("Content-Security-Policy", csp)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # The OAuth code must never leak to another site through Referer.
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def nav_items() -> list[dict[str, Any]]:
    """The navigation the signed-in person sees (entries of pages this build has, for their role); the
    entry whose pages the request is on (its own URL, or one below it) is marked active."""
    found = current_principal()
    if found is None:
        return []
    home = url_for("console.home")
    items = []
    for endpoint, label, roles in NAV:
        if endpoint not in current_app.view_functions or (roles and not found.has_role(*roles)):
            continue
        url = url_for(endpoint)
        active = request.path == url or (url != home and request.path.startswith(url.rstrip("/") + "/"))
        items.append({"endpoint": endpoint, "label": label, "url": url, "active": active})
    return items


def init_app(app: Flask) -> None:
    from core.api import register

    from . import customers, labels, overview
    from .cli import console_cli
    from .routes import bp

    labels.init_app(app)
    customers.init_app(app)
    overview.init_app(app)
    app.register_blueprint(bp)  # after the subpackages added their pages to it
    register(app, overview.api_blueprint())
    app.cli.add_command(console_cli)
    app.after_request(_security_headers)
    app.add_template_filter(role_label, "role_label")
    if app.extensions["scrm.settings"].SCRM_PUBLIC_URL.startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True

    @app.context_processor
    def _console_context() -> dict[str, Any]:
        return {"csrf_token": csrf_token, "current_principal": current_principal, "console_nav": nav_items,
                "scrm_settings": settings}
