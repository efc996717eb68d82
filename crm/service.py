"""State changes of the customer base that other packages use. Services flush; the request, job or
command that calls them commits once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.db import db, utcnow
from core.errors import UserValueError
from core.signals import FollowupWritten, followup_written
from core.time import CHINA

from .models import AuditLog, Corp, Customer, FollowUp


def ensure_corp(corp_id: str, name: str = "") -> Corp:
    """The corp's row, created if missing; safe when the worker and a request create it at once."""
    corp = db.session.get(Corp, corp_id)
    if corp is None:
        insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        db.session.execute(insert(Corp).values(corp_id=corp_id, name=name, created_at=utcnow())
                           .on_conflict_do_nothing(index_elements=["corp_id"]))
        corp = db.session.get(Corp, corp_id)
        assert corp is not None
    return corp


def audit(corp_id: str, actor: str, action: str, target_type: str, target_id: str,
          detail: dict[str, Any] | None = None) -> AuditLog:
    """Record who changed what (flush happens with the caller's next flush); never deleted by sync."""
    row = AuditLog(corp_id=corp_id, actor=actor, action=action, target_type=target_type,
                   target_id=str(target_id), detail=detail or {})
    db.session.add(row)
    return row


FOLLOWUP_MAX_CHARS = 2000


def parse_next_at(value: Any) -> dt.datetime | None:
    """An optional next-contact time: 'YYYY-MM-DD' (China date, 09:00) or an ISO datetime (naive = China)."""
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=CHINA)
        return moment.astimezone(dt.timezone.utc)
    if not isinstance(value, str):
        raise UserValueError("下次联系时间格式不对，应为 YYYY-MM-DD", field="next_at")
    try:
        if len(value) == 10:
            moment = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(9, 0), tzinfo=CHINA)
        else:
            moment = dt.datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=CHINA)
    except ValueError:
        raise UserValueError("下次联系时间格式不对，应为 YYYY-MM-DD", field="next_at") from None
    if not 2000 <= moment.year <= 2100:
        raise UserValueError("下次联系时间应在 2000 到 2100 年之间", field="next_at")
    return moment.astimezone(dt.timezone.utc)


def write_followup(customer: Customer, author: str, content: Any, next_at: dt.datetime | None,
                   actor: str) -> FollowUp:
    """Record a follow-up note on the customer by staff member `author` (flush) and announce it."""
    text = content.strip() if isinstance(content, str) else ""
    if not text:
        raise UserValueError("跟进内容不能为空", field="content")
    if len(text) > FOLLOWUP_MAX_CHARS:
        raise UserValueError(f"跟进内容最多 {FOLLOWUP_MAX_CHARS} 字", field="content")
    row = FollowUp(corp_id=customer.corp_id, customer_id=customer.id, userid=author, content=text,
                   next_at=next_at, created_at=utcnow())
    db.session.add(row)
    db.session.flush()
    audit(customer.corp_id, actor, "followup.add", "customer", customer.external_userid, {"followup_id": row.id})
    followup_written.send(FollowupWritten(customer.corp_id, customer.id, row.id, author))
    return row


# ---------------------------------------------------------------- channel names


def state_labels(corp_id: str, states: Any = None) -> dict[str, str]:
    """Channel names by State (`ChannelLabel`): for the given states, or every named one when None."""
    from sqlalchemy import select

    from .models import ChannelLabel

    query = select(ChannelLabel.state, ChannelLabel.name).where(ChannelLabel.corp_id == corp_id)
    if states is not None:
        wanted = sorted({s for s in states if s})
        if not wanted:
            return {}
        query = query.where(ChannelLabel.state.in_(wanted))
    return {s: n for s, n in db.session.execute(query).tuples()}


def save_state_label(corp_id: str, state: str, name: str) -> None:
    """Name (or rename) a channel State (flush); an empty name removes the label."""
    from sqlalchemy import select

    from .models import ChannelLabel

    row = db.session.scalar(select(ChannelLabel).where(ChannelLabel.corp_id == corp_id, ChannelLabel.state == state))
    if not name:
        if row is not None:
            db.session.delete(row)
    elif row is None:
        db.session.add(ChannelLabel(corp_id=corp_id, state=state, name=name))
    else:
        row.name = name
    db.session.flush()
