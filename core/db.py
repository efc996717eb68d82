"""The database: the `db` and `migrate` singletons, the declarative base, and the column types every
package uses (UTC datetimes, the corp scope).

Part of `core`, the shared plumbing: nothing here imports a feature package.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import CursorResult, DateTime, MetaData, Result, String, TypeDecorator, event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, registry

from core.settings import Settings

# Deterministic constraint names, so Alembic migrations read well and work on SQLite batch mode.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def from_epoch(seconds: int | str | None) -> dt.datetime | None:
    """WeCom's epoch seconds → aware UTC datetime (0 and empty mean 'none')."""
    if seconds in (None, "", 0, "0"):
        return None
    return dt.datetime.fromtimestamp(int(seconds), dt.timezone.utc)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stored as naive UTC (portable across SQLite and PostgreSQL), returned as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use aware UTC datetimes (core.db.utcnow())")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc)


class Base(DeclarativeBase):
    registry = registry(metadata=MetaData(naming_convention=NAMING),
                        type_annotation_map={dt.datetime: UTCDateTime()})


class CorpScoped:
    """Every table carries the corp it belongs to, so one database can serve several corps."""

    corp_id: Mapped[str] = mapped_column(String(64), index=False)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()

# Models subclass `Model`: Flask-SQLAlchemy's `db.Model` at run time, which the type checker sees as the
# declarative `Base` it is built on (it cannot follow `db.Model`, an attribute made at run time).
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model


def rowcount(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE touched (the typed way to read `CursorResult.rowcount`)."""
    return int(cast("CursorResult[Any]", result).rowcount or 0)


def transaction_memo(key: str) -> dict[Any, Any]:
    """A dict that lives as long as the session's current transaction: what a burst of events asks
    the database once (is any rule waiting? which customers await a handover's add?) is remembered
    until the commit or rollback that could change the answer, then asked again."""
    transaction = db.session().get_transaction()
    remembered: tuple[Any, dict[Any, Any]] | None = db.session.info.get(key)
    if remembered is None or remembered[0] is not transaction:
        remembered = (transaction, {})
        db.session.info[key] = remembered
    return remembered[1]


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """The embedded default runs the web process and the worker on one SQLite file: WAL lets readers
    and the writer work at once, and a writer waits for the lock instead of failing at once."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # first: the next pragma may have to wait for a lock
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")  # kept by the database file once set
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


ENGINES_KEY = "scrm.core.engines"


class Disposable(Protocol):
    def dispose(self) -> None: ...


def register_disposable(app: Flask, thing: Disposable) -> None:
    """Have `dispose_engines` close an engine (or a holder of connections) that a package made beside
    Flask-SQLAlchemy's, such as the callback path's inbox writer."""
    app.extensions.setdefault(ENGINES_KEY, []).append(thing)


def dispose_engines(app: Flask) -> None:
    """Close every connection of this app: Flask-SQLAlchemy's engine's and the registered ones'."""
    with app.app_context():
        db.engine.dispose()
    for thing in app.extensions.pop(ENGINES_KEY, []):
        thing.dispose()


def init_app(app: Flask, conf: Settings) -> None:
    db.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", sqlite_pragmas)
    migrate.init_app(app, db, directory=str(Path(__file__).parent.parent / "migrations"),
                     render_as_batch=True, compare_type=True)
