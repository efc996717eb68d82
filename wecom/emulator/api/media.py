"""Temporary media (wecom-api.md §13.2)."""

from __future__ import annotations

from typing import Any

from .base import MEDIA_LIMITS, ApiError, Ctx, route


# ---------------------------------------------------------------- §13.2 media


@route("media/upload")
def media_upload(ctx: Ctx) -> dict[str, Any]:
    kind = ctx.query.get("type")
    if kind not in MEDIA_LIMITS:
        raise ApiError(40004)
    assert ctx.request is not None
    upload = ctx.request.files.get("media")
    if upload is None or not upload.filename:
        raise ApiError(41005)
    data = upload.read()
    cap, exts = MEDIA_LIMITS[kind]
    if len(data) <= 5 or len(data) > cap:
        raise ApiError(40006)
    ext = upload.filename.rsplit(".", 1)[-1].lower() if "." in upload.filename else ""
    if exts is not None and ext not in exts:
        raise ApiError(40005)
    media_id = "1" + ctx.state.new_id("", 43)
    ctx.state.media[media_id] = {"type": kind, "created_at": ctx.now, "filename": upload.filename,
                                 "size": len(data), "content_type": upload.content_type}
    return {"errmsg": "", "type": kind, "media_id": media_id, "created_at": str(ctx.now)}
