"""Attachments: what the marketer uploads (kept here, the bytes), what a campaign's attachments look like,
and WeCom's temporary media made from them at send time.

WeCom's temporary media live 3 days (wecom-api.md §13.2), and a campaign may be composed weeks before it
is sent, so nothing is uploaded to WeCom when composing: `fresh_media_ids` uploads at send time the files
whose WeCom copy is missing or older than `MEDIA_FRESH` (a day of margin for a slow outbox), and a send
that WeCom still refuses with 40007 is sent again after a new upload (`sending.on_send_failed`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import select

from core.db import db
from core.errors import UserValueError
from wecom.client import WeComClient

from .models import CampaignUpload

log = logging.getLogger("scrm.campaigns")

MAX_ATTACHMENTS = 9
MEDIA_FRESH = dt.timedelta(days=2)
# kind: (largest size in bytes, allowed file name extensions or None for any), wecom-api.md §13.2
UPLOAD_KINDS: dict[str, tuple[int, tuple[str, ...] | None]] = {
    "image": (10 << 20, ("jpg", "jpeg", "png")),
    "video": (10 << 20, ("mp4",)),
    "file": (20 << 20, None),
}
KIND_LABELS = {"image": "图片", "video": "视频", "file": "文件"}
MAX_UPLOAD = max(size for size, _ in UPLOAD_KINDS.values())
ATTACHMENT_TYPES = ("image", "link", "miniprogram", "video", "file")


def _looks_like(kind: str, ext: str, data: bytes) -> bool:
    """A cheap check of the file's first bytes, so a renamed document is refused here, not by WeCom later."""
    if kind == "image":
        return data.startswith(b"\x89PNG\r\n\x1a\n") if ext == "png" else data.startswith(b"\xff\xd8\xff")
    if kind == "video":
        return data[4:8] == b"ftyp"
    return True


def save_upload(corp_id: str, actor: str, kind: str, filename: str, content_type: str, data: bytes) -> CampaignUpload:
    """Keep an uploaded image, video or file for attachments (flushes); the same bytes are stored once."""
    if kind not in UPLOAD_KINDS:
        raise UserValueError("附件类型应为图片、视频或文件", field="kind")
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()[:255]
    if not name:
        raise UserValueError("请选择要上传的文件", field="media")
    cap, exts = UPLOAD_KINDS[kind]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    label = KIND_LABELS[kind]
    if exts is not None and ext not in exts:
        raise UserValueError(f"{label}应为 {'、'.join(e.upper() for e in exts)} 格式", field="media")
    if len(data) <= 5:
        raise UserValueError("文件是空的或太小（企业微信要求大于 5 个字节）", field="media")
    if len(data) > cap:
        raise UserValueError(f"{label}不能超过 {cap >> 20} MB", field="media")
    if not _looks_like(kind, ext, data):
        raise UserValueError(f"文件内容不是有效的{label}（{ext.upper()}）", field="media")
    digest = hashlib.sha256(data).hexdigest()
    same = db.session.scalar(select(CampaignUpload).where(CampaignUpload.corp_id == corp_id,
                                                          CampaignUpload.sha256 == digest,
                                                          CampaignUpload.kind == kind))
    if same is not None:
        return same
    row = CampaignUpload(corp_id=corp_id, kind=kind, filename=name, content_type=(content_type or "")[:100]
                         or "application/octet-stream", size=len(data), sha256=digest, data=data, created_by=actor)
    db.session.add(row)
    db.session.flush()
    log.info("campaigns.upload.saved id=%s kind=%s size=%s", row.id, kind, row.size)
    return row


def get_upload(corp_id: str, upload_id: Any) -> CampaignUpload | None:
    if not isinstance(upload_id, int) or isinstance(upload_id, bool) or upload_id < 1 or upload_id > 2**31 - 1:
        return None
    row = db.session.get(CampaignUpload, upload_id)
    return row if row is not None and row.corp_id == corp_id else None


def upload_dict(row: CampaignUpload) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "filename": row.filename, "size": row.size,
            "content_type": row.content_type, "created_at": row.created_at.isoformat()}


# ---------------------------------------------------------------- attachments as composed


def _bytes(value: str) -> int:
    return len(value.encode("utf-8"))


