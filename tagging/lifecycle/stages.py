"""Lifecycle stages: the corp's ordered list, the one place that changes a customer's stage, its history,
and the optional mirror to the WeCom tag group "客户阶段".

Services flush; the request or job that calls them commits once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from core.db import db
from core.errors import UserValueError
from core.signals import StageChanged, cascade, stage_changed
from crm.models import Customer, Stage, StageChange, Tag
from crm.service import audit

from .mirror import ensure_group, group_tags, reconcile
from .models import TaggingSetting

log = logging.getLogger("scrm.tagging")

DEFAULT_STAGES = ("潜在客户", "意向客户", "成交客户", "忠诚客户")
DEFAULT_LOST_STAGE = "流失客户"
MIRROR_GROUP = "客户阶段"
MIRROR_KEY = "stage_mirror"
MAX_STAGES = 20


@dataclass(frozen=True)
class StageInfo:
    name: str
    position: int
    is_lost: bool

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "position": self.position, "is_lost": self.is_lost}


def get_setting(corp_id: str, key: str, default: Any = None) -> Any:
    row = db.session.scalar(select(TaggingSetting).where(TaggingSetting.corp_id == corp_id, TaggingSetting.key == key))
    return default if row is None else row.value


def put_setting(corp_id: str, key: str, value: Any, actor: str) -> None:
    row = db.session.scalar(select(TaggingSetting).where(TaggingSetting.corp_id == corp_id, TaggingSetting.key == key))
    if row is None:
        db.session.add(TaggingSetting(corp_id=corp_id, key=key, value=value, updated_by=actor))
    else:
        row.value, row.updated_by = value, actor
    db.session.flush()


def ensure_stages(corp_id: str) -> list[Stage]:
    """The corp's Stage rows in order, seeded with the default list the first time (flushes)."""
    rows = list(db.session.scalars(select(Stage).where(Stage.corp_id == corp_id).order_by(Stage.position, Stage.id)))
    if rows:
        return rows
    names = [*DEFAULT_STAGES, DEFAULT_LOST_STAGE]
    rows = [Stage(corp_id=corp_id, name=n, position=i, is_lost=(n == DEFAULT_LOST_STAGE)) for i, n in enumerate(names)]
    db.session.add_all(rows)
    db.session.flush()
    return rows


def list_stages(corp_id: str) -> list[StageInfo]:
    """The configured stages in order; the default list when none are configured (nothing is written)."""
    rows = db.session.execute(select(Stage.name, Stage.position, Stage.is_lost).where(Stage.corp_id == corp_id)
                              .order_by(Stage.position, Stage.id)).all()
    if rows:
        return [StageInfo(n, p, bool(lost)) for n, p, lost in rows]
    names = [*DEFAULT_STAGES, DEFAULT_LOST_STAGE]
    return [StageInfo(n, i, n == DEFAULT_LOST_STAGE) for i, n in enumerate(names)]


def stage_names(corp_id: str) -> list[str]:
    """The corp's stage names in order (funnel first, then the lost stage(s))."""
    return [s.name for s in list_stages(corp_id)]


def mirror_enabled(corp_id: str) -> bool:
    return bool(get_setting(corp_id, MIRROR_KEY, False))


