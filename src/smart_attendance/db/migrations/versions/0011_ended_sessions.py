"""Dashboard sessions that were signed out (``ended_sessions``): a copied session cookie opens
nothing once its user signed out.

The session stays a signed cookie; it now carries a random id, and signing out keeps that id's
SHA-256 here until the session would have ended anyway (``ATTENDANCE_SESSION_MAX_HOURS`` after
it began), so the table holds a few rows per user and day. A new table: nothing to fill;
older servers beside newer ones during a rolling upgrade simply do not look at it.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "ended_sessions",
        sa.Column("session_sha256", sa.String(64), primary_key=True),
        sa.Column("ended_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_ended_sessions_expires_at", "ended_sessions", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_ended_sessions_expires_at", table_name="ended_sessions")
    op.drop_table("ended_sessions")
