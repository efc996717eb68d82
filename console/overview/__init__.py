"""The overview (概览): figures and charts from pre-aggregates the worker keeps (`refresh.py`), the page,
its CSV downloads and `GET /api/v1/overview`."""

from __future__ import annotations

from typing import Any

from flask import Flask


def init_app(app: Flask) -> None:
    from . import jobs, routes  # noqa: F401  (the job registers itself; the pages join the console blueprint)


def api_blueprint() -> Any:
    from .api import bp

    return bp
