"""Hardening: camera keys, wrong-key throttling, and when each scan reached the server.

Schema: ``marks`` gains ``received_at`` (UTC, when the server got the scan; NULL for marks
made before this revision) and ``key_name`` (the camera key that made the mark; "" for the
master key and for marks made before); new tables ``camera_keys`` (one key per door camera,
stored as its SHA-256) and ``key_failures`` (wrong keys per address, shared by every server).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("marks", sa.Column("received_at", sa.DateTime, nullable=True))
    op.add_column("marks", sa.Column("key_name", sa.String(64), nullable=False, server_default=""))
    with op.batch_alter_table("marks") as batch:
        batch.alter_column("key_name", server_default=None)
    op.create_table(
        "camera_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("key_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("revoked_at", sa.DateTime, nullable=True),
        sa.Column("last_used_at", sa.DateTime, nullable=True),
    )
    op.create_table(
        "key_failures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_key_failures_at", "key_failures", ["at"])


def downgrade() -> None:
    op.drop_index("ix_key_failures_at", "key_failures")
    op.drop_table("key_failures")
    op.drop_table("camera_keys")
    with op.batch_alter_table("marks") as batch:
        batch.drop_column("key_name")
        batch.drop_column("received_at")
