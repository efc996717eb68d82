"""The customer endpoints of the JSON API that the sidebar page calls (and other systems, with a token).

    GET  /api/v1/customers?q=&tag=&stage=&userid=&cursor=&limit=   list, newest first, keyset-paginated
    GET  /api/v1/customers/{external_userid}            profile
    POST /api/v1/customers/{external_userid}/tags       {"userid"?, "add": [...], "remove": [...]} → 202
    POST /api/v1/customers/{external_userid}/followups  {"content", "next_at"?, "userid"?} → 201
    PUT  /api/v1/customers/{external_userid}/stage      {"stage"} → 200

Authenticated by the sidebar session (writes need the `X-CSRF-Token` header) or a bearer token.
A customer the caller may not see answers 404, exactly like a missing one.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify, request

from console.identity import current_principal, login_required
from crm.service import UserValueError
from extensions import db

from . import service
from .service import BadListQuery, CustomerNotFound, WeComUnavailable

log = logging.getLogger("scrm.sidebar.api")

bp = Blueprint("customers_api", __name__, url_prefix="/api/v1")


def _error(status: int, code: str, message: str) -> Any:
    return jsonify(error={"code": code, "message": message}), status


@bp.errorhandler(CustomerNotFound)
def _not_found(exc: CustomerNotFound) -> Any:
    db.session.rollback()
    return _error(404, "not_found", "找不到该客户")


@bp.errorhandler(UserValueError)
def _bad_value(exc: UserValueError) -> Any:
    db.session.rollback()
    return _error(422, "invalid", str(exc))


@bp.errorhandler(WeComUnavailable)
def _wecom_down(exc: WeComUnavailable) -> Any:
    db.session.rollback()
    return _error(503, "wecom_unavailable", "企业微信暂时无法访问，客户资料尚未同步，请稍后重试")


@bp.errorhandler(BadListQuery)
def _bad_query(exc: BadListQuery) -> Any:
    db.session.rollback()
    return _error(400, exc.code, str(exc))


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise UserValueError("请求体应为 JSON 对象")
    return data


def _id_list(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserValueError(f"{key} 应为标签 id 的列表")
    return value


def _arg_list(name: str) -> list[str]:
    """A repeatable query parameter; empty values (an unfilled form field) are dropped."""
    return [v.strip() for v in request.args.getlist(name) if v.strip()]


@bp.get("/customers")
@login_required("sidebar")
def list_customers() -> Any:
    """`{"customers": [...], "next_cursor": ""}`: `tag` repeatable (all must match), `stage` and `userid`
    repeatable (any), `q` a substring of name, corp name or remark; 400 for a bad cursor or limit,
    422 for an unknown or deleted tag or stage."""
    principal = current_principal()
    assert principal is not None
    body = service.list_customers(
        principal, q=request.args.get("q", ""), tags=_arg_list("tag"), stages=_arg_list("stage"),
        userids=_arg_list("userid"), cursor=request.args.get("cursor", ""),
        limit=service.parse_limit(request.args.get("limit")))
    return jsonify(body)


@bp.get("/customers/<external_userid>")
@login_required("sidebar")
def get_customer(external_userid: str) -> Any:
    principal = current_principal()
    assert principal is not None
    customer = service.load_customer(principal, external_userid)
    body = service.profile(principal, customer)
    db.session.commit()  # a customer fetched on demand
    return jsonify(body)


@bp.post("/customers/<external_userid>/tags")
@login_required("sidebar")
def change_tags(external_userid: str) -> Any:
    from tagging.service import change_relation_tags

    principal = current_principal()
    assert principal is not None
    data = _body()
    customer = service.load_customer(principal, external_userid)
    relation = service.editable_relation(principal, customer, data.get("userid"))
    command = change_relation_tags(principal.corp_id, relation, _id_list(data, "add"), _id_list(data, "remove"),
                                   actor=principal.actor, source="api" if principal.via == "token" else "staff")
    command_id = command.id if command is not None else None
    db.session.commit()
    if command is not None:
        _wake_worker()
    body = service.profile(principal, customer)
    mine = next(f for f in body["follow_users"] if f["userid"] == relation.userid)
    sync = {"status": "unchanged", "command_id": None, "message": "标签没有变化"} if command_id is None else (
        mine["tag_sync"] or {"status": "pending", "command_id": command_id})
    return jsonify(userid=relation.userid, tags=mine["tags"], sync=sync), 202


@bp.post("/customers/<external_userid>/followups")
@login_required("sidebar")
def add_followup(external_userid: str) -> Any:
    principal = current_principal()
    assert principal is not None
    data = _body()
    customer = service.load_customer(principal, external_userid)
    row = service.add_followup(principal, customer, data.get("content"), data.get("next_at"), data.get("userid"))
    body = service.followup_dict(row, {principal.userid or "": principal.name})
    db.session.commit()
    return jsonify(body), 201


@bp.put("/customers/<external_userid>/stage")
@login_required("sidebar")
def set_stage(external_userid: str) -> Any:
    principal = current_principal()
    assert principal is not None
    data = _body()
    if "stage" not in data:
        raise UserValueError("缺少 stage")
    customer = service.load_customer(principal, external_userid)
    service.set_stage(principal, customer, data["stage"])
    stage = customer.stage
    db.session.commit()
    return jsonify(external_userid=external_userid, stage=stage)


def _wake_worker() -> None:
    """Tell the embedded worker there is work now (the hook is registered by the worker, if it runs)."""
    from flask import current_app

    hook = current_app.extensions.get("scrm.wecom.wake")
    if hook is None:
        return
    try:
        hook()
    except Exception:  # waking is an optimisation; the worker polls anyway
        log.warning("sidebar.api.wake-failed", exc_info=True)
