"""Customers and their follow relations (wecom-api.md §4.1–§4.5)."""

from __future__ import annotations

from typing import Any

from ..state import VISIBLE
from .base import (ApiError, Ctx, active_relation,
                   need_customer, clamp_limit, as_list, check_media, need_member, text_len, contact, dec_cursor,
                   enc_cursor, render_contact, render_follow_info, render_follow_user)


# ---------------------------------------------------------------- §4 customers


@contact("get_follow_user_list", "GET")
def get_follow_user_list(ctx: Ctx) -> dict[str, Any]:
    return {"follow_user": ctx.state.follow_users()}


@contact("list", "GET")
def external_list(ctx: Ctx) -> dict[str, Any]:
    member = need_member(ctx, ctx.query.get("userid"))
    rels = ctx.state.by_user.get(member.userid, [])
    return {"external_userid": [r.external_userid for r in rels if r.status in VISIBLE]}


@contact("get", "GET")
def external_get(ctx: Ctx) -> dict[str, Any]:
    customer = need_customer(ctx, ctx.query.get("external_userid"))
    follows = ctx.state.visible_follows(customer)
    if not follows:
        raise ApiError(84061)
    offset = dec_cursor(ctx.query.get("cursor"), 1)
    start = offset[0] if offset else 0
    page = follows[start:start + 500]
    out: dict[str, Any] = {"external_contact": render_contact(customer),
                           "follow_user": [render_follow_user(ctx.state, r) for r in page]}
    if start + 500 < len(follows):
        out["next_cursor"] = enc_cursor(start + 500)
    return out


@contact("batch/get_by_user")
def batch_get_by_user(ctx: Ctx) -> dict[str, Any]:
    userids = as_list(ctx.body.get("userid_list"), "userid_list")
    if not userids:
        raise ApiError(41009, "userid_list is empty")
    if len(userids) > 100:
        raise ApiError(40058, "userid_list exceeds 100")
    limit = clamp_limit(ctx.body.get("limit"), 50, 100)
    pos = dec_cursor(ctx.body.get("cursor"), 2) or [0, 0]
    st = ctx.state
    rows: list[dict[str, Any]] = []
    ui, i = pos
    next_cursor = ""
    while ui < len(userids):
        rels = st.by_user.get(str(userids[ui]), [])
        while i < len(rels):
            rel = rels[i]
            if rel.status in VISIBLE:
                if len(rows) == limit:
                    next_cursor = enc_cursor(ui, i)
                    break
                rows.append({"external_contact": render_contact(st.customers[rel.external_userid]),
                             "follow_info": render_follow_info(st, rel)})
            i += 1
        if next_cursor:
            break
        ui, i = ui + 1, 0
    return {"external_contact_list": rows, "next_cursor": next_cursor}


@contact("remark")
def remark(ctx: Ctx) -> dict[str, Any]:
    body = ctx.body
    member = need_member(ctx, body.get("userid"))
    customer = need_customer(ctx, body.get("external_userid"))
    keys = ("remark", "description", "remark_company", "remark_mobiles", "remark_pic_mediaid")
    if not any(body.get(k) not in (None, "", []) for k in keys):
        raise ApiError(40058, "remark, description, remark_company, remark_mobiles and remark_pic_mediaid are all empty")
    for key, cap in (("remark", 20), ("description", 150), ("remark_company", 20)):
        if text_len(body.get(key)) > cap:
            raise ApiError(40058, f"{key} longer than {cap} characters")
    mobiles = as_list(body.get("remark_mobiles"), "remark_mobiles") if "remark_mobiles" in body else None
    if body.get("remark_pic_mediaid"):
        check_media(ctx, body["remark_pic_mediaid"])
    rel = active_relation(ctx, member.userid, customer.external_userid)
    if "remark" in body:
        rel.remark = str(body["remark"] or "")
    if "description" in body:
        rel.description = str(body["description"] or "")
    if "remark_company" in body and customer.type == 1:
        rel.remark_corp_name = str(body["remark_company"] or "")
    if mobiles is not None:
        rel.remark_mobiles = tuple(str(m) for m in mobiles if m)
    return {}
