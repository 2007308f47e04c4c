"""Statistics from the kept per-day tallies equal, field by field, the register's definitions
(docs/api.md) computed over the whole range, on a varied school: a closure, a student who
joined mid-range, corrections (an excuse, an undo), a class given by hand, a timetable change,
a scan that arrives for yesterday; and every change to a closed day reaches the statistics."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from conftest import API_KEY, PARIS, Kit, make_kit
from dashboard_kit import sign_in
from smart_attendance.models import Mark, StudentStats

TIMETABLE = """
[[class]]
name = "math-7b"
students = ["ana_lima", "ben_ito"]
  [[class.period]]
  days = ["mon", "tue", "wed", "thu", "fri"]
  start = "08:30"
  end = "09:25"
  late_after_minutes = 10
  [[class.period]]
  days = ["mon", "wed"]
  start = "13:00"
  end = "14:00"

[[class]]
name = "art"
students = ["ben_ito"]
  [[class.period]]
  days = ["mon", "thu"]
  start = "09:00"
  end = "10:00"

[[closure]]
from = "2026-11-26"
to = "2026-11-26"
reason = "inset day"
"""


def at(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=PARIS)


@pytest.fixture
def school(tmp_path: Path) -> Iterator[Kit]:
    path = tmp_path / "timetable.toml"
    path.write_text(TIMETABLE, encoding="utf-8")
    # queued scans may be days old here (a door offline over a weekend)
    kit = make_kit(tmp_path, now=at(23, 7, 0), timetable=path, clock_window_hours=96)
    kit.services.attendance.adopt_timetable()
    yield kit
    kit.services.close()


def seen(kit: Kit, name: str, when: datetime, **form: str) -> None:
    kit.clock.set(when)
    response = kit.recognize(kit.probe(name), camera="door-1", **form)
    assert response.status_code == 200, response.get_json()


def api(kit: Kit, method: str, url: str, body: dict[str, object]) -> None:
    response = kit.client.open(url, method=method, json=body, headers={"X-API-KEY": API_KEY})
    assert response.status_code in (200, 201), response.get_json()


def by_definition(kit: Kit, first: date, last: date, cls: str | None) -> list[StudentStats]:
    """The register's statistics over the whole range, built in memory (the definition)."""
    attendance = kit.services.attendance
    entries = attendance.register.entries(first, last, cls)
    return attendance.register.statistics_of(entries, kit.settings.alert_below_pct)


def check_equal(kit: Kit, first: date, last: date) -> None:
    attendance = kit.services.attendance
    for cls in (None, "math-7b", "art"):
        kept = attendance.statistics(first, last, cls)
        assert kept == by_definition(kit, first, last, cls), cls


def test_kept_tallies_equal_the_registers_definitions_and_follow_every_change(
    school: Kit,
) -> None:
    first = date(2026, 11, 23)
    seen(school, "ana_lima", at(23, 8, 35))  # Present
    seen(school, "ben_ito", at(23, 8, 45))  # Late in maths, Present in art (opens 08:45)
    seen(school, "ana_lima", at(24, 8, 50))  # Late
    seen(school, "cleo_park", at(24, 9, 0))  # in no class: a sighting
    school.clock.set(at(24, 12, 0))
    api(school, "PATCH", "/students/cleo_park", {"classes": ["art"]})
    api(school, "POST", "/students", {"name": "dan_roe", "classes": ["math-7b"]})  # joined now
    seen(school, "ben_ito", at(25, 8, 31))
    school.clock.set(at(25, 16, 0))
    fix = {"name": "ana_lima", "class": "math-7b", "date": "2026-11-25", "period": "08:30"}
    api(school, "POST", "/attendance/corrections", {**fix, "status": "Excused", "reason": "ill"})
    api(school, "POST", "/attendance/corrections/undo", fix)
    api(school, "POST", "/attendance/corrections", {**fix, "status": "Excused", "reason": "flu"})
    seen(school, "cleo_park", at(27, 9, 5))  # Friday: art is not on Fridays: a sighting
    school.clock.set(at(30, 10, 0))  # the next Monday
    check_equal(school, first, date(2026, 11, 30))
    kept = school.services.store.tallied(first, date(2026, 11, 29), 1 << 30)
    assert kept == {}  # (another generation: nothing)

    # A correction of a closed day reaches the statistics (its day is computed again) ...
    api(
        school,
        "POST",
        "/attendance/corrections",
        {
            "name": "ben_ito",
            "class": "art",
            "date": "2026-11-23",
            "period": "09:00",
            "status": "Absent",
            "reason": "left at once",
        },
    )
    check_equal(school, first, date(2026, 11, 30))
    # ... and so does a scan queued on Friday evening that reaches the server on Monday
    school.clock.set(at(30, 8, 0))
    seen(school, "ana_lima", at(30, 8, 1), captured_at="2026-11-27T08:40:00+01:00")
    school.clock.set(at(30, 10, 0))
    check_equal(school, first, date(2026, 11, 30))
    # ... a student's classes changed, a student who left, a join day given by hand
    api(school, "PATCH", "/students/ana_lima", {"classes": ["art"]})
    check_equal(school, first, date(2026, 11, 30))
    api(school, "PATCH", "/students/ben_ito", {"active": False})
    check_equal(school, first, date(2026, 11, 30))
    api(
        school, "POST", "/students", {"name": "eve_ode", "classes": ["art"], "joined": "2026-11-23"}
    )
    check_equal(school, first, date(2026, 11, 30))


