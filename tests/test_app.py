"""The app factory, settings checks, tokens and /healthz."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import create_app
from core.settings import SettingsError
from tests.helpers import TEST_SETTINGS


def _make(**changes: object) -> None:
    create_app({**TEST_SETTINGS, "TESTING": True, "DATABASE_URL": "sqlite://", "SECRET_KEY": "x", **changes})


def test_missing_required_setting_names_the_variable() -> None:
    with pytest.raises(SettingsError) as err:
        _make(WECOM_CONTACT_SECRET="")
    assert "WECOM_CONTACT_SECRET is required" in str(err.value)


@pytest.mark.parametrize(("name", "value", "words"), [
    ("WECOM_ENCODING_AES_KEY", "short", "exactly 43"),
    ("WECOM_CORP_ID", "not-a-corp", "does not look like a corp id"),
    ("WECOM_AGENT_ID", "abc", "numeric AgentId"),
    ("WECOM_API_BASE", "ftp://x", "not an http(s) URL"),
    ("DATABASE_URL", "mysql://x/y", "sqlite:/// or postgresql://"),
    ("WECOM_TOKEN", "has spaces in it", "at most 32 letters"),
])
def test_malformed_settings_are_refused(name: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError) as err:
        _make(**{name: value})
    assert name in str(err.value) and words in str(err.value)


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(SettingsError) as err:
        _make(WECOM_TOKEN="", WECOM_ENCODING_AES_KEY="")
    assert len(err.value.problems) == 2


def test_bad_settings_stop_the_flask_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "WECOM_CORP_ID": "wwx", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "routes"], env=env,
                          cwd=str(Path(__file__).parent.parent),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "WECOM_CONTACT_SECRET is required" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_healthz_tells_the_public_only_the_status(client) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_tokens_create_prints_token_last_and_stores_only_a_hash(runner, db_session) -> None:
    from identity.models import ApiToken
    from identity.service import find_api_token

    result = runner.invoke(args=["tokens", "create", "--name", "erp", "--role", "manager"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("scrm_")
    row = db_session.query(ApiToken).one()
    assert row.token_hash != token and token not in row.token_hash
    assert find_api_token(token).name == "erp"
    assert find_api_token(token + "x") is None


def test_staff_token_needs_userid(runner) -> None:
    result = runner.invoke(args=["tokens", "create", "--name", "bot", "--role", "staff"])
    assert result.exit_code != 0 and "--userid" in result.output
