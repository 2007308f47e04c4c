"""Schema migrations (Alembic, ``db/schema.py``): a database made by release 0.1's code
(``tests/data/release-0.1.db``) upgrades with every row kept, a new database gets exactly the
schema of ``tables.py``, and starts that race upgrade once. The same on a real PostgreSQL server
(``tests/pg.py``, marked ``real``): release 0.1's tables and rows copied there from the fixture."""

from __future__ import annotations

import io
import itertools
import shutil
import sqlite3
import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import Result
from sqlalchemy import MetaData, create_engine, inspect, text

from smart_attendance.db import schema
from smart_attendance.db.store import Store
from smart_attendance.db.tables import metadata
from smart_attendance.errors import StoreError
from smart_attendance.models import Mark

RELEASE_0_1_DB = Path(__file__).parent / "data" / "release-0.1.db"
KEPT_TABLES = ("photos", "intruders", "report_runs", "report_attempts")
OLD_MARK_COLUMNS = "id, student, day, seen_at, status, camera, event_id"
HEAD = schema.head()  # other revisions come after 0008: nothing here names the head


def _copy(tmp_path: Path, name: str = "attendance.db") -> Path:
    target = tmp_path / name
    shutil.copy(RELEASE_0_1_DB, target)
    return target


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(query).fetchall()


# The columns release 0.1 had, of kept tables that later revisions extended.
KEPT_COLUMNS = {
    "intruders": "id, day, seen_at, camera, path",
    "photos": "path, student, size, mtime_ns, sha256",
}


def _table(path: Path, table: str, columns: str = "*") -> list[tuple[Any, ...]]:
    """Every row of ``table`` (a name of this file, not input), in a stable order."""
    return _rows(path, f"SELECT {columns} FROM {table} ORDER BY 1, 2")  # noqa: S608


def _schema_sql(path: Path) -> list[tuple[Any, ...]]:
    return _rows(path, "SELECT type, name, sql FROM sqlite_master ORDER BY name")


