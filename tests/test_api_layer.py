"""The one API layer: the OpenAPI document lists every route, bad input is a 4xx naming the field (never a
500), every error under /api/ has one JSON shape, and a crash answers a request id, not a traceback."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.helpers import TEST_CORP_ID
from tests.tagging.conftest import token


@pytest.fixture()
def admin(db_session: Any) -> dict[str, str]:
    return token(db_session, "admin")


def _spec(client: Any) -> dict[str, Any]:
    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    return answer.get_json()


def test_the_spec_is_valid_openapi_3_with_both_security_schemes(client: Any) -> None:
    from openapi_spec_validator import validate

    spec = _spec(client)
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert set(spec["components"]["securitySchemes"]) == {"bearerAuth", "sessionCookie"}
    assert spec["security"] == [{"bearerAuth": []}, {"sessionCookie": []}]


def test_every_api_route_is_in_the_spec(app: Any, client: Any) -> None:
    """Walk the URL map: a JSON route missing from the document is a route no other system can discover."""
    import re

    paths = _spec(client)["paths"]
    missing = []
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/v1/") or rule.endpoint == "jssdk_api.signature"):
            continue
        if rule.endpoint.startswith("api-docs.") or rule.rule in ("/api/v1/openapi.json", "/api/v1/docs") \
                or rule.endpoint.startswith("api_docs."):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method.lower() not in paths.get(path, {}):
                missing.append(f"{method} {path}")
    assert missing == []
    assert "/sidebar/jssdk/signature" in paths  # the sidebar's JS-SDK signature is part of the API


def test_every_operation_has_a_summary_and_documents_its_errors(client: Any) -> None:
    for path, methods in _spec(client)["paths"].items():
        for method, op in methods.items():
            if method == "parameters":
                continue
            assert op.get("summary"), f"{method} {path} has no summary (the view's docstring)"
            assert "default" in op["responses"], f"{method} {path} documents no error"


def test_the_docs_page_works_offline(client: Any) -> None:
    page = client.get("/api/v1/docs")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "swagger-ui-bundle.js" in html and "/api/v1/openapi.json" in html
    assert "cdn" not in html.lower() and "https://" not in html
    bundle = client.get("/api/v1/docs/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    bundle.close()


def _error(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.get_data(as_text=True)[:300]
    assert answer.is_json, answer.get_data(as_text=True)[:300]
    error = answer.get_json()["error"]
    assert set(error) >= {"code", "message", "fields"} and error["message"]
    return error


def test_a_body_nested_thousands_deep_is_a_400(client: Any, admin: dict[str, str]) -> None:
    body = "[" * 5000 + "]" * 5000
    error = _error(client.post("/api/v1/tags", data=body, content_type="application/json", headers=admin), 400)
    assert "body" in error["fields"]
    deep = json.dumps({"filter": {"not": {"not": {"not": {}}}}}).replace("{}", "[" * 3000 + "]" * 3000)
    _error(client.post("/api/v1/segments/preview", data=deep, content_type="application/json", headers=admin), 400)


def test_malformed_json_is_a_400(client: Any, admin: dict[str, str]) -> None:
    error = _error(client.post("/api/v1/tags", data="{names: [", content_type="application/json", headers=admin), 400)
    assert "JSON" in error["message"]


def test_an_id_past_the_databases_range_names_the_parameter(client: Any, admin: dict[str, str]) -> None:
    error = _error(client.get("/api/v1/segments/99999999999999999999", headers=admin), 422)
    assert list(error["fields"]) == ["segment_id"]
    _error(client.get("/api/v1/tags/jobs/2147483648", headers=admin), 422)
    _error(client.get("/api/v1/tags/jobs/2147483647", headers=admin), 404)


@pytest.mark.parametrize("names", [{"a": 1}, True, "abc", 5, [["x"]], [None]])
def test_a_wrong_type_is_a_422_naming_the_field_and_creates_nothing(client: Any, admin: dict[str, str],
                                                                   db_session: Any, names: Any) -> None:
    from crm.models import Tag

    error = _error(client.post("/api/v1/tags", json={"group_name": "新组", "names": names}, headers=admin), 422)
    assert any(f.startswith("names") for f in error["fields"]), error
    assert db_session.query(Tag).count() == 0  # "abc" is not three tags


def test_unknown_fields_and_strings_where_numbers_belong_are_refused(client: Any, admin: dict[str, str]) -> None:
    error = _error(client.post("/api/v1/tags", json={"group_name": "组", "names": ["a"], "colour": "red"},
                               headers=admin), 422)
    assert error["fields"] == {"colour": ["不认识的字段"]}
    error = _error(client.put("/api/v1/tiers/thresholds", json={"window_days": "365"}, headers=admin), 422)
    assert "window_days" in error["fields"]


def test_absurd_dates_and_numbers_of_days_are_refused(client: Any, admin: dict[str, str], db_session: Any) -> None:
    for tree in ({"added_after": "0999-01-01"}, {"added_before": "9999-12-31"}, {"added_after": "0001-01-01T00:00:00"}):
        error = _error(client.post("/api/v1/segments/preview", json={"filter": tree}, headers=admin), 400)
        assert error["code"] == "invalid_filter" and error["fields"]
    error = _error(client.post("/api/v1/segments/preview", json={"filter": {"no_followup_days": 10**15}},
                               headers=admin), 400)
    assert "no_followup_days" in next(iter(error["fields"]))
    error = _error(client.post("/api/v1/rules", json={"name": "久未跟进", "trigger": "inactivity",
                                                     "trigger_params": {"days": 10**9},
                                                     "actions": [{"notify": "看看"}]}, headers=admin), 422)
    assert "days" in error["message"]
    error = _error(client.put("/api/v1/tiers/thresholds", json={"churn_days": 10**12}, headers=admin), 422)
    assert "churn_days" in error["fields"]


def test_413_405_404_are_json_in_the_one_format(client: Any, admin: dict[str, str]) -> None:
    big = json.dumps({"group_name": "x", "names": ["a" * 1000] * 2200})  # over MAX_CONTENT_LENGTH (2 MB)
    error = _error(client.post("/api/v1/tags", data=big, content_type="application/json", headers=admin), 413)
    assert error["code"] == "too_large"
    answer = client.delete("/api/v1/tags", headers=admin)
    error = _error(answer, 405)
    assert "GET" in answer.headers["Allow"] and "GET" in error["message"]
    assert _error(client.get("/api/v1/no-such-thing", headers=admin), 404)["code"] == "not_found"
    assert _error(client.get("/api/v1/segments/123456", headers=admin), 404)["code"] == "not_found"
    assert _error(client.get("/api/v1/tags"), 401)["code"] == "unauthorized"


def test_a_crash_answers_a_request_id_and_logs_the_traceback_under_it(app: Any, client: Any, admin: dict[str, str],
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    import tagging.catalog.service as catalog

    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)  # as in production (tests re-raise)

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(catalog, "list_catalog", boom)
    with caplog.at_level(logging.ERROR, logger="scrm.core.api"):
        answer = client.get("/api/v1/tags", headers=admin)
    error = _error(answer, 500)
    text = answer.get_data(as_text=True)
    assert "Traceback" not in text and "secret internal detail" not in text and "RuntimeError" not in text
    assert error["request_id"] and answer.headers["X-Request-Id"] == error["request_id"]
    assert error["request_id"] in error["message"]
    crash = [r for r in caplog.records if "core.api.crash" in r.getMessage()]
    assert crash and error["request_id"] in crash[0].getMessage() and crash[0].exc_info is not None


def test_a_console_page_crash_is_a_chinese_page_with_the_request_id(app: Any, client: Any, db_session: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import tagging.catalog.service as catalog

    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    from identity.service import set_role
    from tests.helpers import sign_in

    set_role(TEST_CORP_ID, "boss", "admin", "test")
    db_session.commit()
    sign_in(client, "boss")
    monkeypatch.setattr(catalog, "list_catalog", lambda *a, **k: 1 / 0)
    page = client.get("/console/tags/")
    html = page.get_data(as_text=True)
    assert page.status_code == 500 and "服务器出错了" in html and "ZeroDivisionError" not in html
    assert page.headers["X-Request-Id"] in html
    missing = client.get("/console/no-such-page")
    assert missing.status_code == 404 and "页面不存在" in missing.get_data(as_text=True)
    assert "Not Found" not in missing.get_data(as_text=True)


def test_a_nul_character_is_refused_before_it_reaches_the_database(client: Any, admin: dict[str, str]) -> None:
    error = _error(client.post("/api/v1/tags", json={"group_name": "a\u0000b", "names": ["x"]}, headers=admin), 400)
    assert "空字符" in error["message"] and "body" in error["fields"]
    error = _error(client.get("/api/v1/customers", query_string={"q": "a\u0000"}, headers=admin), 400)
    assert "空字符" in error["message"]
    bad = _error(client.post("/api/v1/tags", data=b"\xff\xfe{", content_type="application/json", headers=admin), 400)
    assert "UTF-8" in bad["message"]
    broken = _error(client.post("/api/v1/tags", data="{\n  \"names\": [", content_type="application/json",
                                headers=admin), 400)
    assert "第 2 行" in broken["message"]
