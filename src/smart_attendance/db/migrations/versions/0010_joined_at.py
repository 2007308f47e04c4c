"""When a student joined, and when a timetable came into force, to the second.

A student is expected only in the class periods that start after they were added (issue: a
school's first students, added at 10:00, were Absent for that morning); a timetable recorded
during the day governs only the periods that start after it came into force.
``students.joined_at`` and ``timetables.effective_at`` are UTC; both stay NULL for the rows
made before this revision, which keep their day-long meaning (expected from the start of
``joined_on``; in force from the start of ``effective_from``). Both are nullable columns added
to existing tables, so older servers keep working beside newer ones during a rolling upgrade.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # nullable columns: a plain ALTER TABLE ... ADD COLUMN, no table rewrite
    op.add_column("students", sa.Column("joined_at", sa.DateTime, nullable=True))
    op.add_column("timetables", sa.Column("effective_at", sa.DateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("timetables") as batch:
        batch.drop_column("effective_at")
    with op.batch_alter_table("students") as batch:
        batch.drop_column("joined_at")
