"""Shapes of the bulk tag API."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validates_schema

from core.schemas import IdList, JsonTree, RequestSchema, ResponseSchema, WeComId

from ..segments.schemas import FILTER_DOC


class BulkEditIn(RequestSchema):
    """Add and remove tags on every active relation of the customers matching `filter` (or listed)."""

    add = IdList(WeComId(), max_items=100, load_default=list)
    remove = IdList(WeComId(), max_items=100, load_default=list)
    filter = JsonTree(metadata=FILTER_DOC)
    external_userids = IdList(WeComId(), max_items=10000)
    userid = WeComId(metadata={"description": "only this staff member's relations"})

    @validates_schema
    def _audience(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("filter") is None and not data.get("external_userids"):
            raise ValidationError("给出分群条件 filter 或客户列表 external_userids", "filter")
        if not data.get("add") and not data.get("remove"):
            raise ValidationError("请选择要添加或移除的标签", "add")


class JobOut(ResponseSchema):
    id = fields.Integer(required=True)
    kind = fields.String(metadata={"description": "bulk_edit | backfill"})
    status = fields.String(metadata={"description": "pending | running | done | failed"})
    total = fields.Integer()
    done = fields.Integer()
    changed = fields.Integer()
    skipped = fields.Integer()
    percent = fields.Integer()
    error = fields.String(allow_none=True)
    created_by = fields.String()
    created_at = fields.String()
    finished_at = fields.String(allow_none=True)
