"""Shapes of the lifecycle API: stages, value tiers and behaviour events."""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, ValidationError, fields, pre_load, validate

from core.schemas import Int, RequestSchema, ResponseSchema

STAGE_ITEM = {"oneOf": [{"type": "string", "maxLength": 32},
                        {"type": "object", "properties": {"name": {"type": "string", "maxLength": 32},
                                                          "is_lost": {"type": "boolean"}},
                         "required": ["name"]}]}


class StageOut(ResponseSchema):
    name = fields.String(required=True)
    position = fields.Integer()
    is_lost = fields.Boolean(metadata={"description": "outside the funnel (e.g. 流失客户)"})


class StagesOut(ResponseSchema):
    stages = fields.List(fields.Nested(StageOut), required=True)
    mirror = fields.Boolean(metadata={"description": "mirrored to the WeCom tag group 客户阶段"})
    mirror_group = fields.String()
    mirror_tags = fields.List(fields.String())


class StagesIn(RequestSchema):
    """The whole ordered list: stage names, or {"name", "is_lost"} objects."""

    stages = fields.List(fields.Raw(metadata=STAGE_ITEM), required=True,
                         validate=[validate.Length(min=1, max=20), lambda v: bool(stage_items(v))])
    mirror = fields.Boolean(metadata={"description": "mirror stages to the WeCom tag group 客户阶段"})


class TiersOut(ResponseSchema):
    tiers = fields.Dict(keys=fields.String(), values=fields.Integer(),
                        metadata={"description": "customers per tier: 高价值, 潜力, 待唤醒, 流失风险"})
    thresholds = fields.Dict(keys=fields.String(), values=fields.Integer())
    tag_group = fields.String()


class ThresholdsIn(RequestSchema):
    window_days = Int(1, 3650)
    high_min_orders = Int(1, 100000)
    high_min_amount = Int(1, 10**9)
    high_max_recency_days = Int(1, 3650)
    active_days = Int(1, 3650)
    churn_days = Int(1, 3650)


class ThresholdsOut(ResponseSchema):
    thresholds = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


class ComputeOut(ResponseSchema):
    changed = fields.Integer()
    unchanged = fields.Integer()
    tagged_relations = fields.Integer()
    tag_group = fields.String(allow_none=True)
    tiers = fields.Dict(keys=fields.String(), values=fields.Integer())


class EventIn(RequestSchema):
    """One behaviour event; each is checked on its own and answered in `results` (a bad one does not
    reject the batch)."""

    class Meta:
        unknown = INCLUDE

    id = fields.Raw(metadata={"type": "string", "description": "the sender's id; a repeat is a duplicate"})
    type = fields.Raw(metadata={"type": "string", "description": "page_view | link_click | form | order | …"})
    external_userid = fields.Raw(metadata={"type": "string"})
    unionid = fields.Raw(metadata={"type": "string", "description": "instead of external_userid"})
    at = fields.Raw(metadata={"description": "ISO time (naive = China time) or epoch seconds; default now"})
    properties = fields.Raw(metadata={"type": "object", "description": "path/url, amount (orders), …; ≤ 4 KB"})

    @pre_load(pass_collection=True)
    def _unwrap(self, data: Any, many: bool, **kwargs: Any) -> Any:
        """`{"events": [...]}` is accepted as well as the bare array."""
        if many and isinstance(data, dict) and set(data) == {"events"}:
            data = data["events"]
        if many and isinstance(data, list) and len(data) > 1000:
            raise ValidationError(f"一批最多 1000 个事件，收到 {len(data)} 个")
        return data


class EventResult(ResponseSchema):
    id = fields.String(allow_none=True, metadata={"description": "the event's id as sent (null if it was not text)"})
    status = fields.String(metadata={"description": "stored | duplicate | unknown_customer | invalid"})
    error = fields.String()


class EventsOut(ResponseSchema):
    stored = fields.Integer(required=True)
    duplicates = fields.Integer(required=True)
    rejected = fields.Integer(required=True)
    results = fields.List(fields.Nested(EventResult), required=True)


def stage_items(values: list[Any]) -> list[Any]:
    """Check each stage item's shape (the service checks names and uses)."""
    for index, item in enumerate(values):
        if isinstance(item, str):
            continue
        if not isinstance(item, dict) or set(item) - {"name", "is_lost"} or "name" not in item:
            raise ValidationError({str(index): ["应为阶段名，或 {\"name\", \"is_lost\"}"]}, "stages")
        if "is_lost" in item and not isinstance(item["is_lost"], bool):
            raise ValidationError({str(index): ["is_lost 应为 true 或 false"]}, "stages")
    return values


