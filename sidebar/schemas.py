"""Shapes of the customer API the sidebar page calls (and other systems, with a token), and of the
JS-SDK signature the sidebar asks for."""

from __future__ import annotations

from marshmallow import fields, validate

from core.schemas import IdList, RequestSchema, ResponseSchema, Text, WeComId
from tagging.catalog.schemas import TagRef


class CustomerListQuery(RequestSchema):
    """`q`, `cursor` and `limit` are checked by the list itself, which answers 400 with the codes
    bad_query, bad_cursor and bad_limit."""

    q = fields.String(load_default="", metadata={"maxLength": 100,
                                                 "description": "part of the name, corp name or a remark"})
    tag = IdList(Text(64), max_items=20, load_default=list, metadata={"description": "repeatable; all must match"})
    stage = IdList(Text(32), max_items=20, load_default=list, metadata={"description": "repeatable; any matches"})
    userid = IdList(Text(64), max_items=100, load_default=list, metadata={"description": "followed by (any)"})
    cursor = fields.String(load_default="", metadata={"maxLength": 32,
                                                      "description": "the previous page's next_cursor"})
    limit = fields.String(load_default="", metadata={"type": "integer", "minimum": 1, "maximum": 100,
                                                     "default": 50, "description": "1 to 100, default 50"})


class ListedCustomer(ResponseSchema):
    external_userid = fields.String(required=True)
    name = fields.String()
    corp_name = fields.String()
    stage = fields.String(allow_none=True)
    avatar = fields.String()
    follow_users = fields.List(fields.String())
    tags = fields.List(fields.Nested(TagRef))
    added_at = fields.String(allow_none=True)
    lost = fields.Boolean(metadata={"description": "every relation ended (admins only see these)"})


class CustomerListOut(ResponseSchema):
    customers = fields.List(fields.Nested(ListedCustomer), required=True)
    next_cursor = fields.String(required=True, metadata={"description": "empty on the last page"})


class TagSyncOut(ResponseSchema):
    command_id = fields.Integer(allow_none=True)
    status = fields.String(metadata={"description": "pending | done | failed | unchanged"})
    errcode = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    message = fields.String()


class FollowUserOut(ResponseSchema):
    userid = fields.String(required=True)
    name = fields.String()
    remark = fields.String()
    description = fields.String()
    added_at = fields.String(allow_none=True)
    add_way = fields.Integer()
    state = fields.String(metadata={"description": "the channel (contact-way State) it came from"})
    status = fields.String(metadata={"description": "active | lost"})
    lost_reason = fields.String(allow_none=True, metadata={
        "description": "why a lost relation ended: transferred (handed over), del_external_contact, del_follow_user, …"})
    is_me = fields.Boolean()
    tags = fields.List(fields.Nested(TagRef))
    tag_sync = fields.Nested(TagSyncOut, allow_none=True)


class FollowupOut(ResponseSchema):
    id = fields.Integer(required=True)
    userid = fields.String()
    name = fields.String()
    content = fields.String()
    next_at = fields.String(allow_none=True)
    created_at = fields.String(allow_none=True)


class ChatRef(ResponseSchema):
    chat_id = fields.String()
    name = fields.String()
    owner_userid = fields.String()


class ValueTierOut(ResponseSchema):
    name = fields.String(metadata={"description": "高价值 | 潜力 | 待唤醒 | 流失风险"})
    since = fields.String(allow_none=True, metadata={"description": "placed in this tier at"})
    orders = fields.Integer(metadata={"description": "orders in the tier window"})
    amount = fields.String(metadata={"description": "their amount, e.g. ¥1,280.00"})
    recency_days = fields.Integer(allow_none=True, metadata={"description": "days since the last order"})
    active_days = fields.Integer(allow_none=True, metadata={"description": "days since the last event"})
    computed_at = fields.String(allow_none=True)


