"""A customer adds a member, members edit tags and remarks, either side deletes the other (§3.1)."""

from __future__ import annotations

from typing import Iterable

from ..state import ACTIVE, CUSTOMER_DELETED, HALF, Customer
from .base import CONTACT, WELCOME_CODE_TTL, ActionBase, ActionError


class CustomerActions(ActionBase):
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
