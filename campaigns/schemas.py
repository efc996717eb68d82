"""Shapes of the campaigns API. The body of a campaign is checked field by field here, then as a whole
(audience, content, attachments, send time) by `campaigns.service.clean`, which names the field in a 422."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from core.schemas import MAX_ID, Id, IdList, Int, JsonTree, Moment, RequestSchema, ResponseSchema, Text, WeComId

from .models import (CANCELLED, DONE, FAILED, FOLLOWING, PLANNING, R_CANCELLED, R_DELIVERED, R_EXCLUDED, R_FAILED,
                     R_NOT_FRIEND, R_PLANNED, R_QUOTA, R_UNSENT, SCHEDULED, SENDING)
from .planning import QUOTA_PERIODS, SENDER_RULES

STATUSES = (SCHEDULED, PLANNING, SENDING, FOLLOWING, DONE, CANCELLED, FAILED)
RECIPIENT_STATUSES = (R_EXCLUDED, R_PLANNED, R_DELIVERED, R_NOT_FRIEND, R_QUOTA, R_UNSENT, R_FAILED, R_CANCELLED)

FILTER_DOC = {"type": "object", "description": "客户筛选条件树 F（见 /segments/preview），与 segment_id 二选一"}
ATTACHMENTS_DOC = {"description": (
    "最多 9 个附件，格式同企业微信：{\"msgtype\": \"image\", \"image\": {\"upload_id\": 上传编号}}、"
    "{\"msgtype\": \"link\", \"link\": {\"title\", \"url\", \"desc\", \"picurl\"}}、"
    "{\"msgtype\": \"miniprogram\", \"miniprogram\": {\"title\", \"appid\", \"page\", \"pic_upload_id\"}}、"
    "{\"msgtype\": \"video\"|\"file\", …: {\"upload_id\"}}；图片、视频和文件先用 POST /campaigns/uploads 上传")}


class CampaignBody(RequestSchema):
    chat_type = fields.String(load_default="single", validate=validate.OneOf(["single", "group"]),
                              metadata={"description": "single：发给客户；group：发给客户群（按群主选择）"})
    filter = JsonTree(load_default=None, allow_none=True, metadata=FILTER_DOC)
    segment_id = Id(load_default=None, allow_none=True, metadata={"description": "已保存的客户分群（发送时计算）"})
    owners = IdList(WeComId(), max_items=100, load_default=list,
                    metadata={"description": "客户群群发：这些群主的客户群，每位群主一个发送任务"})
    text = Text(4000, load_default="", metadata={"description": "消息内容（最多 4000 字节）"})
    attachments = fields.List(fields.Dict(), validate=validate.Length(max=9), load_default=list,
                              metadata=ATTACHMENTS_DOC)
    send_at = Moment(load_default=None, allow_none=True,
                     metadata={"description": "发送时间；不填为立即发送；不带时区视为北京时间"})
    sender_rule = fields.String(load_default="followup", validate=validate.OneOf(SENDER_RULES), metadata={
        "description": "每位客户由哪位成员发送：followup 最近写跟进者（默认）、earliest 最早添加者、"
                       "latest 最近添加者、preferred 指定成员优先"})
    preferred_userids = IdList(WeComId(), max_items=50, load_default=list)
    tag_id = WeComId(load_default=None, allow_none=True,
                     metadata={"description": "给送达的客户打上这个企业标签（可选）"})


class CampaignIn(CampaignBody):
    name = Text(64, min_length=1, required=True)


class CampaignPreviewIn(CampaignBody):
    name = Text(64, load_default="")


def QueryInt(minimum: int, maximum: int, **kwargs: Any) -> fields.Integer:  # noqa: N802
    """A whole number in a query string (where every value arrives as text)."""
    return fields.Integer(validate=validate.Range(minimum, maximum), **kwargs)


class CampaignListQuery(RequestSchema):
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES))
    before = QueryInt(1, MAX_ID, load_default=None, metadata={"description": "上一页最后一条的 id"})
    limit = QueryInt(1, 100, load_default=50)


class CampaignRecipientsQuery(RequestSchema):
    status = fields.String(load_default=None, validate=validate.OneOf(RECIPIENT_STATUSES))
    after = QueryInt(0, MAX_ID, load_default=0, metadata={"description": "上一页的 next_after"})
    limit = QueryInt(1, 500, load_default=100)


class CampaignUploadQuery(RequestSchema):
    kind = fields.String(required=True, validate=validate.OneOf(["image", "video", "file"]))


class CampaignUploadFiles(RequestSchema):
    media = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


class CampaignSettingsIn(RequestSchema):
    quota_count = Int(1, 31, required=True, metadata={"description": "每位客户每个周期最多接收的企业群发条数"})
    quota_period = fields.String(required=True, validate=validate.OneOf(QUOTA_PERIODS),
                                 metadata={"description": "day：每个自然日（北京时间）；month：每个自然月"})
    follow_days = Int(1, 30, required=True, metadata={"description": "发出后跟踪结果的天数"})


class CampaignEmptyIn(RequestSchema):
    pass


# ---------------------------------------------------------------- answers


class CampaignProgressOut(ResponseSchema):
    stage = fields.String(metadata={"description": "waiting, audience, sending, done"})
    done = fields.Integer()
    total = fields.Integer()
    percent = fields.Integer()


class CampaignOut(ResponseSchema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    chat_type = fields.String()
    status = fields.String(metadata={"description": ", ".join(STATUSES)})
    status_label = fields.String()
    segment_id = fields.Integer(allow_none=True)
    filter = fields.Raw(allow_none=True, metadata={"type": "object"})
    owners = fields.List(fields.String())
    text = fields.String()
    attachments = fields.List(fields.Dict())
    sender_rule = fields.String()
    preferred_userids = fields.List(fields.String())
    tag_id = fields.String(allow_none=True)
    send_at = fields.String()
    created_by = fields.String()
    created_at = fields.String()
    planned_at = fields.String(allow_none=True)
    sent_at = fields.String(allow_none=True)
    finished_at = fields.String(allow_none=True)
    follow_until = fields.String(allow_none=True)
    cancelled_at = fields.String(allow_none=True)
    cancelled_by = fields.String(allow_none=True)
    progress = fields.Nested(CampaignProgressOut)
    counts = fields.Dict(keys=fields.String(), values=fields.Raw(),
                         metadata={"description": "recipients by status; excluded by reason (lost, quota, no_sender)"})
    sent = fields.Integer(metadata={"description": "recipients not excluded"})
    delivered = fields.Integer()
    delivery_rate = fields.Float(allow_none=True)
    error = fields.String(allow_none=True)


class CampaignListOut(ResponseSchema):
    campaigns = fields.List(fields.Nested(CampaignOut), required=True)
    next_before = fields.Integer(allow_none=True)


class CampaignSenderOut(ResponseSchema):
    userid = fields.String()
    name = fields.String()
    total = fields.Integer()
    confirmed = fields.Boolean()
    confirmed_at = fields.String(allow_none=True)
    task_status = fields.String()
    planned = fields.Integer()
    delivered = fields.Integer()
    not_friend = fields.Integer()
    quota = fields.Integer()
    unsent = fields.Integer()
    failed = fields.Integer()
    cancelled = fields.Integer()


class CampaignTaskOut(ResponseSchema):
    id = fields.Integer()
    sender_userid = fields.String()
    sender_name = fields.String()
    seq = fields.Integer()
    size = fields.Integer()
    status = fields.String()
    status_label = fields.String()
    msgid = fields.String(allow_none=True)
    fail_count = fields.Integer()
    errcode = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    confirmed_at = fields.String(allow_none=True)
    complete = fields.Boolean()


class CampaignReminderOut(ResponseSchema):
    at = fields.String()
    actor = fields.String()
    tasks = fields.Integer()
    refused = fields.Integer()


class CampaignRemindersOut(ResponseSchema):
    in_last_24h = fields.Integer()
    allowed = fields.Integer()
    next_at = fields.String(allow_none=True)
    history = fields.List(fields.Nested(CampaignReminderOut))


class CampaignDetailOut(CampaignOut):
    senders = fields.List(fields.Nested(CampaignSenderOut))
    tasks = fields.List(fields.Nested(CampaignTaskOut))
    reminders = fields.Nested(CampaignRemindersOut)
    task_counts = fields.Dict(keys=fields.String(), values=fields.Integer())


class CampaignSampleOut(ResponseSchema):
    target = fields.String()
    name = fields.String()
    sender_userid = fields.String(allow_none=True)
    sender_name = fields.String()


class CampaignPerSenderOut(ResponseSchema):
    userid = fields.String()
    name = fields.String()
    count = fields.Integer()


class CampaignQuotaOut(ResponseSchema):
    count = fields.Integer()
    period = fields.String()


class CampaignPreviewOut(ResponseSchema):
    count = fields.Integer(required=True, metadata={"description": "customers (chats) it would be sent to now"})
    total = fields.Integer(metadata={"description": "the audience, excluded ones included"})
    excluded = fields.Dict(keys=fields.String(), values=fields.Integer(),
                           metadata={"description": "lost, quota, no_sender"})
    excluded_total = fields.Integer()
    senders = fields.Integer()
    calls = fields.Integer(metadata={"description": "add_msg_template calls (≤10,000 customers, ≤2,000 chats each)"})
    per_sender = fields.List(fields.Nested(CampaignPerSenderOut))
    sample = fields.List(fields.Nested(CampaignSampleOut))
    quota = fields.Nested(CampaignQuotaOut)


class CampaignRecipientOut(ResponseSchema):
    target = fields.String()
    name = fields.String()
    sender_userid = fields.String(allow_none=True)
    sender_name = fields.String()
    status = fields.String()
    status_label = fields.String()
    reason = fields.String(allow_none=True)
    reason_label = fields.String()
    sent_at = fields.String(allow_none=True)


class CampaignRecipientsOut(ResponseSchema):
    recipients = fields.List(fields.Nested(CampaignRecipientOut), required=True)
    next_after = fields.Integer(allow_none=True)


class CampaignReminderResultOut(ResponseSchema):
    id = fields.Integer()
    at = fields.String()
    tasks = fields.Integer(metadata={"description": "unconfirmed messages whose senders are reminded"})
    in_last_24h = fields.Integer()


class CampaignUploadOut(ResponseSchema):
    id = fields.Integer(required=True)
    kind = fields.String()
    filename = fields.String()
    size = fields.Integer()
    content_type = fields.String()
    created_at = fields.String()


class CampaignSettingsOut(ResponseSchema):
    quota_count = fields.Integer()
    quota_period = fields.String()
    follow_days = fields.Integer()
    updated_by = fields.String(allow_none=True)
    updated_at = fields.String(allow_none=True)
