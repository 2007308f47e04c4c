"""The schema's revision: Alembic migrations (``db/migrations``), run in this process at start
(``Store.create``) and by ``attendance db upgrade``. No ``alembic.ini`` is needed: the
configuration is built here, with ``script_location`` pointing into the package and the
connection handed to ``migrations/env.py`` in ``config.attributes``.

``upgrade(engine)`` brings any database to the head revision (``tables.py``):

* at head already (every start but the first): one read of ``alembic_version``, nothing else;
* a brand-new database (none of our tables): ``create_all`` from ``tables.py`` and a stamp of
  the head revision, as Alembic's documentation recommends ("building an up to date database
  from scratch"). Running 0001 then 0002 gives the same schema (``tests/test_migrations.py``
  compares it with ``tables.py``) but takes several times longer, mostly SQLite's batch-mode
  copies of ``marks``; the test suite creates hundreds of fresh databases and every server's
  first start is one. ``upgrade(engine, replay=True)`` runs the migrations instead;
* release 0.1's tables without ``alembic_version`` (0.1 used ``create_all``): stamped ``0001``,
  then upgraded;
* every table of the head without ``alembic_version`` (a database of a development version
  made with ``create_all``): stamped head;
* a revision this code does not know (a newer release's database), or tables of no known
  revision: ``StoreError``, and nothing is changed.

Concurrency: several server processes (or threads) may start at once on a new database. All the
work is one transaction under a lock, taken before the revision is read again: SQLite's
``BEGIN IMMEDIATE`` (the write lock; the others wait up to the busy timeout) and PostgreSQL's
transaction-scoped advisory lock; DDL is transactional in both, so a second process sees either
no tables or the finished head, never a half-made schema, and a failed upgrade leaves nothing
behind. Other databases get no lock. SQLite can also refuse a lock at once, without waiting
(the first connections to a new file race to switch it to WAL mode): as nothing was changed,
the upgrade is simply tried again after a short pause, a few times.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, column, inspect, select, table, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from ..errors import StoreError
from .tables import metadata

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
VERSION_TABLE = "alembic_version"  # Alembic's default
RELEASE_0_1 = "0001"
RELEASE_0_1_TABLES = frozenset(
    {"photos", "face_cache", "marks", "intruders", "report_runs", "report_attempts"}
)
_PG_LOCK_KEY = 0x5A7E_DB01  # pg_advisory_xact_lock: any constant of this application
_BUSY_PAUSES_S = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)  # "database is locked" at once: retry

Action = Literal["current", "created", "upgraded", "stamped"]


@dataclass(frozen=True)
class SchemaChange:
    """What ``upgrade`` did: ``before`` is the revision found (None: a new database)."""

    before: str | None
    after: str
    action: Action
    release_0_1: bool = False  # found release 0.1's tables without a revision

    def describe(self) -> str:
        if self.action == "current":
            return f"Database at revision {self.after} (head)."
        if self.action == "created":
            return f"Created the database at revision {self.after} (head)."
        if self.action == "stamped":
            return f"Recorded revision {self.after} (head): the tables were already at head."
        found = f"{self.before} (release 0.1)" if self.release_0_1 else f"{self.before}"
        return f"Upgraded the database from {found} to {self.after} (head)."


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """Alembic's configuration for this package's migrations, on ``connection`` (used as it
    is, inside its transaction) or else on ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The newest revision (the schema of ``tables.py``)."""
    heads = _script().get_heads()
    if len(heads) != 1:  # pragma: no cover - a packaging mistake, caught by the tests
        raise StoreError(f"the migrations have {len(heads)} heads; expected one")
    return heads[0]


def revisions() -> list[str]:
    """Every revision, oldest first."""
    return [script.revision for script in reversed(list(_script().walk_revisions()))]


def current_revision(connection: Connection) -> str | None:
    """The revision recorded in ``alembic_version`` (None: no such table, or empty); read
    directly, without Alembic's per-connection log lines at every start."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    version = table(VERSION_TABLE, column("version_num"))
    found = connection.execute(select(version.c.version_num)).scalars().all()
    if len(found) > 1:
        raise StoreError(f"the database records {len(found)} schema revisions; expected one")
    return str(found[0]) if found else None


def upgrade(engine: Engine, *, replay: bool = False) -> SchemaChange:
    """Bring the database to the head revision (see the module's docstring); ``replay`` runs
    every migration on a new database instead of creating the head's tables directly."""
    target = head()
    try:
        for pause in (*_BUSY_PAUSES_S, None):
            try:
                return _upgrade(engine, target, replay)
            except OperationalError as exc:
                if pause is None or not _busy(engine, exc):
                    raise
                time.sleep(pause)  # nothing was changed (one transaction): try again
        raise AssertionError("unreachable")  # pragma: no cover
    except CommandError as exc:
        raise StoreError(f"cannot upgrade the database: {exc}") from None
    except SQLAlchemyError as exc:
        original = getattr(exc, "orig", None)
        detail = str(original if original is not None else exc).splitlines()[0][:160]
        raise StoreError(f"database error: {detail}") from None


def _upgrade(engine: Engine, target: str, replay: bool) -> SchemaChange:
    with engine.connect() as conn:
        if current_revision(conn) == target:
            return SchemaChange(target, target, "current")
    with engine.connect() as conn:
        _lock(conn)
        change = _upgrade_locked(conn, target, replay)
        conn.commit()
    return change


def _busy(engine: Engine, exc: OperationalError) -> bool:
    """SQLite refused a lock at once, without waiting for the busy timeout: the first
    connections to a new file race to switch it to WAL mode (``PRAGMA journal_mode``)."""
    return engine.dialect.name == "sqlite" and "locked" in str(exc.orig)


def _lock(conn: Connection) -> None:
    """Serialise schema changes across processes until the transaction ends."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def _upgrade_locked(conn: Connection, target: str, replay: bool) -> SchemaChange:
    found = current_revision(conn)
    if found == target:  # another process did it while this one waited for the lock
        return SchemaChange(found, target, "current")
    config = alembic_config(conn)
    if found is not None:
        if found not in revisions():
            raise StoreError(
                f"the database is at schema revision {found}, which this version of Smart "
                f"Attendance does not know (it knows {', '.join(revisions())}); was it "
                "upgraded by a newer release?"
            )
        command.upgrade(config, "head")
        return SchemaChange(found, target, "upgraded")
    ours = set(inspect(conn).get_table_names()) & set(metadata.tables)
    if not ours:
        if replay:
            command.upgrade(config, "head")
        else:
            metadata.create_all(conn)
            MigrationContext.configure(conn).stamp(_script(), "head")
        return SchemaChange(None, target, "created")
    if ours == RELEASE_0_1_TABLES:
        command.stamp(config, RELEASE_0_1)
        command.upgrade(config, "head")
        return SchemaChange(RELEASE_0_1, target, "upgraded", release_0_1=True)
    if ours == set(metadata.tables):
        MigrationContext.configure(conn).stamp(_script(), "head")
        return SchemaChange(target, target, "stamped")
    raise StoreError(
        "the database has tables of no known schema revision (no alembic_version table; "
        f"found {', '.join(sorted(ours))}); expected none, release 0.1's or the current ones"
    )
