"""asset display key

Revision ID: 0004_asset_display_key
Revises: 0003_generation_reservations
Create Date: 2026-12-06 17:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_asset_display_key"
down_revision = "0003_generation_reservations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable and without a default: adding it rewrites no rows and takes the lock only briefly.
    op.add_column("assets", sa.Column("display_key", sa.String(length=256), nullable=True))


def downgrade() -> None:
    op.drop_column("assets", "display_key")