def save_stages(corp_id: str, stages: Any, actor: str, *, mirror: bool | None = None) -> list[StageInfo]:
    """Replace the ordered list (admin). `stages`: names or `{"name", "is_lost"}` objects, in order.

    A stage that customers are still in cannot be removed (move them first). Flushes.
    """
    if not isinstance(stages, list) or not stages:
        raise UserValueError("请至少保留一个客户阶段")
    if len(stages) > MAX_STAGES:
        raise UserValueError(f"客户阶段最多 {MAX_STAGES} 个")
    wanted: list[tuple[str, bool]] = []
    for item in stages:
        name, is_lost = (item, False) if isinstance(item, str) else (
            (item.get("name"), bool(item.get("is_lost"))) if isinstance(item, dict) else (None, False))
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > 32:
            raise UserValueError(f"阶段名称应为 1 到 32 个字：{name!r}")
        wanted.append((name.strip(), is_lost))
    names = [n for n, _ in wanted]
    if len(set(names)) != len(names):
        raise UserValueError("阶段名称不能重复")
    rows = {s.name: s for s in ensure_stages(corp_id)}
    removed = sorted(set(rows) - set(names))
    if removed:
        in_use = db.session.execute(select(Customer.stage, func.count()).where(
            Customer.corp_id == corp_id, Customer.stage.in_(removed)).group_by(Customer.stage)).all()
        if in_use:
            detail = "、".join(f"{s}（{n} 位客户）" for s, n in in_use)
            raise UserValueError(f"还有客户处于这些阶段，不能删除：{detail}；请先把他们移到其他阶段")
    before = [s.name for s in list_stages(corp_id)]
    for name in removed:
        db.session.delete(rows.pop(name))
    db.session.flush()
    for position, (name, is_lost) in enumerate(wanted):
        row = rows.get(name)
        if row is None:
            db.session.add(Stage(corp_id=corp_id, name=name, position=position, is_lost=is_lost))
        else:
            row.position, row.is_lost = position, is_lost
    if mirror is not None:
        put_setting(corp_id, MIRROR_KEY, bool(mirror), actor)
    audit(corp_id, actor, "stages.save", "corp", corp_id, {"from": before, "to": names, "mirror": mirror})
    db.session.flush()
    if mirror_enabled(corp_id):
        ensure_mirror_group(corp_id, actor)
    return list_stages(corp_id)


def change_stage(corp_id: str, customer: Customer, stage: Any, actor: str, *, source: str = "staff") -> StageChange | None:
    """Move the customer to `stage` (a configured stage, or None to clear); None when unchanged.

    Records a StageChange and an audit row; with the mirror on, marks the matching tag of the group
    "客户阶段" on each active relation (through the outbox); announces `core.signals.stage_changed`.
    Flushes.
    """
    if customer.corp_id != corp_id:
        raise UserValueError("该客户不属于本企业")
    if stage is not None and (not isinstance(stage, str) or stage not in stage_names(corp_id)):
        raise UserValueError(f"未知的客户阶段：{stage}")
    if stage == customer.stage:
        return None
    change = StageChange(corp_id=corp_id, customer_id=customer.id, from_stage=customer.stage, to_stage=stage,
                         actor=actor)
    customer.stage = stage
    db.session.add(change)
    audit(corp_id, actor, "stage.set", "customer", customer.external_userid,
          {"from": change.from_stage, "to": stage, "source": source})
    db.session.flush()
    if mirror_enabled(corp_id):
        mirror_stage(corp_id, customer, actor)
    stage_changed.send(StageChanged(corp_id, customer.id, change.from_stage, stage, actor, chain=cascade.get()))
    return change


def history(corp_id: str, customer_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """The customer's stage changes, newest first."""
    rows = db.session.scalars(select(StageChange).where(StageChange.corp_id == corp_id,
                                                        StageChange.customer_id == customer_id)
                              .order_by(StageChange.at.desc(), StageChange.id.desc()).limit(limit))
    return [{"from": r.from_stage, "to": r.to_stage, "actor": r.actor, "at": r.at.isoformat()} for r in rows]


def mirror_tags(corp_id: str) -> dict[str, Tag]:
    """Live tags of the live group "客户阶段", by name (empty when the group is not in the catalog)."""
    return group_tags(corp_id, MIRROR_GROUP)[1]


def stage_wanted(corp_id: str) -> Any:
    """(customer_id, name): the "客户阶段" tag each customer with a stage should carry."""
    return select(Customer.id.label("customer_id"), Customer.stage.label("name")).where(
        Customer.corp_id == corp_id, Customer.stage.is_not(None))


def ensure_mirror_group(corp_id: str, actor: str) -> list[str]:
    """Create the group "客户阶段" in WeCom, or the stage tags it lacks; the names created."""
    return ensure_group(corp_id, MIRROR_GROUP, stage_names(corp_id), actor)


def mirror_stage(corp_id: str, customer: Customer, actor: str) -> int:
    """Make each active relation carry exactly the "客户阶段" tag of the customer's stage; commands enqueued.

    Stages whose tag WeCom has not created yet are caught up by the periodic mirror job.
    """
    return reconcile(corp_id, MIRROR_GROUP, stage_wanted(corp_id), actor, customer_ids=[customer.id])
