"""The full sync against the WeCom emulator over real HTTP."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from sqlalchemy import func, select

from crm.models import Customer, FollowRelation, FollowUp, GroupChat, Staff, SyncRun, Tag, TagAssignment, TagGroup
from crm.sync import FullSync, local_counts, register_protector
from tests.helpers import TEST_CORP_ID, TEST_SETTINGS
from wecom.client import MemoryTokenStore, WeComClient, WeComError
from wecom.emulator import Emulator

BATCH = "/cgi-bin/externalcontact/batch/get_by_user"


def _emulator(seed: Any) -> Emulator:
    return Emulator(corp_id=TEST_CORP_ID, contact_secret=TEST_SETTINGS["WECOM_CONTACT_SECRET"],
                    agent_id=TEST_SETTINGS["WECOM_AGENT_ID"], agent_secret=TEST_SETTINGS["WECOM_AGENT_SECRET"],
                    token=TEST_SETTINGS["WECOM_TOKEN"], encoding_aes_key=TEST_SETTINGS["WECOM_ENCODING_AES_KEY"],
                    callback_url=None, seed=seed).start(host="127.0.0.1", port=0)


@pytest.fixture()
def emu() -> Iterator[Emulator]:
    emulator = _emulator(600)
    yield emulator
    emulator.stop()


def _client(emu: Emulator) -> WeComClient:
    return WeComClient(TEST_CORP_ID, TEST_SETTINGS["WECOM_CONTACT_SECRET"], api_base=emu.url,
                       token_store=MemoryTokenStore(), timeout=5, backoff=0.01)


def _relation_tags(db_session: Any) -> dict[tuple[str, str], set[str]]:
    rows = db_session.execute(
        select(FollowRelation.userid, Customer.external_userid, Tag.tag_id)
        .join(Customer, Customer.id == FollowRelation.customer_id)
        .join(TagAssignment, TagAssignment.relation_id == FollowRelation.id)
        .join(Tag, Tag.id == TagAssignment.tag_pk)
        .where(FollowRelation.status == "active"))
    out: dict[tuple[str, str], set[str]] = {}
    for userid, ext, tag_id in rows:
        out.setdefault((userid, ext), set()).add(tag_id)
    return out


def _emulator_relation_tags(emu: Emulator, pairs: Any) -> dict[tuple[str, str], set[str]]:
    out = {}
    for userid, ext in pairs:
        tags = set(emu.state.relation_tags(userid, ext))
        if tags:
            out[(userid, ext)] = tags
    return out


def test_full_sync_matches_the_emulator_using_batch_calls(db_session: Any, emu: Emulator) -> None:
    run = FullSync(_client(emu), TEST_CORP_ID).run()
    assert run.status == "done"
    summary = emu.state.summary()
    counts = local_counts(TEST_CORP_ID)
    for key in ("staff", "customers", "relations", "tag_groups", "tags", "group_chats"):
        assert counts[key] == summary[key], key
    # one call per page of 100 rows, never one call per customer
    assert emu.call_count("/cgi-bin/externalcontact/get") == 0
    assert emu.call_count(BATCH) <= summary["relations"] // 100 + 2 * (summary["follow_users"] // 100 + 1)
    # every relation carries exactly WeCom's tags
    pairs = db_session.execute(select(FollowRelation.userid, Customer.external_userid)
                               .join(Customer, Customer.id == FollowRelation.customer_id)).all()
    assert _relation_tags(db_session) == _emulator_relation_tags(emu, pairs)
    assert counts["tag_assignments"] > 0
    # group chats have their members
    chat = db_session.scalars(select(GroupChat)).first()
    assert chat is not None and chat.members


def test_second_sync_changes_nothing_and_heals_drift(db_session: Any, emu: Emulator) -> None:
    FullSync(_client(emu), TEST_CORP_ID).run()
    before = local_counts(TEST_CORP_ID)
    # drift: a lost tag assignment, a local rename, a relation marked lost by mistake
    assignment = db_session.scalars(select(TagAssignment)).first()
    tag = db_session.get(Tag, assignment.tag_pk)
    real_name = tag.name
    db_session.delete(assignment)
    tag.name = "被改错的名字"
    relation = db_session.scalars(select(FollowRelation)).first()
    relation.status, relation.lost_reason = "lost", "del_external_contact"
    db_session.commit()

    run = FullSync(_client(emu), TEST_CORP_ID).run(resume=False)
    assert local_counts(TEST_CORP_ID) == before
    assert db_session.get(Tag, tag.id).name == real_name
    assert run.counts["tags_healed"] >= 1 and run.counts["relations_healed"] >= 1
    assert run.counts["tags_added"] >= 1


def test_what_disappeared_in_wecom_is_tombstoned_and_history_kept(db_session: Any, emu: Emulator) -> None:
    FullSync(_client(emu), TEST_CORP_ID).run()
    rel = db_session.scalars(select(FollowRelation)).first()
    customer = db_session.get(Customer, rel.customer_id)
    db_session.add(FollowUp(corp_id=TEST_CORP_ID, customer_id=customer.id, userid=rel.userid, content="回访过"))
    db_session.commit()
    # changes made in WeCom while callbacks were not delivered (no callback URL)
    emu.act.staff_deletes_customer(rel.userid, customer.external_userid)
    some_tag = db_session.scalars(select(Tag).where(Tag.deleted_at.is_(None))).first()
    emu.act.corp_tag_deleted(some_tag.tag_id)
    emu.wait_idle(timeout=5)

    FullSync(_client(emu), TEST_CORP_ID).run(resume=False)
    db_session.expire_all()
    rel = db_session.get(FollowRelation, rel.id)
    assert rel.status == "lost" and rel.lost_reason == "sync" and rel.lost_at is not None
    assert db_session.scalar(select(func.count()).select_from(FollowUp)) == 1  # history is ours
    tag = db_session.get(Tag, some_tag.id)
    assert tag.deleted_at is not None  # tombstone: the row stays, so history still reads
    assert not db_session.scalars(select(TagAssignment).where(TagAssignment.tag_pk == tag.id)).all()


def test_interrupted_sync_resumes_from_its_cursor(db_session: Any, emu: Emulator) -> None:
    client = _client(emu)
    real = client.iter_batch_get_by_user
    pages_before_failure = 3

    def failing(*args: Any, **kwargs: Any) -> Any:
        for n, page in enumerate(real(*args, **kwargs)):
            if n == pages_before_failure:
                raise WeComError(-1, "system busy", BATCH)
            yield page

    client.iter_batch_get_by_user = failing  # type: ignore[method-assign]
    with pytest.raises(WeComError):
        FullSync(client, TEST_CORP_ID).run()
    failed = db_session.scalars(select(SyncRun)).one()
    assert failed.status == "failed" and failed.progress["cursor"]
    calls_before = emu.call_count(BATCH)

    run = FullSync(_client(emu), TEST_CORP_ID).run()
    assert run.id == failed.id and run.status == "done"
    summary = emu.state.summary()
    assert local_counts(TEST_CORP_ID)["relations"] == summary["relations"]
    # the resumed run did not start over: together both runs read each page about once
    total_pages = emu.call_count(BATCH)
    assert total_pages - calls_before < total_pages - pages_before_failure + 1


def test_pending_local_change_is_not_undone(db_session: Any, emu: Emulator, app: Any) -> None:
    FullSync(_client(emu), TEST_CORP_ID).run()
    rel = db_session.scalars(select(FollowRelation).where(FollowRelation.tags.any())).first()
    # a local tag edit waiting in the outbox: its relation is protected
    db_session.query(TagAssignment).filter(TagAssignment.relation_id == rel.id).delete()
    db_session.commit()
    protected_id = rel.id
    protectors = app.extensions.setdefault("scrm.sync.protectors", [])
    saved = list(protectors)
    register_protector(app, lambda corp_id, ids: {protected_id} & set(ids))
    try:
        run = FullSync(_client(emu), TEST_CORP_ID).run(resume=False)
    finally:
        protectors[:] = saved
    assert run.counts["relations_protected"] == 1
    assert not db_session.scalars(select(TagAssignment).where(TagAssignment.relation_id == protected_id)).all()
    assert db_session.get(FollowRelation, protected_id).status == "active"


def test_resigned_staff_are_marked(db_session: Any, emu: Emulator) -> None:
    FullSync(_client(emu), TEST_CORP_ID).run()
    userid = db_session.scalars(select(Staff.userid)).first()
    emu.act.staff_resigns(userid)
    emu.wait_idle(timeout=5)
    FullSync(_client(emu), TEST_CORP_ID).run(resume=False)
    staff = db_session.scalar(select(Staff).where(Staff.userid == userid))
    db_session.refresh(staff)
    assert staff.status == "resigned"
    # their customers wait for handover: the relations are not lost
    assert db_session.scalar(select(func.count()).select_from(FollowRelation)
                             .where(FollowRelation.userid == userid, FollowRelation.status == "active")) > 0


def test_tag_groups_match(db_session: Any, emu: Emulator) -> None:
    FullSync(_client(emu), TEST_CORP_ID).run()
    names = set(db_session.scalars(select(TagGroup.name)))
    assert {"客户等级", "行业", "来源渠道"} <= names
