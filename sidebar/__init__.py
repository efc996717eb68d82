"""The chat sidebar page, JS-SDK signatures and staff sign-in (OAuth in WeCom, web login in a browser)."""

from __future__ import annotations

import datetime as dt

from flask import Flask

CHINA = dt.timezone(dt.timedelta(hours=8))
ADD_WAYS = {0: "未知来源", 1: "扫描二维码", 2: "搜索手机号", 3: "名片分享", 4: "群聊", 5: "手机通讯录",
            6: "微信联系人", 7: "微信好友申请", 8: "第三方应用自动添加", 9: "搜索邮箱", 10: "视频号",
            11: "日程参与人", 12: "会议参与人", 13: "微信好友的企业微信", 14: "智慧硬件专属客服",
            15: "上门服务客服", 201: "内部成员共享", 202: "管理员/负责人分配"}


def _parse(value: str | dt.datetime | None) -> dt.datetime | None:
    if value is None or value == "":
        return None
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(CHINA)


def china_date(value: str | dt.datetime | None) -> str:
    moment = _parse(value)
    return moment.strftime("%Y-%m-%d") if moment else "—"


def china_datetime(value: str | dt.datetime | None) -> str:
    moment = _parse(value)
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "—"


def add_way_label(value: int | None) -> str:
    return ADD_WAYS.get(int(value or 0), "其他")


def init_app(app: Flask) -> None:
    from .api import bp as api_bp
    from .auth import bp as auth_bp
    from .routes import bp as sidebar_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(sidebar_bp)
    app.register_blueprint(api_bp)
    app.add_template_filter(china_date, "china_date")
    app.add_template_filter(china_datetime, "china_datetime")
    app.add_template_filter(add_way_label, "add_way_label")
