"""Shapes of the tag-assignment API."""

from __future__ import annotations

from marshmallow import fields

from core.schemas import ResponseSchema


class SyncStateOut(ResponseSchema):
    status = fields.String(required=True, metadata={"description": "synced | pending | failed"})
    command_id = fields.Integer(allow_none=True)
    attempts = fields.Integer()
    errcode = fields.Integer(allow_none=True)
    message = fields.String(metadata={"description": "why WeCom refused, in plain words"})
