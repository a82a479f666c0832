"""generation reservations

Revision ID: 0003_generation_reservations
Revises: 0002
Create Date: 2026-12-06 16:52:45.339058
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_generation_reservations"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "generation_reservations",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("refunded", sa.Integer(), server_default="0", nullable=False),
        sa.Column("settled", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cycle_end", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'settled', 'refunded')", name=op.f("ck_generation_reservations_status_known")
        ),
        sa.CheckConstraint("type IN ('image', 'video')", name=op.f("ck_generation_reservations_type_known")),
        sa.CheckConstraint("count >= 1", name=op.f("ck_generation_reservations_count_positive")),
        sa.CheckConstraint(
            "refunded >= 0 AND settled >= 0 AND refunded + settled <= count",
            name=op.f("ck_generation_reservations_units_bounded"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.user_id"],
            name=op.f("fk_generation_reservations_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generation_reservations")),
    )
    op.create_index(
        "ix_generation_reservations_expires", "generation_reservations", ["expires_at"], unique=False
    )
    op.create_index(
        "ix_generation_reservations_user_created",
        "generation_reservations",
        ["user_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_generation_reservations_user_created", table_name="generation_reservations")
    op.drop_index("ix_generation_reservations_expires", table_name="generation_reservations")
    op.drop_table("generation_reservations")
