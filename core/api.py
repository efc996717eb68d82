"""The JSON API layer: flask-smorest blueprints whose schemas validate every request and produce the
OpenAPI document, and ONE error format for everything under `/api/`:

    {"error": {"code": "invalid", "message": "请求有误：names 应为列表", "fields": {"names": ["应为列表"]},
               "request_id": "…"}}

- Request bodies and query strings are loaded by the route's schema (`@bp.arguments`); a wrong type,
  a number out of range, an absurd date, an unknown field is 422 with the field named. Malformed JSON
  and JSON nested deeper than `MAX_JSON_DEPTH` are 400. An integer path id past the database's
  range is 422 naming the parameter. 404, 405 and 413 are JSON too.
- A service's `ScrmError` (`core.errors`) becomes its status and code with its message.
- Anything else is a 500 that says only "server error" and a request id; the traceback goes to the
  log under that id (`core.api.crash`), never to the caller.

`GET /api/v1/openapi.json` is the spec (OpenAPI 3, with the bearer token and the sidebar session as
security schemes); `/api/v1/docs` renders it with a vendored Swagger UI, offline.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from typing import Any, Callable, Iterator

import flask_smorest
from flask import Blueprint, Flask, Response, current_app, g, jsonify, render_template, request, stream_with_context
from jinja2 import TemplateNotFound
from markupsafe import escape
from webargs import core as webargs_core
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.routing import IntegerConverter

from core.errors import ScrmError
from core.schemas import MAX_ID, ErrorSchema
from core.uow import mark_failed

log = logging.getLogger("scrm.core.api")

API_PREFIX = "/api/v1"
MAX_JSON_DEPTH = 32


# ---------------------------------------------------------------- JSON with bounded nesting


class TooDeep(ValueError):
    pass


class NulCharacter(ValueError):
    pass


def _depth(value: Any, limit: int) -> None:
    """Raise `TooDeep` when `value` nests more than `limit` levels (iterative: no recursion), and
    `NulCharacter` for a string (or key) with a NUL character, which no database column may hold."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise NulCharacter("a string contains a NUL character (\\u0000)")
            continue
        if isinstance(item, (dict, list)):
            if level > limit:
                raise TooDeep(f"JSON nested more than {limit} levels")
            children = list(item.items()) if isinstance(item, dict) else item
            for child in children:
                if isinstance(child, tuple):  # a key and its value
                    stack.append((child[0], level))
                    stack.append((child[1], level + 1))
                else:
                    stack.append((child, level + 1))


