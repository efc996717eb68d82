"""Shapes of the channels API. Fields are checked here, then as a whole (staff who exist and are active,
tags that exist, a schedule that makes sense) by `channels.service`, which names the field in a 422."""

from __future__ import annotations

from marshmallow import fields, validate

from core.schemas import Day, IdList, JsonTree, RequestSchema, ResponseSchema, Text, WeComId

from .models import ACTIVE, CONTACT, JOIN, PAUSED, STATUSES

COST_DOC = {"description": "渠道成本（元，可选），用于计算每位留存客户的成本"}
SCHEDULE_DOC = {"type": "array", "items": {"type": "object"}, "description": (
    "按时间分配接待成员（北京时间，可选）：[{\"days\": [1..7]（周一为 1）, \"start\": \"09:00\", \"end\": \"18:00\", "
    "\"users\": [userid…]}]；不在任何时段时由 users 接待")}


class LinkAttachment(RequestSchema):
    title = Text(128, min_length=1, required=True, metadata={"description": "链接标题"})
    url = Text(2048, min_length=1, required=True, metadata={"description": "链接网址（http/https）"})
    desc = Text(512, allow_none=True, metadata={"description": "链接描述（可选）"})
    picurl = Text(2048, allow_none=True, metadata={"description": "封面图片网址（可选）"})


class ChannelBody(RequestSchema):
    users = IdList(WeComId(), max_items=100, allow_none=True,
                   metadata={"description": "联系我活码的接待成员 userid（1–100 位）；加入群聊活码为群主，不可设置"})
    multi = fields.Boolean(metadata={"description": "多人活码（企业微信 type 2）；多于一位成员时自动为多人"})
    skip_verify = fields.Boolean(metadata={"description": "客户添加时无需成员确认（默认是）"})
    schedule = JsonTree(allow_none=True, metadata=SCHEDULE_DOC)
    welcome_text = Text(4000, allow_none=True, metadata={
        "description": "本渠道的欢迎语（可用 {customer_name}、{staff_name}）；为空时使用企业默认欢迎语"})
    welcome_attachments = fields.List(fields.Nested(LinkAttachment), allow_none=True, validate=validate.Length(max=9),
                                      metadata={"description": "欢迎语附件：链接（最多 9 个），与欢迎语一起发送"})
    tag_ids = IdList(WeComId(), max_items=20, allow_none=True,
                     metadata={"description": "客户通过本渠道添加时自动打上的企业标签（通过自动打标签规则）"})
    cost = fields.Float(allow_none=True, validate=validate.Range(0, 10**11), metadata=COST_DOC)
    owner_userid = WeComId(allow_none=True, metadata={"description": "负责人：接收渠道预警（默认创建人）"})
    chat_ids = IdList(WeComId(), max_items=5, allow_none=True,
                      metadata={"description": "加入群聊活码（kind join）：客户扫码加入的客户群 chat_id（1–5 个）"})
    auto_create_room = fields.Boolean(metadata={"description": "加入群聊活码：群满后企业微信自动新建群"})
    room_base_name = Text(40, allow_none=True, metadata={"description": "自动新建群的名称前缀（最多 40 个字）"})
    room_base_id = fields.Integer(allow_none=True, validate=validate.Range(1, 10**9),
                                  metadata={"description": "自动新建群的起始编号（默认 1）"})


class ChannelIn(ChannelBody):
    name = Text(64, min_length=1, required=True)
    kind = fields.String(load_default=CONTACT, validate=validate.OneOf([CONTACT, JOIN]),
                         metadata={"description": "contact：联系我（加好友，需 users）；join：加入群聊（需 chat_ids）"})


class ChannelPatch(ChannelBody):
    name = Text(64, min_length=1)
    status = fields.String(validate=validate.OneOf([ACTIVE, PAUSED]),
                           metadata={"description": "paused：暂停（活码仍可添加，但不再发送本渠道欢迎语、不打标签）；"
                                                    "active：恢复。停用请 DELETE"})


class ChannelListQuery(RequestSchema):
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES))


class StateNameIn(RequestSchema):
    state = Text(64, min_length=1, required=True, metadata={"description": "企业微信后台创建的渠道标识 state"})
    name = Text(64, min_length=1, required=True)
    adopt = fields.Boolean(load_default=False, metadata={
        "description": "true：设为渠道活码（可设欢迎语、标签、成本和预警；二维码仍在企业微信后台管理）"})


class ReportQuery(RequestSchema):
    from_ = Day(data_key="from", load_default=None, metadata={"description": "开始日期（含，北京时间），默认 30 天前"})
    to = Day(load_default=None, metadata={"description": "结束日期（含，北京时间），默认今天"})
    stage = Text(32, load_default=None, metadata={"description": "统计到达该客户阶段（或更后阶段）的人数"})