class ActivitySummaryOut(ResponseSchema):
    days = fields.Integer()
    visits = fields.Integer(metadata={"description": "page views"})
    link_clicks = fields.Integer()
    forms = fields.Integer()
    orders = fields.Integer()
    order_amount = fields.String()
    followups = fields.Integer()
    other = fields.Integer(metadata={"description": "events of other types"})
    text = fields.String(metadata={"description": "the summary in one line, e.g. 近30天：3 次访问，1 笔订单（¥1,280.00）"})


class TimelineItemOut(ResponseSchema):
    kind = fields.String(metadata={"description": "followup | event"})
    id = fields.String()
    at = fields.String(allow_none=True)
    type = fields.String(metadata={"description": "followup, or the event type: page_view, link_click, form, order, …"})
    title = fields.String(metadata={"description": "what happened, in Chinese"})
    detail = fields.String(metadata={"description": "the note, the page, the form or the order"})
    amount = fields.String(allow_none=True, metadata={"description": "an order's amount"})
    userid = fields.String(metadata={"description": "who wrote the follow-up"})
    name = fields.String()
    next_at = fields.String(allow_none=True)


class TimelineOut(ResponseSchema):
    items = fields.List(fields.Nested(TimelineItemOut), required=True, metadata={"description": "newest first"})
    next_cursor = fields.String(required=True, metadata={"description": "empty on the last page"})


class TimelineQuery(RequestSchema):
    cursor = fields.String(load_default="", validate=validate.Length(max=200),
                           metadata={"description": "the previous page's next_cursor"})
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))


class ProfileOut(ResponseSchema):
    external_userid = fields.String(required=True)
    name = fields.String()
    avatar = fields.String()
    type = fields.Integer(metadata={"description": "1 WeChat user, 2 WeCom user"})
    corp_name = fields.String()
    position = fields.String()
    stage = fields.String(allow_none=True)
    stage_since = fields.String(allow_none=True, metadata={"description": "when the customer entered the stage"})
    stage_days = fields.Integer(allow_none=True, metadata={"description": "days in the stage so far"})
    stages = fields.List(fields.String())
    tier = fields.Nested(ValueTierOut, allow_none=True)
    summary = fields.Nested(ActivitySummaryOut, metadata={"description": "the last 30 days"})
    timeline = fields.Nested(TimelineOut, metadata={"description": "the first page of follow-ups and events"})
    follow_users = fields.List(fields.Nested(FollowUserOut))
    followups = fields.List(fields.Nested(FollowupOut), metadata={"description": "newest first"})
    group_chats = fields.List(fields.Nested(ChatRef))


class TagChangeIn(RequestSchema):
    userid = WeComId(metadata={"description": "whose relation (default: the signed-in staff member's)"})
    add = IdList(WeComId(), max_items=100, load_default=list)
    remove = IdList(WeComId(), max_items=100, load_default=list)


class TagChangeOut(ResponseSchema):
    userid = fields.String(required=True)
    tags = fields.List(fields.Nested(TagRef), required=True)
    sync = fields.Nested(TagSyncOut, required=True)


class FollowupIn(RequestSchema):
    content = Text(2000, min_length=1, required=True)
    next_at = fields.String(allow_none=True, validate=validate.Length(max=40),
                            metadata={"description": "YYYY-MM-DD (09:00 China time) or an ISO date-time"})
    userid = WeComId(metadata={"description": "the author, for a token that acts as no staff member"})


class CustomerStageIn(RequestSchema):
    stage = fields.String(required=True, allow_none=True, validate=validate.Length(min=1, max=32),
                          metadata={"description": "one of the corp's stages, or null to clear"})


class CustomerStageOut(ResponseSchema):
    external_userid = fields.String(required=True)
    stage = fields.String(allow_none=True)


class SignatureQuery(RequestSchema):
    kind = fields.String(load_default="config", validate=validate.OneOf(["config", "agent"]),
                         metadata={"description": "config (ww.register / wx.config) or agent (agentConfig)"})
    url = fields.String(required=True, validate=validate.Length(min=1, max=2048),
                        metadata={"description": "the sidebar page's URL (its #fragment is ignored)"})


class SignatureOut(ResponseSchema):
    timestamp = fields.Integer(required=True)
    nonceStr = fields.String(required=True)
    signature = fields.String(required=True)
