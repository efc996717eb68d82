"""The customer base: staff, customers, follow relations, corp tags and their assignments,
follow-ups, lifecycle stages, group chats, the audit log and sync runs.

WeCom is the source of truth for identities (userid, external_userid, tag id, chat id); these
tables are keyed by WeCom's ids within a corp. Everything that WeCom does not keep (follow-ups,
stage, audit) is ours and is never deleted by a sync.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import CorpScoped, db, utcnow


class Corp(db.Model):
    __tablename__ = "corps"

    corp_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Staff(CorpScoped, db.Model):
    """A member of the corp (企业成员) who may follow customers."""

    __tablename__ = "staff"
    __table_args__ = (
        UniqueConstraint("corp_id", "userid"),
        Index("ix_staff_corp_status", "corp_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    userid: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64), default="")
    department_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    manager_userid: Mapped[Optional[str]] = mapped_column(String(64))
    # active: enabled for customer contact; resigned: left the corp, customers wait for handover;
    # inactive: no longer in the follow-user list but not known to have resigned.
    status: Mapped[str] = mapped_column(String(16), default="active")
    resigned_at: Mapped[Optional[dt.datetime]]
    synced_at: Mapped[Optional[dt.datetime]]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Customer(CorpScoped, db.Model):
    """An external contact (客户) of the corp."""

    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("corp_id", "external_userid"),
        Index("ix_customers_corp_stage", "corp_id", "stage"),
        Index("ix_customers_corp_unionid", "corp_id", "unionid"),
        Index("ix_customers_corp_name", "corp_id", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_userid: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), default="")
    type: Mapped[int] = mapped_column(Integer, default=1)  # 1 WeChat user, 2 WeCom user
    gender: Mapped[int] = mapped_column(Integer, default=0)
    avatar: Mapped[str] = mapped_column(String(512), default="")
    unionid: Mapped[Optional[str]] = mapped_column(String(64))
    position: Mapped[str] = mapped_column(String(128), default="")
    corp_name: Mapped[str] = mapped_column(String(128), default="")
    corp_full_name: Mapped[str] = mapped_column(String(256), default="")
    stage: Mapped[Optional[str]] = mapped_column(String(32))
    # Set when WeCom no longer knows the customer at all (every relation lost); history stays.
    gone_at: Mapped[Optional[dt.datetime]]
    synced_at: Mapped[Optional[dt.datetime]]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    relations: Mapped[list["FollowRelation"]] = relationship(back_populates="customer")


class FollowRelation(CorpScoped, db.Model):
    """A staff member × customer relation (跟进关系). Tags are marked per relation, as in WeCom."""

    __tablename__ = "follow_relations"
    __table_args__ = (
        UniqueConstraint("corp_id", "customer_id", "userid"),
        # the sidebar and "my customers"; handover of one member's customers
        Index("ix_follow_relations_corp_userid_status", "corp_id", "userid", "status"),
        # segments by channel and by date added
        Index("ix_follow_relations_corp_state", "corp_id", "state"),
        Index("ix_follow_relations_corp_added_at", "corp_id", "added_at"),
        Index("ix_follow_relations_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    userid: Mapped[str] = mapped_column(String(64))
    remark: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(String(300), default="")
    remark_corp_name: Mapped[str] = mapped_column(String(64), default="")
    remark_mobiles: Mapped[list[str]] = mapped_column(JSON, default=list)
    added_at: Mapped[Optional[dt.datetime]]
    add_way: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(64), default="")  # contact-way channel (State)
    oper_userid: Mapped[str] = mapped_column(String(64), default="")
    # active | lost (the relation ended in WeCom; history is kept)
    status: Mapped[str] = mapped_column(String(16), default="active")
    lost_at: Mapped[Optional[dt.datetime]]
    # del_external_contact (staff deleted the customer), del_follow_user (the customer deleted
    # staff), transferred (handed over), sync (no longer returned by WeCom)
    lost_reason: Mapped[Optional[str]] = mapped_column(String(32))
    synced_at: Mapped[Optional[dt.datetime]]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="relations")
    tags: Mapped[list["TagAssignment"]] = relationship(back_populates="relation", cascade="all, delete-orphan")


PROVISIONAL = "pending:"  # the id of a tag or group created here until WeCom answers with its own


def is_provisional(wecom_id: str) -> bool:
    """True for a tag or group created here and not yet answered by WeCom (see `tagging.catalog`)."""
    return wecom_id.startswith(PROVISIONAL)


class TagGroup(CorpScoped, db.Model):
    """A corp tag group (企业客户标签组); `deleted_at` is a tombstone so history still reads."""

    __tablename__ = "tag_groups"
    __table_args__ = (UniqueConstraint("corp_id", "group_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[str] = mapped_column(String(64))  # WeCom's id
    name: Mapped[str] = mapped_column(String(64))
    order: Mapped[int] = mapped_column(BigInteger, default=0)  # larger sorts first, as in WeCom
    wecom_created_at: Mapped[Optional[dt.datetime]]
    deleted_at: Mapped[Optional[dt.datetime]]
    synced_at: Mapped[Optional[dt.datetime]]

    tags: Mapped[list["Tag"]] = relationship(back_populates="group")


class Tag(CorpScoped, db.Model):
    """A corp tag; identity is WeCom's tag id, never the name (a rename is the same tag)."""

    __tablename__ = "tags"
    __table_args__ = (
        UniqueConstraint("corp_id", "tag_id"),
        Index("ix_tags_group", "group_pk"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tag_id: Mapped[str] = mapped_column(String(64))  # WeCom's id (et…)
    group_pk: Mapped[int] = mapped_column(ForeignKey("tag_groups.id"))
    name: Mapped[str] = mapped_column(String(64))
    order: Mapped[int] = mapped_column(BigInteger, default=0)
    wecom_created_at: Mapped[Optional[dt.datetime]]
    deleted_at: Mapped[Optional[dt.datetime]]
    synced_at: Mapped[Optional[dt.datetime]]

    group: Mapped[TagGroup] = relationship(back_populates="tags")


class TagAssignment(CorpScoped, db.Model):
    """Tag T marked on one follow relation. "A customer has T" = one of their relations has it."""

    __tablename__ = "tag_assignments"
    __table_args__ = (
        UniqueConstraint("relation_id", "tag_pk"),
        # segments: every relation with tag T (then their customers)
        Index("ix_tag_assignments_corp_tag_relation", "corp_id", "tag_pk", "relation_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    relation_id: Mapped[int] = mapped_column(ForeignKey("follow_relations.id", ondelete="CASCADE"))
    tag_pk: Mapped[int] = mapped_column(ForeignKey("tags.id"))
    # Denormalised for segment queries that skip the relation join.
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(16), default="wecom")  # wecom | staff | rule | api | sync
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    relation: Mapped[FollowRelation] = relationship(back_populates="tags")
    tag: Mapped[Tag] = relationship()


class Stage(CorpScoped, db.Model):
    """A lifecycle stage in the corp's ordered list."""

    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("corp_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer, default=0)
    is_lost: Mapped[bool] = mapped_column(Boolean, default=False)  # e.g. 流失客户, outside the funnel


class StageChange(CorpScoped, db.Model):
    __tablename__ = "stage_changes"
    __table_args__ = (Index("ix_stage_changes_customer_at", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    from_stage: Mapped[Optional[str]] = mapped_column(String(32))
    to_stage: Mapped[Optional[str]] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(96))  # userid, token:name, rule:ID, system
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FollowUp(CorpScoped, db.Model):
    """A follow-up note written by staff; never deleted by sync."""

    __tablename__ = "followups"
    __table_args__ = (
        Index("ix_followups_customer_created", "customer_id", "created_at"),
        Index("ix_followups_corp_created", "corp_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    userid: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    next_at: Mapped[Optional[dt.datetime]]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class GroupChat(CorpScoped, db.Model):
    """A customer group chat (客户群)."""

    __tablename__ = "group_chats"
    __table_args__ = (
        UniqueConstraint("corp_id", "chat_id"),
        Index("ix_group_chats_corp_owner", "corp_id", "owner_userid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), default="")
    owner_userid: Mapped[str] = mapped_column(String(64), default="")
    notice: Mapped[str] = mapped_column(Text, default="")
    # 0 owner normal, 1 owner resigned, 2 inheritance in progress, 3 inheritance done (groupchat/list)
    status: Mapped[int] = mapped_column(Integer, default=0)
    member_version: Mapped[str] = mapped_column(String(64), default="")
    wecom_created_at: Mapped[Optional[dt.datetime]]
    dismissed_at: Mapped[Optional[dt.datetime]]
    synced_at: Mapped[Optional[dt.datetime]]

    members: Mapped[list["GroupChatMember"]] = relationship(back_populates="chat", cascade="all, delete-orphan")


class GroupChatMember(CorpScoped, db.Model):
    __tablename__ = "group_chat_members"
    __table_args__ = (
        UniqueConstraint("chat_pk", "member_id"),
        # "the chats this customer is in" for the sidebar and segments
        Index("ix_group_chat_members_corp_member", "corp_id", "member_id"),
        # join-way attribution: the members who joined through a channel's State (`channels.reports`)
        Index("ix_group_chat_members_corp_state", "corp_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_pk: Mapped[int] = mapped_column(ForeignKey("group_chats.id", ondelete="CASCADE"))
    member_id: Mapped[str] = mapped_column(String(64))  # userid (type 1) or external_userid (type 2)
    type: Mapped[int] = mapped_column(Integer, default=2)
    name: Mapped[str] = mapped_column(String(128), default="")
    group_nickname: Mapped[str] = mapped_column(String(128), default="")
    unionid: Mapped[Optional[str]] = mapped_column(String(64))
    join_time: Mapped[Optional[dt.datetime]]
    join_scene: Mapped[int] = mapped_column(Integer, default=0)
    invitor: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(64), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    left_at: Mapped[Optional[dt.datetime]]

    chat: Mapped[GroupChat] = relationship(back_populates="members")


class AuditLog(CorpScoped, db.Model):
    """Who changed what; never deleted by sync."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_corp_at", "corp_id", "at"),
        Index("ix_audit_log_target", "corp_id", "target_type", "target_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(96))  # userid, token:NAME, rule:ID, sync, wecom
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SyncRun(CorpScoped, db.Model):
    """One full (or partial) reconcile with WeCom; `progress` holds the cursor so it can resume."""

    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_corp_started", "corp_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="full")
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done | failed
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[Optional[dt.datetime]]
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[Optional[str]] = mapped_column(Text)


class WelcomeMessage(CorpScoped, db.Model):
    """The bot's welcome message per channel: `state` is the contact way's State, '' the default.

    `{staff_name}` and `{customer_name}` in the text are filled in when it is sent. `attachments` are
    WeCom message attachments sent with it (links and mini programs: nothing to upload within the 20 s).
    """

    __tablename__ = "welcome_messages"
    __table_args__ = (UniqueConstraint("corp_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(64), default="")
    text: Mapped[str] = mapped_column(Text)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# Indexes the segment queries (tagging.segments) need. "Customer has tag T": every (customer, relation) with T, read
# from the index alone; the relation must not be one of the corp's few inactive relations (below).
Index("ix_tag_assignments_corp_tag_customer", TagAssignment.corp_id, TagAssignment.tag_pk,
      TagAssignment.customer_id, TagAssignment.relation_id)
Index("ix_follow_relations_inactive", FollowRelation.corp_id, FollowRelation.id,
      postgresql_where=text("status != 'active'"), sqlite_where=text("status != 'active'"))
# Customers of given staff (a manager's scope, "followed by"), index-only.
Index("ix_follow_relations_active_owner", FollowRelation.corp_id, FollowRelation.userid, FollowRelation.customer_id,
      postgresql_where=text("status = 'active'"), sqlite_where=text("status = 'active'"))
# Customers still followed (the base condition), by owner for a limited scope, index-only.
Index("ix_follow_relations_active_customer", FollowRelation.corp_id, FollowRelation.customer_id,
      FollowRelation.userid, postgresql_where=text("status = 'active'"), sqlite_where=text("status = 'active'"))


class ChannelLabel(CorpScoped, db.Model):
    """The name people see for a channel `state` (the contact way's State): written by the channels
    package when a channel is created or renamed, or when someone names a State made in WeCom's admin
    console; read by everything that shows a channel (`crm.service.state_labels`)."""

    __tablename__ = "channel_labels"
    __table_args__ = (UniqueConstraint("corp_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# The channel attribution report's median days to loss (`channels.reports`): the lost relations of a period.
Index("ix_follow_relations_lost_report", FollowRelation.corp_id, FollowRelation.added_at, FollowRelation.state,
      FollowRelation.lost_at, FollowRelation.lost_reason,
      postgresql_where=text("status != 'active'"), sqlite_where=text("status != 'active'"))
