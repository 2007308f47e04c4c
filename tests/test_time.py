"""Present/Late around the boundary and across midnight, in the configured zone."""

from __future__ import annotations

import shutil
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from conftest import PROBES, STUDENTS, ServerProcess, build_dataset, face_bytes
from smart_attendance.config import Settings
from smart_attendance.service import punctuality


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


def _zone_in_daytime() -> str:
    """A zone where it is now between 03:00 and 20:00, so 'now minus a few minutes' stays today."""
    now = datetime.now(timezone.utc)
    for zone in (
        "UTC",
        "Asia/Tokyo",
        "America/New_York",
        "Asia/Kolkata",
        "Pacific/Honolulu",
        "Europe/Moscow",
        "America/Los_Angeles",
    ):
        local = now.astimezone(ZoneInfo(zone))
        if 3 <= local.hour <= 20:
            return zone
    raise AssertionError("no daytime zone found")


def test_present_then_late_through_the_server(tmp_path: Path) -> None:
    zone = _zone_in_daytime()
    local = datetime.now(ZoneInfo(zone))
    # Class began 30 minutes ago; a 60-minute grace makes George on time, a 5-minute grace late.
    start = (local - timedelta(minutes=30)).strftime("%H:%M")
    dataset = build_dataset(tmp_path / "dataset", {"george_w_bush": STUDENTS["george_w_bush"]})
    probe = face_bytes(PROBES["george_w_bush"])
    for grace, expected in (("60", "Present"), ("5", "Late")):
        data = tmp_path / f"data-{grace}"
        server = ServerProcess(
            dataset,
            data,
            env={
                "ATTENDANCE_TIMEZONE": zone,
                "ATTENDANCE_CLASS_START": start,
                "ATTENDANCE_LATE_AFTER_MINUTES": grace,
            },
        ).start()
        try:
            body = server.recognize(probe).json()
        finally:
            server.stop()
        assert body["attendance"] == expected, (zone, start, body)
        day_files = list((data / "logs").glob("attendance_*.csv"))
        assert [f.name for f in day_files] == [f"attendance_{local.date().isoformat()}.csv"]


@pytest.mark.skipif(
    shutil.which("faketime") is None, reason="libfaketime not installed (make install adds it)"
)
def test_midnight_in_the_configured_zone(tmp_path: Path) -> None:
    """The server's clock is set to 23:59:40 New York time; marks before and after midnight
    fall on two local days although both are the same UTC day."""
    import time as _time

    dataset = build_dataset(tmp_path / "dataset", {"george_w_bush": STUDENTS["george_w_bush"]})
    # 04:59:40 UTC on 2026-11-24 is 23:59:40 on 2026-11-23 in New York (UTC-5).
    server = ServerProcess(
        dataset,
        tmp_path / "data",
        env={
            "TZ": "UTC",
            "ATTENDANCE_TIMEZONE": "America/New_York",
            "ATTENDANCE_CLASS_START": "09:00",
            "ATTENDANCE_LATE_AFTER_MINUTES": "15",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        },
        prefix=["faketime", "-f", "@2026-11-24 04:59:40"],
    ).start()
    try:
        probe = face_bytes(PROBES["george_w_bush"])
        before = server.recognize(probe).json()
        assert before["new"] is True
        assert before["attendance"] == "Late"  # 23:59 is long after 09:15
        assert before["time"].startswith("23:59"), before
        seconds_left = 60 - int(before["time"][-2:])
        _time.sleep(seconds_left + 1)
        after = server.recognize(probe).json()
        assert after["time"].startswith("00:00"), after
        assert after["new"] is True  # a new local day
        assert after["attendance"] == "Present"
    finally:
        server.stop()
    logs = tmp_path / "data" / "logs"
    assert (logs / "attendance_2026-11-23.csv").read_text().count("george_w_bush") == 1
    assert (logs / "attendance_2026-11-24.csv").read_text().count("george_w_bush") == 1
    stats = (logs / "student_statistics.csv").read_text().splitlines()
    assert stats[1].startswith("george_w_bush,2,1,1,100.0,50.0")
