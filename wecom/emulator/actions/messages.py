"""Members confirm mass-message tasks in their client (§7)."""

from __future__ import annotations

from ..state import ACTIVE
from .base import ActionBase, ActionError


class MessageActions(ActionBase):
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
