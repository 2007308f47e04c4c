"""State that servers share: the intruder streak of each camera (``intruder_streaks``).

A camera's unknown frames were counted in each server's memory, so frames spread over several
servers took that many times as many frames to make an intruder photo, and each server kept its
own cooldown. Now the count lives in the database, updated atomically, with the last capture of
the camera (when, and which server made it): frames alternating between servers reach the
threshold once, and the cooldown holds across servers (the strangers' descriptors stay in the
memory of the server that saw them: biometric data of strangers is never stored).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "intruder_streaks",
        sa.Column("camera", sa.String(64), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("captured_at", sa.DateTime, nullable=True),
        sa.Column("captured_by", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("intruder_streaks")
