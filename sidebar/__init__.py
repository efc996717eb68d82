"""The chat sidebar page, JS-SDK signatures and staff sign-in (OAuth in WeCom, web login in a browser)."""

from __future__ import annotations

from flask import Flask

ADD_WAYS = {0: "未知来源", 1: "扫描二维码", 2: "搜索手机号", 3: "名片分享", 4: "群聊", 5: "手机通讯录",
            6: "微信联系人", 7: "微信好友申请", 8: "第三方应用自动添加", 9: "搜索邮箱", 10: "视频号",
            11: "日程参与人", 12: "会议参与人", 13: "微信好友的企业微信", 14: "智慧硬件专属客服",
            15: "上门服务客服", 201: "内部成员共享", 202: "管理员/负责人分配"}


def add_way_label(value: int | None) -> str:
    return ADD_WAYS.get(int(value or 0), "其他")


def init_app(app: Flask) -> None:
    from core.api import register

    from .api import bp as api_bp
    from .api import jssdk_bp
    from .auth import bp as auth_bp
    from .routes import bp as sidebar_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(sidebar_bp)
    register(app, api_bp, jssdk_bp)
    app.add_template_filter(add_way_label, "add_way_label")
