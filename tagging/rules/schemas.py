"""Shapes of the auto-tagging rules API. The service checks a rule's meaning (tags exist, the
condition compiles, the stage is configured) and names what is wrong."""

from __future__ import annotations

from marshmallow import fields, validate

from core.schemas import JsonTree, RequestSchema, ResponseSchema, Text

from ..segments.schemas import FILTER_DOC
from .service import TRIGGERS

ACTION_DOC = {"type": "object", "description": "one of {\"add_tags\": [tag_id…]}, {\"remove_tags\": [tag_id…]}, "
                                               "{\"set_stage\": 阶段}, {\"notify\": \"提醒文字，可用 {customer_name}\"}"}


class RuleIn(RequestSchema):
    name = Text(64, min_length=1, required=True)
    trigger = fields.String(required=True, validate=validate.OneOf(list(TRIGGERS)))
    trigger_params = fields.Dict(keys=fields.String(validate=validate.Length(max=32)), load_default=dict,
                                 metadata={"description": "state (customer_added, joined_group_chat), tag_id (tag_added/removed), "
                                                          "to (stage_changed), days (inactivity), type (event)"})
    condition = JsonTree(allow_none=True, load_default=None, metadata=FILTER_DOC)
    actions = fields.List(fields.Dict(metadata=ACTION_DOC), required=True, validate=validate.Length(min=1, max=20))
    enabled = fields.Boolean(load_default=True)


class RuleOut(ResponseSchema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    enabled = fields.Boolean()
    trigger = fields.String()
    trigger_params = fields.Dict()
    condition = fields.Raw(allow_none=True, metadata={"type": "object", "nullable": True})
    actions = fields.List(fields.Dict())
    created_by = fields.String()
    created_at = fields.String()


class LoopOut(ResponseSchema):
    rule_id = fields.Integer()
    customer_id = fields.Integer()
    chain = fields.List(fields.Integer())
    outcome = fields.String(metadata={"description": "loop | too_deep"})
    at = fields.String()


class RulesOut(ResponseSchema):
    rules = fields.List(fields.Nested(RuleOut), required=True)
    loops = fields.List(fields.Nested(LoopOut), metadata={"description": "cascades stopped as loops"})


class DryRunSample(ResponseSchema):
    external_userid = fields.String()
    name = fields.String()
    stage = fields.String(allow_none=True)


class DryRunOut(ResponseSchema):
    matched = fields.Integer()
    would_change = fields.Integer()
    sample = fields.List(fields.Nested(DryRunSample))
    truncated = fields.Boolean()