def test_a_closed_day_is_computed_once_then_read_summed(school: Kit) -> None:
    seen(school, "ana_lima", at(23, 8, 35))
    school.clock.set(at(25, 10, 0))
    tallies = school.services.attendance.tallies
    assert tallies.refresh(date(2026, 11, 23), date(2026, 11, 25)) == 2  # Mon and Tue
    assert tallies.refresh(date(2026, 11, 23), date(2026, 11, 25)) == 0  # kept
    store = school.services.store
    generation = store.register_generation()
    before = store.tallied(date(2026, 11, 23), date(2026, 11, 24), generation)
    seen(school, "ben_ito", at(25, 10, 1), captured_at="2026-11-24T08:40:00+01:00")
    tallies.refresh(date(2026, 11, 23), date(2026, 11, 25))
    after = store.tallied(date(2026, 11, 23), date(2026, 11, 24), generation)
    assert after[date(2026, 11, 23)] == before[date(2026, 11, 23)]  # Monday kept as it was
    assert after[date(2026, 11, 24)][0] == store.change_ids()[0]  # Tuesday computed again
    assert tallies.refresh(date(2026, 11, 23), date(2026, 11, 25)) == 0


def test_the_csv_files_are_written_off_the_request_and_coalesced(tmp_path: Path) -> None:
    kit = make_kit(tmp_path, csv_write_seconds=60)  # only the shutdown writes, here
    try:
        attendance = kit.services.attendance
        computed: list[int] = []
        statistics = attendance.statistics

        def counted(*args: object, **kwargs: object) -> list[StudentStats]:
            computed.append(1)
            return statistics(*args, **kwargs)  # type: ignore[arg-type]

        attendance.statistics = counted  # type: ignore[method-assign]
        day_file = kit.logs / "attendance_2026-11-23.csv"
        for name in ("ana_lima", "ben_ito", "cleo_park"):
            assert kit.recognize(kit.probe(name)).get_json()["new"] is True
        assert computed == [] and not day_file.exists()  # nothing on the request path
    finally:
        kit.services.close()  # the pending changes are written at shutdown, once
    assert computed == [1]
    lines = day_file.read_text(encoding="utf-8").splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["ana_lima", "ben_ito", "cleo_park"]
    stats = (kit.logs / "student_statistics.csv").read_text(encoding="utf-8").splitlines()
    assert len(stats) == 4


def test_a_range_longer_than_the_limit_is_refused_with_the_reason(tmp_path: Path) -> None:
    kit = make_kit(tmp_path, max_range_days=30)
    try:
        long = "from=2026-10-01&to=2026-11-23"
        for url in (f"/statistics?{long}", f"/export.csv?{long}", f"/export.xlsx?{long}"):
            answer = kit.get(url)
            assert answer.status_code == 400, url
            assert answer.get_json()["error"] == (
                "a range is at most 30 days (ATTENDANCE_MAX_RANGE_DAYS): 2026-10-01 to "
                "2026-11-23 is 54 days; ask for a shorter one"
            )
        assert kit.get("/statistics?from=2026-10-25&to=2026-11-23").status_code == 200
        # an open range starts at most 30 days back
        kit.services.store.record_mark(
            Mark("ana_lima", date(2026, 9, 1), datetime(2026, 9, 1, 9, 0), "Present", "door")
        )
        assert kit.services.attendance.span(None, None) == (date(2026, 10, 25), date(2026, 11, 23))
        sign_in(kit, "ada", "admin")
        page = kit.client.get("/reports?from=2026-10-01&to=2026-11-23")
        assert page.status_code == 400 and "at most 30 days" in page.get_data(as_text=True)
    finally:
        kit.services.close()


def _history(kit: Kit, days: int) -> None:
    """``days`` school days of marks before Monday 2026-11-23 for the class."""
    marks = []
    day = date(2026, 11, 23)
    done = 0
    while done < days:
        day = date.fromordinal(day.toordinal() - 1)
        if day.weekday() >= 5:
            continue
        done += 1
        for name in ("ana_lima", "ben_ito", "cleo_park"):
            seen_at = datetime.combine(day, datetime.min.time()).replace(hour=8, minute=50)
            marks.append(Mark(name, day, seen_at, "Present", "door-1"))
    kit.services.store.import_marks(marks)


def _new_mark_cost(base: Path, days: int) -> tuple[list[str], list[int]]:
    """The SQL statements and the fsyncs of a scan that makes a new mark, with ``days`` school
    days on record (the tallies kept, as a running server has them)."""
    from sqlalchemy import event

    kit = make_kit(base, csv_write_seconds=60)  # the CSV files by their own thread
    try:
        _history(kit, days)
        kit.services.attendance.statistics()
        kit.recognize(kit.probe("ben_ito"))  # warm: the first request builds caches
        statements: list[str] = []
        engine = kit.services.store.engine

        def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            statements.append(statement.split()[0].upper())

        event.listen(engine, "before_cursor_execute", count)
        synced: list[int] = []
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            synced.append(fd)
            real_fsync(fd)

        os.fsync = fsync
        try:
            answer = kit.recognize(kit.probe("ana_lima")).get_json()
        finally:
            os.fsync = real_fsync
            event.remove(engine, "before_cursor_execute", count)
        assert answer["new"] is True
        return statements, synced
    finally:
        kit.services.close()


def test_a_new_mark_costs_the_same_statements_whatever_the_history(tmp_path: Path) -> None:
    """No statement of the scan path reads history: the same statements with 10 and with
    100 days on record, a bounded number of them, and no fsync on the request path."""
    short, short_fsyncs = _new_mark_cost(tmp_path / "short", 10)
    long, long_fsyncs = _new_mark_cost(tmp_path / "long", 100)
    assert short == long
    assert "INSERT" in short and len(short) <= 12, short
    assert short_fsyncs == long_fsyncs == []
