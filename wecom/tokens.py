"""Where access tokens and JS-SDK tickets are cached between calls (and between processes).

A credential is keyed by corp, kind (``access_token``, ``jsapi_ticket``, ``agent_ticket``) and a
SHA-256 of the secret it was obtained with, so the contact secret and the agent secret never
share (or overwrite) a token or ticket.

- `MemoryTokenStore`: one process (scripts, tests).
- `DatabaseTokenStore`: every process of the deployment, through `wecom.models.CachedCredential`.
  It works on its own short transactions and never touches the caller's `db.session`.

Stores hand out a value only while it is comfortably valid: `expires_in` is shortened by a
refresh margin when stored, so a token is replaced a little before WeCom expires it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from typing import Callable, NamedTuple, Protocol

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

log = logging.getLogger("scrm.wecom.tokens")

Clock = Callable[[], float]  # epoch seconds


class CredentialKey(NamedTuple):
    corp_id: str
    kind: str
    secret_hash: str


def credential_key(corp_id: str, kind: str, secret: str) -> CredentialKey:
    """The cache key of a credential; the secret itself is never stored."""
    return CredentialKey(corp_id, kind, hashlib.sha256(secret.encode("utf-8")).hexdigest())


def refresh_margin(expires_in: int) -> int:
    """Seconds before WeCom's expiry at which a cached value stops being handed out."""
    return min(300, max(0, int(expires_in)) // 10)


class TokenStore(Protocol):
    def get(self, key: CredentialKey) -> str | None:
        """The cached value, or None when there is none or it is (nearly) expired."""

    def set(self, key: CredentialKey, value: str, expires_in: int) -> None:
        """Cache `value`, valid for `expires_in` seconds from now according to WeCom."""

    def invalidate(self, key: CredentialKey, value: str | None = None) -> None:
        """Forget the cached value (only if it still equals `value`, when given)."""


class MemoryTokenStore:
    """A per-process cache; thread-safe."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._items: dict[CredentialKey, tuple[str, float]] = {}

    def get(self, key: CredentialKey) -> str | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[1] <= self._clock():
                return None
            return item[0]

    def set(self, key: CredentialKey, value: str, expires_in: int) -> None:
        with self._lock:
            self._items[key] = (value, self._clock() + expires_in - refresh_margin(expires_in))

    def invalidate(self, key: CredentialKey, value: str | None = None) -> None:
        with self._lock:
            item = self._items.get(key)
            if item is not None and (value is None or item[0] == value):
                del self._items[key]


class DatabaseTokenStore:
    """A cache shared by every process through the `wecom_credentials` table.

    `engine` defaults to `db.engine` of the current app, looked up at each call. Each operation
    runs in a transaction of its own (`engine.begin()`), never in the caller's session. Values
    read from the database are also remembered in-process for at most `local_ttl` seconds, so a
    long sync does not query the table before every call (a token replaced meanwhile by another
    process is harmless: WeCom answers 40014 and the client refreshes).
    """

    def __init__(self, engine: Engine | None = None, *, clock: Clock = time.time, local_ttl: float = 30.0) -> None:
        self._engine = engine
        self._clock = clock
        self._local_ttl = local_ttl
        self._lock = threading.Lock()
        self._local: dict[CredentialKey, tuple[str, float]] = {}

    @property
    def engine(self) -> Engine:
        if self._engine is not None:
            return self._engine
        from core.db import db

        return db.engine

    @staticmethod
    def _table():  # type: ignore[no-untyped-def]
        from .models import CachedCredential

        return CachedCredential.__table__

    def _where(self, key: CredentialKey):  # type: ignore[no-untyped-def]
        t = self._table()
        return (t.c.corp_id == key.corp_id, t.c.kind == key.kind, t.c.secret_hash == key.secret_hash)

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.timezone.utc)

    def get(self, key: CredentialKey) -> str | None:
        now = self._clock()
        with self._lock:
            item = self._local.get(key)
            if item is not None and item[1] > now:
                return item[0]
        t = self._table()
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.value, t.c.expires_at).where(*self._where(key))).first()
        if row is None or row.expires_at <= self._now():
            return None
        with self._lock:
            self._local[key] = (row.value, min(row.expires_at.timestamp(), now + self._local_ttl))
        return row.value

    def set(self, key: CredentialKey, value: str, expires_in: int) -> None:
        expires_at = self._now() + dt.timedelta(seconds=expires_in - refresh_margin(expires_in))
        values = {"value": value, "expires_at": expires_at, "fetched_at": self._now()}
        with self._lock:
            self._local[key] = (value, min(expires_at.timestamp(), self._clock() + self._local_ttl))
        t = self._table()
        try:
            for _ in range(2):
                try:
                    with self.engine.begin() as conn:
                        if conn.execute(update(t).where(*self._where(key)).values(**values)).rowcount:
                            return
                        conn.execute(insert(t).values(corp_id=key.corp_id, kind=key.kind,
                                                      secret_hash=key.secret_hash, **values))
                        return
                except IntegrityError:
                    continue  # another process inserted the row meanwhile: update it instead
        except SQLAlchemyError as exc:
            # The value is valid either way; failing to share it only costs another fetch later.
            log.warning("wecom.token.cache-failed kind=%s error=%s", key.kind, exc.__class__.__name__)

    def invalidate(self, key: CredentialKey, value: str | None = None) -> None:
        with self._lock:
            item = self._local.get(key)
            if item is not None and (value is None or item[0] == value):
                del self._local[key]
        t = self._table()
        condition = self._where(key) + ((t.c.value == value,) if value is not None else ())
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(t).where(*condition))
        except SQLAlchemyError as exc:
            log.warning("wecom.token.invalidate-failed kind=%s error=%s", key.kind, exc.__class__.__name__)
