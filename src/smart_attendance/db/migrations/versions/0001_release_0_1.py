"""Release 0.1: the schema its code made with ``create_all`` (photos, face cache, one mark per
student and day, intruders, the daily report's runs and attempts).

A release-0.1 database has these tables but no ``alembic_version``; ``db.schema`` stamps it with
this revision and upgrades it from here. On an empty database this revision builds them as
release 0.1 did (plain DDL, no server defaults: 0.1 set its defaults in Python).

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "photos",
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("student", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )
    op.create_index("ix_photos_student", "photos", ["student"])
    op.create_table(
        "face_cache",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("pipeline", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(255), nullable=False),
        sa.Column("descriptor", sa.LargeBinary, nullable=True),
    )
    op.create_table(
        "marks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("student", sa.String(255), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("seen_at", sa.DateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("camera", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=True, unique=True),
        sa.UniqueConstraint("student", "day", name="uq_marks_student_day"),
    )
    op.create_table(
        "intruders",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("seen_at", sa.DateTime, nullable=False),
        sa.Column("camera", sa.String(64), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
    )
    op.create_index("ix_intruders_day", "intruders", ["day"])
    op.create_table(
        "report_runs",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("lease_until", sa.DateTime, nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
    )
    op.create_table(
        "report_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("recipients", sa.String(1024), nullable=False),
        sa.Column("error", sa.String(512), nullable=False),
    )


def downgrade() -> None:
    for table in ("report_attempts", "report_runs", "intruders", "marks", "face_cache"):
        op.drop_table(table)
    op.drop_index("ix_photos_student", table_name="photos")
    op.drop_table("photos")
