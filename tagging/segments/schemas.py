"""Shapes of the segments API. A filter F is a JSON tree (see `tagging.segments.service`); it is
checked node by node by the compiler, which names the bad node in a 400."""

from __future__ import annotations

from marshmallow import fields

from core.schemas import JsonTree, RequestSchema, ResponseSchema, Text

FILTER_DOC = {"type": "object", "description": (
    "筛选条件树 F：{\"all\": [F…]}、{\"any\": [F…]}、{\"not\": F}、{\"tag\": tag_id}、{\"wecom_tags\": [tag_id…]}、"
    "{\"stage\": [阶段…]}、{\"followed_by\": [userid…]}、{\"added_after\": 日期}、{\"added_before\": 日期}、"
    "{\"no_followup_days\": n}、{\"state\": 渠道}、{\"tier\": [分层…]}、{\"event\": {…}}")}


class PreviewIn(RequestSchema):
    filter = JsonTree(required=True, metadata=FILTER_DOC)


class SampleCustomer(ResponseSchema):
    external_userid = fields.String(required=True)
    name = fields.String()
    avatar = fields.String()
    stage = fields.String(allow_none=True)
    corp_name = fields.String()
    follow_userids = fields.List(fields.String())


class PreviewOut(ResponseSchema):
    count = fields.Integer(required=True, metadata={"description": "customers matching F that the caller may see"})
    sample = fields.List(fields.Nested(SampleCustomer), required=True)


class SegmentIn(RequestSchema):
    name = Text(64, min_length=1, required=True)
    filter = JsonTree(required=True, metadata=FILTER_DOC)
    description = Text(300, load_default="")


class SegmentOut(ResponseSchema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    description = fields.String()
    filter = fields.Raw(metadata={"type": "object"})
    count = fields.Integer(allow_none=True, metadata={"description": "null when F no longer compiles (a tag was deleted)"})
    created_by = fields.String()
    created_at = fields.String()
    updated_at = fields.String()


class SegmentListOut(ResponseSchema):
    segments = fields.List(fields.Nested(SegmentOut), required=True)
