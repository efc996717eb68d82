"""Customer facets (PostgreSQL): the triggers keep every customer's row equal to what the tables say,
whichever code path writes, when two transactions change one customer at once, and for statements
that touch hundreds of customers; `flask tagging facets` finds and heals rows written around them."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from sqlalchemy import select, text

from crm.models import Customer, FollowRelation, FollowUp, Tag, TagAssignment
from tests.helpers import TEST_CORP_ID
from tests.tagging.conftest import Base

UTC = dt.timezone.utc


@pytest.fixture()
def pg(db_session: Any) -> Any:
    from core.db import db

    if db.engine.dialect.name != "postgresql":
        pytest.skip("customer facets exist on PostgreSQL only (this run is on SQLite)")
    return db_session


def _facet(customer_id: int) -> dict[str, Any]:
    from core.db import db
    from tagging.segments.facets import facets

    row = db.session.execute(select(facets).where(facets.c.customer_id == customer_id)).mappings().one()
    return dict(row)


def _tag_pks(base: Base, *names: str) -> list[int]:
    from core.db import db

    return sorted(db.session.scalar(select(Tag.id).where(Tag.tag_id == base.tags[n])) for n in names)


def _in_sync() -> None:
    from tagging.segments import facets

    result = facets.check(TEST_CORP_ID)
    assert result["differing"] == 0, result


def test_facets_follow_the_fixture_writes(pg: Any, base: Base) -> None:
    _in_sync()
    b = _facet(base.customers["b"].id)
    assert b["tag_pks"] == _tag_pks(base, "A类", "B类")
    assert b["followed"] is True and b["stage"] == "成交客户"
    assert b["added_min"] == dt.datetime(2026, 2, 10, 2, tzinfo=UTC)
    assert b["added_max"] == dt.datetime(2026, 3, 1, 2, tzinfo=UTC)
    d = _facet(base.customers["d"].id)  # only a lost relation: not followed, no tags
    assert d["followed"] is False and d["tag_pks"] == [] and d["added_min"] is None


def test_facets_follow_every_write_path(pg: Any, emu: Any, app: Any) -> None:
    """Sync, callbacks' handlers, tag edits here, a lost relation, a follow-up, a stage, a deleted tag."""
    from crm.handlers import apply_tag_groups, refresh_customer
    from crm.sync import FullSync
    from tagging.catalog import service as catalog
    from tagging.segments.service import count
    from tagging.assignments.service import change_relation_tags
    from tagging.lifecycle.stages import change_stage, ensure_stages
    from wecom.client import contact_client

    db = pg
    emu.act.add_staff("zhangsan", "张三")
    emu.act.add_staff("lisi", "李四")
    _, (a, b, c) = emu.act.corp_tag_group_created("等级", ["A", "B", "C"])
    x = emu.act.customer_adds_staff("zhangsan", name="客户甲", welcome_code=False, state="expo2026")
    emu.act.customer_adds_staff("lisi", external_userid=x, welcome_code=False)
    y = emu.act.customer_adds_staff("zhangsan", name="客户乙", welcome_code=False)
    emu.act.staff_edits_tags("zhangsan", x, add=[a])
    emu.act.staff_edits_tags("lisi", x, add=[b])
    emu.act.staff_edits_tags("zhangsan", y, add=[a])

    assert FullSync(contact_client(), TEST_CORP_ID).run().status == "done"
    _in_sync()
    cx = db.scalar(select(Customer).where(Customer.external_userid == x))
    cy = db.scalar(select(Customer).where(Customer.external_userid == y))
    pk = dict(db.execute(select(Tag.tag_id, Tag.id)).all())
    assert _facet(cx.id)["tag_pks"] == sorted([pk[a], pk[b]]) and _facet(cx.id)["followed"] is True
    assert count(TEST_CORP_ID, {"state": "expo2026"}) == 1
    assert count(TEST_CORP_ID, {"wecom_tags": [a, b]}) == 2

    # a tag edit here: applied locally at once, facets with it
    rel = db.scalar(select(FollowRelation).where(FollowRelation.customer_id == cy.id))
    change_relation_tags(TEST_CORP_ID, rel, [c], [a], "zhangsan", "staff")
    db.commit()
    assert _facet(cy.id)["tag_pks"] == [pk[c]]

    # lisi deletes the customer in WeCom; the handler's re-read marks the relation lost
    emu.act.staff_deletes_customer("lisi", x)
    refresh_customer(TEST_CORP_ID, x)
    db.commit()
    assert _facet(cx.id)["tag_pks"] == [pk[a]] and count(TEST_CORP_ID, {"followed_by": ["lisi"]}) == 0
    assert count(TEST_CORP_ID, {"tag": b}) == 0

    # a follow-up and a stage
    db.add(FollowUp(corp_id=TEST_CORP_ID, customer_id=cx.id, userid="zhangsan", content="回访"))
    ensure_stages(TEST_CORP_ID)
    change_stage(TEST_CORP_ID, cy, "意向客户", "zhangsan")
    db.commit()
    assert _facet(cx.id)["last_followup_at"] is not None and _facet(cy.id)["stage"] == "意向客户"
    assert count(TEST_CORP_ID, {"no_followup_days": 7}) == 1

    # a tag deleted here (its assignments go), and a tag group arriving from WeCom
    catalog.delete(TEST_CORP_ID, "admin1", a)
    apply_tag_groups(TEST_CORP_ID, contact_client().get_corp_tag_list())
    db.commit()
    assert _facet(cx.id)["tag_pks"] == []
    _in_sync()


