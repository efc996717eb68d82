"""Drift report: compare the local tag catalog and tag assignments with WeCom's and list every difference.

`compute_drift` reads WeCom (`get_corp_tag_list`, `get_follow_user_list`, `batch/get_by_user`) and the
local tables and returns the differences; relations with a tag change still pending in the outbox are
not drift (the local change wins until it is answered) and are only counted. `heal` applies WeCom's
state to what differs (catalog re-read whole, each drifted customer re-read) and `run_report` stores a
`DriftReport` with what was found and what healing changed. The nightly job runs it with healing.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from core.db import db, utcnow
from crm.handlers import apply_customer_detail, apply_tag_groups, mark_all_lost, read_customer
from crm.models import Customer, FollowRelation, Tag, TagAssignment, TagGroup, is_provisional
from crm.service import audit
from wecom.service import pending_relation_ids

from .models import DriftReport

log = logging.getLogger("scrm.tagging.drift")

MAX_STORED = 2000


def _catalog_drift(corp_id: str, remote: list[dict[str, Any]]) -> list[dict[str, Any]]:
    diffs: list[dict[str, Any]] = []
    groups = {g.group_id: g for g in db.session.scalars(select(TagGroup).where(TagGroup.corp_id == corp_id))}
    tags = {t.tag_id: t for t in db.session.scalars(select(Tag).where(Tag.corp_id == corp_id))}
    seen_g: set[str] = set()
    seen_t: set[str] = set()
    for g in remote:
        seen_g.add(g["group_id"])
        local = groups.get(g["group_id"])
        if local is None or local.deleted_at is not None:
            diffs.append({"kind": "group_missing_locally", "id": g["group_id"], "wecom": g["group_name"]})
        elif local.name != g["group_name"]:
            diffs.append({"kind": "group_name", "id": g["group_id"], "local": local.name, "wecom": g["group_name"]})
        for t in g.get("tag") or []:
            seen_t.add(t["id"])
            lt = tags.get(t["id"])
            if lt is None or lt.deleted_at is not None:
                diffs.append({"kind": "tag_missing_locally", "id": t["id"], "wecom": t["name"]})
                continue
            if lt.name != t["name"]:
                diffs.append({"kind": "tag_name", "id": t["id"], "local": lt.name, "wecom": t["name"]})
            if lt.group.group_id != g["group_id"]:
                diffs.append({"kind": "tag_group", "id": t["id"], "local": lt.group.group_id, "wecom": g["group_id"]})
            if int(lt.order) != int(t.get("order") or 0):
                diffs.append({"kind": "tag_order", "id": t["id"], "local": lt.order, "wecom": int(t.get("order") or 0)})
    for gid, g in groups.items():
        if gid not in seen_g and g.deleted_at is None and not is_provisional(gid):
            diffs.append({"kind": "group_missing_in_wecom", "id": gid, "local": g.name})
    for tid, t in tags.items():
        if tid not in seen_t and t.deleted_at is None and not is_provisional(tid):
            diffs.append({"kind": "tag_missing_in_wecom", "id": tid, "local": t.name})
    return diffs


def _local_relations(corp_id: str) -> dict[tuple[str, str], tuple[int, str, set[str]]]:
    """(external_userid, userid) → (relation id, status, corp tag ids)."""
    rels: dict[tuple[str, str], tuple[int, str, set[str]]] = {}
    for rid, ext, userid, status in db.session.execute(
            select(FollowRelation.id, Customer.external_userid, FollowRelation.userid, FollowRelation.status)
            .join(Customer, Customer.id == FollowRelation.customer_id).where(FollowRelation.corp_id == corp_id)):
        rels[(ext, userid)] = (rid, status, set())
    by_id = {v[0]: v for v in rels.values()}
    for rid, tag_id in db.session.execute(select(TagAssignment.relation_id, Tag.tag_id)
                                          .join(Tag, Tag.id == TagAssignment.tag_pk)
                                          .where(TagAssignment.corp_id == corp_id)):
        if rid in by_id:
            by_id[rid][2].add(tag_id)
    return rels


def compute_drift(corp_id: str, client: Any) -> dict[str, Any]:
    """Every difference between local state and WeCom's: {"differences": [...], "counts": {...}}."""
    remote_catalog = client.get_corp_tag_list()
    diffs = _catalog_drift(corp_id, remote_catalog)
    known_tags = {t["id"] for g in remote_catalog for t in g.get("tag") or []}
    local = _local_relations(corp_id)
    pending = pending_relation_ids(corp_id, [v[0] for v in local.values()])
    follow_users = sorted(set(client.get_follow_user_list()))
    seen: set[tuple[str, str]] = set()
    relations = protected = 0
    for i in range(0, len(follow_users), 100):
        for page in client.iter_batch_get_by_user(follow_users[i:i + 100]):
            for row in page.items:
                ext, info = row["external_contact"]["external_userid"], row["follow_info"]
                key = (ext, info["userid"])
                seen.add(key)
                relations += 1
                remote_tags = {t for t in info.get("tag_id") or [] if t in known_tags}
                mine = local.get(key)
                if mine is None:
                    diffs.append({"kind": "relation_missing_locally", "external_userid": ext, "userid": key[1]})
                    continue
                if mine[0] in pending:
                    protected += 1
                    continue
                if mine[1] != "active":
                    diffs.append({"kind": "relation_lost_locally", "external_userid": ext, "userid": key[1]})
                    continue
                if mine[2] != remote_tags:
                    diffs.append({"kind": "relation_tags", "external_userid": ext, "userid": key[1],
                                  "only_local": sorted(mine[2] - remote_tags),
                                  "only_wecom": sorted(remote_tags - mine[2])})
    following = set(follow_users)
    for key, (rid, status, _) in local.items():
        if status == "active" and key[1] in following and key not in seen and rid not in pending:
            diffs.append({"kind": "relation_missing_in_wecom", "external_userid": key[0], "userid": key[1]})
    counts: dict[str, int] = {"differences": len(diffs), "relations_checked": relations,
                              "relations_pending": protected}
    for d in diffs:
        counts[d["kind"]] = counts.get(d["kind"], 0) + 1
    return {"differences": diffs, "counts": counts}


