"""The store on a real SQLite file and on a real PostgreSQL server (``db_url``): one mark a day
under races, statistics, CSV safety."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any

import pytest

from smart_attendance.attendance.files import render, safe_cell
from smart_attendance.attendance.register import Register
from smart_attendance.attendance.timetable import default_timetable
from smart_attendance.config import Settings
from smart_attendance.db.store import Store, StudentRow
from smart_attendance.errors import StoreError
from smart_attendance.models import Mark


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    s.create()
    yield s
    s.close()


def _mark(name: str, day: date, hh: int, status: str) -> Mark:
    return Mark(name, day, datetime(day.year, day.month, day.day, hh, 0), status, "cam")


def test_one_mark_per_student_per_day_under_a_race(db_url: str) -> None:
    url = db_url
    first = Store(url)
    first.create()
    first.close()
    day = date(2026, 11, 23)
    outcomes = []
    barrier = threading.Barrier(12)

    def attempt(i: int) -> None:
        store = Store(url)  # separate engines, like separate server processes
        barrier.wait()
        outcomes.append(store.record_mark(_mark("ann", day, 8 + i % 3, "Present")))
        store.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(o.new for o in outcomes) == 1
    assert len({o.mark.seen_at for o in outcomes}) == 1
    check = Store(url)
    assert len(check.marks_on(day)) == 1
    check.close()


def test_statistics_count_on_time_days(store: Store) -> None:
    d1, d2, d3 = date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)
    store.record_mark(_mark("ann", d1, 8, "Present"))
    store.record_mark(_mark("ann", d2, 10, "Late"))
    store.record_mark(_mark("ann", d3, 8, "Present"))
    store.record_mark(_mark("bob", d1, 10, "Late"))
    for name in ("ann", "bob", "cid"):
        store.add_student(StudentRow(name, joined_on=d1))
    register = Register(
        store,
        lambda day, class_name: default_timetable(
            Settings(class_start=time(9, 0), late_after_minutes=15)
        ).slots_on(day, class_name),
        lambda: datetime(2026, 11, 5, 12, 0, tzinfo=timezone.utc),
    )
    stats = {s.name: s for s in register.statistics(d1, d3)}
    assert stats["ann"].total_days == 3
    assert (stats["ann"].days_present, stats["ann"].days_on_time, stats["ann"].days_late) == (
        3,
        2,
        1,
    )
    assert stats["ann"].attendance_pct == 100.0
    assert stats["ann"].late_pct == 33.33
    assert stats["bob"].attendance_pct == 33.33 and stats["bob"].late_pct == 100.0
    assert stats["cid"].days_present == 0 and stats["cid"].attendance_pct == 0.0
    assert (stats["bob"].absent, stats["cid"].absent, stats["cid"].total_days) == (2, 3, 3)


def test_event_id_makes_a_resend_harmless(store: Store) -> None:
    day = date(2026, 11, 23)
    first = store.record_mark(_mark("ann", day, 8, "Present"), event_id="evt-1/1")
    again = store.record_mark(_mark("ann", day, 9, "Late"), event_id="evt-1/1")
    assert first.new and not again.new
    assert again.mark.status == "Present"


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="database"):
        Store(f"sqlite:///{blocker}/sub/a.db").create()
    with pytest.raises(StoreError):
        Store("postgresql+psycopg://nobody@127.0.0.1:1/none").create()


@pytest.mark.parametrize("cell", ["=1+2", "+SUM(A1)", "-3", "@cmd", "\tx", "\rx"])
def test_csv_cells_never_start_a_formula(cell: str) -> None:
    assert safe_cell(cell).startswith("'")
    assert safe_cell("alice") == "alice"
    text = render(("Name",), [(cell,)])
    assert text.splitlines()[1].lstrip('"').startswith("'")


@pytest.mark.real
def test_the_pool_is_sized_to_the_servers_threads_on_postgresql(
    pg_url: str, tmp_path: Path
) -> None:
    """Each request thread and background job keeps a connection; a few more for a moment."""
    from conftest import make_kit

    kit = make_kit(tmp_path, database_url=pg_url, threads=3)
    try:
        pool: Any = kit.services.store.engine.pool
        assert (pool.size(), pool._max_overflow) == (3 + 4, 4)
    finally:
        kit.services.close()
    store = Store(pg_url)  # a store of its own (attendance db upgrade): the default, 8 threads
    assert store.engine.pool.size() == 8 + 4  # type: ignore[attr-defined]
    store.close()
    sqlite = Store(f"sqlite:///{tmp_path / 'a.db'}", threads=3)
    assert sqlite.engine.pool.size() == 5  # type: ignore[attr-defined]  # SQLAlchemy's default
    sqlite.close()
