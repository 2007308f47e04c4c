"""Rolling upgrades: a server default for every NOT NULL column that a revision added to a table
that existed before it.

Revisions 0002 to 0005 filled the new NOT NULL columns of existing rows through a server
default and dropped it again, so only this release's code, which names every column, could
insert. During a rolling upgrade (``docs/deploy.md``) the database is migrated first and the
servers of the previous release keep running until each is restarted: their INSERTs name only
the columns they know, and failed on the NOT NULL of the new ones (no mark, no intruder photo,
no enrolment). Each such column now keeps the value the revision gave the old rows as its
server default, the same value that ``tables.py`` sets in Python:

* ``marks``: ``class_name`` ``default``, ``period`` ``00:00``, ``period_end`` ``24:00``,
  ``late_after`` and ``source`` ``''`` (0002), ``key_name`` ``''`` (0005);
* ``intruders.state`` ``open`` (0003);
* ``students.consent`` ``none`` and ``photos.kept`` true (0004).

From here on every revision follows the rule (``tests/test_migrations.py`` checks it from the
schema): a column added to an existing table is nullable or has a server default, and a column
or table is dropped only in a later release than the one that stopped using it.

SQLite cannot change a column's default in place: batch mode copies each table once;
PostgreSQL gets ``ALTER TABLE ... ALTER COLUMN ... SET DEFAULT`` (no table rewrite).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

# table -> (column, its type, its server default)
DEFAULTS: dict[str, tuple[tuple[str, Any, Any], ...]] = {
    "marks": (
        ("class_name", sa.String(64), "default"),
        ("period", sa.String(5), "00:00"),
        ("period_end", sa.String(5), "24:00"),
        ("late_after", sa.String(5), ""),
        ("source", sa.String(128), ""),
        ("key_name", sa.String(64), ""),
    ),
    "intruders": (("state", sa.String(16), "open"),),
    "students": (("consent", sa.String(16), "none"),),
    "photos": (("kept", sa.Boolean(), sa.true()),),
}


def upgrade() -> None:
    for name, columns in DEFAULTS.items():
        with op.batch_alter_table(name) as batch:
            for column, type_, default in columns:
                batch.alter_column(
                    column, existing_type=type_, existing_nullable=False, server_default=default
                )


def downgrade() -> None:
    for name, columns in DEFAULTS.items():
        with op.batch_alter_table(name) as batch:
            for column, type_, default in columns:
                batch.alter_column(
                    column,
                    existing_type=type_,
                    existing_nullable=False,
                    existing_server_default=default,
                    server_default=None,
                )
