"""Corp tags changed in the admin console (§3.3)."""

from __future__ import annotations

from typing import Iterable

from ..state import (Tag,
                     TagGroup)
from .base import TAG, ActionBase, ActionError


class TagActions(ActionBase):
    # ------------------------------------------------------------ corp tags

    def _tag_event(self, change: str, obj_id: str, tag_type: str) -> None:
        self._emit(TAG, change, [("Id", obj_id), ("TagType", tag_type)])

    def corp_tag_group_created(self, group_name: str, tag_names: Iterable[str]) -> tuple[str, list[str]]:
        st = self._state
        with st.lock:
            names = list(dict.fromkeys(tag_names))
            if not names:
                raise ActionError("a tag group needs at least one tag")
            if any(g.name == group_name and not g.deleted for g in st.tag_groups.values()):
                raise ActionError(f"tag group {group_name!r} exists")
            now = st.clock.now()
            group = TagGroup(st.new_id("et"), group_name, now)
            st.tag_groups[group.group_id] = group
            self._tag_event("create", group.group_id, "tag_group")
            ids = [self._new_tag(group, n, now) for n in names]
            return group.group_id, ids

    def _new_tag(self, group: TagGroup, name: str, now: int) -> str:
        tag = Tag(self._state.new_id("et"), name, group.group_id, now)
        self._state.tags[tag.id] = tag
        group.tag_ids.append(tag.id)
        self._tag_event("create", tag.id, "tag")
        return tag.id

    def corp_tag_created(self, group_id: str, name: str) -> str:
        st = self._state
        with st.lock:
            group = st.tag_groups.get(group_id)
            if group is None or group.deleted:
                raise ActionError(f"unknown tag group {group_id!r}")
            if any(st.tags[t].name == name and not st.tags[t].deleted for t in group.tag_ids):
                raise ActionError(f"tag {name!r} exists in the group")
            return self._new_tag(group, name, st.clock.now())

    def corp_tag_renamed(self, id: str, name: str) -> None:  # noqa: A002  (WeCom's name for it)
        st = self._state
        with st.lock:
            if id in st.tags and not st.tags[id].deleted:
                st.tags[id].name = name
                self._tag_event("update", id, "tag")
            elif id in st.tag_groups and not st.tag_groups[id].deleted:
                st.tag_groups[id].name = name
                self._tag_event("update", id, "tag_group")
            else:
                raise ActionError(f"unknown tag or group {id!r}")

    def corp_tag_deleted(self, id: str) -> None:  # noqa: A002
        st = self._state
        with st.lock:
            if id in st.tags and not st.tags[id].deleted:
                tag = st.tags[id]
                tag.deleted = True
                self._tag_event("delete", id, "tag")
                group = st.tag_groups[tag.group_id]
                if all(st.tags[t].deleted for t in group.tag_ids):
                    group.deleted = True
                    self._tag_event("delete", group.group_id, "tag_group")
            elif id in st.tag_groups and not st.tag_groups[id].deleted:
                group = st.tag_groups[id]
                group.deleted = True
                for t in group.tag_ids:
                    st.tags[t].deleted = True
                self._tag_event("delete", id, "tag_group")
            else:
                raise ActionError(f"unknown tag or group {id!r}")

    def corp_tags_reordered(self, group_id: str | None = None) -> None:
        """Drag-and-drop in the console: new `order` values, one shuffle event (empty Id = all groups)."""
        st = self._state
        with st.lock:
            if group_id and (group_id not in st.tag_groups or st.tag_groups[group_id].deleted):
                raise ActionError(f"unknown tag group {group_id!r}")
            groups = [st.tag_groups[group_id]] if group_id else [g for g in st.tag_groups.values() if not g.deleted]
            for group in groups:
                live = [st.tags[t] for t in group.tag_ids if not st.tags[t].deleted]
                for order, tag in enumerate(reversed(live), start=1):
                    tag.order = order  # reverse the current order
            if not group_id:
                for order, group in enumerate(reversed(groups), start=1):
                    group.order = order
            self._emit(TAG, "shuffle", [("Id", group_id or "")])
