"""What people do in the WeCom client or admin console: each action changes the state and sends
the callback WeCom would send (wecom-api.md §3). API calls never go through here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from .state import (ACTIVE, CUSTOMER_DELETED, HALF, MEMBER_RESIGNED, ChatMember, Customer, GroupChat,
                    State, Tag, TagGroup, T_WAITING)

if TYPE_CHECKING:
    from .server import Emulator

WELCOME_CODE_TTL = 20
CONTACT = "change_external_contact"
CHAT = "change_external_chat"
TAG = "change_external_tag"


class ActionError(ValueError):
    """The action makes no sense in the current state (unknown member, no such chat…)."""


class Actions:
    """`emu.act.<name>(...)`; also reachable as `POST /emulator/act/<name>`."""

    NAMES = ("add_staff", "customer_adds_staff", "staff_confirms_half", "staff_edits_tags", "staff_edits_remark",
             "customer_deletes_staff", "staff_deletes_customer", "group_chat_created", "group_chat_member_joined",
             "group_chat_member_left", "group_chat_renamed", "group_chat_notice", "group_chat_owner_changed",
             "group_chat_dismissed", "corp_tag_group_created", "corp_tag_created", "corp_tag_renamed",
             "corp_tag_deleted", "corp_tags_reordered", "staff_resigns", "customer_refuses_transfer",
             "staff_sends_groupmsg")

    def __init__(self, emu: "Emulator") -> None:
        self._emu = emu

    @property
    def _state(self) -> State:
        return self._emu.state

    def _emit(self, event: str, change_type: str, fields: list[tuple[str, Any]]) -> None:
        self._state.emit(event, change_type, fields)

    def _member(self, userid: str) -> Any:
        member = self._state.staff.get(userid)
        if member is None:
            raise ActionError(f"unknown staff member {userid!r}")
        return member

    def _customer(self, external_userid: str) -> Customer:
        customer = self._state.customers.get(external_userid)
        if customer is None:
            raise ActionError(f"unknown customer {external_userid!r}")
        return customer

    def _active_relation(self, userid: str, external_userid: str) -> Any:
        rel = self._state.relation(userid, external_userid)
        if rel is None or rel.status != ACTIVE:
            raise ActionError(f"{userid!r} and {external_userid!r} are not friends")
        return rel

    # ------------------------------------------------------------ staff and customers

    def add_staff(self, userid: str, name: str, department: Iterable[int] = (1,)) -> str:
        """The admin adds a member (no callback)."""
        with self._state.lock:
            if userid in self._state.staff:
                raise ActionError(f"staff member {userid!r} exists")
            self._state.add_member(userid, name, list(department))
        return userid

    def customer_adds_staff(self, userid: str, name: str = "微信用户", external_userid: str | None = None,
                            state: str = "", welcome_code: bool = True, half: bool = False) -> str:
        """A WeChat user adds the member (QR code, search…): add_external_contact or add_half_external_contact."""
        st = self._state
        with st.lock:
            member = self._member(userid)
            if member.resigned:
                raise ActionError(f"{userid!r} has resigned")
            ext = external_userid or st.new_id("wm")
            customer = st.customers.get(ext)
            if customer is None:
                customer = Customer(ext, name, 1, 0)
                st.customers[ext] = customer
            existing = st.relation(userid, ext)
            if existing is not None and existing.status in (ACTIVE, HALF):
                raise ActionError(f"{ext!r} already follows {userid!r}")
            if existing is not None:
                st.drop_relation(existing)
            now = st.clock.now()
            st.add_relation(userid, customer, now, add_way=1 if state else 0, oper_userid=ext, state=state,
                            status=HALF if half else ACTIVE)
            code = None
            if welcome_code:
                code = st.new_id("WC", 40)
                st.welcome_codes[code] = {"userid": userid, "external_userid": ext, "expires_at": now + WELCOME_CODE_TTL,
                                          "used": False}
            self._emit(CONTACT, "add_half_external_contact" if half else "add_external_contact",
                       [("UserID", userid), ("ExternalUserID", ext), ("State", state), ("WelcomeCode", code)])
        return ext

    def staff_confirms_half(self, userid: str, external_userid: str) -> None:
        """The member confirms a half-added contact (add_external_contact, no new welcome code)."""
        st = self._state
        with st.lock:
            rel = st.relation(userid, external_userid)
            if rel is None or rel.status != HALF:
                raise ActionError("no half-added relation")
            rel.status = ACTIVE
            self._emit(CONTACT, "add_external_contact", [("UserID", userid), ("ExternalUserID", external_userid),
                                                         ("State", rel.state)])

    def staff_edits_tags(self, userid: str, external_userid: str, add: Iterable[str] = (),
                         remove: Iterable[str] = ()) -> None:
        st = self._state
        with st.lock:
            rel = self._active_relation(userid, external_userid)
            add, remove = list(add), list(remove)
            for tid in add + remove:
                if tid not in st.tags or st.tags[tid].deleted:
                    raise ActionError(f"unknown tag {tid!r}")
            tags = [t for t in st.live_tags(rel) if t not in remove]
            tags += [t for t in add if t not in tags]
            rel.tags = tuple(tags)
            self._emit(CONTACT, "edit_external_contact", [("UserID", userid), ("ExternalUserID", external_userid)])

    def staff_edits_remark(self, userid: str, external_userid: str, remark: str | None = None,
                           description: str | None = None) -> None:
        st = self._state
        with st.lock:
            rel = self._active_relation(userid, external_userid)
            if remark is not None:
                rel.remark = remark
            if description is not None:
                rel.description = description
            self._emit(CONTACT, "edit_external_contact", [("UserID", userid), ("ExternalUserID", external_userid)])

    def customer_deletes_staff(self, userid: str, external_userid: str) -> None:
        """The customer deletes/blocks the member: the relation stays listed; writes on it get 84061."""
        st = self._state
        with st.lock:
            rel = self._active_relation(userid, external_userid)
            rel.status = CUSTOMER_DELETED
            self._emit(CONTACT, "del_follow_user", [("UserID", userid), ("ExternalUserID", external_userid)])

    def staff_deletes_customer(self, userid: str, external_userid: str) -> None:
        st = self._state
        with st.lock:
            rel = st.relation(userid, external_userid)
            if rel is None:
                raise ActionError(f"{userid!r} does not follow {external_userid!r}")
            st.drop_relation(rel)
            self._emit(CONTACT, "del_external_contact", [("UserID", userid), ("ExternalUserID", external_userid)])

    def staff_resigns(self, userid: str) -> None:
        """The member leaves: their customers wait in get_unassigned_list, their chats get status 1."""
        st = self._state
        with st.lock:
            member = self._member(userid)
            member.status = MEMBER_RESIGNED
            member.dimission_time = st.clock.now()
            for chat in st.group_chats.values():
                if chat.owner == userid and not chat.dismissed:
                    chat.status = 1

    def customer_refuses_transfer(self, external_userid: str) -> None:
        """The pending (or next) transfer of this customer ends refused (3) when its 24 h pass."""
        st = self._state
        with st.lock:
            self._customer(external_userid)
            pending = st.pending_by_customer.get(external_userid)
            if pending is not None and pending.status == T_WAITING:
                pending.refuse = True
            else:
                st.refusals.add(external_userid)

    # ------------------------------------------------------------ group chats

    def _chat(self, chat_id: str) -> GroupChat:
        chat = self._state.group_chats.get(chat_id)
        if chat is None or chat.dismissed:
            raise ActionError(f"unknown or dismissed chat {chat_id!r}")
        return chat

    def _chat_member(self, chat: GroupChat, userid: str, scene: int, invitor: str | None) -> ChatMember:
        st = self._state
        kind = 1 if userid in st.staff else 2
        # groupchat/get join_scene: 1 invited directly, 3 QR code; callbacks say 0 / 3
        return ChatMember(userid, kind, st.clock.now(), 3 if scene == 3 else 1, invitor, st.display_name(userid))

    def group_chat_created(self, owner: str, member_ids: Iterable[str], name: str) -> str:
        st = self._state
        with st.lock:
            self._member(owner)
            chat = GroupChat(st.new_id("wr"), name, owner, st.clock.now())
            chat.members.append(self._chat_member(chat, owner, 0, None))
            for uid in member_ids:
                if uid != owner and uid not in chat.member_ids():
                    chat.members.append(self._chat_member(chat, uid, 0, owner))
            st.bump_member_version(chat)
            st.group_chats[chat.chat_id] = chat
            self._emit(CHAT, "create", [("ChatId", chat.chat_id)])
            return chat.chat_id

    def group_chat_member_joined(self, chat_id: str, member_ids: Iterable[str], join_scene: int = 0) -> None:
        st = self._state
        with st.lock:
            chat = self._chat(chat_id)
            added = [u for u in dict.fromkeys(member_ids) if u not in chat.member_ids()]
            if not added:
                raise ActionError("nobody new joined")
            last = chat.member_version
            for uid in added:
                chat.members.append(self._chat_member(chat, uid, join_scene, chat.owner if join_scene == 0 else None))
            st.bump_member_version(chat)
            self._emit(CHAT, "update", [("ChatId", chat_id), ("UpdateDetail", "add_member"), ("JoinScene", join_scene),
                                        ("MemChangeCnt", len(added)), ("MemChangeList", added), ("LastMemVer", last),
                                        ("CurMemVer", chat.member_version)])

    def group_chat_member_left(self, chat_id: str, member_ids: Iterable[str], quit_scene: int = 0) -> None:
        st = self._state
        with st.lock:
            chat = self._chat(chat_id)
            gone = [u for u in dict.fromkeys(member_ids) if u in chat.member_ids() and u != chat.owner]
            if not gone:
                raise ActionError("none of them is a member (the owner cannot leave)")
            last = chat.member_version
            chat.members = [m for m in chat.members if m.userid not in gone]
            chat.admin_list = [a for a in chat.admin_list if a not in gone]
            st.bump_member_version(chat)
            self._emit(CHAT, "update", [("ChatId", chat_id), ("UpdateDetail", "del_member"), ("QuitScene", quit_scene),
                                        ("MemChangeCnt", len(gone)), ("MemChangeList", gone), ("LastMemVer", last),
                                        ("CurMemVer", chat.member_version)])

    def _chat_update(self, chat: GroupChat, detail: str) -> None:
        self._emit(CHAT, "update", [("ChatId", chat.chat_id), ("UpdateDetail", detail)])

    def group_chat_renamed(self, chat_id: str, name: str) -> None:
        with self._state.lock:
            chat = self._chat(chat_id)
            chat.name = name
            self._chat_update(chat, "change_name")

    def group_chat_notice(self, chat_id: str, notice: str) -> None:
        with self._state.lock:
            chat = self._chat(chat_id)
            chat.notice = notice
            self._chat_update(chat, "change_notice")

    def group_chat_owner_changed(self, chat_id: str, new_owner: str) -> None:
        st = self._state
        with st.lock:
            chat = self._chat(chat_id)
            self._member(new_owner)
            if new_owner not in chat.member_ids():
                raise ActionError("the new owner must be a member of the chat")
            chat.owner = new_owner
            chat.status = 0
            self._chat_update(chat, "change_owner")

    def group_chat_dismissed(self, chat_id: str) -> None:
        with self._state.lock:
            chat = self._chat(chat_id)
            chat.dismissed = True
            self._emit(CHAT, "dismiss", [("ChatId", chat_id)])

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

    # ------------------------------------------------------------ mass messages

    def staff_sends_groupmsg(self, msgid: str, userid: str) -> dict[str, int]:
        """The member confirms the mass-message task: results 1 sent / 2 not a friend / 3 quota."""
        st = self._state
        with st.lock:
            tpl = st.msg_templates.get(msgid)
            if tpl is None:
                raise ActionError(f"unknown msgid {msgid!r}")
            if tpl.cancelled:
                raise ActionError("the mass message was cancelled")
            task = tpl.tasks.get(userid)
            if task is None:
                raise ActionError(f"{userid!r} has no task in {msgid!r}")
            if task.status:
                raise ActionError("already sent")
            now = st.clock.now()
            day = (now + 8 * 3600) // 86400  # China's calendar day
            counts = {1: 0, 2: 0, 3: 0}
            for target in task.targets:
                if tpl.chat_type == "single":
                    rel = st.relation(userid, target)
                    ok = rel is not None and rel.status == ACTIVE
                else:
                    chat = st.group_chats.get(target)
                    ok = chat is not None and not chat.dismissed and chat.owner == userid
                if not ok:
                    status = 2
                elif st.received.get((target, day), 0) >= st.groupmsg_quota:
                    status = 3
                else:
                    status = 1
                    st.received[(target, day)] = st.received.get((target, day), 0) + 1
                task.results[target] = (status, now if status == 1 else 0)
                counts[status] += 1
            task.status, task.send_time = 2, now
            return {"sent": counts[1], "not_friend": counts[2], "quota": counts[3]}

