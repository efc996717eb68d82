"""Who may do what in the console and the API: a role per staff member.

A staff member without a row here has the role `staff`. Roles are set in the console
(角色与权限, admins only) or with `flask roles grant USERID ROLE`; API tokens carry their own role.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from extensions import CorpScoped, db, utcnow


class StaffRole(CorpScoped, db.Model):
    __tablename__ = "staff_roles"
    __table_args__ = (UniqueConstraint("corp_id", "userid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    userid: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # admin | manager | marketer | staff
    granted_by: Mapped[str] = mapped_column(String(96), default="")
    granted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
