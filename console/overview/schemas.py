"""Shapes of the overview API (`GET /api/v1/overview`)."""

from __future__ import annotations

from marshmallow import fields

from core.schemas import MAX_ID, Day, Int, RequestSchema, ResponseSchema, Text


class OverviewQuery(RequestSchema):
    start = Day(data_key="from", load_default=None, metadata={"description": "first China day, default 30 days ago"})
    end = Day(data_key="to", load_default=None, metadata={"description": "last China day (included), default today"})
    department = Int(1, MAX_ID, load_default=None, metadata={"description": "WeCom department id"})
    channel = Text(64, load_default=None, metadata={"description": "a channel State; __none__ for no channel"})


class OverviewFigures(ResponseSchema):
    customers = fields.Integer(metadata={"description": "customers still followed by the filtered staff, each once"})
    relations = fields.Integer(metadata={"description": "active follow relations now"})
    added = fields.Integer(metadata={"description": "relations added in the period"})
    lost = fields.Integer(metadata={"description": "relations lost in the period (handovers excluded)"})
    net = fields.Integer()
    followups = fields.Integer(metadata={"description": "follow-up notes written in the period"})


class OverviewGrowthPoint(ResponseSchema):
    start = fields.String(metadata={"description": "first day of the point (YYYY-MM-DD)"})
    label = fields.String()
    added = fields.Integer()
    lost = fields.Integer()
    net = fields.Integer()
    followups = fields.Integer()


class OverviewGrowth(ResponseSchema):
    granularity = fields.String(metadata={"description": "day | week | month"})
    points = fields.List(fields.Nested(OverviewGrowthPoint))


class OverviewStaffRow(ResponseSchema):
    userid = fields.String()
    name = fields.String()
    resigned = fields.Boolean()
    customers = fields.Integer(metadata={"description": "active relations now"})
    added = fields.Integer()
    lost = fields.Integer()
    followups = fields.Integer()


class OverviewTag(ResponseSchema):
    tag_id = fields.String()
    name = fields.String()
    customers = fields.Integer()


class OverviewTagGroup(ResponseSchema):
    group_id = fields.String()
    name = fields.String()
    tags = fields.List(fields.Nested(OverviewTag))


class OverviewFunnelStep(ResponseSchema):
    stage = fields.String()
    current = fields.Integer(metadata={"description": "customers at this stage now"})
    reached = fields.Integer(metadata={"description": "customers at this stage or a later one"})
    rate = fields.Float(allow_none=True, metadata={"description": "percent of the stage before"})


class OverviewLostStage(ResponseSchema):
    stage = fields.String()
    current = fields.Integer()


class OverviewFunnel(ResponseSchema):
    steps = fields.List(fields.Nested(OverviewFunnelStep))
    lost = fields.List(fields.Nested(OverviewLostStage))
    unset = fields.Integer(metadata={"description": "customers with no stage"})


class OverviewCampaign(ResponseSchema):
    id = fields.Integer()
    name = fields.String()
    status = fields.String(metadata={"description": "the campaign's status (sending, following, done, ...)"})
    send_at = fields.DateTime(metadata={"description": "when it was sent"})
    sent = fields.Integer(metadata={"description": "recipients it was sent to (everyone not excluded)"})
    delivered = fields.Integer()
    not_delivered = fields.Integer(metadata={"description": "sent minus delivered: the six reasons below"})
    planned = fields.Integer(metadata={"description": "waiting for the sender to confirm"})
    unsent = fields.Integer(metadata={"description": "the sender did not confirm in time"})
    not_friend = fields.Integer(metadata={"description": "no longer the sender's customer"})
    quota = fields.Integer(metadata={"description": "the customer had reached WeCom's receive limit"})
    failed = fields.Integer()
    cancelled = fields.Integer()
    excluded = fields.Integer(metadata={"description": "left out when planned (lost, over quota, no sender)"})
    rate = fields.Float(allow_none=True, metadata={"description": "delivery rate: delivered / sent, percent"})


class OverviewCampaignTotal(ResponseSchema):
    sent = fields.Integer()
    delivered = fields.Integer()
    planned = fields.Integer()
    unsent = fields.Integer()
    not_friend = fields.Integer()
    quota = fields.Integer()
    failed = fields.Integer()
    cancelled = fields.Integer()
    excluded = fields.Integer()
    rate = fields.Float(allow_none=True)


class OverviewCampaigns(ResponseSchema):
    campaigns = fields.List(fields.Nested(OverviewCampaign), metadata={
        "description": "customer campaigns sent in the period, newest first; with a department (or a limited "
                       "scope), only the recipients its members send"})
    more = fields.Boolean(metadata={"description": "more campaigns were sent in the period than the latest "
                                                  "shown_limit listed"})
    shown_limit = fields.Integer()
    total = fields.Nested(OverviewCampaignTotal, metadata={"description": "the listed campaigns together"})


class OverviewHandoverOutcome(ResponseSchema):
    status = fields.String(metadata={"description": "done | waiting | queued | refused | limit | no_record | failed "
                                                    "| excluded"})
    label = fields.String()
    customers = fields.Integer()


class OverviewTakeover(ResponseSchema):
    userid = fields.String()
    name = fields.String()
    total = fields.Integer()
    done = fields.Integer()
    waiting = fields.Integer()
    queued = fields.Integer()
    refused = fields.Integer()
    limit = fields.Integer()
    no_record = fields.Integer()
    failed = fields.Integer()
    excluded = fields.Integer()


class OverviewHandover(ResponseSchema):
    jobs = fields.Integer(metadata={"description": "handover jobs started in the period"})
    total = fields.Integer(metadata={"description": "their customers"})
    outcomes = fields.List(fields.Nested(OverviewHandoverOutcome))
    takeovers = fields.List(fields.Nested(OverviewTakeover), metadata={
        "description": "per takeover colleague (customers not given one are only in outcomes)"})


class OverviewOut(ResponseSchema):
    start = fields.String(data_key="from")
    end = fields.String(data_key="to")
    department = fields.Integer(allow_none=True)
    channel = fields.String(allow_none=True)
    refreshed_at = fields.DateTime(allow_none=True, metadata={"description": "when the figures were computed"})
    figures = fields.Nested(OverviewFigures)
    growth = fields.Nested(OverviewGrowth)
    staff = fields.List(fields.Nested(OverviewStaffRow))
    tags = fields.List(fields.Nested(OverviewTagGroup))
    funnel = fields.Nested(OverviewFunnel)
    campaigns = fields.Nested(OverviewCampaigns, metadata={"description": "campaign delivery (群发触达)"})
    handover = fields.Nested(OverviewHandover, metadata={"description": "handover outcomes (客户交接结果)"})
