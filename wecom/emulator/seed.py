"""Deterministic seeding of the emulated corp: `seed="demo"` (a believable small corp) or an int N
(N customers over max(20, N/500) staff, for load tests)."""

from __future__ import annotations

import base64
import random

from .state import ChatMember, Customer, GroupChat, State, Tag, TagGroup

DAY = 86400

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严"
GIVEN = ("伟 芳 娜 敏 静 丽 强 磊 军 洋 勇 艳 杰 娟 涛 明 超 秀英 霞 平 刚 桂英 华 玉兰 建华 建国 志强 "
         "晓明 海燕 婷婷 雪 琳 晨 浩 宇 欣怡 子涵 梓萱 一诺 俊杰 思远 佳怡 文博 嘉怡 雨桐 宇航 梦瑶 "
         "振华 国庆 红梅 春燕 立新 晓燕 雅婷 亮 斌 鹏 辉 婧 倩 颖 慧 蕾 鑫 磊磊 子轩 浩然").split()
COMPANIES = ["华信科技", "远航物流", "恒通制造", "博雅教育", "康宁医疗", "金桥资本", "云启网络", "锦程零售",
             "盛达机械", "新源能源", "明德学校", "瑞丰食品", "天成建设", "星河传媒", "卓越咨询"]
POSITIONS = ["采购经理", "总经理", "IT 主管", "运营总监", "财务经理", "校长", "院长助理", "店长"]
DEPARTMENTS = {1: "总部", 2: "销售一部", 3: "销售二部", 4: "客户成功部", 5: "市场部"}
STAFF_DEMO = [
    ("zhangwei", "张伟", 2), ("lina", "李娜", 2), ("wangfang", "王芳", 2), ("liuyang", "刘洋", 2),
    ("chenjing", "陈静", 3), ("yangmin", "杨敏", 3), ("huangqiang", "黄强", 3), ("zhaolei", "赵磊", 3),
    ("wujun", "吴军", 4), ("zhoujie", "周杰", 4), ("xuli", "徐丽", 4), ("sunyan", "孙艳", 4),
    ("mataotao", "马涛涛", 5), ("zhuming", "朱明", 5), ("huchao", "胡超", 2), ("guoxia", "郭霞", 3),
    ("heping", "何平", 2), ("gaogang", "高刚", 3), ("linhua", "林华", 4), ("luoyu", "罗宇", 1),
]
TAG_GROUPS = [
    ("客户等级", ["A类", "B类", "C类"]),
    ("行业", ["教育", "医疗", "制造", "零售", "金融", "互联网"]),
    ("来源渠道", ["展会", "官网", "转介绍", "广告", "线下活动"]),
    ("意向产品", ["基础版", "专业版", "企业版", "定制开发"]),
]
CHANNEL_STATES = ["", "", "", "zhanhui2024", "guanwang", "zhuanjieshao", "ad_baidu", "xianxia_shanghai"]
ADD_WAYS = [1, 1, 1, 2, 3, 3, 4, 5, 6, 7, 201, 202]
CHAT_NAMES = ["VIP 客户交流群", "产品答疑群", "华东区客户群", "新品体验群", "培训服务群", "售后支持群",
              "教育行业交流", "医疗客户沟通群", "渠道合作伙伴群", "年度大会报名群"]


