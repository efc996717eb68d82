"""Shapes of the handovers API. Fields are checked here one by one; their meaning (who may be handed over to
whom, the notice only for on-job handovers, …) by `handover.service.clean`, which names the field in a 422."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from core.schemas import MAX_ID, IdList, Int, RequestSchema, ResponseSchema, Text, WeComId

from .models import CHAT_STATUSES, CUSTOMER_STATUSES, DONE, KINDS, RUNNING
from .planning import DISTRIBUTIONS
from .service import MAX_CHOSEN, MAX_TAKEOVERS, NOTICE_MAX

DISTRIBUTION_DOC = "even：平均分配（默认）；load：按当前客户数，少者优先；department：只分给与原跟进成员同部门的接替成员"


def QueryInt(minimum: int, maximum: int, **kwargs: Any) -> fields.Integer:  # noqa: N802
    """A whole number in a query string (where every value arrives as text)."""
    return fields.Integer(validate=validate.Range(minimum, maximum), **kwargs)


class HandoverBody(RequestSchema):
    kind = fields.String(required=True, validate=validate.OneOf(KINDS),
                         metadata={"description": "resigned：离职继承；onjob：在职转接"})
    handover_userid = WeComId(required=True, metadata={"description": "原跟进成员（离职或在职）的 userid"})
    takeover_userids = IdList(WeComId(), min_items=1, max_items=MAX_TAKEOVERS, required=True,
                              metadata={"description": "接替成员；多位时按 distribution 分配"})
    external_userids = IdList(WeComId(), max_items=MAX_CHOSEN, load_default=None, allow_none=True,
                              metadata={"description": "要转接的客户；不填为该成员的全部客户（离职：全部待分配客户）"})
    group_chats = fields.Boolean(load_default=True, metadata={"description": "是否同时转接该成员作为群主的客户群"})
    chat_ids = IdList(WeComId(), max_items=5000, load_default=None, allow_none=True,
                      metadata={"description": "要转接的客户群；不填为该成员的全部客户群"})
    distribution = fields.String(load_default="even", validate=validate.OneOf(DISTRIBUTIONS),
                                 metadata={"description": DISTRIBUTION_DOC})
    notice = Text(NOTICE_MAX, load_default="",
                  metadata={"description": "在职转接时发给客户的提示语（最多 200 字）；留空用企业微信的默认提示语"})


class HandoverIn(HandoverBody):
    pass


class HandoverPreviewIn(HandoverBody):
    pass


class HandoverRetryIn(RequestSchema):
    external_userids = IdList(WeComId(), max_items=MAX_CHOSEN, load_default=None, allow_none=True,
                              metadata={"description": "要重试的客户；不填为所有未成功的客户"})
    chat_ids = IdList(WeComId(), max_items=5000, load_default=None, allow_none=True,
                      metadata={"description": "要重试的客户群；不填为所有未成功的客户群"})
    takeover_userids = IdList(WeComId(), max_items=MAX_TAKEOVERS, load_default=None, allow_none=True,
                              metadata={"description": "改派给这些成员；不填则转给原来的接替成员（重试）"})
    distribution = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(DISTRIBUTIONS),
                                 metadata={"description": DISTRIBUTION_DOC})


class HandoverListQuery(RequestSchema):
    status = fields.String(load_default=None, validate=validate.OneOf([RUNNING, DONE]))
    kind = fields.String(load_default=None, validate=validate.OneOf(KINDS))
    before = QueryInt(1, MAX_ID, load_default=None, metadata={"description": "上一页最后一条的 id"})
    limit = QueryInt(1, 100, load_default=50)


class HandoverItemsQuery(RequestSchema):
    status = fields.String(load_default=None, validate=validate.OneOf([*CUSTOMER_STATUSES, "problem"]),
                           metadata={"description": "只看该状态的客户；problem：所有未成功的"})
    after = QueryInt(0, MAX_ID, load_default=0, metadata={"description": "上一页的 next_after"})
    limit = QueryInt(1, 500, load_default=100)


class HandoverChatsQuery(RequestSchema):
    status = fields.String(load_default=None, validate=validate.OneOf(CHAT_STATUSES))
    after = QueryInt(0, MAX_ID, load_default=0)
    limit = QueryInt(1, 500, load_default=100)


class HandoverUnassignedQuery(RequestSchema):
    handover_userid = WeComId(load_default=None, metadata={"description": "列出该离职成员的待分配客户和客户群"})
    after = QueryInt(0, MAX_CHOSEN, load_default=0, metadata={"description": "客户列表的起始位置"})
    limit = QueryInt(1, 1000, load_default=200)


class HandoverEmptyIn(RequestSchema):
    pass


class HandoverSettingsIn(RequestSchema):
    customer_limit = Int(1, 50_000, required=True, metadata={"description": "每位接替成员最多的客户数（企业微信上限 50,000）"})


# ---------------------------------------------------------------- answers


class HandoverStaffOut(ResponseSchema):
    userid = fields.String()
    name = fields.String()


class HandoverProgressOut(ResponseSchema):
    final = fields.Integer(metadata={"description": "已有最终结果的客户和客户群"})
    total = fields.Integer()
    percent = fields.Integer()


class HandoverCountsOut(ResponseSchema):
    customers = fields.Dict(keys=fields.String(), values=fields.Integer(),
                            metadata={"description": "各状态的客户数：" + ", ".join(CUSTOMER_STATUSES)})
    chats = fields.Dict(keys=fields.String(), values=fields.Integer(),
                        metadata={"description": "各状态的客户群数：" + ", ".join(CHAT_STATUSES)})
    customers_total = fields.Integer()
    chats_total = fields.Integer()


class HandoverJobOut(ResponseSchema):
    id = fields.Integer(required=True)
    kind = fields.String()
    kind_label = fields.String()
    handover_userid = fields.String()
    handover_name = fields.String()
    takeovers = fields.List(fields.Nested(HandoverStaffOut))
    distribution = fields.String()
    distribution_label = fields.String()
    notice = fields.String()
    group_chats = fields.Boolean()
    status = fields.String(metadata={"description": "running：进行中；done：每位客户和每个群都有了最终结果"})
    status_label = fields.String()
    round = fields.Integer(metadata={"description": "第几轮（每次重试或改派加一）"})
    counts = fields.Nested(HandoverCountsOut)
    progress = fields.Nested(HandoverProgressOut)
    created_by = fields.String()
    creator_name = fields.String()
    created_at = fields.String()
    finished_at = fields.String(allow_none=True)


class HandoverJobListOut(ResponseSchema):
    handovers = fields.List(fields.Nested(HandoverJobOut))
    next_before = fields.Integer(allow_none=True)


class HandoverTakeoverStatsOut(ResponseSchema):
    userid = fields.String()
    name = fields.String()
    customers = fields.Dict(keys=fields.String(), values=fields.Integer())
    chats = fields.Dict(keys=fields.String(), values=fields.Integer())
    customers_total = fields.Integer()
    chats_total = fields.Integer()


class HandoverFailureOut(ResponseSchema):
    subject = fields.String(metadata={"description": "customer | chat"})
    reason = fields.String()
    errcode = fields.Integer(allow_none=True)
    reason_text = fields.String()
    count = fields.Integer()


class HandoverCustomerItemOut(ResponseSchema):
    id = fields.Integer()
    external_userid = fields.String()
    name = fields.String()
    takeover_userid = fields.String(allow_none=True)
    takeover_name = fields.String()
    status = fields.String(metadata={"description": ", ".join(CUSTOMER_STATUSES)})
    status_label = fields.String()
    reason = fields.String(allow_none=True)
    errcode = fields.Integer(allow_none=True)
    reason_text = fields.String()
    attempts = fields.Integer()
    started_at = fields.String(allow_none=True, metadata={"description": "企业微信开始转接的时间"})
    takeover_at = fields.String(allow_none=True, metadata={"description": "接替时间（等待中为预计接替时间）"})
    finished_at = fields.String(allow_none=True)


class HandoverChatItemOut(ResponseSchema):
    id = fields.Integer()
    chat_id = fields.String()
    name = fields.String()
    new_owner = fields.String(allow_none=True)
    new_owner_name = fields.String()
    status = fields.String(metadata={"description": ", ".join(CHAT_STATUSES)})
    status_label = fields.String()
    reason = fields.String(allow_none=True)
    errcode = fields.Integer(allow_none=True)
    reason_text = fields.String()
    finished_at = fields.String(allow_none=True)


class HandoverJobDetailOut(HandoverJobOut):
    takeover_stats = fields.List(fields.Nested(HandoverTakeoverStatsOut))
    failures = fields.List(fields.Nested(HandoverFailureOut))
    customers = fields.List(fields.Nested(HandoverCustomerItemOut), metadata={"description": "一页客户（按 after 翻页）"})
    next_after = fields.Integer(allow_none=True)


class HandoverChatListOut(ResponseSchema):
    chats = fields.List(fields.Nested(HandoverChatItemOut))
    next_after = fields.Integer(allow_none=True)


class HandoverPreviewTakeoverOut(ResponseSchema):
    userid = fields.String()
    name = fields.String()
    customers = fields.Integer(metadata={"description": "将转给该成员的客户数"})
    chats = fields.Integer()
    current_customers = fields.Integer(metadata={"description": "该成员当前的客户数（含正在转给他的）"})
    calls = fields.Integer(metadata={"description": "转给该成员需要调用企业微信的次数（每次 ≤100 位）"})


class HandoverPreviewMoveOut(ResponseSchema):
    external_userid = fields.String()
    name = fields.String()
    takeover_userid = fields.String()
    takeover_name = fields.String()


class HandoverPreviewSkipOut(ResponseSchema):
    external_userid = fields.String()
    name = fields.String()
    reason = fields.String()
    reason_text = fields.String()


class HandoverReasonCountOut(ResponseSchema):
    reason = fields.String()
    reason_text = fields.String()
    count = fields.Integer()


class HandoverPreviewChatMoveOut(ResponseSchema):
    chat_id = fields.String()
    name = fields.String()
    new_owner = fields.String()
    new_owner_name = fields.String()


class HandoverPreviewChatSkipOut(ResponseSchema):
    chat_id = fields.String()
    name = fields.String()
    reason = fields.String()
    reason_text = fields.String()


class HandoverTotalsOut(ResponseSchema):
    total = fields.Integer()
    movable = fields.Integer()
    excluded = fields.Integer()


class HandoverCallsOut(ResponseSchema):
    customers = fields.Integer()
    chats = fields.Integer()


class HandoverPreviewOut(ResponseSchema):
    kind = fields.String()
    handover_userid = fields.String()
    handover_name = fields.String()
    distribution = fields.String()
    customer_limit = fields.Integer()
    customers = fields.Nested(HandoverTotalsOut)
    chats = fields.Nested(HandoverTotalsOut)
    calls = fields.Nested(HandoverCallsOut)
    takeovers = fields.List(fields.Nested(HandoverPreviewTakeoverOut))
    moves = fields.List(fields.Nested(HandoverPreviewMoveOut), metadata={"description": "谁转给谁（前 1,000 位）"})
    excluded = fields.List(fields.Nested(HandoverPreviewSkipOut), metadata={"description": "无法转接的客户及原因（前 1,000 位）"})
    excluded_by_reason = fields.List(fields.Nested(HandoverReasonCountOut))
    chat_moves = fields.List(fields.Nested(HandoverPreviewChatMoveOut))
    chat_excluded = fields.List(fields.Nested(HandoverPreviewChatSkipOut))
    chat_excluded_by_reason = fields.List(fields.Nested(HandoverReasonCountOut))


class HandoverWaitingStaffOut(ResponseSchema):
    userid = fields.String()
    name = fields.String()
    dimission_at = fields.String(allow_none=True, metadata={"description": "离职时间"})
    customers = fields.Integer(metadata={"description": "待分配的客户数"})
    chats = fields.Integer(metadata={"description": "待分配的客户群数"})


class HandoverWaitingCustomerOut(ResponseSchema):
    external_userid = fields.String()
    name = fields.String()


class HandoverWaitingChatOut(ResponseSchema):
    chat_id = fields.String()
    name = fields.String()


class HandoverRefreshOut(ResponseSchema):
    id = fields.Integer()
    status = fields.String(metadata={"description": "requested（已请求，等待执行）| done | failed"})
    reason = fields.String()
    requested_at = fields.String()
    finished_at = fields.String(allow_none=True)
    counts = fields.Dict()
    error = fields.String(allow_none=True)


class HandoverUnassignedOut(ResponseSchema):
    staff = fields.List(fields.Nested(HandoverWaitingStaffOut))
    refreshed = fields.Nested(HandoverRefreshOut, allow_none=True, metadata={"description": "上次刷新"})
    refreshing = fields.Nested(HandoverRefreshOut, allow_none=True, metadata={"description": "正在等待执行的刷新"})
    customers = fields.List(fields.Nested(HandoverWaitingCustomerOut),
                            metadata={"description": "handover_userid 的待分配客户（一页）"})
    next_after = fields.Integer(allow_none=True)
    chats = fields.List(fields.Nested(HandoverWaitingChatOut))


class HandoverSettingsOut(ResponseSchema):
    customer_limit = fields.Integer()
    updated_at = fields.String(allow_none=True)
    updated_by = fields.String()
