"""Every `WeComClient` method against the WeCom emulator over real HTTP, error paths included."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

from tests.helpers import TEST_CORP_ID, TEST_SETTINGS
from wecom.client import DatabaseTokenStore, MemoryTokenStore, Page, WeComClient, WeComError
from wecom.emulator import Emulator

CONTACT_SECRET = TEST_SETTINGS["WECOM_CONTACT_SECRET"]
AGENT_SECRET = TEST_SETTINGS["WECOM_AGENT_SECRET"]
AGENT_ID = TEST_SETTINGS["WECOM_AGENT_ID"]
GETTOKEN = "/cgi-bin/gettoken"
MARK_TAG = "/cgi-bin/externalcontact/mark_tag"
FOLLOW_USERS = "/cgi-bin/externalcontact/get_follow_user_list"


@pytest.fixture()
def emu() -> Iterator[Emulator]:
    emulator = Emulator(corp_id=TEST_CORP_ID, contact_secret=CONTACT_SECRET, agent_id=AGENT_ID,
                        agent_secret=AGENT_SECRET, token=TEST_SETTINGS["WECOM_TOKEN"],
                        encoding_aes_key=TEST_SETTINGS["WECOM_ENCODING_AES_KEY"], callback_url=None,
                        seed=None).start(host="127.0.0.1", port=0)
    try:
        yield emulator
    finally:
        emulator.stop()


def make_client(emu: Emulator, secret: str = CONTACT_SECRET, **kwargs: Any) -> WeComClient:
    options: dict[str, Any] = {"token_store": MemoryTokenStore(), "timeout": 5.0, "backoff": 0.01}
    options.update(kwargs)
    return WeComClient(TEST_CORP_ID, secret, api_base=emu.url, **options)


@pytest.fixture()
def contact(emu: Emulator) -> WeComClient:
    return make_client(emu)


@pytest.fixture()
def agent(emu: Emulator) -> WeComClient:
    return make_client(emu, AGENT_SECRET)


@pytest.fixture()
def world(emu: Emulator, contact: WeComClient) -> dict[str, Any]:
    """Three members, four customers (one shared), a tag group with two tags, one group chat."""
    for userid, name in (("zhangsan", "张三"), ("lisi", "李四"), ("wangwu", "王五")):
        emu.act.add_staff(userid, name)
    c1 = emu.act.customer_adds_staff("zhangsan", name="客户一", state="channel-a")
    c2 = emu.act.customer_adds_staff("zhangsan", name="客户二")
    c3 = emu.act.customer_adds_staff("zhangsan", name="客户三")
    emu.act.customer_adds_staff("lisi", name="客户一", external_userid=c1)
    c4 = emu.act.customer_adds_staff("wangwu", name="客户四")
    group = contact.add_corp_tag(group_name="客户等级", tags=[{"name": "重要"}, {"name": "普通"}])
    chat = emu.act.group_chat_created("zhangsan", ["lisi", c1, c2], "销售客服群")
    return {"customers": [c1, c2, c3, c4], "group": group, "tags": [t["id"] for t in group["tag"]], "chat": chat}


# ---------------------------------------------------------------- §4 customers and tags


def test_customer_reads(emu: Emulator, contact: WeComClient, world: dict[str, Any]) -> None:
    c1, c2, c3, c4 = world["customers"]
    assert sorted(contact.get_follow_user_list()) == ["lisi", "wangwu", "zhangsan"]
    assert sorted(contact.list_external_contacts("zhangsan")) == sorted([c1, c2, c3])
    detail = contact.get_external_contact(c1)
    assert detail["external_contact"]["external_userid"] == c1
    assert detail["external_contact"]["name"] == "客户一"
    assert sorted(f["userid"] for f in detail["follow_user"]) == ["lisi", "zhangsan"]
    assert [f.get("state") for f in detail["follow_user"] if f["userid"] == "zhangsan"] == ["channel-a"]
    user = contact.get_user("zhangsan")
    assert user["userid"] == "zhangsan" and user["name"] == "张三" and "department" in user
    with pytest.raises(WeComError) as info:
        contact.get_user("nobody")
    assert info.value.errcode == 60111


def test_batch_get_by_user_pages_and_resumes(emu: Emulator, contact: WeComClient, world: dict[str, Any]) -> None:
    page = contact.batch_get_by_user(["zhangsan", "lisi", "wangwu"], limit=2)
    assert isinstance(page, Page) and len(page.items) == 2 and page.next_cursor
    pages = list(contact.iter_batch_get_by_user(["zhangsan", "lisi", "wangwu"], limit=2))
    assert [len(p.items) for p in pages] == [2, 2, 1] and pages[-1].next_cursor == ""
    rows = [(r["follow_info"]["userid"], r["external_contact"]["external_userid"]) for p in pages for r in p.items]
    assert len(set(rows)) == emu.state.summary()["relations"] == 5
    # resuming from a saved cursor yields the rest
    resumed = list(contact.iter_batch_get_by_user(["zhangsan", "lisi", "wangwu"], cursor=pages[0].next_cursor,
                                                  limit=2))
    assert [r for p in resumed for r in p.items] == [r for p in pages[1:] for r in p.items]


def test_customer_detail_merges_more_than_500_followers(emu: Emulator, contact: WeComClient) -> None:
    emu.act.add_staff("u000", "成员0")
    ext = emu.act.customer_adds_staff("u000", name="大客户", welcome_code=False)
    for i in range(1, 503):
        emu.act.add_staff(f"u{i:03d}", f"成员{i}")
        emu.act.customer_adds_staff(f"u{i:03d}", name="大客户", external_userid=ext, welcome_code=False)
    detail = contact.get_external_contact(ext)
    assert len(detail["follow_user"]) == 503
    assert len({f["userid"] for f in detail["follow_user"]}) == 503
    assert emu.call_count("/cgi-bin/externalcontact/get") == 2


def test_remark_and_corp_tags(emu: Emulator, contact: WeComClient, world: dict[str, Any]) -> None:
    c1 = world["customers"][0]
    contact.remark("zhangsan", c1, remark="王总", description="采购负责人", remark_mobiles=["13800000001"])
    follow = [f for f in contact.get_external_contact(c1)["follow_user"] if f["userid"] == "zhangsan"][0]
    assert (follow["remark"], follow["description"], follow["remark_mobiles"]) == \
        ("王总", "采购负责人", ["13800000001"])

    important, normal = world["tags"]
    group_id = world["group"]["group_id"]
    assert world["group"]["group_name"] == "客户等级"
    more = contact.add_corp_tag(group_id=group_id, tags=[{"name": "流失"}])
    assert more["group_id"] == group_id and [t["name"] for t in more["tag"]] == ["流失"]
    lost = more["tag"][0]["id"]
    contact.edit_corp_tag(important, name="非常重要", order=5)
    groups = contact.get_corp_tag_list()
    assert [g["group_id"] for g in groups] == [group_id]
    assert {t["id"]: t["name"] for t in groups[0]["tag"]} == {important: "非常重要", normal: "普通", lost: "流失"}
    assert [t["id"] for t in contact.get_corp_tag_list(tag_ids=[normal])[0]["tag"]] == [normal]
    assert contact.get_corp_tag_list(group_ids=[group_id])[0]["group_id"] == group_id

    contact.mark_tag("zhangsan", c1, add_tag=[important, lost])
    assert emu.state.relation_tags("zhangsan", c1) == {important, lost}
    contact.mark_tag("zhangsan", c1, add_tag=[normal], remove_tag=[lost])
    assert emu.state.relation_tags("zhangsan", c1) == {important, normal}
    assert emu.state.relation_tags("lisi", c1) == set()  # tags belong to one relation

    contact.del_corp_tag(tag_ids=[lost])
    assert lost not in {t["id"] for g in contact.get_corp_tag_list() for t in g["tag"]}
    contact.del_corp_tag(group_ids=[group_id])
    assert contact.get_corp_tag_list() == []


# ---------------------------------------------------------------- §5 handover


def test_on_the_job_transfer(emu: Emulator, contact: WeComClient, world: dict[str, Any]) -> None:
    c1, c2, c3, _ = world["customers"]
    results = contact.transfer_customer("zhangsan", "wangwu", [c2, c3, "wmUNKNOWN"],
                                        transfer_success_msg="您好，后续由王五为您服务")
    assert {r["external_userid"]: r["errcode"] for r in results} == {c2: 0, c3: 0, "wmUNKNOWN": 40096}
    waiting = {r["external_userid"]: r for r in contact.iter_transfer_result("zhangsan", "wangwu")}
    assert set(waiting) == {c2, c3} and {r["status"] for r in waiting.values()} == {2}
    emu.clock.advance(24 * 3600 + 1)
    done = {r["external_userid"]: r["status"] for r in contact.iter_transfer_result("zhangsan", "wangwu")}
    assert done == {c2: 1, c3: 1}
    assert sorted(contact.list_external_contacts("wangwu")) == sorted([c2, c3, world["customers"][3]])


def test_resigned_transfer_and_unassigned_list(emu: Emulator, contact: WeComClient,
                                               world: dict[str, Any]) -> None:
    c1, c2, c3, _ = world["customers"]
    with pytest.raises(WeComError) as info:
        contact.resigned_transfer_customer("zhangsan", "lisi", [c2])
    assert info.value.errcode == 40097  # not resigned yet
    emu.act.staff_resigns("zhangsan")
    pending = list(contact.iter_unassigned(page_size=2))
    assert sorted(r["external_userid"] for r in pending) == sorted([c1, c2, c3])
    assert {r["handover_userid"] for r in pending} == {"zhangsan"}
    results = contact.resigned_transfer_customer("zhangsan", "lisi", [c2, c3])
    assert [r["errcode"] for r in results] == [0, 0]
    rows = list(contact.iter_resigned_transfer_result("zhangsan", "lisi"))
    assert sorted(r["external_userid"] for r in rows) == sorted([c2, c3])
    assert [r["external_userid"] for r in contact.iter_unassigned()] == [c1]


def test_group_chat_transfers(emu: Emulator, contact: WeComClient, world: dict[str, Any]) -> None:
    chat = world["chat"]
    assert contact.groupchat_onjob_transfer([chat], "lisi") == []
    assert contact.get_groupchat(chat)["owner"] == "lisi"
    failed = contact.groupchat_transfer([chat], "wangwu")  # lisi has not resigned
    assert [(f["chat_id"], f["errcode"]) for f in failed] == [(chat, 90500)]
    emu.act.staff_resigns("lisi")
    assert contact.groupchat_transfer([chat], "wangwu") == []
    assert contact.get_groupchat(chat)["owner"] == "wangwu"


# ---------------------------------------------------------------- §6 group chats


def test_group_chats(emu: Emulator, contact: WeComClient, world: dict[str, Any]) -> None:
    second = emu.act.group_chat_created("zhangsan", [world["customers"][2]], "售后群")
    other = emu.act.group_chat_created("wangwu", [world["customers"][3]], "王五的群")
    chats = list(contact.iter_groupchats(owner_userids=["zhangsan"], limit=1))
    assert sorted(c["chat_id"] for c in chats) == sorted([world["chat"], second])
    assert emu.call_count("/cgi-bin/externalcontact/groupchat/list") == 2
    everything = {c["chat_id"] for c in contact.iter_groupchats()}
    assert everything == {world["chat"], second, other}
    chat = contact.get_groupchat(world["chat"])
    assert chat["name"] == "销售客服群" and chat["owner"] == "zhangsan"
    assert {m["userid"] for m in chat["member_list"]} >= {"lisi", world["customers"][0], world["customers"][1]}
    assert "name" not in contact.get_groupchat(world["chat"], need_name=False)["member_list"][0]


# ---------------------------------------------------------------- §7 mass messages, welcome, media


def test_mass_message_lifecycle(emu: Emulator, contact: WeComClient, world: dict[str, Any]) -> None:
    c1, c2, _, _ = world["customers"]
    media = contact.upload_media("image", "海报.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png")
    assert media["type"] == "image" and media["media_id"]
    before = int(time.time()) - 3600
    created = contact.add_msg_template({
        "chat_type": "single", "external_userid": [c1, c2, "wmNOBODY"], "sender": "zhangsan",
        "text": {"content": "双十一活动"},
        "attachments": [{"msgtype": "image", "image": {"media_id": media["media_id"]}}]})
    msgid = created["msgid"]
    assert msgid and created["fail_list"] == ["wmNOBODY"]
    listed = list(contact.iter_groupmsg_list("single", before, before + 7200))
    assert [m["msgid"] for m in listed] == [msgid]
    assert listed[0]["text"] == {"content": "双十一活动"}
    assert [(t["userid"], t["status"]) for t in contact.iter_groupmsg_task(msgid)] == [("zhangsan", 0)]
    emu.act.staff_sends_groupmsg(msgid, "zhangsan")
    assert [t["status"] for t in contact.iter_groupmsg_task(msgid)] == [2]
    results = {r["external_userid"]: r["status"] for r in contact.iter_groupmsg_send_result(msgid, "zhangsan")}
    assert results == {c1: 1, c2: 1}

    second = contact.add_msg_template({"chat_type": "single", "sender": "wangwu", "text": {"content": "提醒"}})
    contact.remind_groupmsg_send(second["msgid"])
    contact.cancel_groupmsg_send(second["msgid"])
    with pytest.raises(WeComError) as info:
        contact.remind_groupmsg_send(second["msgid"])
    assert info.value.errcode == 41093


def test_welcome_message(emu: Emulator, contact: WeComClient) -> None:
    emu.act.add_staff("zhangsan", "张三")
    ext = emu.act.customer_adds_staff("zhangsan", name="新客户")
    code = next(c for c, e in emu.state.welcome_codes.items() if e["external_userid"] == ext)
    contact.send_welcome_msg(code, text="您好，我是张三", attachments=[
        {"msgtype": "link", "link": {"title": "产品手册", "url": "https://example.com/manual"}}])
    with pytest.raises(WeComError) as info:
        contact.send_welcome_msg(code, text="again")
    assert info.value.errcode == 41051


# ---------------------------------------------------------------- app messages, tickets, OAuth


def test_app_message_tickets_and_oauth(emu: Emulator, contact: WeComClient, agent: WeComClient) -> None:
    emu.act.add_staff("zhangsan", "张三")
    sent = agent.send_app_message(int(AGENT_ID), ["zhangsan", "ghost"], text="您有新的客户")
    assert sent["invaliduser"] == "ghost" and sent["msgid"]
    card = agent.send_app_message(int(AGENT_ID), ["zhangsan"], textcard={
        "title": "转接完成", "description": "3 位客户已转给您", "url": "http://127.0.0.1/x"})
    assert card["msgid"]
    with pytest.raises(WeComError) as info:
        contact.send_app_message(int(AGENT_ID), ["zhangsan"], text="wrong token")
    assert info.value.errcode == 48002

    corp_ticket = contact.get_jsapi_ticket()
    agent_ticket = agent.get_agent_ticket()
    assert corp_ticket and agent_ticket and corp_ticket != agent_ticket
    assert contact.get_jsapi_ticket() == corp_ticket and agent.get_agent_ticket() == agent_ticket
    assert emu.call_count("/cgi-bin/get_jsapi_ticket") == 1 and emu.call_count("/cgi-bin/ticket/get") == 1
    with pytest.raises(WeComError) as info:
        contact.get_agent_ticket()  # the agent ticket needs the app's token
    assert info.value.errcode == 42012

    code = emu.oauth_code("zhangsan")
    assert agent.get_user_info(code)["userid"] == "zhangsan"
    with pytest.raises(WeComError) as info:
        agent.get_user_info(code)  # single use
    assert info.value.errcode == 40029


# ---------------------------------------------------------------- §9.1 contact ways


def test_contact_ways(emu: Emulator, contact: WeComClient) -> None:
    emu.act.add_staff("zhangsan", "张三")
    emu.act.add_staff("lisi", "李四")
    created = contact.add_contact_way(type=1, scene=2, user=["zhangsan"], state="poster-1", remark="海报")
    config_id = created["config_id"]
    assert created["qr_code"]
    way = contact.get_contact_way(config_id)
    assert way["state"] == "poster-1" and way["user"] == ["zhangsan"]
    contact.update_contact_way(config_id, remark="新海报", user=["lisi"])
    assert contact.get_contact_way(config_id)["user"] == ["lisi"]
    second = contact.add_contact_way(type=2, scene=1, user=["zhangsan", "lisi"])["config_id"]
    assert sorted(contact.iter_contact_ways(limit=1)) == sorted([config_id, second])
    contact.del_contact_way(config_id)
    assert list(contact.iter_contact_ways()) == [second]
    with pytest.raises(WeComError):
        contact.get_contact_way(config_id)


# ---------------------------------------------------------------- error paths end to end


def test_expired_token_is_refreshed_transparently(emu: Emulator, contact: WeComClient) -> None:
    emu.act.add_staff("zhangsan", "张三")
    first = contact.access_token()
    assert contact.get_follow_user_list() == ["zhangsan"]
    emu.expire_tokens()
    assert contact.get_follow_user_list() == ["zhangsan"]
    assert contact.access_token() != first
    assert emu.call_count(GETTOKEN) == 2
    assert emu.call_count(FOLLOW_USERS) == 3  # ok, rejected, ok again


def test_rate_limit_then_success(emu: Emulator, contact: WeComClient) -> None:
    emu.act.add_staff("zhangsan", "张三")
    contact.access_token()
    emu.faults.add(path=FOLLOW_USERS, errcode=45009, times=2)
    assert contact.get_follow_user_list() == ["zhangsan"]
    assert emu.call_count(FOLLOW_USERS) == 3


def test_server_error_then_success(emu: Emulator, contact: WeComClient) -> None:
    emu.act.add_staff("zhangsan", "张三")
    contact.access_token()
    emu.faults.add(path=FOLLOW_USERS, http_status=502, times=1)
    assert contact.get_follow_user_list() == ["zhangsan"]
    assert emu.call_count(FOLLOW_USERS) == 2


def test_timeout_then_success(emu: Emulator, world: dict[str, Any]) -> None:
    client = make_client(emu, timeout=0.3)
    c1 = world["customers"][0]
    important = world["tags"][0]
    client.access_token()
    emu.faults.add(path=MARK_TAG, delay=1.0, times=1)
    client.mark_tag("zhangsan", c1, add_tag=[important])
    assert emu.call_count(MARK_TAG) == 2
    assert emu.state.relation_tags("zhangsan", c1) == {important}


def test_retry_cap_against_a_busy_server(emu: Emulator, contact: WeComClient) -> None:
    emu.act.add_staff("zhangsan", "张三")
    contact.access_token()
    emu.faults.add(path=FOLLOW_USERS, errcode=-1, times=10)
    with pytest.raises(WeComError) as info:
        contact.get_follow_user_list()
    assert (info.value.errcode, info.value.path) == (-1, FOLLOW_USERS)
    assert emu.call_count(FOLLOW_USERS) == 4  # 1 + max_retries
    emu.faults.clear()
    assert contact.get_follow_user_list() == ["zhangsan"]


def test_permanent_errors_are_not_retried(emu: Emulator, contact: WeComClient, world: dict[str, Any]) -> None:
    c1, c2 = world["customers"][:2]
    with pytest.raises(WeComError) as info:
        contact.mark_tag("zhangsan", c1, add_tag=["etNOSUCHTAG"])
    assert (info.value.errcode, info.value.path, info.value.transient) == (40068, MARK_TAG, False)
    assert emu.call_count(MARK_TAG) == 1
    with pytest.raises(WeComError) as info:
        contact.transfer_customer("zhangsan", "zhangsan", [c2])
    assert info.value.errcode == 40130
    assert emu.call_count("/cgi-bin/externalcontact/transfer_customer") == 1


def test_bad_secret_is_raised_after_one_gettoken(emu: Emulator) -> None:
    client = make_client(emu, "not-the-secret")
    with pytest.raises(WeComError) as info:
        client.get_follow_user_list()
    assert (info.value.errcode, info.value.path) == (40001, GETTOKEN)
    assert emu.call_count(GETTOKEN) == 1
    assert emu.call_count(FOLLOW_USERS) == 0


def test_database_token_store_shares_tokens_between_clients(emu: Emulator, db_session: Any) -> None:
    emu.act.add_staff("zhangsan", "张三")
    first = make_client(emu, token_store=DatabaseTokenStore())
    second = make_client(emu, token_store=DatabaseTokenStore())
    assert first.get_follow_user_list() == second.get_follow_user_list() == ["zhangsan"]
    assert emu.call_count(GETTOKEN) == 1
    make_client(emu, AGENT_SECRET, token_store=DatabaseTokenStore()).access_token()
    assert emu.call_count(GETTOKEN) == 2
