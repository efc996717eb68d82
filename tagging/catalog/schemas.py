"""Request and response shapes of the tag catalog API (they also produce its OpenAPI document)."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validates_schema

from core.schemas import IdList, RequestSchema, ResponseSchema, Text, WeComId

TAG_NAME = 30  # WeCom's limit on a tag or group name


class TagRef(ResponseSchema):
    """A tag as the customer pages show it."""

    tag_id = fields.String(required=True)
    name = fields.String(required=True)
    group_name = fields.String()


class TagOut(ResponseSchema):
    tag_id = fields.String(required=True, metadata={"description": "WeCom's id; `pending:…` until WeCom answers"})
    name = fields.String(required=True)
    order = fields.Integer()
    group_id = fields.String()
    group_name = fields.String()
    deleted = fields.Boolean()
    sync = fields.String(metadata={"description": "synced | pending (created here, waiting for WeCom)"})
    usage = fields.Integer(metadata={"description": "customers carrying it on an active relation"})


class GroupOut(ResponseSchema):
    group_id = fields.String(required=True)
    group_name = fields.String(required=True)
    order = fields.Integer()
    deleted = fields.Boolean()
    sync = fields.String()
    tags = fields.List(fields.Nested(TagOut))


class CatalogOut(ResponseSchema):
    tag_groups = fields.List(fields.Nested(GroupOut), required=True)


class CatalogQuery(RequestSchema):
    deleted = fields.Boolean(load_default=False, metadata={"description": "include tombstones"})


class CreateTagsIn(RequestSchema):
    """New tags in an existing group (`group_id`) or in a new group (`group_name`)."""

    group_id = WeComId()
    group_name = Text(TAG_NAME, min_length=1)
    names = IdList(Text(TAG_NAME, min_length=1), max_items=100, min_items=1)
    name = Text(TAG_NAME, min_length=1)

    @validates_schema
    def _one_group_some_names(self, data: dict[str, Any], **kwargs: Any) -> None:
        if bool(data.get("group_id")) == bool(data.get("group_name")):
            raise ValidationError("给出 group_id（已有标签组）或 group_name（新标签组），二者选一", "group_id")
        if not data.get("names") and not data.get("name"):
            raise ValidationError("至少要有一个标签名", "names")


class CreatedTagsOut(ResponseSchema):
    tags = fields.List(fields.Nested(TagOut), required=True)


class EditTagIn(RequestSchema):
    """Rename a tag or group, or (`order_ids`) put the tags of a group — or, on `/tags/groups`, the
    groups themselves — in this order."""

    name = Text(TAG_NAME, min_length=1)
    order_ids = IdList(WeComId(), max_items=3000, min_items=1)

    @validates_schema
    def _one_change(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("name" in data) == ("order_ids" in data):
            raise ValidationError("给出 name（改名）或 order_ids（排序），二者选一", "name")


class EditTagOut(ResponseSchema):
    id = fields.String()
    name = fields.String()
    sync = fields.String()
    changed = fields.Integer(metadata={"description": "how many orders changed (a reorder)"})


class DeletedTagOut(ResponseSchema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    deleted = fields.Boolean(required=True)


class PairOut(ResponseSchema):
    a = fields.Nested(TagOut)
    b = fields.Nested(TagOut)
    reason = fields.String()
    score = fields.Float()


class FailedChangeOut(ResponseSchema):
    at = fields.String()
    relation_id = fields.String()
    command_id = fields.Integer()
    errcode = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    message = fields.String()
    userid = fields.String(allow_none=True)
    external_userid = fields.String(allow_none=True)
    add = fields.List(fields.String())
    remove = fields.List(fields.String())


class GovernanceOut(ResponseSchema):
    unused = fields.List(fields.Nested(TagOut))
    near_duplicates = fields.List(fields.Nested(PairOut))
    failed_changes = fields.List(fields.Nested(FailedChangeOut))


class MergeIn(RequestSchema):
    into = WeComId(required=True, metadata={"description": "the tag that replaces this one"})


class MergeOut(ResponseSchema):
    relations = fields.Integer(metadata={"description": "follow relations that carried the merged tag"})
    marked = fields.Integer(metadata={"description": "of them, those that got the target tag (one mark_tag each)"})
