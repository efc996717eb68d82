"""Members confirm mass-message tasks in their client, or send mass messages of their own (§7); the
corp's mass-message settings (quota, automatic confirmation) are set here too."""

from __future__ import annotations

from typing import Any

from ..state import ACTIVE, QUOTA_DAY, QUOTA_MONTH, MsgTask, MsgTemplate
from .base import ActionBase, ActionError


class MessageActions(ActionBase):
    # ------------------------------------------------------------ mass messages

    def staff_sends_groupmsg(self, msgid: str, userid: str, chat_ids: list[str] | None = None) -> dict[str, int]:
        """The member confirms the mass-message task: results 1 sent / 2 not a friend / 3 quota.

        For a group message the owner may pick only some chats (`chat_ids`); the others stay unsent.
        """
        st = self._state
        with st.lock:
            now = st.clock.now()
            MsgTemplate.settle(st, now)
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
            if chat_ids is not None and (tpl.chat_type != "group" or set(chat_ids) - set(task.targets)):
                raise ActionError("chat_ids must be chats of this group task")
            return tpl.confirm(st, userid, now, chat_ids)

    def staff_sends_all_groupmsgs(self) -> int:
        """Every member confirms every task still waiting (in order of creation); how many tasks were sent."""
        st = self._state
        with st.lock:
            now = st.clock.now()
            MsgTemplate.settle(st, now)
            sent = 0
            for tpl in list(st.msg_templates.values()):
                if tpl.cancelled:
                    continue
                for userid, task in tpl.tasks.items():
                    if not task.status:
                        tpl.confirm(st, userid, now)
                        sent += 1
            return sent

    def staff_creates_groupmsg(self, userid: str, targets: list[str], text: str = "会员日活动，欢迎到店",
                               chat_type: str = "single") -> str:
        """A member writes and sends a mass message of their own in the client (create_type 1): it is
        listed by get_groupmsg_list_v2 with its creator and spends the recipients' quota at once."""
        st = self._state
        member = self._member(userid)
        with st.lock:
            now = st.clock.now()
            MsgTemplate.settle(st, now)
            if chat_type == "single":
                mine = [t for t in dict.fromkeys(targets) if (r := st.relation(userid, t)) is not None
                        and r.status == ACTIVE]
            else:
                mine = [c for c in dict.fromkeys(targets) if c in st.group_chats
                        and st.group_chats[c].owner == userid and not st.group_chats[c].dismissed]
            if not mine:
                raise ActionError(f"{userid!r} has none of these customers or chats")
            tpl = MsgTemplate("msg" + st.new_id("", 29), chat_type, now, {"content": text}, [])
            tpl.create_type, tpl.creator = 1, member.userid
            tpl.tasks[userid] = MsgTask(userid, mine)
            st.msg_templates[tpl.msgid] = tpl
            tpl.confirm(st, userid, now)
            return tpl.msgid

    def groupmsg_settings(self, quota: int | None = None, period: str | None = None,
                          auto_confirm: int | None = -1) -> dict[str, Any]:
        """Configure the corp's mass messages: the per-customer `quota` per `period` ("day": a China calendar
        day, as the 2023 spec says; "month": a natural month, as older documents say) and `auto_confirm`
        (every member confirms new tasks that many seconds of the clock after creation; None: never)."""
        st = self._state
        with st.lock:
            if quota is not None:
                if int(quota) < 1:
                    raise ActionError("quota must be at least 1")
                st.groupmsg_quota = int(quota)
            if period is not None:
                if period not in (QUOTA_DAY, QUOTA_MONTH):
                    raise ActionError("period must be 'day' or 'month'")
                st.groupmsg_quota_period = period
            if auto_confirm is None or auto_confirm >= 0:
                st.groupmsg_auto_confirm = auto_confirm
            return {"quota": st.groupmsg_quota, "period": st.groupmsg_quota_period,
                    "auto_confirm": st.groupmsg_auto_confirm}
