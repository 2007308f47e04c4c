"""Privacy: consent, badges, the audit log, descriptor-only photos, once-a-day jobs.

Schema: ``students`` gains ``consent`` (every student on record starts at ``none``: with
``ATTENDANCE_REQUIRE_CONSENT=1`` nobody is enrolled until their consent is recorded);
``photos`` gains ``kept`` (True for every photo on record); new tables ``consent_events``,
``badges``, ``audit`` and ``job_runs``. Server defaults fill the new columns of existing rows
and are dropped again, so the schema ends as ``tables.py`` declares it. Descriptors already
cached in ``face_cache`` were stored unencrypted: they are dropped here (the cache is
rebuilt, encrypted, from the photos at the next enrolment).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column(
        "students", sa.Column("consent", sa.String(16), nullable=False, server_default="none")
    )
    with op.batch_alter_table("students") as batch:
        batch.alter_column("consent", server_default=None)
    op.add_column("photos", sa.Column("kept", sa.Boolean, nullable=False, server_default="1"))
    with op.batch_alter_table("photos") as batch:
        batch.alter_column("kept", server_default=None)
    op.execute("DELETE FROM face_cache")
    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("student", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("by", sa.String(128), nullable=False),
        sa.Column("document", sa.String(255), nullable=False),
        sa.Column("recorded_by", sa.String(128), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_consent_events_student", "consent_events", ["student"])
    op.create_table(
        "badges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("student", sa.String(255), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("issued_at", sa.DateTime, nullable=False),
        sa.Column("issued_by", sa.String(128), nullable=False),
        sa.Column("revoked_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_badges_student", "badges", ["student"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("detail", sa.String(512), nullable=False),
    )
    op.create_index("ix_audit_at", "audit", ["at"])
    op.create_table(
        "job_runs",
        sa.Column("job", sa.String(32), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("lease_until", sa.DateTime, nullable=False),
        sa.Column("detail", sa.String(1024), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("job_runs")
    op.drop_index("ix_audit_at", "audit")
    op.drop_table("audit")
    op.drop_index("ix_badges_student", "badges")
    op.drop_table("badges")
    op.drop_index("ix_consent_events_student", "consent_events")
    op.drop_table("consent_events")
    with op.batch_alter_table("photos") as batch:
        batch.drop_column("kept")
    with op.batch_alter_table("students") as batch:
        batch.drop_column("consent")
