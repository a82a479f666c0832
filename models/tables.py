"""SQLAlchemy 2.0 tables: plans, users, assets, projects, generation reservations and the deletion outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Plan(Base):
    __tablename__ = "plans"

    key: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    storage_quota_bytes: Mapped[int] = mapped_column(BigInteger)
    max_upload_bytes: Mapped[int] = mapped_column(BigInteger)
    images_per_period: Mapped[int] = mapped_column(Integer)
    videos_per_period: Mapped[int] = mapped_column(Integer)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("storage_used_bytes >= 0", name="storage_used_nonnegative"),
        CheckConstraint("images_used_in_period >= 0", name="images_used_nonnegative"),
        CheckConstraint("videos_used_in_period >= 0", name="videos_used_nonnegative"),
    )

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), default="", server_default="")
    tier: Mapped[str] = mapped_column(ForeignKey("plans.key"), default="free", server_default="free")
    storage_used_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    images_used_in_period: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    videos_used_in_period: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    billing_cycle_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    billing_cycle_end: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Asset(Base):
    __tablename__ = "assets"
    __table_args__ = (
        CheckConstraint("type IN ('image', 'video')", name="type_known"),
        CheckConstraint("status IN ('pending', 'processing', 'ready', 'failed')", name="status_known"),
        CheckConstraint("size_bytes >= 0", name="size_nonnegative"),
        # Listing: newest first per user, optionally by type; the id breaks ties for the cursor.
        Index("ix_assets_user_created", "user_id", "created_at", "id"),
        Index("ix_assets_user_type_created", "user_id", "type", "created_at", "id"),
        # Maintenance scans only unfinished work.
        Index(
            "ix_assets_unfinished",
            "status",
            "updated_at",
            postgresql_where="status IN ('pending', 'processing')",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(8))
    storage_key: Mapped[str] = mapped_column(String(256), unique=True)
    original_url: Mapped[str | None] = mapped_column(Text)
    mime_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[float | None] = mapped_column(Float)
    codec: Mapped[str | None] = mapped_column(String(32))
    frame_rate: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    error: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    thumbnail_key: Mapped[str | None] = mapped_column(String(256))
    preview_key: Mapped[str | None] = mapped_column(String(256))
    poster_key: Mapped[str | None] = mapped_column(String(256))
    # A full-size copy a browser can show, for originals it cannot (HEIC, AVIF, TIFF).
    display_key: Mapped[str | None] = mapped_column(String(256))
    placeholder: Mapped[str | None] = mapped_column(String(128))
    generation: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint("char_length(name) BETWEEN 1 AND 100", name="name_length"),
        Index("ix_projects_user_saved", "user_id", "last_saved_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    canvas_state: Mapped[dict[str, Any]] = mapped_column(JSONB)
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    thumbnail_key: Mapped[str | None] = mapped_column(String(256))
    thumbnail_revision: Mapped[int | None] = mapped_column(Integer)
    image_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    video_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_saved_at: Mapped[datetime] = _now()
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class GenerationReservation(Base):
    """Generations taken from a user's monthly quota, until each unit is settled by an import or refunded."""

    __tablename__ = "generation_reservations"
    __table_args__ = (
        CheckConstraint("type IN ('image', 'video')", name="type_known"),
        CheckConstraint("status IN ('open', 'settled', 'refunded')", name="status_known"),
        CheckConstraint("count >= 1", name="count_positive"),
        # The invariant every transition keeps: no unit is both settled and refunded, none given back twice.
        CheckConstraint(
            "refunded >= 0 AND settled >= 0 AND refunded + settled <= count", name="units_bounded"
        ),
        Index("ix_generation_reservations_user_created", "user_id", "created_at"),
        Index("ix_generation_reservations_expires", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(8))
    count: Mapped[int] = mapped_column(Integer)
    refunded: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    settled: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The end of the billing cycle whose counter the units were taken from.
    cycle_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PendingDeletion(Base):
    """An outbox of storage objects to remove once the row that owned them is gone."""

    __tablename__ = "pending_deletions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    storage_key: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = _now()


class WorkerPing(Base):
    """A round trip through a queue: the API or CLI inserts it, a worker stamps it done."""

    __tablename__ = "worker_pings"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    queue: Mapped[str] = mapped_column(String(32))
    requested_at: Mapped[datetime] = _now()
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    worker: Mapped[str | None] = mapped_column(String(256))
