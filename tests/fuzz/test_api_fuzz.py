"""Schemathesis over the OpenAPI document: every operation, valid and invalid generated input, as an
admin against the emulator. No answer may be a 5xx, and every answer must match the document (status
codes, content types, response bodies).

The budget is bounded (`FUZZ_EXAMPLES` examples per operation and mode, default 10) so the suite stays
fast; CI runs it on SQLite and again on PostgreSQL. `FUZZ_EXAMPLES=200 python3 dev.py test tests/fuzz`
digs deeper. Each operation is its own test, so a failure names the operation.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from tests.tagging.conftest import token

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _operations() -> list[str]:
    """Every operation of the document ("METHOD path"), read from a throw-away app (no database needed)."""
    from app import create_app
    from tests.helpers import TEST_SETTINGS

    app = create_app({**TEST_SETTINGS, "TESTING": True, "DATABASE_URL": "sqlite://", "SECRET_KEY": "x",
                      "SCRM_EMBEDDED_WORKER": False})
    with app.test_request_context():
        spec = app.extensions["scrm.api"].spec.to_dict()
    return sorted(f"{method.upper()} {path}" for path, methods in spec["paths"].items()
                  for method in methods if method != "parameters")


@pytest.fixture()
def admin_headers(app: Any, db_session: Any, emu: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setitem(app.config, "TAGGING_JOBS_INLINE", False)  # bulk jobs wait for the worker, not a thread
    emu.act.add_staff("zhangsan", "张三")
    return token(db_session, "admin", name="fuzz")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("operation", _operations())
def test_no_5xx_and_every_answer_matches_the_document(app: Any, admin_headers: dict[str, str], operation: str,
                                                      mode: GenerationMode) -> None:
    method, path = operation.split(" ", 1)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    api_operation = schema[path][method]

    @given(case=api_operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        response = case.call(headers=admin_headers)
        case.validate_response(response, checks=CHECKS)

    run()
