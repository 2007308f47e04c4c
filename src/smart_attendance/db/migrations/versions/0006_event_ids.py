"""Event ids unique per student: ``marks.event_id`` was unique on its own, so a second student
sent with the id of another's scan was answered with the first student's mark and never marked.
Now ``(event_id, student)`` is unique (``uq_marks_event_student``): a resend of a scan still
marks nobody twice, and an id never stands for another student. ``event_id`` grows to 192
characters (an id of 100, a class of 64 and its period, under a timetable).

The old constraint has no name of ours: PostgreSQL named it ``marks_event_id_key``; SQLite keeps
it unnamed, so the batch copy of ``marks`` names it by a naming convention to drop it.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

PG_EVENT_KEY = "marks_event_id_key"  # PostgreSQL's name for the column's UNIQUE
SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}  # unnamed UNIQUE -> uq_marks_event_id


def _is_sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def upgrade() -> None:
    if _is_sqlite():
        with op.batch_alter_table("marks", naming_convention=SQLITE_NAMES) as batch:
            batch.drop_constraint("uq_marks_event_id", type_="unique")
            batch.alter_column(
                "event_id",
                existing_type=sa.String(160),
                type_=sa.String(192),
                existing_nullable=True,
            )
            batch.create_unique_constraint("uq_marks_event_student", ["event_id", "student"])
        return
    op.drop_constraint(PG_EVENT_KEY, "marks", type_="unique")
    op.alter_column(
        "marks",
        "event_id",
        existing_type=sa.String(160),
        type_=sa.String(192),
        existing_nullable=True,
    )
    op.create_unique_constraint("uq_marks_event_student", "marks", ["event_id", "student"])


def downgrade() -> None:
    """Back to one mark per event id; fails when two students' marks share an event id."""
    if _is_sqlite():
        with op.batch_alter_table("marks", naming_convention=SQLITE_NAMES) as batch:
            batch.drop_constraint("uq_marks_event_student", type_="unique")
            batch.alter_column(
                "event_id",
                existing_type=sa.String(192),
                type_=sa.String(160),
                existing_nullable=True,
            )
            batch.create_unique_constraint("uq_marks_event_id", ["event_id"])
        return
    op.drop_constraint("uq_marks_event_student", "marks", type_="unique")
    op.alter_column(
        "marks",
        "event_id",
        existing_type=sa.String(192),
        type_=sa.String(160),
        existing_nullable=True,
    )
    op.create_unique_constraint(PG_EVENT_KEY, "marks", ["event_id"])