def seed_state(state: State, seed: str | int | None) -> None:
    """Fill `state` for the given seed; None leaves the corp empty (department 1 only)."""
    if seed is None:
        return
    if seed == "demo":
        _seed(state, random.Random(20240601), customers=3000, staff=None, max_follow=3, chats=40)
        return
    n = int(seed)
    if n < 0:
        raise ValueError("seed must be 'demo', None or a non-negative int")
    staff = max(20, n // 500)
    _seed(state, random.Random(n * 7919 + 1), customers=n, staff=staff, max_follow=2,
          chats=min(2000, max(10, n // 200)))


def _names(rng: random.Random, count: int) -> list[str]:
    return [rng.choice(SURNAMES) + rng.choice(GIVEN) for _ in range(count)]


def _ext_id(rng: random.Random) -> str:
    raw = base64.urlsafe_b64encode(rng.getrandbits(162).to_bytes(21, "big")).decode()[:27]
    return "wm" + raw + "AAA"


def _seed(state: State, rng: random.Random, customers: int, staff: int | None, max_follow: int,
          chats: int) -> None:
    now = state.clock.now()
    two_years = 730 * DAY
    # staff
    if staff is None:
        for userid, name, dept in STAFF_DEMO:
            state.add_member(userid, name, [dept], "销售" if dept in (2, 3) else "")
    else:
        names = _names(rng, staff)
        for i in range(staff):
            state.add_member(f"staff{i:05d}", names[i], [2 + i % 4], "销售")
    userids = list(state.staff)
    # tags
    tag_ids: list[list[str]] = []
    for g_order, (group_name, tag_names) in enumerate(TAG_GROUPS):
        gid = state.new_id("et")
        group = TagGroup(gid, group_name, now - two_years - DAY, order=len(TAG_GROUPS) - g_order)
        state.tag_groups[gid] = group
        ids = []
        for t_order, tag_name in enumerate(tag_names):
            tid = state.new_id("et")
            state.tags[tid] = Tag(tid, tag_name, gid, group.create_time, order=len(tag_names) - t_order)
            group.tag_ids.append(tid)
            ids.append(tid)
        tag_ids.append(ids)
    # customers and relations; shared name pool keeps memory flat for big seeds
    pool = sorted(set(_names(rng, 6000)))
    n_staff = len(userids)
    empty: tuple[str, ...] = ()
    tag_cache: dict[tuple[str, ...], tuple[str, ...]] = {}
    for i in range(customers):
        ext = _ext_id(rng)
        r = rng.random()
        if r < 0.15:
            company = COMPANIES[i % len(COMPANIES)]
            customer = Customer(ext, pool[i % len(pool)], 2, rng.randint(1, 2), company, company + "有限公司",
                                POSITIONS[i % len(POSITIONS)])
        else:
            customer = Customer(ext, pool[int(r * 1_000_003) % len(pool)], 1, rng.randint(0, 2))
        state.customers[ext] = customer
        follows = 1 + (rng.random() < 0.35) + (max_follow > 2 and rng.random() < 0.2)
        first = rng.randrange(n_staff)
        for k in range(min(follows, max_follow)):
            userid = userids[(first + k * 7) % n_staff]
            created = now - rng.randrange(two_years)
            tags: tuple[str, ...] = empty
            if rng.random() < 0.6:
                picked = tuple(ids[rng.randrange(len(ids))] for ids in tag_ids if rng.random() < 0.5)
                tags = tag_cache.setdefault(picked, picked)
            way = ADD_WAYS[rng.randrange(len(ADD_WAYS))]
            ch = CHANNEL_STATES[rng.randrange(len(CHANNEL_STATES))]
            state.add_relation(userid, customer, created, add_way=way,
                               oper_userid=ext if way in (1, 2, 3, 6, 7) else userid, state=ch, tags=tags)
    # group chats
    ext_ids = list(state.customers)
    for i in range(chats if ext_ids else 0):
        owner = userids[rng.randrange(n_staff)]
        chat = GroupChat(state.new_id("wr"), f"{CHAT_NAMES[i % len(CHAT_NAMES)]}{'' if i < 10 else i}",
                         owner, now - rng.randrange(two_years))
        chat.notice = "文明沟通，拒绝广告" if i % 3 == 0 else ""
        chat.members.append(ChatMember(owner, 1, chat.create_time, 1, None, state.display_name(owner)))
        for uid in rng.sample(userids, min(2, n_staff)):
            if uid != owner:
                chat.members.append(ChatMember(uid, 1, chat.create_time + 60, 1, owner, state.display_name(uid)))
        for ext in rng.sample(ext_ids, min(len(ext_ids), rng.randint(3, 25))):
            chat.members.append(ChatMember(ext, 2, chat.create_time + rng.randrange(1, 30 * DAY),
                                           *_join(rng, owner), state.customers[ext].name))
        state.bump_member_version(chat)
        state.group_chats[chat.chat_id] = chat


def _join(rng: random.Random, owner: str) -> tuple[int, str | None]:
    """join_scene and invitor: 1 direct invite / 2 invite link (by the owner), 3 QR code (no invitor)."""
    scene = rng.choice((1, 2, 3))
    return scene, owner if scene != 3 else None
