"""Customers (客户): the list with search, filters, sorting and CSV export, and the customer page."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import jobs, routes  # noqa: F401  (the job registers itself; the pages join the console blueprint)
