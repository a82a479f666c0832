"""plans users assets projects

Revision ID: 0001
Revises:
Create Date: 2026-11-25 10:45:36.310849
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from models.plans import SEED_PLANS

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_deletions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("storage_key", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_deletions")),
    )
    op.create_table(
        "plans",
        sa.Column("key", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("storage_quota_bytes", sa.BigInteger(), nullable=False),
        sa.Column("max_upload_bytes", sa.BigInteger(), nullable=False),
        sa.Column("images_per_period", sa.Integer(), nullable=False),
        sa.Column("videos_per_period", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_plans")),
    )
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("email", sa.String(length=320), server_default="", nullable=False),
        sa.Column("tier", sa.String(length=16), server_default="free", nullable=False),
        sa.Column("storage_used_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("images_used_in_period", sa.Integer(), server_default="0", nullable=False),
        sa.Column("videos_used_in_period", sa.Integer(), server_default="0", nullable=False),
        sa.Column("billing_cycle_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("billing_cycle_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("images_used_in_period >= 0", name=op.f("ck_users_images_used_nonnegative")),
        sa.CheckConstraint("storage_used_bytes >= 0", name=op.f("ck_users_storage_used_nonnegative")),
        sa.CheckConstraint("videos_used_in_period >= 0", name=op.f("ck_users_videos_used_nonnegative")),
        sa.ForeignKeyConstraint(["tier"], ["plans.key"], name=op.f("fk_users_tier_plans")),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_users")),
    )
    op.create_index(op.f("ix_users_billing_cycle_end"), "users", ["billing_cycle_end"], unique=False)
    op.create_table(
        "assets",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("storage_key", sa.String(length=256), nullable=False),
        sa.Column("original_url", sa.Text(), nullable=True),
        sa.Column("mime_type", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("codec", sa.String(length=32), nullable=True),
        sa.Column("frame_rate", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("error", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("thumbnail_key", sa.String(length=256), nullable=True),
        sa.Column("preview_key", sa.String(length=256), nullable=True),
        sa.Column("poster_key", sa.String(length=256), nullable=True),
        sa.Column("placeholder", sa.String(length=128), nullable=True),
        sa.Column("generation", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'ready', 'failed')", name=op.f("ck_assets_status_known")
        ),
        sa.CheckConstraint("type IN ('image', 'video')", name=op.f("ck_assets_type_known")),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("ck_assets_size_nonnegative")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_assets_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_assets_storage_key")),
    )
    op.create_index(
        "ix_assets_unfinished",
        "assets",
        ["status", "updated_at"],
        unique=False,
        postgresql_where="status IN ('pending', 'processing')",
    )
    op.create_index("ix_assets_user_created", "assets", ["user_id", "created_at", "id"], unique=False)
    op.create_index(
        "ix_assets_user_type_created", "assets", ["user_id", "type", "created_at", "id"], unique=False
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("canvas_state", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("revision", sa.Integer(), server_default="0", nullable=False),
        sa.Column("thumbnail_key", sa.String(length=256), nullable=True),
        sa.Column("thumbnail_revision", sa.Integer(), nullable=True),
        sa.Column("image_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("video_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "last_saved_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("char_length(name) BETWEEN 1 AND 100", name=op.f("ck_projects_name_length")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_projects_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    op.create_index("ix_projects_user_saved", "projects", ["user_id", "last_saved_at", "id"], unique=False)
    plans = sa.table(
        "plans",
        sa.column("key", sa.String),
        sa.column("name", sa.String),
        sa.column("storage_quota_bytes", sa.BigInteger),
        sa.column("max_upload_bytes", sa.BigInteger),
        sa.column("images_per_period", sa.Integer),
        sa.column("videos_per_period", sa.Integer),
    )
    op.bulk_insert(plans, list(SEED_PLANS))


def downgrade() -> None:
    op.drop_index("ix_projects_user_saved", table_name="projects")
    op.drop_table("projects")
    op.drop_index("ix_assets_user_type_created", table_name="assets")
    op.drop_index("ix_assets_user_created", table_name="assets")
    op.drop_index(
        "ix_assets_unfinished", table_name="assets", postgresql_where="status IN ('pending', 'processing')"
    )
    op.drop_table("assets")
    op.drop_index(op.f("ix_users_billing_cycle_end"), table_name="users")
    op.drop_table("users")
    op.drop_table("plans")
    op.drop_table("pending_deletions")
