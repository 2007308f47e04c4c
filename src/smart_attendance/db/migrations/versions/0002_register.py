"""The register: class periods on the marks, a students registry, corrections, sightings and
a table of shared values, and the timetables in force (dated, so a change never rewrites
history).

Schema: new tables ``students``, ``corrections``, ``sightings`` and ``meta``; ``marks`` gains
``class_name``, ``period``, ``period_end``, ``late_after`` and ``source``, its ``event_id`` grows
to 160 characters, and one mark per student and day (``uq_marks_student_day``) becomes one
mark per student and class period (``uq_marks_student_period``). SQLite cannot alter a
constraint or a column's type in place, so ``marks`` changes in batch mode (a copy of the table
with every row, then a swap); PostgreSQL gets plain ``ALTER TABLE`` statements.

Data, for the rows of a release-0.1 database:

* every mark belongs to the one all-day class that release 0.1 knew: class ``default``,
  period ``00:00``-``24:00``, no Late rule kept (``''``: 0.1 did not record it); the new
  columns are added with these values as server defaults, which are dropped again afterwards
  so the schema ends exactly as ``tables.py`` declares it;
* ``source`` is ``'camera:' || camera`` (release 0.1 only marked from cameras);
* a ``students`` row for every distinct name in ``marks`` and ``photos``: active, no display
  name, no extra classes, and ``joined_on`` =

  - the student's first mark day, when they have marks (they were in class from then on, so
    statistics count them absent only from that day);
  - otherwise the earliest mark day in the register: an enrolled student (a dataset folder)
    that was never marked was expected all along, as release 0.1's statistics counted them;
  - today (the database's ``CURRENT_DATE``: UTC on SQLite, the session's zone on PostgreSQL)
    when the register has no marks at all, the day the server would give a newly enrolled
    student anyway.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

# The new columns of marks and the value every release-0.1 mark gets.
_NEW_MARK_COLUMNS = (
    ("class_name", sa.String(64), "default"),
    ("period", sa.String(5), "00:00"),
    ("period_end", sa.String(5), "24:00"),
    ("late_after", sa.String(5), ""),
    ("source", sa.String(128), ""),
)


def upgrade() -> None:
    students = op.create_table(
        "students",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("joined_on", sa.Date, nullable=False),
        sa.Column("classes", sa.String(2048), nullable=False),
    )
    op.create_table(
        "corrections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("student", sa.String(255), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("class_name", sa.String(64), nullable=False),
        sa.Column("period", sa.String(5), nullable=False),
        sa.Column("old_status", sa.String(16), nullable=True),
        sa.Column("new_status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("by", sa.String(128), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
    )
    op.create_index(
        "ix_corrections_slot", "corrections", ["day", "class_name", "period", "student"]
    )
    op.create_table(
        "sightings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("student", sa.String(255), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("seen_at", sa.DateTime, nullable=False),
        sa.Column("camera", sa.String(64), nullable=False),
    )
    op.create_index("ix_sightings_day", "sightings", ["day"])
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
    )
    op.create_table(
        "timetables",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("effective_from", sa.Date, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("default_late", sa.Integer, nullable=False),
    )

    with op.batch_alter_table("marks") as batch:
        for name, type_, value in _NEW_MARK_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=False, server_default=value))
        batch.alter_column(
            "event_id",
            existing_type=sa.String(128),
            type_=sa.String(160),
            existing_nullable=True,
        )
        batch.drop_constraint("uq_marks_student_day", type_="unique")
        batch.create_unique_constraint(
            "uq_marks_student_period", ["student", "day", "class_name", "period"]
        )

    # The data, as portable SQL (also printed by Alembic's offline mode, ``--sql``).
    marks = sa.table(
        "marks",
        sa.column("student", sa.String),
        sa.column("day", sa.Date),
        sa.column("camera", sa.String),
        sa.column("source", sa.String),
    )
    photos = sa.table("photos", sa.column("student", sa.String))
    op.execute(marks.update().values(source=sa.literal("camera:", sa.String) + marks.c.camera))
    columns = ["name", "display_name", "external_id", "active", "joined_on", "classes"]
    blank, none, yes = sa.literal("", sa.String), sa.null(), sa.true()
    op.execute(
        students.insert().from_select(
            columns,
            sa.select(marks.c.student, blank, none, yes, sa.func.min(marks.c.day), blank).group_by(
                marks.c.student
            ),
        )
    )
    first_day = sa.select(sa.func.min(marks.c.day)).scalar_subquery()
    op.execute(
        students.insert().from_select(
            columns,
            sa.select(
                photos.c.student,
                blank,
                none,
                yes,
                sa.func.coalesce(first_day, sa.func.current_date()),
                blank,
            )
            .where(photos.c.student.not_in(sa.select(marks.c.student)))
            .distinct(),
        )
    )

    with op.batch_alter_table("marks") as batch:
        for name, type_, value in _NEW_MARK_COLUMNS:
            batch.alter_column(
                name,
                existing_type=type_,
                existing_nullable=False,
                existing_server_default=value,
                server_default=None,
            )


def downgrade() -> None:
    """Back to release 0.1's schema; fails when a student has marks in two periods of a day
    (release 0.1 allowed one mark a day)."""
    with op.batch_alter_table("marks") as batch:
        batch.drop_constraint("uq_marks_student_period", type_="unique")
        batch.create_unique_constraint("uq_marks_student_day", ["student", "day"])
        batch.alter_column(
            "event_id",
            existing_type=sa.String(160),
            type_=sa.String(128),
            existing_nullable=True,
        )
        for name, _type, _value in reversed(_NEW_MARK_COLUMNS):
            batch.drop_column(name)
    op.drop_table("timetables")
    op.drop_table("meta")
    op.drop_index("ix_sightings_day", table_name="sightings")
    op.drop_table("sightings")
    op.drop_index("ix_corrections_slot", table_name="corrections")
    op.drop_table("corrections")
    op.drop_table("students")
