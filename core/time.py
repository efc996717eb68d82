"""Times: stored in UTC, shown in the corp's time zone (China, UTC+8, no daylight saving) in one format."""

from __future__ import annotations

import datetime as dt

from flask import Flask

CHINA = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
DATE_FORMAT = "%Y-%m-%d"
DATETIME_FORMAT = "%Y-%m-%d %H:%M"


def to_china(value: str | dt.datetime | None) -> dt.datetime | None:
    """An aware datetime (or its ISO text) in China time; naive values are taken as UTC."""
    if value is None or value == "":
        return None
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(CHINA)


def china_date(value: str | dt.datetime | None) -> str:
    """`2026-12-04`, or an em dash when there is no date."""
    moment = to_china(value)
    return moment.strftime(DATE_FORMAT) if moment else "—"


def china_datetime(value: str | dt.datetime | None) -> str:
    """`2026-12-04 22:10`, or an em dash when there is no time."""
    moment = to_china(value)
    return moment.strftime(DATETIME_FORMAT) if moment else "—"


def china_day_start(day: dt.date) -> dt.datetime:
    """Midnight of a China calendar day, as an aware datetime."""
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=CHINA)


def init_app(app: Flask) -> None:
    """Every template shows times with `|china_date` and `|china_datetime`."""
    app.add_template_filter(china_date, "china_date")
    app.add_template_filter(china_datetime, "china_datetime")
