"""A member leaves the corp; a customer refuses a transfer (§5)."""

from __future__ import annotations

from ..state import MEMBER_RESIGNED, T_WAITING
from .base import ActionBase


class HandoverActions(ActionBase):
    def staff_resigns(self, userid: str) -> None:
        """The member leaves: their customers wait in get_unassigned_list, their chats get status 1, and
        WeCom tells the app (`change_contact` / `delete_user`)."""
        st = self._state
        with st.lock:
            member = self._member(userid)
            member.status = MEMBER_RESIGNED
            member.dimission_time = st.clock.now()
            for chat in st.group_chats.values():
                if chat.owner == userid and not chat.dismissed:
                    chat.status = 1
            # the address book's callback (通讯录回调): the member was removed from the corp
            self._emit("change_contact", "delete_user", [("UserID", userid)])

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