def heal(corp_id: str, diffs: list[dict[str, Any]], client: Any) -> list[dict[str, Any]]:
    """Apply WeCom's state where it differs (flush): the whole catalog when it drifted, each drifted customer."""
    healed: list[dict[str, Any]] = []
    if any(not d["kind"].startswith("relation_") for d in diffs):
        apply_tag_groups(corp_id, client.get_corp_tag_list(), complete=True)
        healed += [d for d in diffs if not d["kind"].startswith("relation_")]
    customers = sorted({d["external_userid"] for d in diffs if d["kind"].startswith("relation_")})
    for ext in customers:
        data = read_customer(ext, client)
        if data is None:
            mark_all_lost(corp_id, ext, utcnow(), "sync")
        else:
            apply_customer_detail(corp_id, data, client)
        healed += [d for d in diffs if d.get("external_userid") == ext]
    db.session.flush()
    return healed


def run_report(corp_id: str, client: Any, *, do_heal: bool = False, trigger: str = "manual") -> DriftReport:
    """Compute the drift, heal it if asked (then check again), store and commit the report."""
    found = compute_drift(corp_id, client)
    db.session.rollback()  # nothing held across the WeCom reads
    healed: list[dict[str, Any]] = []
    counts = dict(found["counts"])
    if do_heal and found["differences"]:
        healed = heal(corp_id, found["differences"], client)
        db.session.commit()
        after = compute_drift(corp_id, client)
        counts.update(healed=len(healed), remaining=after["counts"]["differences"])
    report = DriftReport(corp_id=corp_id, trigger=trigger, counts=counts,
                         differences=found["differences"][:MAX_STORED], healed=healed[:MAX_STORED])
    db.session.add(report)
    audit(corp_id, trigger if trigger != "manual" else "console", "tags.drift", "corp", corp_id, counts)
    db.session.commit()
    log.info("tagging.drift corp=%s counts=%s", corp_id, counts)
    return report


def latest_report(corp_id: str) -> DriftReport | None:
    return db.session.scalar(select(DriftReport).where(DriftReport.corp_id == corp_id)
                             .order_by(DriftReport.id.desc()).limit(1))