def _text(obj: dict[str, Any], key: str, label: str, max_bytes: int, where: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise UserValueError(f"{where}：请填写{label}", field=f"attachments.{key}")
        return ""
    if not isinstance(value, str):
        raise UserValueError(f"{where}：{label}应为文字", field=f"attachments.{key}")
    value = value.strip()
    if _bytes(value) > max_bytes:
        raise UserValueError(f"{where}：{label}太长（最多 {max_bytes} 字节，约 {max_bytes // 3} 个汉字）",
                             field=f"attachments.{key}")
    return value


def _url(obj: dict[str, Any], key: str, label: str, where: str, *, required: bool = True) -> str:
    value = _text(obj, key, label, 2048, where, required=required)
    if value:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UserValueError(f"{where}：{label}应为 http:// 或 https:// 开头的网址", field=f"attachments.{key}")
    return value


def _upload(corp_id: str, obj: dict[str, Any], key: str, kind: str, where: str) -> int:
    upload = get_upload(corp_id, obj.get(key))
    if upload is None or upload.kind != kind:
        raise UserValueError(f"{where}：请先上传{KIND_LABELS[kind]}", field=f"attachments.{key}")
    return upload.id


def clean_attachment(corp_id: str, index: int, item: Any) -> dict[str, Any]:
    """One attachment as the API gives it (WeCom's shape, with our upload ids for media) → as stored."""
    where = f"第 {index + 1} 个附件"
    kind = item.get("msgtype") if isinstance(item, dict) else None
    if kind not in ATTACHMENT_TYPES:
        raise UserValueError(f"{where}：类型应为 image、link、miniprogram、video 或 file", field="attachments")
    obj = item.get(kind)
    if not isinstance(obj, dict):
        raise UserValueError(f"{where}：缺少 {kind} 的内容", field="attachments")
    if kind == "link":
        return {"msgtype": "link", "link": {"title": _text(obj, "title", "链接标题", 128, where),
                                            "url": _url(obj, "url", "链接地址", where),
                                            "desc": _text(obj, "desc", "链接描述", 512, where, required=False),
                                            "picurl": _url(obj, "picurl", "封面图片地址", where, required=False)}}
    if kind == "miniprogram":
        appid = _text(obj, "appid", "小程序 AppID", 64, where)
        if not (appid.startswith("wx") and appid.isalnum()):
            raise UserValueError(f"{where}：小程序 AppID 应以 wx 开头", field="attachments.appid")
        return {"msgtype": "miniprogram", "miniprogram": {
            "title": _text(obj, "title", "小程序标题", 64, where), "appid": appid,
            "page": _text(obj, "page", "小程序页面路径", 1024, where),
            "pic_upload_id": _upload(corp_id, obj, "pic_upload_id", "image", where)}}
    return {"msgtype": kind, kind: {"upload_id": _upload(corp_id, obj, "upload_id", kind, where)}}


def clean_attachments(corp_id: str, items: Any) -> list[dict[str, Any]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise UserValueError("附件应为列表", field="attachments")
    if len(items) > MAX_ATTACHMENTS:
        raise UserValueError(f"最多 {MAX_ATTACHMENTS} 个附件", field="attachments")
    return [clean_attachment(corp_id, i, item) for i, item in enumerate(items)]


def upload_ids(attachments: list[dict[str, Any]]) -> list[int]:
    """The uploads a campaign's attachments use (images, videos, files, mini program covers)."""
    found: list[int] = []
    for item in attachments:
        obj = item.get(item.get("msgtype", ""), {})
        for key in ("upload_id", "pic_upload_id"):
            if isinstance(obj.get(key), int):
                found.append(obj[key])
    return list(dict.fromkeys(found))


def wecom_attachments(attachments: list[dict[str, Any]], media: dict[int, str]) -> list[dict[str, Any]]:
    """The attachments as add_msg_template takes them, with WeCom's media ids for our uploads."""
    out: list[dict[str, Any]] = []
    for item in attachments:
        kind = item["msgtype"]
        obj = dict(item[kind])
        if kind == "link":
            out.append({"msgtype": "link", "link": {k: v for k, v in obj.items() if v}})
        elif kind == "miniprogram":
            pic = media[obj.pop("pic_upload_id")]
            out.append({"msgtype": "miniprogram", "miniprogram": {**obj, "pic_media_id": pic}})
        else:
            out.append({"msgtype": kind, kind: {"media_id": media[obj["upload_id"]]}})
    return out


# ---------------------------------------------------------------- WeCom's temporary copies


def stale(row: CampaignUpload, now: dt.datetime) -> bool:
    return not row.media_id or row.media_uploaded_at is None or row.media_uploaded_at < now - MEDIA_FRESH


def fresh_media_ids(corp_id: str, ids: list[int], client: WeComClient, now: dt.datetime, *,
                    force: frozenset[int] = frozenset()) -> dict[int, str]:
    """WeCom media ids for these uploads, uploading those missing, too old or in `force` (commits each
    new media id; no transaction is open while WeCom is called). Raises `WeComError` from the upload."""
    out: dict[int, str] = {}
    for upload_id in ids:
        row = db.session.get(CampaignUpload, upload_id)
        if row is None or row.corp_id != corp_id:
            raise UserValueError(f"附件文件已不存在（编号 {upload_id}）")
        if not stale(row, now) and upload_id not in force:
            out[upload_id] = str(row.media_id)
            continue
        kind, filename, content_type, data = row.kind, row.filename, row.content_type, row.data
        db.session.commit()  # nothing held open during the upload
        answer = client.upload_media(kind, filename, data, content_type)
        row = db.session.get(CampaignUpload, upload_id)
        assert row is not None
        row.media_id, row.media_uploaded_at = str(answer["media_id"]), now
        db.session.commit()
        out[upload_id] = row.media_id
        log.info("campaigns.media.uploaded upload=%s kind=%s", upload_id, kind)
    return out
