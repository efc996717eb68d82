"""The tag catalog API: groups and tags with usage counts; create, rename, reorder, delete (admin);
governance (unused and near-duplicate tags, refused changes)."""

from __future__ import annotations

from typing import Any

from core.api import ApiBlueprint
from identity.web import principal, require_role

from ..assignments.service import failed_changes
from . import service
from .schemas import (CatalogOut, CatalogQuery, CreatedTagsOut, CreateTagsIn, DeletedTagOut, EditTagIn, EditTagOut,
                      GovernanceOut, MergeIn, MergeOut)

bp = ApiBlueprint("tag_catalog_api", __name__, url_prefix="/api/v1", description="企业客户标签：标签组与标签")

READ_ROLES = ("admin", "manager", "marketer", "staff")


@bp.get("/tags")
@require_role(*READ_ROLES)
@bp.arguments(CatalogQuery, location="query")
@bp.response(200, CatalogOut)
def list_tags(query: dict[str, Any]) -> dict[str, Any]:
    """Tag groups (WeCom's order) with their tags and how many customers carry each."""
    return {"tag_groups": service.list_catalog(principal().corp_id, include_deleted=query["deleted"])}


@bp.post("/tags")
@require_role("admin")
@bp.arguments(CreateTagsIn)
@bp.response(202, CreatedTagsOut)
def create_tags(data: dict[str, Any]) -> dict[str, Any]:
    """Create tags at once here (provisional ids) and in WeCom through the outbox."""
    p = principal()
    names = data.get("names") or [data["name"]]
    tags = service.create_tags(p.corp_id, p.actor, names, group_id=data.get("group_id"),
                               group_name=data.get("group_name"))
    return {"tags": [service.tag_dict(t) for t in tags]}


@bp.patch("/tags/<wecom_id>")
@require_role("admin")
@bp.arguments(EditTagIn)
@bp.response(202, EditTagOut)
def edit_tag(data: dict[str, Any], wecom_id: str) -> dict[str, Any]:
    """Rename a tag or group, or reorder a group's tags (`/tags/groups`: the groups)."""
    p = principal()
    if "order_ids" in data:
        changed = service.reorder(p.corp_id, p.actor, data["order_ids"],
                                  group_id=None if wecom_id == "groups" else wecom_id)
        return {"id": wecom_id, "changed": changed, "sync": "pending" if changed else "synced"}
    obj = service.rename(p.corp_id, p.actor, wecom_id, data["name"])
    return {"id": wecom_id, "name": obj.name, "sync": "pending"}


@bp.delete("/tags/<wecom_id>")
@require_role("admin")
@bp.response(202, DeletedTagOut)
def delete_tag(wecom_id: str) -> dict[str, Any]:
    """Delete a tag or a whole group: a tombstone here at once, `del_corp_tag` in WeCom."""
    p = principal()
    obj = service.delete(p.corp_id, p.actor, wecom_id)
    return {"id": wecom_id, "name": obj.name, "deleted": True}


@bp.post("/tags/<wecom_id>/merge")
@require_role("admin")
@bp.arguments(MergeIn)
@bp.response(202, MergeOut)
def merge_tag(data: dict[str, Any], wecom_id: str) -> dict[str, Any]:
    """Merge this tag into `into`: every relation carrying it gets the target, then it is deleted."""
    p = principal()
    return service.merge(p.corp_id, p.actor, wecom_id, data["into"])


@bp.get("/tags/governance")
@require_role("admin", "marketer")
@bp.response(200, GovernanceOut)
def governance() -> dict[str, Any]:
    """Tags nobody carries, pairs of tags whose names look alike, and tag changes WeCom refused."""
    corp_id = principal().corp_id
    return {"unused": service.unused_tags(corp_id), "near_duplicates": service.near_duplicates(corp_id),
            "failed_changes": failed_changes(corp_id)}
