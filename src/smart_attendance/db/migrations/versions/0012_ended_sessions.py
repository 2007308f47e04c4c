"""Dashboard sessions that were signed out (``ended_sessions``), and erasures under way
(``pending_erasures``).

``ended_sessions``: a copied session cookie opens nothing once its user signed out.

The session stays a signed cookie; it now carries a random id, and signing out keeps that id's
SHA-256 here until the session would have ended anyway (``ATTENDANCE_SESSION_MAX_HOURS`` after
it began), so the table holds a few rows per user and day.

``pending_erasures``: an erasure whose database step is done but not the rest (the CSV files,
the review files, its audit entry, the compaction); a retry finishes it. The student's name is
kept there sealed with the data key, and only until the erasure is complete.

New tables: nothing to fill; older servers beside newer ones during a rolling upgrade simply
do not look at them.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision: str | None = "0011"
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
    op.create_table(
        "pending_erasures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("opaque_id", sa.String(32), nullable=False, unique=True),
        sa.Column("name_sealed", sa.LargeBinary, nullable=False),
        sa.Column("files", sa.Text, nullable=False),
        sa.Column("summary", sa.String(255), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pending_erasures")
    op.drop_index("ix_ended_sessions_expires_at", table_name="ended_sessions")
    op.drop_table("ended_sessions")
