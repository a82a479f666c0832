"""worker pings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 10:48:08.294491
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_pings",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("queue", sa.String(length=32), nullable=False),
        sa.Column(
            "requested_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_pings")),
    )


def downgrade() -> None:
    op.drop_table("worker_pings")
