"""The tag-assignment API: how a relation's latest tag change stands in WeCom."""

from __future__ import annotations

from typing import Any

from core.api import ApiBlueprint
from core.db import db
from core.errors import NotFound
from crm.models import FollowRelation
from identity.web import principal, require_role, scope_for

from . import service
from .schemas import SyncStateOut

bp = ApiBlueprint("tag_assignments_api", __name__, url_prefix="/api/v1", description="客户标签：同步状态")


@bp.get("/tags/relations/<id:relation_id>/sync")
@require_role("admin", "manager", "marketer", "staff")
@bp.response(200, SyncStateOut)
def relation_sync(relation_id: int) -> dict[str, Any]:
    """Synced (nothing pending or done), pending (waiting for WeCom), or failed with the reason."""
    p = principal()
    relation = db.session.get(FollowRelation, relation_id)
    if relation is None or relation.corp_id != p.corp_id or not scope_for(p).allows(relation.userid):
        raise NotFound("找不到该客户关系")
    return service.relation_sync_state(p.corp_id, relation_id)