def test_two_transactions_changing_one_customer_both_count(pg: Any, base: Base, app: Any) -> None:
    """T1 tags one relation and holds its transaction open; T2 tags the customer's other relation and
    commits. Without the lock on the customer's facets row T2 would compute the row without T1's tag
    and overwrite it."""
    from core.db import db

    customer = base.customers["b"]
    rel_z, rel_l = base.relations[("b", "zhangsan")], base.relations[("b", "lisi")]
    jiaoyu, jinrong = _tag_pks(base, "教育")[0], _tag_pks(base, "金融")[0]
    insert = text("INSERT INTO tag_assignments (corp_id, relation_id, tag_pk, customer_id, source, created_at) "
                  "VALUES (:corp, :rel, :tag, :cid, 'staff', now())")
    first, second = db.engine.connect(), db.engine.connect()
    try:
        t1 = first.begin()
        first.execute(insert, {"corp": TEST_CORP_ID, "rel": rel_z.id, "tag": jiaoyu, "cid": customer.id})
        done = threading.Event()

        def other() -> None:
            with app.app_context(), second.begin():
                second.execute(insert, {"corp": TEST_CORP_ID, "rel": rel_l.id, "tag": jinrong, "cid": customer.id})
            done.set()

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.5)
        assert not done.is_set()  # T2's refresh waits for T1
        t1.commit()
        thread.join(10)
        assert done.is_set()
    finally:
        first.close()
        second.close()
    db.session.rollback()
    assert _facet(customer.id)["tag_pks"] == sorted(_tag_pks(base, "A类", "B类") + [jiaoyu, jinrong])
    _in_sync()


def test_statements_over_many_customers(pg: Any, base: Base) -> None:
    """A statement touching hundreds of customers (a bulk insert, a tag removed from everyone) is
    refreshed in one pass, just as exactly."""
    from core.db import db
    from tagging.segments.service import count

    n = 620
    customers = [Customer(corp_id=TEST_CORP_ID, external_userid=f"wm_bulk{i}", name=f"批量{i}") for i in range(n)]
    db.session.add_all(customers)
    db.session.flush()
    relations = [FollowRelation(corp_id=TEST_CORP_ID, customer_id=c.id, userid="wangwu", status="active",
                                added_at=dt.datetime(2026, 5, 1, tzinfo=UTC)) for c in customers]
    db.session.add_all(relations)
    db.session.flush()
    jinrong = _tag_pks(base, "金融")[0]
    db.session.add_all([TagAssignment(corp_id=TEST_CORP_ID, relation_id=r.id, tag_pk=jinrong, customer_id=r.customer_id)
                        for r in relations])
    db.session.commit()
    assert count(TEST_CORP_ID, {"tag": base.tags["金融"]}) == n + 1  # and c
    db.session.execute(TagAssignment.__table__.delete().where(TagAssignment.tag_pk == jinrong))
    db.session.execute(FollowRelation.__table__.update().where(FollowRelation.userid == "wangwu")
                       .values(status="lost"))
    db.session.commit()
    assert count(TEST_CORP_ID, {"tag": base.tags["金融"]}) == 0
    assert count(TEST_CORP_ID, {"followed_by": ["wangwu"]}) == 0
    _in_sync()