def loads_bounded(data: str | bytes, limit: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads` that refuses deep nesting with a `ValueError` instead of a RecursionError (a 500)."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise TooDeep(f"JSON nested more than {limit} levels") from None
    _depth(value, limit)
    return value


_REFUSED = "(refused)"


class ScrmParser(FlaskParser):
    """webargs' Flask parser with bounded JSON, and 422 for values the schema refuses."""

    DEFAULT_VALIDATION_STATUS = 422

    def _raw_load_json(self, req: Any) -> Any:
        if not webargs_core.is_json(req.mimetype):
            return webargs_core.missing
        data = req.get_data(cache=True)
        if not data:
            return webargs_core.missing
        try:
            return loads_bounded(data)
        except TooDeep:  # a non-empty `doc`: webargs takes an empty one for "no body at all"
            raise json.JSONDecodeError(f"请求体嵌套超过 {MAX_JSON_DEPTH} 层", _REFUSED, 0) from None
        except NulCharacter:
            raise json.JSONDecodeError("请求体中含有空字符（\\u0000）", _REFUSED, 0) from None
        except UnicodeDecodeError:
            raise json.JSONDecodeError("请求体不是 UTF-8 编码", _REFUSED, 0) from None

    def _handle_invalid_json_error(self, error: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
        """400 with the reason in plain words (webargs says only "Invalid JSON body.")."""
        if getattr(error, "doc", None) == _REFUSED:
            reason = error.msg
        elif isinstance(error, json.JSONDecodeError):
            reason = f"请求体不是有效的 JSON（第 {error.lineno} 行第 {error.colno} 列）"
        else:
            reason = "请求体不是有效的 JSON"
        flask_smorest.abort(400, messages={"json": [reason]})


class ApiBlueprint(flask_smorest.Blueprint):  # type: ignore[misc]  # flask-smorest is untyped
    """A blueprint of the JSON API; its routes are documented and validated by their schemas."""

    ARGUMENTS_PARSER = ScrmParser()


class ScrmApi(flask_smorest.Api):  # type: ignore[misc]
    """flask-smorest's Api, minus its app-wide error handler (ours answers JSON under /api/ only)."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        pass


API_KEY = "scrm.api"
API_BLUEPRINTS = "scrm.api.blueprints"


class IdConverter(IntegerConverter):
    """`<id:name>`: a database id in a URL (digits only; the range is checked before the view runs)."""


# ---------------------------------------------------------------- the error format


_TRANSLATIONS: list[tuple[re.Pattern[str], str]] = [(re.compile(p), r) for p, r in [
    (r"^Missing data for required field\.$", "必填"),
    (r"^Field may not be null\.$", "不能为 null"),
    (r"^Unknown field\.$", "不认识的字段"),
    (r"^Not a valid list\.$", "应为列表"),
    (r"^Not a valid string\.$", "应为字符串"),
    (r"^Not a valid utf-8 string\.$", "应为 UTF-8 字符串"),
    (r"^Not a valid integer\.$", "应为整数"),
    (r"^Not a valid number\.$", "应为数字"),
    (r"^Number too large\.$", "数字太大"),
    (r"^Not a valid boolean\.$", "应为 true 或 false"),
    (r"^Not a valid mapping type\.$", "应为对象"),
    (r"^Not a valid date\.$", "应为日期，如 2026-01-31"),
    (r"^Not a valid datetime\.$", "应为日期时间，如 2026-01-31T09:00:00+08:00"),
    (r"^Not a valid URL\.$", "应为网址"),
    (r"^Invalid input type\.$", "类型不对"),
    (r"^Invalid JSON body\.$", "请求体不是有效的 JSON"),
    (r"^Must be greater than or equal to (\S+) and less than or equal to (\S+)\.$", r"应在 \1 到 \2 之间"),
    (r"^Must be greater than or equal to (\S+)\.$", r"应不小于 \1"),
    (r"^Must be less than or equal to (\S+)\.$", r"应不大于 \1"),
    (r"^Length must be between (\d+) and (\d+)\.$", r"长度应在 \1 到 \2 之间"),
    (r"^Shorter than minimum length (\d+)\.$", r"长度至少为 \1"),
    (r"^Longer than maximum length (\d+)\.$", r"长度最多为 \1"),
    (r"^Must be one of: (.+)\.$", r"应为以下之一：\1"),
]]


def translate(message: str) -> str:
    """marshmallow's English message in plain Chinese (unknown messages are kept as they are)."""
    for pattern, replacement in _TRANSLATIONS:
        if pattern.match(message):
            return pattern.sub(replacement, message)
    return message


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """webargs' nested {location: {field: [msg] | {nested…}}} → {"field.sub": [msg, …]}."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten(value, name))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix or "body"] = [translate(m) for m in messages]
    elif isinstance(messages, list):
        for index, value in enumerate(messages):
            out.update(_flatten(value, f"{prefix}[{index}]"))
    elif messages is not None:
        out[prefix or "body"] = [translate(str(messages))]
    return out


_LOCATIONS = ("json.", "query.", "querystring.", "view_args.", "path.", "form.", "headers.", "files.")


def _strip_location(fields: dict[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, messages in fields.items():
        for loc in _LOCATIONS:
            if name.startswith(loc):
                name = name[len(loc):]
                break
        else:
            if name in ("json", "query", "querystring"):
                name = "body"
        out.setdefault(name, []).extend(messages)
    return out


def csv_download(rows: Iterator[str], filename: str) -> Response:
    """A CSV file streamed as it is written (the rows run inside the request's context), saved under
    `filename` by the browser."""
    response = Response(stream_with_context(rows), mimetype="text/csv")
    response.headers["Content-Disposition"] = f"attachment; filename={filename}"
    return response


def request_id() -> str:
    rid = g.get("request_id")
    if rid is None:
        rid = g.request_id = secrets.token_hex(8)
    return str(rid)


def error_body(status: int, code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message, "fields": fields or {}}
    if status >= 500:
        body["request_id"] = request_id()
    return {"error": body}


def error_response(status: int, code: str, message: str, fields: dict[str, Any] | None = None) -> Response:
    response = jsonify(error_body(status, code, message, fields))
    response.status_code = status
    return response


HTTP_MESSAGES = {
    400: ("bad_request", "请求格式不对"),
    401: ("unauthorized", "请先登录，或提供有效的 API 令牌"),
    403: ("forbidden", "无权访问"),
    404: ("not_found", "找不到该地址或资源"),
    405: ("method_not_allowed", "该地址不支持此请求方法"),
    409: ("conflict", "与当前状态冲突"),
    413: ("too_large", "请求体太大"),
    415: ("unsupported_media_type", "请求体应为 JSON（Content-Type: application/json）"),
    422: ("invalid", "请求参数有误"),
    429: ("too_many_requests", "请求太频繁，请稍后再试"),
}


def _wants_json() -> bool:
    """The JSON API (under /api/, or a route of an API blueprint elsewhere) and clients that ask for JSON."""
    return (request.path.startswith("/api/") or request.blueprint in current_app.extensions.get(API_BLUEPRINTS, ())
            or request.accept_mimetypes.best == "application/json")


def _http_error_json(error: HTTPException) -> Response:
    status = int(error.code or 500)
    code, message = HTTP_MESSAGES.get(status, ("error", error.name or "错误"))
    data = getattr(error, "data", None) or {}
    fields = _strip_location(_flatten(data.get("messages") or data.get("errors") or {}))
    if status == 400 and "json" in (data.get("messages") or {}):
        fields = {"body": list(fields.get("body") or [])}
        message = fields["body"][0] if fields["body"] else message
    elif fields:
        first, problems = next(iter(fields.items()))
        message = f"{message}：{first} {problems[0]}"
        if len(fields) > 1:
            message += f"（另有 {len(fields) - 1} 处）"
    if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
        message += f"（可用：{', '.join(sorted(error.valid_methods))}）"  # type: ignore[attr-defined]
    response = error_response(status, code, message, fields)
    if status == 405 and getattr(error, "valid_methods", None):
        response.headers["Allow"] = ", ".join(sorted(error.valid_methods))  # type: ignore[attr-defined]
    return response


def render_error_page(status: int, title: str, message: str) -> tuple[str, int]:
    """A page in the console's style (`error.html`, provided by the page layer) or a plain one."""
    try:
        return render_template("error.html", code=status, title=title, message=message,
                               request_id=request_id() if status >= 500 else None), status
    except TemplateNotFound:
        return (f"<!doctype html><html lang=zh-CN><meta charset=utf-8><title>{escape(title)}</title>"
                f"<h1>{escape(title)}</h1><p>{escape(message)}</p>"), status


PAGE_MESSAGES = {
    400: ("请求有误", "请求的格式不对，请返回上一页重试。"),
    403: ("无权访问", "您的账号没有权限查看此页面。如需开通，请联系管理员。"),
    404: ("页面不存在", "您要找的页面不存在，可能已被删除或地址有误。"),
    405: ("操作不支持", "此页面不支持这种操作，请返回上一页重试。"),
    413: ("内容太大", "提交的内容超过了大小上限。"),
}


def handle_http_error(error: HTTPException) -> Any:
    if _wants_json():
        return _http_error_json(error)
    status = int(error.code or 500)
    if status >= 500:
        return handle_crash(error)
    if status in (301, 302, 303, 307, 308):
        return error
    title, message = PAGE_MESSAGES.get(status, (error.name or "出错了", error.description or ""))
    return render_error_page(status, title, message)


def handle_scrm_error(error: ScrmError) -> Any:
    mark_failed()
    if _wants_json():
        return error_response(error.status, error.code, error.message, error.fields)
    return render_error_page(error.status, PAGE_MESSAGES.get(error.status, ("出错了", ""))[0], error.message)


def handle_crash(error: BaseException) -> Any:
    original = getattr(error, "original_exception", None) or error
    rid = request_id()
    log.error("core.api.crash request_id=%s path=%s", rid, request.path,
              exc_info=(type(original), original, original.__traceback__))
    mark_failed()
    if _wants_json():
        return error_response(500, "server_error", f"服务器出错了，请稍后重试；如仍出错，请把编号 {rid} 告诉管理员")
    return render_error_page(500, "服务器出错了", f"请稍后重试；如仍出错，请把编号 {rid} 告诉管理员。")


def _check_path_ids() -> Any:
    """An integer path id past the database's range is a 422 naming it, not an overflow (a 500); a NUL
    character in the path or the query string, which no column may hold, is a 400."""
    if _wants_json() and ("\x00" in request.path or any("\x00" in k or "\x00" in v
                                                        for k, v in request.args.items(multi=True))):
        return error_response(400, "bad_request", "请求中含有空字符（\\u0000）", {"query": ["不能含有空字符"]})
    for name, value in (request.view_args or {}).items():
        if isinstance(value, int) and not 0 <= value <= MAX_ID:
            if _wants_json():
                return error_response(422, "invalid", f"请求参数有误：{name} 超出范围",
                                      {name: [f"应在 1 到 {MAX_ID} 之间"]})
            return render_error_page(404, *PAGE_MESSAGES[404])
    return None


def _request_id_header(response: Response) -> Response:
    if "request_id" in g:
        response.headers["X-Request-Id"] = str(g.request_id)
    return response


# ---------------------------------------------------------------- docs page

docs_bp = Blueprint("api_docs", __name__, static_folder="static", static_url_path="/api/v1/docs/static",
                    template_folder="templates")
DOCS_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


@docs_bp.get(f"{API_PREFIX}/docs")
def docs() -> Response:
    """The API reference (Swagger UI, vendored), reading `/api/v1/openapi.json`."""
    response = Response(render_template("api_docs.html", spec_url=f"{API_PREFIX}/openapi.json"))
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response


# ---------------------------------------------------------------- wiring


SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer",
                   "description": "`flask tokens create --name NAME --role admin|manager|marketer|staff` 生成的令牌"},
    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "session",
                      "description": "侧边栏或控制台登录后的会话；写操作还需 X-CSRF-Token 头"},
}


def init_app(app: Flask) -> None:
    app.config.update(
        API_TITLE="企微 SCRM API", API_VERSION="v1", OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=API_PREFIX, OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_REDOC_PATH=None, OPENAPI_SWAGGER_UI_PATH=None, OPENAPI_RAPIDOC_PATH=None,
    )
    app.url_map.converters["id"] = IdConverter
    api = ScrmApi()
    app.extensions[API_KEY] = api
    api.init_app(app, spec_kwargs={
        "info": {"description": "客户、标签、分群、规则、交接、群发与渠道的 JSON API。错误统一为 "
                                "`{\"error\": {\"code\", \"message\", \"fields\"}}`。"},
        "components": {"securitySchemes": SECURITY_SCHEMES},
        "security": [{"bearerAuth": []}, {"sessionCookie": []}],
    })
    api.register_converter(IdConverter, lambda converter: {"type": "integer", "format": "int32", "minimum": 0,
                                                            "maximum": MAX_ID})
    app.register_blueprint(docs_bp)
    app.before_request(_check_path_ids)
    app.after_request(_request_id_header)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(ScrmError, handle_scrm_error)
    app.register_error_handler(InternalServerError, handle_crash)


def register(app: Flask, *blueprints: ApiBlueprint) -> None:
    """Register API blueprints (their routes join the OpenAPI document)."""
    api: ScrmApi = app.extensions[API_KEY]
    names = app.extensions.setdefault(API_BLUEPRINTS, set())
    for bp in blueprints:
        api.register_blueprint(bp)
        names.add(bp.name)


def public(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a documented route as needing no authentication (an empty security requirement)."""
    doc = getattr(view, "_apidoc", {})
    doc.setdefault("manual_doc", {})["security"] = []
    view._apidoc = doc  # type: ignore[attr-defined]
    return view
