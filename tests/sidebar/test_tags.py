"""Tag changes: applied locally at once, one `mark_tag` outbox command per relation, audited, validated."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.helpers import TEST_CORP_ID
from tests.sidebar.conftest import oauth_sign_in


def _relation(db_session: Any, userid: str, external_userid: str) -> Any:
    from crm.models import Customer, FollowRelation

    return db_session.scalar(select(FollowRelation).join(Customer).where(
        FollowRelation.userid == userid, Customer.external_userid == external_userid))


def _local_tags(db_session: Any, relation: Any) -> set[str]:
    from crm.models import Tag, TagAssignment

    return set(db_session.scalars(select(Tag.tag_id).join(TagAssignment, TagAssignment.tag_pk == Tag.id)
                                  .where(TagAssignment.relation_id == relation.id)))


def test_change_applies_locally_and_enqueues_one_mark_tag(emu: Any, corp: Any, db_session: Any) -> None:
    from crm.models import AuditLog
    from tagging.assignments.service import change_relation_tags
    from wecom.models import OutboxCommand

    rel = _relation(db_session, "lisi", corp.customers["shared"])
    a, b, edu = corp.tags["A类"], corp.tags["B类"], corp.tags["教育"]
    command = change_relation_tags(TEST_CORP_ID, rel, [a, edu], [b], actor="lisi", source="staff")
    db_session.commit()
    assert _local_tags(db_session, rel) == {a, edu}
    rows = db_session.scalars(select(OutboxCommand)).all()
    assert [r.id for r in rows] == [command.id]
    assert (command.kind, command.relation_id, command.status) == ("mark_tag", rel.id, "pending")
    assert command.args == {"userid": "lisi", "external_userid": corp.customers["shared"],
                            "add_tag": [a, edu], "remove_tag": [b]}
    audit = db_session.scalars(select(AuditLog).where(AuditLog.action == "tags.change")).one()
    assert audit.actor == "lisi" and audit.detail["command_id"] == command.id


def test_no_effective_change_enqueues_nothing(emu: Any, corp: Any, db_session: Any) -> None:
    from tagging.assignments.service import change_relation_tags
    from wecom.models import OutboxCommand

    rel = _relation(db_session, "lisi", corp.customers["shared"])
    assert change_relation_tags(TEST_CORP_ID, rel, [corp.tags["B类"]], [corp.tags["C类"]], "lisi", "staff") is None
    assert db_session.scalars(select(OutboxCommand)).all() == []


def test_unknown_deleted_or_contradictory_tags_are_refused(emu: Any, corp: Any, db_session: Any) -> None:
    from crm.models import Tag
    from core.errors import UserValueError
    from core.db import utcnow
    from tagging.assignments.service import change_relation_tags

    rel = _relation(db_session, "zhangsan", corp.customers["xss"])
    with pytest.raises(UserValueError, match="标签不存在"):
        change_relation_tags(TEST_CORP_ID, rel, ["etNOPE"], [], "zhangsan", "staff")
    with pytest.raises(UserValueError, match="同时"):
        change_relation_tags(TEST_CORP_ID, rel, [corp.tags["A类"]], [corp.tags["A类"]], "zhangsan", "staff")
    db_session.scalars(select(Tag).where(Tag.tag_id == corp.tags["C类"])).one().deleted_at = utcnow()
    db_session.flush()
    with pytest.raises(UserValueError, match="已被删除"):
        change_relation_tags(TEST_CORP_ID, rel, [corp.tags["C类"]], [], "zhangsan", "staff")
    assert _local_tags(db_session, rel) == set()


def test_lost_relation_is_refused(emu: Any, corp: Any, db_session: Any) -> None:
    from core.errors import UserValueError
    from tagging.assignments.service import change_relation_tags

    rel = _relation(db_session, "zhangsan", corp.customers["xss"])
    rel.status = "lost"
    with pytest.raises(UserValueError):
        change_relation_tags(TEST_CORP_ID, rel, [corp.tags["A类"]], [], "zhangsan", "staff")


def test_tags_api_returns_202_with_the_sync_state(client: Any, emu: Any, corp: Any, db_session: Any) -> None:
    ext = corp.customers["xss"]
    oauth_sign_in(client, emu, "zhangsan")
    with client.session_transaction() as sess:
        headers = {"X-CSRF-Token": sess["csrf"]}
    answer = client.post(f"/api/v1/customers/{ext}/tags", json={"add": [corp.tags["A类"]]}, headers=headers)
    assert answer.status_code == 202
    body = answer.get_json()
    assert body["userid"] == "zhangsan" and [t["tag_id"] for t in body["tags"]] == [corp.tags["A类"]]
    assert body["sync"]["status"] == "pending" and body["sync"]["command_id"]
    again = client.post(f"/api/v1/customers/{ext}/tags", json={"add": [corp.tags["A类"]]}, headers=headers)
    assert again.get_json()["sync"]["status"] == "unchanged"
    bad = client.post(f"/api/v1/customers/{ext}/tags", json={"add": ["etNOPE"]}, headers=headers)
    assert bad.status_code == 422 and "标签不存在" in bad.get_json()["error"]["message"]
    profile = client.get(f"/api/v1/customers/{ext}").get_json()
    assert profile["follow_users"][0]["tag_sync"]["status"] == "pending"
    # a staff member cannot edit a colleague's relation outside their scope
    other = client.post(f"/api/v1/customers/{corp.customers['shared']}/tags",
                        json={"userid": "lisi", "add": [corp.tags["A类"]]}, headers=headers)
    assert other.status_code == 404
