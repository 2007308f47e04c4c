"""The dashboard: accounts, failed logins (throttling shared by every server), the review of
intruder photos and a queue of uncertain faces.

Schema: new tables ``users``, ``login_failures`` and ``uncertain``; ``intruders`` gains
``state``, ``student``, ``decided_by`` and ``decided_at``. Every intruder photo already on
record gets ``state`` ``open`` (waiting for a review) through a server default that is dropped
again afterwards (SQLite: a batch copy of ``intruders``), so the schema ends as ``tables.py``
declares it.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column(
        "intruders", sa.Column("state", sa.String(16), nullable=False, server_default="open")
    )
    with op.batch_alter_table("intruders") as batch:
        batch.alter_column("state", server_default=None)
    op.add_column("intruders", sa.Column("student", sa.String(255), nullable=True))
    op.add_column("intruders", sa.Column("decided_by", sa.String(128), nullable=True))
    op.add_column("intruders", sa.Column("decided_at", sa.DateTime, nullable=True))
    op.create_table(
        "uncertain",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("seen_at", sa.DateTime, nullable=False),
        sa.Column("camera", sa.String(64), nullable=False),
        sa.Column("candidate", sa.String(255), nullable=False),
        sa.Column("distance", sa.Float, nullable=False),
        sa.Column("margin", sa.Float, nullable=True),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("decided_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_uncertain_day", "uncertain", ["day"])
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("classes", sa.String(2048), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("password_changed_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_login_failures_at", "login_failures", ["at"])


def downgrade() -> None:
    op.drop_index("ix_login_failures_at", "login_failures")
    op.drop_table("login_failures")
    op.drop_table("users")
    op.drop_index("ix_uncertain_day", "uncertain")
    op.drop_table("uncertain")
    with op.batch_alter_table("intruders") as batch:
        for column in ("decided_at", "decided_by", "student", "state"):
            batch.drop_column(column)
