"""A member leaves the corp; a customer refuses a transfer; an admin caps members' customers or takes a
member out of customer contact (§5)."""

from __future__ import annotations

from ..state import MEMBER_RESIGNED, T_WAITING
from .base import ActionBase, ActionError


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

    def customer_limit_set(self, limit: int | None) -> None:
        """Cap every member's customers at `limit` (None: no cap, the default): a transfer that completes
        for a takeover member already at the cap ends with status 4 and `transfer_fail`
        (customer_limit_exceed). WeCom's real cap is 50,000 per member; tests use small ones."""
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ActionError("limit must be a whole number ≥ 0, or null")
        with self._state.lock:
            self._state.customer_limit = limit

    def staff_customer_contact(self, userid: str, enabled: bool = True) -> None:
        """The admin turns customer contact (客户联系) on or off for a member: without it the member can take
        over neither customers (84074 for the whole call) nor group chats (84074 per chat)."""
        with self._state.lock:
            self._member(userid).customer_contact = bool(enabled)
