"""One settings source, read from the environment (and `.env`), checked once, failing fast.

Every setting the server reads is declared here with its type, default and check. `create_app`
builds a `Settings` from the environment plus any `config_override`, then calls
`Settings.check()`; a missing or malformed value stops the server with a message that names the
variable and says what is wrong with it.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from flask import Flask, current_app
from urllib.parse import urlparse

_ALNUM = re.compile(r"^[A-Za-z0-9]+$")
_CORP_ID = re.compile(r"^w[wx][A-Za-z0-9]{6,30}$")


class SettingsError(SystemExit):
    """Raised by `create_app` when settings are missing or malformed.

    It is a `SystemExit` on purpose: under `flask run`, `flask worker` or gunicorn the process
    stops with the readable message instead of a traceback; tests catch it like any exception.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        text = "The server cannot start; fix these settings (environment variables or .env):\n"
        text += "\n".join(f"  - {p}" for p in problems)
        super().__init__(text)


def _bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class Settings:
    DATABASE_URL: str = "sqlite:///scrm.db"  # relative SQLite paths live in instance/
    SECRET_KEY: str = ""
    WECOM_CORP_ID: str = ""
    WECOM_CONTACT_SECRET: str = ""
    WECOM_AGENT_ID: str = ""
    WECOM_AGENT_SECRET: str = ""
    WECOM_TOKEN: str = ""
    WECOM_ENCODING_AES_KEY: str = ""
    WECOM_API_BASE: str = "https://qyapi.weixin.qq.com"
    WECOM_OAUTH_BASE: str = "https://open.weixin.qq.com"
    WECOM_TIMEOUT: float = 10.0  # seconds, every WeCom call including gettoken
    # Demo mode: the emulator stands in for WeCom and provides the credentials.
    SCRM_DEMO: bool = False
    # The in-process worker and scheduler: on for the embedded default, off under gunicorn.
    SCRM_EMBEDDED_WORKER: bool = True
    # Where people reach this server (links in app messages, OAuth redirects).
    SCRM_PUBLIC_URL: str = "http://127.0.0.1:5000"
    # Full sync schedule (hour of day, server local time) for the nightly reconcile.
    SCRM_SYNC_HOUR: int = 3
    # The largest request body (bytes): an API call naming 10,000 customers is about 700 KB. Endpoints
    # that take files raise it for themselves; the callback endpoint lowers it (SCRM_CALLBACK_MAX_BYTES).
    MAX_CONTENT_LENGTH: int = 2 * 1024 * 1024
    # Callbacks are small, and their outer XML is parsed before the signature is checked.
    SCRM_CALLBACK_MAX_BYTES: int = 256 * 1024
    # A callback whose `timestamp` is further than this from our clock (seconds) is refused, as payment
    # webhooks refuse stale signatures: WeCom's own retries come within minutes. 0 turns the check off.
    SCRM_CALLBACK_MAX_SKEW: int = 24 * 3600
    extra: dict[str, Any] = field(default_factory=dict)

    REQUIRED = ("WECOM_CORP_ID", "WECOM_CONTACT_SECRET", "WECOM_TOKEN", "WECOM_ENCODING_AES_KEY",
                "WECOM_AGENT_ID", "WECOM_AGENT_SECRET")

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None,
             override: Mapping[str, Any] | None = None) -> "Settings":
        """Environment first, then `override` (tests, the demo); unknown override keys go to `extra`."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        for name, f in known.items():
            if name in environ:
                values[name] = cls._coerce(name, f.type, environ[name])
        extra: dict[str, Any] = {}
        for key, value in (override or {}).items():
            if key in known:
                values[key] = cls._coerce(key, known[key].type, value)
            else:
                extra[key] = value
        return cls(**values, extra=extra)

    @staticmethod
    def _coerce(name: str, type_name: Any, value: Any) -> Any:
        if type_name in ("bool", bool):
            return _bool(value)
        if type_name in ("int", int):
            try:
                return int(value)
            except (TypeError, ValueError):
                raise SettingsError([f"{name}={value!r} is not a whole number"]) from None
        if type_name in ("float", float):
            try:
                return float(value)
            except (TypeError, ValueError):
                raise SettingsError([f"{name}={value!r} is not a number"]) from None
        return value if value is None else str(value).strip()

    def check(self) -> None:
        """Raise `SettingsError` listing every problem; quiet when all is well."""
        problems: list[str] = []
        if not self.SCRM_DEMO:
            for name in self.REQUIRED:
                if not getattr(self, name):
                    problems.append(f"{name} is required and not set")
        if self.WECOM_CORP_ID and not _CORP_ID.match(self.WECOM_CORP_ID):
            problems.append(f"WECOM_CORP_ID={self.WECOM_CORP_ID!r} does not look like a corp id "
                            "(it starts with 'ww' followed by letters and digits; see 我的企业 → 企业信息)")
        key = self.WECOM_ENCODING_AES_KEY
        if key and (len(key) != 43 or not _ALNUM.match(key)):
            problems.append(f"WECOM_ENCODING_AES_KEY must be exactly 43 letters and digits "
                            f"(it has {len(key)} characters); copy it again from the callback settings")
        token = self.WECOM_TOKEN
        if token and (len(token) > 32 or not _ALNUM.match(token)):
            problems.append("WECOM_TOKEN must be at most 32 letters and digits")
        if self.WECOM_AGENT_ID and not self.WECOM_AGENT_ID.isdigit():
            problems.append(f"WECOM_AGENT_ID={self.WECOM_AGENT_ID!r} must be the app's numeric AgentId")
        for name in ("WECOM_API_BASE", "WECOM_OAUTH_BASE", "SCRM_PUBLIC_URL"):
            url = urlparse(getattr(self, name))
            if url.scheme not in ("http", "https") or not url.netloc:
                problems.append(f"{name}={getattr(self, name)!r} is not an http(s) URL")
        db = urlparse(self.DATABASE_URL)
        if not db.scheme or db.scheme.split("+")[0] not in ("sqlite", "postgresql", "postgres"):
            problems.append(f"DATABASE_URL={self.DATABASE_URL!r} must be a sqlite:/// or postgresql:// URL")
        if self.WECOM_TIMEOUT <= 0:
            problems.append("WECOM_TIMEOUT must be a positive number of seconds")
        if self.SCRM_CALLBACK_MAX_SKEW < 0:
            problems.append("SCRM_CALLBACK_MAX_SKEW must be a number of seconds (0 turns the check off)")
        if not 0 <= self.SCRM_SYNC_HOUR <= 23:
            problems.append("SCRM_SYNC_HOUR must be an hour from 0 to 23")
        if problems:
            raise SettingsError(problems)

    def ensure_secret_key(self, instance_path: str) -> None:
        """Generate a SECRET_KEY into instance/ on first run, and reuse it afterwards."""
        if self.SECRET_KEY:
            return
        path = Path(instance_path) / "secret_key"
        if path.exists():
            self.SECRET_KEY = path.read_text().strip()
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self.SECRET_KEY = secrets.token_urlsafe(48)
        path.write_text(self.SECRET_KEY)
        path.chmod(0o600)

    @property
    def database_url(self) -> str:
        """`postgres://` (Heroku style) is accepted and mapped to the psycopg 3 driver."""
        url = self.DATABASE_URL
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix):]
        return url

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")


SETTINGS_KEY = "scrm.settings"


def settings() -> Settings:
    """The settings of the running app."""
    conf: Settings = current_app.extensions[SETTINGS_KEY]
    return conf


def init_app(app: Flask, conf: Settings) -> None:
    app.extensions[SETTINGS_KEY] = conf