def test_facets_command_finds_and_rebuilds_rows_written_without_triggers(pg: Any, base: Base, runner: Any) -> None:
    from core.db import db

    with db.engine.begin() as conn:  # a bulk load with the triggers off
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("DELETE FROM tag_assignments WHERE customer_id = :cid"), {"cid": base.customers["a"].id})
    result = runner.invoke(args=["tagging", "facets"])
    assert result.exit_code == 1
    assert "1 facet rows differ" in result.output and str(base.customers["a"].id) in result.output
    result = runner.invoke(args=["tagging", "facets", "--rebuild"])
    assert result.exit_code == 0, result.output
    assert "rebuilt 1 facet rows" in result.output and "0 facet rows differ" in result.output
    assert _facet(base.customers["a"].id)["tag_pks"] == []


def test_facets_command_on_sqlite_says_it_is_not_used(db_session: Any, runner: Any) -> None:
    from core.db import db

    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    result = runner.invoke(args=["tagging", "facets"])
    assert result.exit_code == 0 and "PostgreSQL only" in result.output


def test_twenty_thousand_customers_in_one_transaction(pg: Any, base: Base) -> None:
    """20,000 single-row customer inserts in one transaction (then one relation and one tag each, in
    two statements): the refreshes lock facets rows, not slots of PostgreSQL's shared lock table
    (which ran out near 8,000), so the transaction holds a bounded number of locks whatever its size."""
    from core.db import db

    n = 20_000
    jinrong = _tag_pks(base, "金融")[0]
    added = dt.datetime(2026, 6, 1)
    with db.engine.connect() as conn, conn.begin():
        insert = text("INSERT INTO customers (corp_id, external_userid, name, type, gender, avatar, position, "
                      "corp_name, corp_full_name, created_at, updated_at) VALUES (:corp, :ext, :name, 1, 0, '', '', "
                      "'', '', now(), now())")
        for i in range(n):
            conn.execute(insert, {"corp": TEST_CORP_ID, "ext": f"wm_txn{i:06d}", "name": f"单事务{i}"})
        conn.execute(text("INSERT INTO follow_relations (corp_id, customer_id, userid, remark, description, "
                          "remark_corp_name, remark_mobiles, added_at, add_way, state, oper_userid, status, created_at) "
                          "SELECT corp_id, id, 'wangwu', '', '', '', '[]', :added, 0, '', '', 'active', now() "
                          "FROM customers WHERE external_userid LIKE 'wm_txn%'"), {"added": added})
        conn.execute(text("INSERT INTO tag_assignments (corp_id, relation_id, tag_pk, customer_id, source, created_at) "
                          "SELECT r.corp_id, r.id, :tag, r.customer_id, 'api', now() FROM follow_relations r "
                          "JOIN customers c ON c.id = r.customer_id WHERE c.external_userid LIKE 'wm_txn%'"),
                     {"tag": jinrong})
        held = conn.execute(text("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()")).scalar_one()
        assert held < 100, held
    db.session.rollback()
    rows = db.session.execute(text(
        "SELECT count(*) FILTER (WHERE f.followed AND f.tag_pks = ARRAY[CAST(:tag AS integer)] AND f.added_min = :added), count(*) "
        "FROM customer_facets f JOIN customers c ON c.id = f.customer_id WHERE c.external_userid LIKE 'wm_txn%'"),
        {"tag": jinrong, "added": added}).one()
    assert tuple(rows) == (n, n)
    _in_sync()


def test_the_refresh_is_planned_for_the_customers_it_is_given(pg: Any, base: Base) -> None:
    """A session's cached generic plan turns a refresh of many customers quadratic (255.7 s for 25,000
    after twenty small refreshes; 0.5 s planned for them, migration a10b0c0d0e08): the function is always
    planned with its array as a constant, and a refresh of every customer after many small ones in the
    same session still leaves every facets row right."""
    from sqlalchemy import text

    from core.db import db

    config = db.session.scalar(text("SELECT proconfig FROM pg_proc WHERE proname = 'scrm_refresh_customer_facets'"))
    assert "plan_cache_mode=force_custom_plan" in (config or [])
    ids = [c.id for c in base.customers.values()]
    for i in range(8):  # past the five calls after which a session may switch to a generic plan
        db.session.execute(text("SELECT scrm_refresh_customer_facets(:ids)"), {"ids": ids[i % len(ids):][:1]})
    db.session.execute(text("SELECT scrm_refresh_customer_facets(:ids)"), {"ids": ids})
    _in_sync()
