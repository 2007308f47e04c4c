"""Liveness challenges (``ATTENDANCE_REQUIRE_LIVENESS=challenge``): the one-use nonces that
``GET /liveness/challenge`` hands to cameras (``liveness_challenges``).

A nonce lives in the database, not in a server's memory: the servers behind a load balancer are
stateless, a camera may ask one for its challenge and send its scan to another, and the nonce is
used up by one atomic ``UPDATE`` on whichever server sees it first. Only the nonce's SHA-256 is
stored (like a badge's token). A new table: nothing to fill, nothing for older servers to know.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "liveness_challenges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("nonce_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("camera", sa.String(64), nullable=False),
        sa.Column("key_name", sa.String(64), nullable=False),
        sa.Column("actions", sa.String(128), nullable=False),
        sa.Column("issued_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("used_at", sa.DateTime, nullable=True),
    )
    op.create_index(
        "ix_liveness_challenges_expires_at", "liveness_challenges", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_liveness_challenges_expires_at", table_name="liveness_challenges")
    op.drop_table("liveness_challenges")