class LinkIn(RequestSchema):
    title = Text(128, min_length=1, required=True)
    url = Text(2000, min_length=1, required=True, metadata={"description": "目标网址（http/https）"})


class LinkShareIn(RequestSchema):
    external_userid = WeComId(required=True)
    userid = WeComId(load_default=None, allow_none=True,
                     metadata={"description": "分享的成员（员工令牌/侧边栏为本人；其他角色需指定）"})


# ---------------------------------------------------------------- answers


class ChannelOut(ResponseSchema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    kind = fields.String()
    kind_label = fields.String()
    state = fields.String(metadata={"description": "企业微信 State（≤30 个字符），客户添加时回调中带回"})
    users = fields.List(fields.String())
    chat_ids = fields.List(fields.String(), metadata={"description": "加入群聊活码的客户群"})
    auto_create_room = fields.Boolean()
    room_base_name = fields.String(allow_none=True)
    room_base_id = fields.Integer(allow_none=True)
    routed_users = fields.List(fields.String(), metadata={"description": "当前企业微信中的接待成员（含排班）"})
    multi = fields.Boolean()
    skip_verify = fields.Boolean()
    schedule = fields.Raw(allow_none=True, metadata={"type": "array", "items": {"type": "object"}})
    welcome_text = fields.String()
    welcome_attachments = fields.List(fields.Dict(), metadata={"description": "欢迎语附件链接 {title, url, desc, picurl}"})
    tag_ids = fields.List(fields.String())
    rule_id = fields.Integer(allow_none=True)
    cost = fields.String(allow_none=True)
    status = fields.String(metadata={"description": ", ".join(STATUSES)})
    status_label = fields.String()
    sync_state = fields.String(metadata={"description": "pending, done, failed：与企业微信的同步状态"})
    sync_label = fields.String()
    config_id = fields.String(allow_none=True)
    qr_code = fields.String(allow_none=True)
    owner_userid = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_by = fields.String()
    created_at = fields.String()
    updated_at = fields.String(allow_none=True)
    retired_at = fields.String(allow_none=True)


class ChannelListOut(ResponseSchema):
    channels = fields.List(fields.Nested(ChannelOut), required=True)
    unknown_states = fields.List(fields.Dict(), metadata={"description": "没有渠道认领的 state 及其客户关系数"})


class QrCodeOut(ResponseSchema):
    qr_code = fields.String(allow_none=True, metadata={"description": "企业微信返回的二维码图片地址"})
    status = fields.String()


class StateNameOut(ResponseSchema):
    state = fields.String()
    name = fields.String()
    channel_id = fields.Integer(allow_none=True, metadata={"description": "adopt 时创建的渠道活码"})


class ReportRowOut(ResponseSchema):
    state = fields.String()
    kind = fields.String(metadata={"description": "contact：按客户关系统计；join：按通过该活码入群的客户统计（流失为退群）"})
    name = fields.String()
    channel_id = fields.Integer(allow_none=True)
    added = fields.Integer()
    eligible_7 = fields.Integer()
    kept_7 = fields.Integer()
    kept_7_rate = fields.Float(allow_none=True)
    eligible_30 = fields.Integer()
    kept_30 = fields.Integer()
    kept_30_rate = fields.Float(allow_none=True)
    lost = fields.Integer()
    avg_days_to_loss = fields.Float(allow_none=True)
    median_days_to_loss = fields.Float(allow_none=True)
    reached_stage = fields.Integer(allow_none=True)
    tiers = fields.Dict(keys=fields.String(), values=fields.Integer())
    cost = fields.String(allow_none=True)
    cost_per_kept = fields.String(allow_none=True)


class ReportOut(ResponseSchema):
    from_ = fields.String(data_key="from", attribute="from")
    to = fields.String()
    stage = fields.String(allow_none=True)
    channels = fields.List(fields.Nested(ReportRowOut))
    totals = fields.Dict()


class LinkOut(ResponseSchema):
    id = fields.Integer()
    title = fields.String()
    url = fields.String()
    created_by = fields.String()
    created_at = fields.String()
    opens = fields.Integer()
    customers = fields.Integer()
    event_path = fields.String(metadata={"description": "打开事件的 path（规则中用 path_prefix 选中此链接）"})


class LinkListOut(ResponseSchema):
    links = fields.List(fields.Nested(LinkOut))


class LinkShareOut(ResponseSchema):
    url = fields.String(metadata={"description": "发给这位客户的专属链接 /l/<token>"})
