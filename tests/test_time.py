"""Present/Late around the boundary and across midnight, in the configured zone: the rule
itself, the app on an injected clock, and one real server on a clock shifted by libfaketime."""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Iterator
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from conftest import (
    PROBES,
    STUDENTS,
    Kit,
    ServerProcess,
    build_dataset,
    face_bytes,
    make_kit,
    require_tool,
)
from smart_attendance.attendance.punctuality import punctuality
from smart_attendance.config import Settings

NEW_YORK = ZoneInfo("America/New_York")


def _at(zone: str, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 3, 2, hh, mm, ss, tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize(
    ("clock", "expected"),
    [
        ((8, 0, 0), "Present"),
        ((9, 0, 0), "Present"),
        ((9, 14, 59), "Present"),
        ((9, 15, 0), "Present"),  # exactly at the end of the grace period: still on time
        ((9, 15, 1), "Late"),
        ((23, 59, 59), "Late"),
        ((0, 0, 0), "Present"),
    ],
)
def test_punctuality_boundary(clock: tuple[int, int, int], expected: str) -> None:
    settings = Settings(class_start=time(9, 0), late_after_minutes=15, timezone="Asia/Tokyo")
    assert punctuality(_at("Asia/Tokyo", *clock), settings) == expected


def test_punctuality_on_a_daylight_saving_day() -> None:
    settings = Settings(class_start=time(9, 0), late_after_minutes=15, timezone="Europe/Paris")
    # 2026-03-29: clocks go forward at 02:00 in Paris; class start is still 09:00 local.
    day = datetime(2026, 3, 29, 9, 16, tzinfo=ZoneInfo("Europe/Paris"))
    assert punctuality(day, settings) == "Late"
    assert punctuality(day - timedelta(minutes=2), settings) == "Present"


# --- the app on an injected clock ---------------------------------------------------------------


@pytest.fixture
def kits() -> Iterator[list[Kit]]:
    made: list[Kit] = []
    yield made
    for kit in made:
        kit.services.close()


def _mark(kit: Kit, name: str) -> tuple[str, str, bool]:
    response = kit.recognize(kit.probe(name))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["name"] == name
    return body["time"], body["attendance"], body["new"]


def test_present_then_late_through_the_app(tmp_path: Path, kits: list[Kit]) -> None:
    """Class at 09:00 with 15 minutes' grace on Kiritimati (UTC+14): on time at 09:15:00, late
    at 09:15:01, on a local day that is still the day before in UTC."""
    grace_ends = datetime(2026, 11, 22, 19, 15, tzinfo=timezone.utc)  # 09:15 on the 23rd
    kit = make_kit(
        tmp_path,
        students=("ana_lima", "ben_ito"),
        now=grace_ends,
        timezone="Pacific/Kiritimati",
    )
    kits.append(kit)
    assert _mark(kit, "ana_lima") == ("09:15:00", "Present", True)
    kit.clock.advance(seconds=1)
    assert _mark(kit, "ben_ito") == ("09:15:01", "Late", True)
    kit.clock.advance(minutes=30)
    assert _mark(kit, "ana_lima") == ("09:15:00", "Present", False)  # the first sighting wins
    day_files = sorted(p.name for p in kit.logs.glob("attendance_*.csv"))
    assert day_files == ["attendance_2026-11-23.csv"]
    assert (kit.logs / "attendance_2026-11-23.csv").read_text().splitlines() == [
        "Name,Time,Status",
        "ana_lima,09:15:00,Present",
        "ben_ito,09:15:01,Late",
    ]


STATS_HEADER = (
    "Student Name,Total Days Present,Days On Time,Days Late,Attendance Percentage,Late Percentage"
)


def test_midnight_in_the_configured_zone(tmp_path: Path, kits: list[Kit]) -> None:
    """23:59:50 and 00:00:10 in New York are two local days, although both are the same UTC
    day (2026-11-24, 04:59:50 and 05:00:10 UTC)."""
    kit = make_kit(
        tmp_path,
        students=("george_w_bush",),
        now=datetime(2026, 11, 24, 4, 59, 50, tzinfo=timezone.utc),
        timezone="America/New_York",
    )
    kits.append(kit)
    assert _mark(kit, "george_w_bush") == ("23:59:50", "Late", True)  # long after 09:15
    kit.clock.set(datetime(2026, 11, 24, 0, 0, 10, tzinfo=NEW_YORK))
    assert _mark(kit, "george_w_bush") == ("00:00:10", "Present", True)  # a new local day
    assert sorted(p.name for p in kit.logs.glob("attendance_*.csv")) == [
        "attendance_2026-11-23.csv",
        "attendance_2026-11-24.csv",
    ]
    assert (kit.logs / "attendance_2026-11-23.csv").read_text().splitlines()[1:] == [
        "george_w_bush,23:59:50,Late"
    ]
    assert (kit.logs / "attendance_2026-11-24.csv").read_text().splitlines()[1:] == [
        "george_w_bush,00:00:10,Present"
    ]
    assert (kit.logs / "student_statistics.csv").read_text().splitlines() == [
        STATS_HEADER,
        "george_w_bush,2,1,1,100.0,50.0",
    ]
    [stats] = kit.services.statistics()
    assert (stats.days_present, stats.days_on_time, stats.days_late) == (2, 1, 1)


# --- a real server on a clock set by libfaketime -------------------------------------------------


def _libfaketime() -> str | None:
    """The multithreaded libfaketime library (Debian: package libfaketime, with faketime)."""
    if shutil.which("faketime") is None:
        return None
    for pattern in (
        "/usr/lib/*/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
        "/usr/local/lib/faketime/libfaketimeMT.so.1",
    ):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


@pytest.mark.real
def test_midnight_on_a_real_server_with_a_faked_clock(tmp_path: Path) -> None:
    """The server process's wall clock is frozen by libfaketime at a time read from a file on
    every call (FAKETIME_NO_CACHE); the test moves it across New York's midnight between two
    requests, without waiting. The monotonic clock stays real, so timeouts still work."""
    library = _libfaketime()
    require_tool(
        library is not None,
        "libfaketime not installed (make install and CI install the faketime package)",
    )
    assert library is not None
    clock_file = tmp_path / "faketime"

    def set_clock(utc: str) -> None:  # atomically: the server reads the file at any time
        fresh = tmp_path / "faketime.new"
        fresh.write_text(utc + "\n")
        os.replace(fresh, clock_file)

    set_clock("2026-11-24 04:59:58")  # 23:59:58 on the 23rd in New York (UTC-5)
    dataset = build_dataset(tmp_path / "dataset", {"george_w_bush": STUDENTS["george_w_bush"]})
    server = ServerProcess(
        dataset,
        tmp_path / "data",
        env={
            "TZ": "UTC",  # libfaketime reads the file's time in the process's zone
            "LD_PRELOAD": library,
            "FAKETIME_TIMESTAMP_FILE": str(clock_file),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "ATTENDANCE_TIMEZONE": "America/New_York",
            "ATTENDANCE_CLASS_START": "09:00",
            "ATTENDANCE_LATE_AFTER_MINUTES": "15",
            "ATTENDANCE_WORKERS": "1",  # starts faster; the pool is tested elsewhere
        },
    ).start()
    try:
        probe = face_bytes(PROBES["george_w_bush"])
        before = server.recognize(probe).json()
        set_clock("2026-11-24 05:00:05")  # 00:00:05 on the 24th in New York
        after = server.recognize(probe).json()
    finally:
        server.stop()
    assert (before["name"], before["time"], before["attendance"], before["new"]) == (
        "george_w_bush",
        "23:59:58",
        "Late",
        True,
    ), server.output()
    assert (after["name"], after["time"], after["attendance"], after["new"]) == (
        "george_w_bush",
        "00:00:05",
        "Present",
        True,
    ), server.output()
    logs = tmp_path / "data" / "logs"
    assert sorted(p.name for p in logs.glob("attendance_*.csv")) == [
        "attendance_2026-11-23.csv",
        "attendance_2026-11-24.csv",
    ]
    assert (logs / "attendance_2026-11-23.csv").read_text().splitlines() == [
        "Name,Time,Status",
        "george_w_bush,23:59:58,Late",
    ]
    assert (logs / "attendance_2026-11-24.csv").read_text().splitlines() == [
        "Name,Time,Status",
        "george_w_bush,00:00:05,Present",
    ]
    assert (logs / "student_statistics.csv").read_text().splitlines() == [
        STATS_HEADER,
        "george_w_bush,2,1,1,100.0,50.0",
    ]
