"""Group chats created, joined, left, renamed, handed over, dismissed (§3.2)."""

from __future__ import annotations

from typing import Iterable

from ..state import ChatMember, GroupChat
from .base import CHAT, ActionBase, ActionError


class GroupChatActions(ActionBase):
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

    def customer_joined_via_join_way(self, config_id: str, external_userid: str) -> str:
        """A customer scans a 「加入群聊」 code: they join the way's first chat with room (a chat holds 500),
        by QR code (join scene 3), carrying the way's `state`; the chat id."""
        st = self._state
        with st.lock:
            way = st.join_ways.get(config_id)
            if way is None:
                raise ActionError(f"unknown join way {config_id!r}")
            if external_userid not in st.customers:
                raise ActionError(f"unknown customer {external_userid!r}")
            for chat_id in way["chat_id_list"]:
                chat = st.group_chats.get(chat_id)
                if chat is not None and not chat.dismissed and len(chat.members) < 500:
                    break
            else:
                raise ActionError("every chat of the way is full or dismissed")
            if external_userid in chat.member_ids():
                raise ActionError("already a member")
            last = chat.member_version
            member = self._chat_member(chat, external_userid, 3, None)
            member.state = str(way.get("state") or "")
            chat.members.append(member)
            st.bump_member_version(chat)
            self._emit(CHAT, "update", [("ChatId", chat_id), ("UpdateDetail", "add_member"), ("JoinScene", 3),
                                        ("MemChangeCnt", 1), ("MemChangeList", [external_userid]), ("LastMemVer", last),
                                        ("CurMemVer", chat.member_version)])
            return chat_id

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
