"""Per-day tallies of the register (``day_tallies``, ``tallied_days``): statistics over a
year read summed rows instead of building the year's register.

For each school day before today, each student and each class: how many of their class
periods were Present, Late, Excused and Absent (``attendance/tallies.py`` computes a day with
the register's own rules and keeps it; the next request sums). ``tallied_days`` says which days
are kept and under which generation of the registry and the timetables; a change to a day (a
mark, a correction) or to the rules (a timetable, a student's classes) makes it computed
again. New tables: nothing to fill (the first statistics request fills them), nothing for
older servers to know.

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
    # a day's marks without reading the whole table (today's board, a day's tallies)
    op.create_index("ix_marks_day", "marks", ["day", "class_name"], unique=False)
    op.create_table(
        "day_tallies",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("class_name", sa.String(64), primary_key=True),
        sa.Column("student", sa.String(255), primary_key=True),
        sa.Column("present", sa.Integer, nullable=False),
        sa.Column("late", sa.Integer, nullable=False),
        sa.Column("excused", sa.Integer, nullable=False),
        sa.Column("absent", sa.Integer, nullable=False),
    )
    op.create_index("ix_day_tallies_student", "day_tallies", ["student"], unique=False)
    op.create_table(
        "tallied_days",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
        # the highest mark and correction ids when the day was computed
        sa.Column("marks_seen", sa.Integer, nullable=False),
        sa.Column("corrections_seen", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_index("ix_marks_day", table_name="marks")
    op.drop_table("tallied_days")
    op.drop_index("ix_day_tallies_student", table_name="day_tallies")
    op.drop_table("day_tallies")
