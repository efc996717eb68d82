"""Building blocks of the API's request and response schemas (marshmallow), shared by every package.

Every request schema refuses unknown fields (a typo is an error, not silently ignored), every id has
the database's range, every text field a length, every date a sane year, every list a size limit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from core.time import CHINA

MAX_ID = 2**31 - 1  # the tables' integer primary keys (PostgreSQL INTEGER); SQLite's are larger
MIN_YEAR, MAX_YEAR = 2000, 2100


class RequestSchema(Schema):
    """Base of request bodies and query strings: unknown fields are refused."""

    class Meta:
        unknown = RAISE


class ResponseSchema(Schema):
    """Base of response bodies (documentation and serialisation only)."""


def Id(**kwargs: Any) -> fields.Integer:  # noqa: N802  (a field factory reads like a field class)
    """A database id: a whole number from 1 to 2^63-1 (never a string, never a float)."""
    return fields.Integer(strict=True, validate=validate.Range(1, MAX_ID), **kwargs)


def Int(minimum: int, maximum: int, **kwargs: Any) -> fields.Integer:  # noqa: N802
    """A whole number in [minimum, maximum]; a JSON string "365" is refused, not converted."""
    return fields.Integer(strict=True, validate=validate.Range(minimum, maximum), **kwargs)


def Text(max_length: int, *, min_length: int = 0, **kwargs: Any) -> fields.String:  # noqa: N802
    """A string of at most `max_length` characters (at least `min_length`)."""
    return fields.String(validate=validate.Length(min=min_length, max=max_length), **kwargs)


def WeComId(**kwargs: Any) -> fields.String:  # noqa: N802
    """One of WeCom's ids (userid, external_userid, tag id, chat id): 1 to 64 characters."""
    return fields.String(validate=validate.Length(min=1, max=64), **kwargs)


def IdList(inner: fields.Field[Any], *, max_items: int, min_items: int = 0,  # noqa: N802
           **kwargs: Any) -> fields.List[Any]:
    """A JSON array (never a string) of at most `max_items` items."""
    return fields.List(inner, validate=validate.Length(min=min_items, max=max_items), **kwargs)


class Moment(fields.DateTime):
    """An ISO 8601 date-time between the years 2000 and 2100; naive values are taken as China time."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        if not MIN_YEAR <= moment.year <= MAX_YEAR:
            raise ValidationError(f"日期应在 {MIN_YEAR} 到 {MAX_YEAR} 年之间")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=CHINA)
        return moment.astimezone(dt.timezone.utc)


class Day(fields.Date):
    """An ISO 8601 date (YYYY-MM-DD) between the years 2000 and 2100."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.date:
        day = super()._deserialize(value, attr, data, **kwargs)
        if not MIN_YEAR <= day.year <= MAX_YEAR:
            raise ValidationError(f"日期应在 {MIN_YEAR} 到 {MAX_YEAR} 年之间")
        return day


class JsonTree(fields.Raw):
    """Free JSON (a filter tree, properties of an event) whose nesting is bounded by the body guard."""


class ErrorDetail(ResponseSchema):
    code = fields.String(required=True, metadata={"description": "machine-readable: invalid, not_found, …"})
    message = fields.String(required=True, metadata={"description": "what is wrong, in plain words"})
    request_id = fields.String(metadata={"description": "quote it when reporting a 500"})
    # `fields` would shadow marshmallow's Schema.fields: declared under another name, dumped as "fields".
    field_errors = fields.Dict(keys=fields.String(), data_key="fields",
                               metadata={"description": "per field: what is wrong with it"})


class ErrorSchema(ResponseSchema):
    error = fields.Nested(ErrorDetail, required=True)


class CursorQuery(RequestSchema):
    """`cursor` (opaque, from the previous page's `next_cursor`) and `limit`."""

    cursor = fields.String(load_default="", validate=validate.Length(max=64))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 100))