def _differences(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return [d for d in compare_metadata(context, metadata) if not _empty_default(d)]
    finally:
        engine.dispose()


def _empty_default(difference: Any) -> bool:
    """Alembic's SQLite comparison of server defaults strips the quotes of ``'x'`` but not of
    ``''`` (its pattern wants one character at least), so an empty-string default always looks
    changed there: ``''`` (reflected as ``('')``) in the database and ``""`` in ``tables.py``
    are the same default."""
    if not (isinstance(difference, list) and len(difference) == 1):
        return False
    op, *_names, found, declared = difference[0]
    if op != "modify_default" or found is None or declared is None:
        return False
    return str(getattr(found.arg, "text", found.arg)) in ("''", "('')") and declared.arg == ""


def _mark(name: str, day: date, class_name: str, period: str) -> Mark:
    seen = datetime(day.year, day.month, day.day, int(period[:2]) + 1, 5)
    return Mark(name, day, seen, "Present", "door-1", class_name, period, "23:00", "", "camera:x")


@pytest.fixture
def release_db(tmp_path: Path) -> Path:
    return _copy(tmp_path)


def test_the_release_0_1_fixture_is_what_the_tests_expect() -> None:
    """The file is release 0.1's: no revision recorded, its six tables and rows."""
    names = {row[0] for row in _rows(RELEASE_0_1_DB, "SELECT name FROM sqlite_master")}
    assert "alembic_version" not in names
    assert names >= schema.RELEASE_0_1_TABLES
    counts = {t: len(_table(RELEASE_0_1_DB, t)) for t in (*KEPT_TABLES, "face_cache")}
    assert counts == {
        "photos": 2,
        "face_cache": 3,
        "intruders": 1,
        "report_runs": 1,
        "report_attempts": 1,
    }
    assert _rows(RELEASE_0_1_DB, "SELECT count(*) FROM marks") == [(3,)]


def test_a_release_0_1_database_upgrades_with_every_row_kept(release_db: Path) -> None:
    marks_before = _table(release_db, "marks", OLD_MARK_COLUMNS)
    kept_before = {t: _table(release_db, t) for t in KEPT_TABLES}
    descriptors = dict(_rows(release_db, "SELECT sha256, descriptor FROM face_cache"))

    store = Store(_url(release_db))
    change = store.create()
    assert (change.before, change.after, change.action) == ("0001", HEAD, "upgraded")
    assert change.describe() == f"Upgraded the database from 0001 (release 0.1) to {HEAD} (head)."
    assert _rows(release_db, "SELECT version_num FROM alembic_version") == [(HEAD,)]

    assert len(marks_before) == 3
    assert _table(release_db, "marks", OLD_MARK_COLUMNS) == marks_before
    for table, rows in kept_before.items():
        assert _table(release_db, table, KEPT_COLUMNS.get(table, "*")) == rows, table
    # Intruder photos of release 0.1 wait for a review.
    assert _rows(release_db, "SELECT state, student FROM intruders") == [("open", None)]
    # Release 0.1 kept descriptors unencrypted: 0004 drops them; the next enrolment computes
    # them again from the photos, sealed (privacy.sealing).
    assert len(descriptors) == 3
    assert _rows(release_db, "SELECT count(*) FROM face_cache") == [(0,)]
    assert store.cached_faces("pipe-v6", descriptors) == {}
    assert _rows(release_db, "SELECT DISTINCT consent FROM students") == [("none",)]
    assert all(row.kept for row in store.photo_rows().values())
    assert set(store.photo_rows()) == {"ana_lima/1.jpg", "ben_ito/1.jpg"}
    assert store.intruders_on(date(2026, 11, 20))[0]["camera"] == "door-2"
    assert store.report_status(date(2026, 11, 19)) == "sent"
    assert [a["recipients"] for a in store.attempts()] == ["teacher@school.org"]


def test_old_marks_join_the_all_day_class_with_their_camera_as_source(release_db: Path) -> None:
    store = Store(_url(release_db))
    store.create()
    marks = store.marks_between(date(2026, 11, 1), date(2026, 11, 30))
    assert [(m.name, m.day.isoformat(), m.status) for m in marks] == [
        ("ana_lima", "2026-11-19", "Present"),
        ("ben_ito", "2026-11-19", "Late"),
        ("ana_lima", "2026-11-20", "Present"),
    ]
    assert {(m.class_name, m.period, m.period_end, m.late_after) for m in marks} == {
        ("default", "00:00", "24:00", "")
    }
    assert [m.source for m in marks] == ["camera:door-1", "camera:door-1", "camera:door-2"]
    # The event ids still make a resend harmless.
    resent = store.record_mark(_mark("ana_lima", date(2026, 11, 25), "default", "00:00"), "ev1/1")
    assert not resent.new and resent.mark.day == date(2026, 11, 19)


def test_the_students_registry_is_filled_from_marks_and_photos(tmp_path: Path) -> None:
    plain = _copy(tmp_path, "plain.db")
    Store(_url(plain)).create()
    registry = [
        (s.name, s.joined_on, s.active, s.display_name, s.classes) for s in _students(plain)
    ]
    assert registry == [
        ("ana_lima", date(2026, 11, 19), True, "", ()),
        ("ben_ito", date(2026, 11, 19), True, "", ()),
    ]

    # cid's first mark is on the 20th; dee has photos and no mark: the register's first day.
    mixed = _copy(tmp_path, "mixed.db")
    with sqlite3.connect(mixed) as conn:
        conn.execute(
            "INSERT INTO marks (student, day, seen_at, status, camera, event_id) VALUES "
            "('cid', '2026-11-20', '2026-11-20 09:30:00.000000', 'Late', 'door-2', NULL)"
        )
        conn.execute("INSERT INTO photos VALUES ('dee/1.jpg', 'dee', 10, 3, '" + "d" * 64 + "')")
    Store(_url(mixed)).create()
    assert {s.name: s.joined_on for s in _students(mixed)} == {
        "ana_lima": date(2026, 11, 19),
        "ben_ito": date(2026, 11, 19),
        "cid": date(2026, 11, 20),
        "dee": date(2026, 11, 19),
    }

    # No marks at all: the students of the photos joined today.
    empty = _copy(tmp_path, "empty.db")
    with sqlite3.connect(empty) as conn:
        conn.execute("DELETE FROM marks")
    before = date.today()
    Store(_url(empty)).create()
    joined = {s.name: s.joined_on for s in _students(empty)}
    assert set(joined) == {"ana_lima", "ben_ito"}
    assert all(before <= day <= date.today() for day in joined.values())


def _students(path: Path) -> list[Any]:
    return Store(_url(path)).students()


def test_one_mark_per_student_and_class_period_after_the_upgrade(release_db: Path) -> None:
    store = Store(_url(release_db))
    store.create()
    day = date(2026, 11, 19)  # ana_lima has a mark in the all-day class that day
    other_period = store.record_mark(_mark("ana_lima", day, "maths", "10:00"))
    assert other_period.new
    again = store.record_mark(_mark("ana_lima", day, "maths", "10:00"))
    same_as_before = store.record_mark(_mark("ana_lima", day, "default", "00:00"))
    assert not again.new and not same_as_before.new
    assert same_as_before.mark.seen_at == datetime(2026, 11, 19, 8, 57, 12)
    assert _rows(release_db, "SELECT count(*) FROM marks WHERE student = 'ana_lima'") == [(3,)]
    with sqlite3.connect(release_db) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO marks (student, day, class_name, period, period_end, late_after, "
            "seen_at, status, camera, source) VALUES ('ana_lima', '2026-11-19', 'maths', "
            "'10:00', '11:00', '', '2026-11-19 10:30:00', 'Late', 'x', 'import')"
        )


def test_upgrading_twice_changes_nothing(release_db: Path) -> None:
    Store(_url(release_db)).create()
    schema_sql, marks = _schema_sql(release_db), _rows(release_db, "SELECT * FROM marks")
    students = _rows(release_db, "SELECT * FROM students")
    change = Store(_url(release_db)).create()
    assert (change.action, change.before, change.after) == ("current", HEAD, HEAD)
    assert change.describe() == f"Database at revision {HEAD} (head)."
    assert _schema_sql(release_db) == schema_sql
    assert _rows(release_db, "SELECT * FROM marks") == marks
    assert _rows(release_db, "SELECT * FROM students") == students


def test_every_road_leads_to_the_schema_of_tables_py(tmp_path: Path, release_db: Path) -> None:
    """Migrations 0001 and 0002 on an empty database, the upgrade of release 0.1's database,
    and the shortcut for a new database (create_all + stamp) all give tables.py's schema."""
    replayed = tmp_path / "replayed.db"
    change = schema.upgrade(Store(_url(replayed)).engine, replay=True)
    assert (change.action, change.after) == ("created", HEAD)
    created = tmp_path / "created.db"
    Store(_url(created)).create()
    Store(_url(release_db)).create()
    for path in (replayed, created, release_db):
        assert _differences(_url(path)) == [], path.name
        assert _rows(path, "SELECT version_num FROM alembic_version") == [(HEAD,)]
    # The same tables and indexes, the same columns (in another order where 0002 added
    # them), and no server default left from filling the old marks.
    assert _structure(created) == _structure(replayed) == _structure(release_db)
    # Server defaults: exactly those of tables.py (0008's, for rolling upgrades).
    declared = {(t.name, c.name) for t in metadata.sorted_tables for c in t.c if c.server_default}
    for path in (replayed, created, release_db):
        found = {
            (name, column)
            for name, columns in _structure(path)["columns"].items()
            if name != "alembic_version"
            for column, _type, _notnull, default, _pk in columns
            if default is not None
        }
        assert found == declared, path.name


def _structure(path: Path) -> dict[str, Any]:
    names = _rows(path, "SELECT type, name FROM sqlite_master ORDER BY name")
    return {
        "names": names,
        "columns": {
            name: sorted(r[1:] for r in _rows(path, f"PRAGMA table_info({name})"))
            for kind, name in names
            if kind == "table"
        },
    }


def test_the_migrations_are_plain_sql_on_postgresql() -> None:
    """Alembic's offline mode (``--sql``, for a database administrator) prints the SQL the
    revisions run on PostgreSQL (run for real below). Portable DDL and data (no SQLite table
    copies, no reads into Python), and the server defaults that filled the old marks dropped
    again."""
    config = schema.alembic_config(url="postgresql://nobody@localhost/attendance")
    config.output_buffer = io.StringIO()
    command.upgrade(config, "head", sql=True)
    sql = config.output_buffer.getvalue()
    assert "_alembic_tmp" not in sql and "PRAGMA" not in sql
    for statement in (
        "ALTER TABLE marks ADD COLUMN class_name VARCHAR(64) DEFAULT 'default' NOT NULL;",
        "ALTER TABLE marks ALTER COLUMN event_id TYPE VARCHAR(160);",
        "ALTER TABLE marks DROP CONSTRAINT uq_marks_student_day;",
        "ALTER TABLE marks ADD CONSTRAINT uq_marks_student_period "
        "UNIQUE (student, day, class_name, period);",
        "UPDATE marks SET source=('camera:' || marks.camera);",
        "ALTER TABLE marks ALTER COLUMN source DROP DEFAULT;",
        # 0006: event ids unique per student, not on their own
        "ALTER TABLE marks DROP CONSTRAINT marks_event_id_key;",
        "ALTER TABLE marks ADD CONSTRAINT uq_marks_event_student UNIQUE (event_id, student);",
        # 0008: the defaults back, for servers of the previous release (no table rewrite)
        "ALTER TABLE marks ALTER COLUMN key_name SET DEFAULT '';",
        "ALTER TABLE intruders ALTER COLUMN state SET DEFAULT 'open';",
        "ALTER TABLE photos ALTER COLUMN kept SET DEFAULT true;",
    ):
        assert statement in sql
    assert sql.count("INSERT INTO students") == 2
    assert "INSERT INTO alembic_version (version_num) VALUES ('0001')" in sql


# --- rolling upgrades: an older server keeps writing to the migrated database ------------------
#
# docs/deploy.md: the database is migrated first, then the servers are restarted one at a time,
# so for a while servers of the previous release write to the new schema. Their INSERTs name
# only the columns they know: every column a revision adds to an existing table must be
# nullable or have a server default, and no revision may drop (or rename) a column or table.

# Released before the rule: their NOT NULL columns lost the server default that filled the old
# rows; 0008 gave it back. Every other revision must follow the rule at once.
BEFORE_THE_RULE = {"0002", "0003", "0004", "0005"}

Columns = dict[str, dict[str, tuple[bool, bool]]]  # table -> column -> (nullable, has default)


def _reflect(conn: Any) -> Columns:
    found = inspect(conn)
    return {
        name: {
            c["name"]: (bool(c["nullable"]), c["default"] is not None)
            for c in found.get_columns(name)
        }
        for name in found.get_table_names()
        if name != schema.VERSION_TABLE
    }


def _walk(url: str) -> list[tuple[str, Columns]]:
    """Every revision in turn from an empty database: the tables and columns after each."""
    engine = create_engine(url)
    steps: list[tuple[str, Columns]] = []
    try:
        for revision in schema.revisions():
            with engine.begin() as conn:
                command.upgrade(schema.alembic_config(conn), revision)
            with engine.connect() as conn:
                steps.append((revision, _reflect(conn)))
    finally:
        engine.dispose()
    return steps


def test_the_rule_is_checked_from_the_revisions_themselves() -> None:
    """The walk below sees every revision (0009 and later included), one line of them."""
    assert set(schema.revisions()) > BEFORE_THE_RULE
    assert schema.revisions()[:8] == [
        "0001",
        "0002",
        "0003",
        "0004",
        "0005",
        "0006",
        "0007",
        "0008",
    ]


def test_every_added_not_null_column_has_a_server_default(db_url: str) -> None:
    """Each revision applied to the one before, as reflected from the database (SQLite and
    PostgreSQL): a column added to a table that existed before is nullable or has a server
    default, at that revision (from 0008 on; 0002-0005 by the head); nothing is dropped."""
    steps = _walk(db_url)
    head = steps[-1][1]
    broken, late, dropped = [], [], []
    for (_before, old), (revision, new) in itertools.pairwise(steps):
        dropped += [(revision, t) for t in old if t not in new]
        for name, columns in old.items():
            added = new.get(name, {})
            dropped += [(revision, f"{name}.{c}") for c in columns if c not in added]
            for column, (nullable, has_default) in added.items():
                if column in columns or nullable:
                    continue
                if revision in BEFORE_THE_RULE:
                    if not head[name][column][1]:
                        late.append((revision, f"{name}.{column}"))
                elif not has_default:
                    broken.append((revision, f"{name}.{column}"))
    assert dropped == [], "dropped or renamed while older servers may still use them"
    assert broken == [], "NOT NULL without a server default: older servers cannot insert"
    assert late == [], "still without a server default at the head"
    # Not an empty check: the columns the rule came for are seen as added.
    assert {
        f"{name}.{column}"
        for (revision, old), (_r, new) in itertools.pairwise(steps)
        for name in old
        for column in new.get(name, {})
        if column not in old[name] and not new[name][column][0]
    } >= {"intruders.state", "students.consent", "photos.kept", "marks.key_name"}


def _value(type_: Any, column: str, n: int) -> Any:
    """A value of a reflected column type, distinct for each ``n``."""
    kind = type_.python_type
    if kind is str:
        return f"{n}{column}"[: getattr(type_, "length", None) or 64]
    if kind is bool:
        return True
    if kind is int or kind is float:
        return kind(n)
    if kind is datetime:
        return datetime(2027, 1, 1, 8, 0) + timedelta(minutes=n)
    if kind is date:
        return date(2027, 1, 1) + timedelta(days=n)
    if kind is bytes:
        return b""
    raise AssertionError(f"no test value for {type_!r} ({column})")


def test_rows_of_every_earlier_revision_insert_at_head(db_url: str) -> None:
    """A server of any earlier revision inserts with the columns it knows, into the head's
    schema (an INSERT naming only those), and the rows read back with the defaults."""
    steps = _walk(db_url)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            types = {
                name: {c["name"]: c["type"] for c in found.get_columns(name)}
                for name in steps[-1][1]
            }
            serial = {
                name: found.get_pk_constraint(name)["constrained_columns"] for name in steps[-1][1]
            }
        for n, (revision, tables) in enumerate(steps[:-1], start=1):
            for name, columns in tables.items():
                named = [
                    c for c in columns if not (serial[name] == [c] == ["id"])
                ]  # the id is the database's to give
                row = {c: _value(types[name][c], c, n) for c in named}
                insert = sa.table(name, *(sa.column(c) for c in named)).insert().values(row)
                with engine.begin() as conn:  # one transaction each: a failure names its table
                    try:
                        conn.execute(insert)
                    except Exception as error:
                        pytest.fail(f"revision {revision}'s INSERT INTO {name} fails: {error}")
        with engine.connect() as conn:
            old_marks = conn.execute(
                text(
                    "SELECT class_name, period, period_end, late_after, source, key_name"
                    " FROM marks WHERE student = '1student'"
                )
            ).all()
            assert [tuple(r) for r in old_marks] == [("default", "00:00", "24:00", "", "", "")]
            assert conn.execute(
                text("SELECT state FROM intruders WHERE camera = '1camera'")
            ).all() == [("open",)]
            assert conn.execute(
                text("SELECT kept FROM photos WHERE student = '1student'")
            ).all() == [(True,)]
            assert conn.execute(
                text("SELECT consent FROM students WHERE name = '2name'")
            ).all() == [("none",)]
    finally:
        engine.dispose()


def test_the_revisions_are_one_line_from_release_0_1() -> None:
    """One line of revisions, each revising the one before; the head is the last of them
    (later revisions may follow 0008: only the released ones are named)."""
    found = schema.revisions()
    released = ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008"]
    assert found[: len(released)] == released
    assert found == sorted(found) and found[-1] == schema.head()


def test_a_new_database_is_created_at_head(tmp_path: Path) -> None:
    change = Store(_url(tmp_path / "sub" / "new.db")).create()
    assert (change.before, change.after, change.action) == (None, HEAD, "created")
    assert change.describe() == f"Created the database at revision {HEAD} (head)."
    memory = Store("sqlite://")
    assert memory.create().action == "created"
    assert memory.create().action == "current"


def _start_at_once(url: str, servers: int = 4) -> tuple[list[str], list[BaseException]]:
    """``Store.create()`` from ``servers`` threads at the same moment, an engine each (like
    separate server processes); what each did, and what each raised."""
    barrier = threading.Barrier(servers)
    actions: list[str] = []
    errors: list[BaseException] = []

    def start() -> None:
        store = Store(url)
        barrier.wait()
        try:
            actions.append(store.create().action)
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=start) for _ in range(servers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return actions, errors


@pytest.mark.parametrize("source", ["new", "release-0.1"])
def test_servers_starting_at_once_upgrade_once(tmp_path: Path, source: str) -> None:
    expected = "created" if source == "new" else "upgraded"
    for attempt in range(3):
        path = tmp_path / f"{attempt}.db"
        if source == "release-0.1":
            shutil.copy(RELEASE_0_1_DB, path)
        actions, errors = _start_at_once(_url(path))
        assert errors == []
        assert sorted(actions) == sorted([expected, "current", "current", "current"])
        assert _rows(path, "SELECT version_num FROM alembic_version") == [(HEAD,)]
        assert len(_table(path, "marks")) == (0 if source == "new" else 3)


def test_a_database_of_a_newer_release_is_refused_and_left_alone(release_db: Path) -> None:
    store = Store(_url(release_db))
    store.create()
    with sqlite3.connect(release_db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    before = _schema_sql(release_db)
    with pytest.raises(StoreError, match="revision 0099"):
        store.create()
    assert _schema_sql(release_db) == before


def test_tables_of_no_known_revision_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE marks (id INTEGER PRIMARY KEY, who TEXT)")
    with pytest.raises(StoreError, match="no known schema revision"):
        Store(_url(path)).create()
    assert [r[0] for r in _rows(path, "SELECT name FROM sqlite_master")] == ["marks"]


def test_a_failed_upgrade_leaves_the_database_as_it_was(release_db: Path) -> None:
    """An index in 0002's way makes it fail after it created three tables: the whole upgrade
    is one transaction, so nothing of it stays."""
    with sqlite3.connect(release_db) as conn:
        conn.execute("CREATE INDEX ix_sightings_day ON photos (size)")
    before = _schema_sql(release_db)
    with pytest.raises(StoreError, match="ix_sightings_day"):
        Store(_url(release_db)).create()
    assert _schema_sql(release_db) == before


def test_the_migrations_go_back_to_release_0_1_and_forward_again(release_db: Path) -> None:
    store = Store(_url(release_db))
    store.create()
    with store.engine.begin() as conn:
        command.downgrade(schema.alembic_config(conn), "0001")
    sql = " ".join(str(r[0]) for r in _rows(release_db, "SELECT sql FROM sqlite_master"))
    assert "uq_marks_student_day" in sql and "students" not in sql
    assert len(_rows(release_db, "SELECT * FROM marks")) == 3
    assert store.create().describe() == f"Upgraded the database from 0001 to {HEAD} (head)."
    assert _differences(_url(release_db)) == []


def test_db_upgrade_prints_one_line(tmp_path: Path, cli: Callable[..., Result]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _copy(data)
    env = {"ATTENDANCE_DATA_DIR": str(data)}
    first = cli("db", "upgrade", env=env)
    assert first.exit_code == 0, first.output
    assert first.stdout == f"Upgraded the database from 0001 (release 0.1) to {HEAD} (head).\n"
    second = cli("db", "upgrade", env=env)
    assert second.exit_code == 0
    assert second.stdout == f"Database at revision {HEAD} (head).\n"
    assert _rows(data / "attendance.db", "SELECT count(*) FROM marks") == [(3,)]

    fresh = tmp_path / "fresh"
    created = cli("db", "upgrade", env={"ATTENDANCE_DATA_DIR": str(fresh)})
    assert created.stdout == (
        f"Created the database at revision {HEAD} (head): {(fresh / 'attendance.db').resolve()}\n"
    )


def test_db_upgrade_errors_are_one_line(tmp_path: Path, cli: Callable[..., Result]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "attendance.db") as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('0099')")
    result = cli("db", "upgrade", env={"ATTENDANCE_DATA_DIR": str(data)})
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ") and "revision 0099" in line
    assert "Traceback" not in result.output


# --- the same roads on a real PostgreSQL server (tests/pg.py) ----------------------------------


def _pg_rows(url: str, query: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(query))]
    finally:
        engine.dispose()


def _pg_structure(url: str) -> dict[str, Any]:
    """Tables, columns (in any order), keys and indexes, as PostgreSQL reports them."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            return {
                name: {
                    "columns": sorted(
                        (c["name"], str(c["type"]), c["nullable"], c["default"])
                        for c in found.get_columns(name)
                        if not str(c["default"] or "").startswith("nextval(")
                    ),
                    "serial": sorted(
                        c["name"]
                        for c in found.get_columns(name)
                        if str(c["default"] or "").startswith("nextval(")
                    ),
                    "primary": found.get_pk_constraint(name)["constrained_columns"],
                    "unique": sorted(
                        (u["name"], tuple(u["column_names"]))
                        for u in found.get_unique_constraints(name)
                    ),
                    "indexes": sorted(
                        (i["name"], tuple(i["column_names"]), i["unique"])
                        for i in found.get_indexes(name)
                    ),
                    "foreign": sorted(
                        (f["referred_table"], tuple(f["constrained_columns"]))
                        for f in found.get_foreign_keys(name)
                    ),
                }
                for name in sorted(found.get_table_names())
            }
    finally:
        engine.dispose()


def _release_0_1_on_postgresql(url: str) -> None:
    """Release 0.1's database on PostgreSQL: revision 0001's tables without alembic_version
    (0.1 used create_all), holding the rows of the SQLite fixture."""
    source = create_engine(_url(RELEASE_0_1_DB))
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(schema.alembic_config(conn), "0001")
            conn.execute(text("DROP TABLE alembic_version"))
            target = MetaData()
            target.reflect(conn)
            with source.connect() as old:
                old_tables = MetaData()
                old_tables.reflect(old)
                for name in sorted(schema.RELEASE_0_1_TABLES):
                    rows = [dict(r._mapping) for r in old.execute(old_tables.tables[name].select())]
                    if rows:
                        conn.execute(target.tables[name].insert(), rows)
            for name in ("marks", "intruders", "report_attempts"):  # ids given: move on
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "  # noqa: S608
                        f"(SELECT coalesce(max(id), 0) + 1 FROM {name}), false)"
                    )
                )
    finally:
        source.dispose()
        engine.dispose()


@pytest.fixture
def pg_release(pg_url: str) -> str:
    _release_0_1_on_postgresql(pg_url)
    return pg_url


@pytest.mark.real
def test_every_road_leads_to_the_schema_of_tables_py_on_postgresql(
    pg: Any, pg_release: str
) -> None:
    replayed, created = pg.database(), pg.database()
    try:
        store = Store(replayed)
        change = schema.upgrade(store.engine, replay=True)
        store.close()
        assert (change.action, change.after) == ("created", HEAD)
        store = Store(created)
        assert store.create().action == "created"
        store.close()
        store = Store(pg_release)
        change = store.create()
        store.close()
        assert (change.before, change.action, change.release_0_1) == ("0001", "upgraded", True)
        for url in (replayed, created, pg_release):
            assert _differences(url) == [], url
            assert _pg_rows(url, "SELECT version_num FROM alembic_version") == [(HEAD,)]
        assert _pg_structure(created) == _pg_structure(replayed) == _pg_structure(pg_release)
        # 0006 on PostgreSQL: the column's own UNIQUE (marks_event_id_key) is gone.
        uniques = _pg_structure(pg_release)["marks"]["unique"]
        assert ("uq_marks_event_student", ("event_id", "student")) in uniques
        assert all(name != "marks_event_id_key" for name, _ in uniques)
    finally:
        pg.drop(replayed)
        pg.drop(created)


@pytest.mark.real
def test_a_release_0_1_database_upgrades_with_every_row_kept_on_postgresql(
    pg_release: str,
) -> None:
    marks_before = _pg_rows(pg_release, f"SELECT {OLD_MARK_COLUMNS} FROM marks ORDER BY id")  # noqa: S608
    assert len(marks_before) == 3
    store = Store(pg_release)
    try:
        assert store.create().describe() == (
            f"Upgraded the database from 0001 (release 0.1) to {HEAD} (head)."
        )
        after = _pg_rows(pg_release, f"SELECT {OLD_MARK_COLUMNS} FROM marks ORDER BY id")  # noqa: S608
        assert after == marks_before
        assert _pg_rows(pg_release, "SELECT state, student FROM intruders") == [("open", None)]
        assert _pg_rows(pg_release, "SELECT count(*) FROM face_cache") == [(0,)]
        marks = store.marks_between(date(2026, 11, 1), date(2026, 11, 30))
        assert [(m.name, m.class_name, m.source) for m in marks] == [
            ("ana_lima", "default", "camera:door-1"),
            ("ben_ito", "default", "camera:door-1"),
            ("ana_lima", "default", "camera:door-2"),
        ]
        assert [s.name for s in store.students()] == ["ana_lima", "ben_ito"]
        # The event ids still make a resend harmless; a new mark takes a new id.
        day = date(2026, 11, 25)
        resent = store.record_mark(_mark("ana_lima", day, "default", "00:00"), "ev1/1")
        assert not resent.new and resent.mark.day == date(2026, 11, 19)
        assert store.record_mark(_mark("ana_lima", day, "maths", "10:00")).new
        assert store.report_status(date(2026, 11, 19)) == "sent"
    finally:
        store.close()


@pytest.mark.real
def test_the_migrations_go_back_to_release_0_1_and_forward_again_on_postgresql(
    pg_release: str,
) -> None:
    store = Store(pg_release)
    try:
        store.create()
        with store.engine.begin() as conn:
            command.downgrade(schema.alembic_config(conn), "0001")
        tables = {r[0] for r in _pg_rows(pg_release, "SELECT tablename FROM pg_tables")}
        assert "students" not in tables and "marks" in tables
        uniques = _pg_structure(pg_release)["marks"]["unique"]
        assert ("uq_marks_student_day", ("student", "day")) in uniques
        assert ("marks_event_id_key", ("event_id",)) in uniques
        assert len(_pg_rows(pg_release, "SELECT * FROM marks")) == 3
        assert store.create().describe() == f"Upgraded the database from 0001 to {HEAD} (head)."
        assert _differences(pg_release) == []
    finally:
        store.close()


@pytest.mark.real
@pytest.mark.parametrize("source", ["new", "release-0.1"])
def test_servers_starting_at_once_upgrade_once_on_postgresql(pg: Any, source: str) -> None:
    expected = "created" if source == "new" else "upgraded"
    for _attempt in range(3):
        url = pg.database()
        try:
            if source == "release-0.1":
                _release_0_1_on_postgresql(url)
            actions, errors = _start_at_once(url)
            assert errors == []
            assert sorted(actions) == sorted([expected, "current", "current", "current"])
            assert _pg_rows(url, "SELECT version_num FROM alembic_version") == [(HEAD,)]
            assert _pg_rows(url, "SELECT count(*) FROM marks") == [(0 if source == "new" else 3,)]
        finally:
            pg.drop(url)


@pytest.mark.real
def test_a_failed_upgrade_leaves_the_database_as_it_was_on_postgresql(pg_release: str) -> None:
    """PostgreSQL's DDL is transactional too: nothing of a failed upgrade stays."""
    _pg_rows(pg_release, "SELECT 1")
    engine = create_engine(pg_release)
    with engine.begin() as conn:
        conn.execute(text("CREATE INDEX ix_sightings_day ON photos (size)"))
    engine.dispose()
    before = _pg_structure(pg_release)
    store = Store(pg_release)
    try:
        with pytest.raises(StoreError, match="ix_sightings_day"):
            store.create()
    finally:
        store.close()
    assert _pg_structure(pg_release) == before


@pytest.mark.real
def test_a_new_database_is_created_at_head_on_postgresql(pg_url: str) -> None:
    store = Store(pg_url)
    try:
        assert store.create().describe() == f"Created the database at revision {HEAD} (head)."
        assert store.create().action == "current"
    finally:
        store.close()
