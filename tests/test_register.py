"""The register with a timetable, in this process: Present/Late per class period, one sighting
in two overlapping periods, Absent once a period has ended, closures, a day clocks change,
sightings outside every period, corrections kept as rows with their history (API and
command), statistics over a range with a student who joined in the middle of it, and the
exports (CSV, and Excel with a sheet of days) written by the command and downloaded from the
API, read back cell by cell."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from openpyxl import load_workbook

from conftest import API_KEY, PARIS, Kit, command_on, make_kit
from smart_attendance.db.store import StudentRow

MONDAY = date(2026, 11, 23)
CLASSES = """
[[class]]
name = "math-7b"
teachers = ["math@school.org"]
students = ["ana_lima", "ben_ito"]
  [[class.period]]
  days = ["mon", "tue", "wed", "thu", "fri"]
  start = "08:30"
  end = "09:25"
  late_after_minutes = 10

[[class]]
name = "art"
students = ["ben_ito", "cleo_park"]
  [[class.period]]
  days = ["mon"]
  start = "09:00"
  end = "10:00"
  late_after_minutes = 5
"""
TRAINING_DAY = """
[[closure]]
from = "2026-11-30"
to = "2026-11-30"
reason = "teacher training"
"""
TIMETABLE = CLASSES + TRAINING_DAY


def at(day: int, hour: int, minute: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=PARIS)


def timetable_file(folder: Path, text: str = TIMETABLE) -> Path:
    path = folder / "timetable.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def school(tmp_path: Path, db_url: str) -> Iterator[Kit]:
    """ana, ben and cleo enrolled on Monday 2026-11-23 at 08:20, with the two classes; on
    SQLite and on PostgreSQL (``db_url``)."""
    on = "" if db_url.startswith("sqlite") else db_url  # SQLite: the kit's own file
    kit = make_kit(tmp_path, now=at(23, 8, 20), timetable=timetable_file(tmp_path), database_url=on)
    yield kit
    kit.services.close()


def seen(kit: Kit, name: str, when: datetime, camera: str = "door-1") -> dict[str, Any]:
    kit.clock.set(when)
    response = kit.recognize(kit.probe(name), camera=camera)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def day(kit: Kit, query: str) -> dict[str, Any]:
    response = kit.get(f"/attendance?{query}")
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def statuses(body: dict[str, Any]) -> dict[tuple[str, str, str], str | None]:
    """(class, period, student) -> status, from a GET /attendance answer."""
    return {
        (cls["name"], period["start"], student["name"]): student["status"]
        for cls in body["classes"]
        for period in cls["periods"]
        for student in period["students"]
    }


def correct(kit: Kit, **body: Any) -> Any:
    return kit.client.post("/attendance/corrections", json=body, headers={"X-API-KEY": API_KEY})


# --- marks, periods, days -------------------------------------------------------------------


def test_present_late_and_one_sighting_in_two_overlapping_periods(school: Kit) -> None:
    ana = seen(school, "ana_lima", at(23, 8, 35))
    assert ana["marks"] == [
        {
            "name": "ana_lima",
            "display_name": "ana_lima",
            "attendance": "Present",
            "new": True,
            "time": "08:35:00",
            "class": "math-7b",
            "period": "08:30",
        }
    ]
    # 09:02: Late in math (after 08:40), Present in art (until 09:05): one sighting, two marks
    ben = seen(school, "ben_ito", at(23, 9, 2))
    assert [(m["class"], m["period"], m["attendance"], m["new"]) for m in ben["marks"]] == [
        ("math-7b", "08:30", "Late", True),
        ("art", "09:00", "Present", True),
    ]
    again = seen(school, "ben_ito", at(23, 9, 7))
    assert [(m["attendance"], m["new"], m["time"]) for m in again["marks"]] == [
        ("Late", False, "09:02:00"),
        ("Present", False, "09:02:00"),
    ]

    school.clock.set(at(23, 9, 10))
    assert day(school, "date=2026-11-23") == {
        "status": "success",
        "date": "2026-11-23",
        "classes": [
            {
                "name": "math-7b",
                "periods": [
                    {
                        "start": "08:30",
                        "end": "09:25",
                        "students": [
                            {
                                "name": "ana_lima",
                                "status": "Present",
                                "time": "08:35:00",
                                "source": "camera:door-1",
                            },
                            {
                                "name": "ben_ito",
                                "status": "Late",
                                "time": "09:02:00",
                                "source": "camera:door-1",
                            },
                        ],
                    }
                ],
            },
            {
                "name": "art",
                "periods": [
                    {
                        "start": "09:00",
                        "end": "10:00",
                        "students": [
                            {
                                "name": "ben_ito",
                                "status": "Present",
                                "time": "09:02:00",
                                "source": "camera:door-1",
                            },
                            {"name": "cleo_park", "status": None},
                        ],
                    }
                ],
            },
        ],
    }


def test_absent_once_the_period_has_ended_null_before(school: Kit) -> None:
    school.clock.set(at(23, 8, 55))  # math runs, art has not started
    assert statuses(day(school, "date=2026-11-23")) == {
        ("math-7b", "08:30", "ana_lima"): None,
        ("math-7b", "08:30", "ben_ito"): None,
        ("art", "09:00", "ben_ito"): None,
        ("art", "09:00", "cleo_park"): None,
    }
    school.clock.set(at(23, 9, 25))  # math has ended at 09:25:00, art runs
    assert statuses(day(school, "date=2026-11-23")) == {
        ("math-7b", "08:30", "ana_lima"): "Absent",
        ("math-7b", "08:30", "ben_ito"): "Absent",
        ("art", "09:00", "ben_ito"): None,
        ("art", "09:00", "cleo_park"): None,
    }
    school.clock.set(at(23, 10, 0))
    assert statuses(day(school, "class=art")) == {  # today by default, one class
        ("art", "09:00", "ben_ito"): "Absent",
        ("art", "09:00", "cleo_park"): "Absent",
    }
    # a day ahead: nothing decided yet; Tuesday has no art period
    assert day(school, "date=2026-11-24")["classes"] == [
        {
            "name": "math-7b",
            "periods": [
                {
                    "start": "08:30",
                    "end": "09:25",
                    "students": [
                        {"name": "ana_lima", "status": None},
                        {"name": "ben_ito", "status": None},
                    ],
                }
            ],
        },
        {"name": "art", "periods": []},
    ]


def test_a_sighting_between_periods_is_a_sighting_not_a_mark(school: Kit) -> None:
    body = seen(school, "ana_lima", at(23, 10, 30))
    assert body["status"] == "success"
    assert body["attendance"] is None
    assert body["reason"] == "no_period_now"  # said why, for integrators (docs/api.md)
    assert body["marks"] == [
        {
            "name": "ana_lima",
            "display_name": "ana_lima",
            "attendance": None,
            "new": False,
            "time": "10:30:00",
            "reason": "no_period_now",
        }
    ]
    store = school.services.store
    assert store.sightings_on(MONDAY) == [("ana_lima", datetime(2026, 11, 23, 10, 30), "door-1")]
    assert store.marks_on(MONDAY) == []
    assert statuses(day(school, "date=2026-11-23"))[("math-7b", "08:30", "ana_lima")] == "Absent"


def test_a_closure_day_has_no_period_and_nobody_absent(school: Kit) -> None:
    body = seen(school, "ana_lima", at(30, 8, 35))  # a Monday, closed
    assert body["attendance"] is None
    school.clock.set(at(30, 18, 0))
    assert day(school, "date=2026-11-30") == {
        "status": "success",
        "date": "2026-11-30",
        "closure": {"from": "2026-11-30", "to": "2026-11-30", "reason": "teacher training"},
        "classes": [{"name": "math-7b", "periods": []}, {"name": "art", "periods": []}],
    }
    stats = school.get("/statistics?from=2026-11-30&to=2026-11-30").get_json()
    assert [(s["name"], s["total_days"], s["absent"]) for s in stats["students"]] == [
        ("ana_lima", 0, 0),
        ("ben_ito", 0, 0),
        ("cleo_park", 0, 0),
    ]
    assert stats["days_on_record"] == 0
    wrong = correct(
        school,
        name="ana_lima",
        **{"class": "math-7b"},
        date="2026-11-30",
        period="08:30",
        status="excused",
        reason="ill",
    )
    assert wrong.status_code == 400
    assert wrong.get_json() == {
        "status": "bad_request",
        "error": "math-7b has no period at 08:30 on 2026-11-30 "
        "(2026-11-30 is a closure day: teacher training)",
    }


DST_TIMETABLE = """
[[class]]
name = "sunday-club"
students = ["*"]
  [[class.period]]
  days = ["sat", "sun"]
  start = "08:30"
  end = "09:25"
  late_after_minutes = 10
"""


def test_on_the_day_clocks_jump_a_period_keeps_its_wall_clock_times(tmp_path: Path) -> None:
    # 2026-03-29: Paris goes from 02:00 (UTC+1) to 03:00 (UTC+2); 08:41 is 06:41 UTC, only
    # 5 h 41 min after midnight; the period still turns Late at 08:40 local.
    kit = make_kit(
        tmp_path, now=at(29, 7, 0, month=3), timetable=timetable_file(tmp_path, DST_TIMETABLE)
    )
    try:
        assert at(29, 8, 41, month=3).utcoffset() != at(28, 8, 41, month=3).utcoffset()
        on_time = seen(kit, "ana_lima", at(29, 8, 39, month=3))
        late = seen(kit, "ben_ito", at(29, 8, 41, month=3))
        assert (on_time["attendance"], on_time["time"]) == ("Present", "08:39:00")
        assert (late["attendance"], late["time"]) == ("Late", "08:41:00")
        kit.clock.set(at(29, 9, 24, month=3))
        assert statuses(day(kit, "date=2026-03-29"))[("sunday-club", "08:30", "cleo_park")] is None
        kit.clock.set(at(29, 9, 25, month=3))
        assert statuses(day(kit, "date=2026-03-29")) == {
            ("sunday-club", "08:30", "ana_lima"): "Present",
            ("sunday-club", "08:30", "ben_ito"): "Late",
            ("sunday-club", "08:30", "cleo_park"): "Absent",
        }
    finally:
        kit.services.close()


def test_without_a_timetable_one_default_class_all_day(tmp_path: Path) -> None:
    kit = make_kit(tmp_path)  # Monday 08:55, class at 09:00, Late after 09:15
    try:
        seen(kit, "ana_lima", at(23, 9, 20))
        kit.clock.set(at(23, 23, 59))
        body = day(kit, "date=2026-11-23")
        assert body["classes"] == [
            {
                "name": "default",
                "periods": [
                    {
                        "start": "00:00",
                        "end": "24:00",
                        "students": [
                            {
                                "name": "ana_lima",
                                "status": "Late",
                                "time": "09:20:00",
                                "source": "camera:door-1",
                            },
                            {"name": "ben_ito", "status": None},
                            {"name": "cleo_park", "status": None},
                        ],
                    }
                ],
            }
        ]
        # one class and one period: a correction needs neither
        fixed = correct(kit, name="ben_ito", date="2026-11-23", status="Excused", reason="flu")
        assert fixed.status_code == 201, fixed.get_json()
        assert fixed.get_json()["class"] == "default"
        assert fixed.get_json()["period"] == "00:00"
        kit.clock.set(at(24, 0, 0))
        assert statuses(day(kit, "date=2026-11-23")) == {
            ("default", "00:00", "ana_lima"): "Late",
            ("default", "00:00", "ben_ito"): "Excused",
            ("default", "00:00", "cleo_park"): "Absent",
        }
    finally:
        kit.services.close()


# --- corrections ----------------------------------------------------------------------------


def test_corrections_are_rows_with_a_history(school: Kit) -> None:
    seen(school, "ana_lima", at(23, 8, 35))
    school.clock.set(at(23, 9, 30))  # math has ended: ben is Absent
    logs = school.logs
    assert "ben_ito" not in (logs / "attendance_2026-11-23.csv").read_text()
    slot = {"name": "ben_ito", "class": "math-7b", "date": "2026-11-23", "period": "08:30"}

    first = correct(school, **slot, status="excused", reason="doctor")
    assert first.status_code == 201, first.get_json()
    excused = {
        "name": "ben_ito",
        "date": "2026-11-23",
        "class": "math-7b",
        "period": "08:30",
        "old_status": "Absent",
        "status": "Excused",
        "reason": "doctor",
        "by": "api",
        "at": "2026-11-23T08:30:00Z",
    }
    assert first.get_json() == {
        "status": "success",
        "changed": True,
        "date": "2026-11-23",
        "class": "math-7b",
        "period": "08:30",
        "student": {
            "name": "ben_ito",
            "status": "Excused",
            "source": "api",
            "reason": "doctor",
            "history": [excused],
        },
    }
    assert (logs / "attendance_2026-11-23.csv").read_text().splitlines() == [
        "Name,Time,Status",
        "ben_ito,,Excused",  # excused by hand, never seen: no time
        "ana_lima,08:35:00,Present",
    ]
    assert "ben_ito,0,0,0,0.0,0.0" in (logs / "student_statistics.csv").read_text()

    school.clock.set(at(23, 9, 40))
    second = correct(school, **slot, status="Present")  # he was there after all
    assert second.status_code == 201
    present = {**excused, "old_status": "Excused", "status": "Present", "reason": ""}
    present["at"] = "2026-11-23T08:40:00Z"
    student = second.get_json()["student"]
    assert student == {
        "name": "ben_ito",
        "status": "Present",
        "source": "api",
        "reason": "",
        "history": [excused, present],
    }
    # a resend changes nothing and records nothing
    resend = correct(school, **slot, status="present")
    assert resend.status_code == 200
    assert resend.get_json()["changed"] is False
    assert resend.get_json()["student"] == student

    shown = day(school, "date=2026-11-23&class=math-7b")["classes"][0]["periods"][0]["students"]
    assert shown == [
        {"name": "ana_lima", "status": "Present", "time": "08:35:00", "source": "camera:door-1"},
        student,
    ]
    assert (logs / "attendance_2026-11-23.csv").read_text().splitlines()[1] == ("ben_ito,,Present")
    assert "ben_ito,1,1,0,100.0,0.0" in (logs / "student_statistics.csv").read_text()
    assert len(school.services.store.corrections_between(MONDAY, MONDAY)) == 2

    # a camera mark corrected keeps its time; the correction is the source
    seen(school, "cleo_park", at(23, 9, 45))
    late = correct(
        school,
        name="cleo_park",
        **{"class": "art"},
        date="2026-11-23",
        period="9:00",
        status="Absent",
        reason="left after five minutes",
    )
    assert late.get_json()["student"]["history"][0]["old_status"] == "Late"
    assert {k: v for k, v in late.get_json()["student"].items() if k != "history"} == {
        "name": "cleo_park",
        "status": "Absent",
        "time": "09:45:00",
        "source": "api",
        "reason": "left after five minutes",
    }


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"status": "maybe"}, "unknown status 'maybe' (use one of Present, Late, Absent, Excused)"),
        ({"status": None}, "status is required (one of Present, Late, Absent, Excused)"),
        ({"reason": ""}, "an excused absence needs a reason"),
        ({"reason": "x" * 513}, "the reason is longer than 512 characters"),
        ({"reason": "bell\x07"}, "the reason has control characters"),
        ({"class": "gym"}, "unknown class 'gym' (classes: math-7b, art)"),
        ({"class": None}, "class is required (ben_ito's classes: math-7b, art)"),
        (
            {"period": "10:00"},
            "math-7b has no period at 10:00 on 2026-11-23 "
            "(periods of math-7b on mon 2026-11-23: 08:30)",
        ),
        ({"period": "8h30"}, "period must be the period's start as HH:MM, got '8h30'"),
        ({"name": "zed"}, "unknown student 'zed'"),
        ({"name": ""}, "name is required"),
        ({"name": "cleo_park"}, "cleo_park is not on the roster of math-7b"),
        ({"date": "2026-13-01"}, "date must be a date as YYYY-MM-DD"),
        ({"date": None}, "date is required (YYYY-MM-DD)"),
        (
            {"date": "2026-11-28"},
            "math-7b has no period at 08:30 on 2026-11-28 (math-7b has no period on sat "
            "2026-11-28)",
        ),
        ({"name": 7}, "name must be a text"),
    ],
)
def test_a_bad_correction_is_a_400_with_one_line(
    school: Kit, change: dict[str, Any], error: str
) -> None:
    school.clock.set(at(23, 9, 30))
    body = {
        "name": "ben_ito",
        "class": "math-7b",
        "date": "2026-11-23",
        "period": "08:30",
        "status": "excused",
        "reason": "doctor",
    }
    body.update(change)
    response = correct(school, **{k: v for k, v in body.items() if v is not None})
    assert response.status_code == 400
    assert response.get_json() == {"status": "bad_request", "error": error}
    assert school.services.store.corrections_between(MONDAY, MONDAY) == []


def test_corrections_need_the_key_and_a_json_object(school: Kit) -> None:
    denied = school.client.post("/attendance/corrections", json={"name": "ben_ito"})
    assert denied.status_code == 401
    not_json = school.client.post(
        "/attendance/corrections", data="name=ben_ito", headers={"X-API-KEY": API_KEY}
    )
    assert not_json.status_code == 400
    assert not_json.get_json()["status"] == "bad_request"
    assert school.get("/attendance?date=23-11-2026").get_json() == {
        "status": "bad_request",
        "error": "date must be a date as YYYY-MM-DD",
    }
    assert school.get("/attendance?class=gym").status_code == 400
    assert school.get("/attendance", key=None).status_code == 401


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def command(
    school: Kit, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """``attendance ARGS`` on the school's data folder, on the school's clock, as OS user
    ``teacher1``."""
    return command_on(school, cli, monkeypatch)


def test_mark_on_the_command_line(school: Kit, command: Callable[..., Result]) -> None:
    school.clock.set(at(23, 9, 30))
    slot = ("ben_ito", "--class", "math-7b", "--date", "2026-11-23", "--period", "08:30")
    result = command("mark", *slot, "--status", "excused", "--reason", "doctor")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "ben_ito, math-7b 08:30 on 2026-11-23: Absent -> Excused (doctor).",
        "History:",
        "  2026-11-23 08:30:00 UTC  cli:teacher1  Absent -> Excused  doctor",
    ]
    school.clock.set(at(23, 9, 45))
    result = command("mark", *slot, "--status", "Present")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "ben_ito, math-7b 08:30 on 2026-11-23: Excused -> Present.",
        "History:",
        "  2026-11-23 08:30:00 UTC  cli:teacher1  Absent -> Excused  doctor",
        "  2026-11-23 08:45:00 UTC  cli:teacher1  Excused -> Present",
    ]
    again = command("mark", *slot, "--status", "present")
    assert again.stdout.splitlines()[0] == (
        "ben_ito, math-7b 08:30 on 2026-11-23: already Present; nothing recorded."
    )
    student = day(school, "date=2026-11-23")["classes"][0]["periods"][0]["students"][1]
    assert (student["status"], student["source"]) == ("Present", "cli:teacher1")
    assert [(h["old_status"], h["status"], h["by"]) for h in student["history"]] == [
        ("Absent", "Excused", "cli:teacher1"),
        ("Excused", "Present", "cli:teacher1"),
    ]
    # today by default; art is cleo's only class: no need to name it
    today = command("mark", "cleo_park", "--status", "late")
    assert today.exit_code == 0, today.output
    assert today.stdout.splitlines()[0] == (
        "cleo_park, art 09:00 on 2026-11-23: not seen yet -> Late."
    )


SLOT = ("--class", "math-7b", "--date", "2026-11-23", "--period", "08:30")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ("ben_ito", *SLOT, "--status", "maybe"),
            "unknown status 'maybe' (use one of Present, Late, Absent, Excused)",
        ),
        (("ben_ito", *SLOT, "--status", "excused"), "an excused absence needs a reason"),
        (
            ("ben_ito", "--class", "gym", "--status", "absent"),
            "unknown class 'gym' (classes: math-7b, art)",
        ),
        (
            ("ben_ito", "--class", "math-7b", "--period", "09:00", "--status", "absent"),
            "math-7b has no period at 09:00 on 2026-11-23 "
            "(periods of math-7b on mon 2026-11-23: 08:30)",
        ),
        (
            ("ben_ito", "--class", "math-7b", "--date", "23/11/2026", "--status", "absent"),
            "--date must be a date as YYYY-MM-DD, got '23/11/2026'",
        ),
        (("zed", *SLOT, "--status", "absent"), "unknown student 'zed'"),
        (("ben_ito", "--status", "absent"), "class is required (ben_ito's classes: math-7b, art)"),
        (("zed", "--status", "absent"), "class is required (classes: math-7b, art)"),
    ],
)
def test_a_bad_mark_is_one_line(
    school: Kit, command: Callable[..., Result], args: tuple[str, ...], error: str
) -> None:
    school.clock.set(at(23, 9, 30))
    result = command("mark", *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"Error: {error}\n"
    assert school.services.store.corrections_between(MONDAY, MONDAY) == []


# --- a week: statistics and exports ---------------------------------------------------------


def week(kit: Kit) -> None:
    """Mon 23 to Fri 27, and the closure on Mon 30; dan joins on Wednesday (math-7b by the
    registry), ``=evil`` is in art, ana has an external id."""
    store = kit.services.store
    assert store.add_student(
        StudentRow("dan_ro", joined_on=date(2026, 11, 25), classes=("math-7b",))
    )
    assert store.add_student(
        StudentRow("=evil", external_id="+33-1", joined_on=MONDAY, classes=("art",))
    )
    ana = store.student("ana_lima")
    assert ana is not None
    store.update_student("ana_lima", replace(ana, external_id="S-001"))
    seen(kit, "ana_lima", at(23, 8, 35))  # math Present
    seen(kit, "ben_ito", at(23, 9, 2))  # math Late, art Present
    kit.clock.set(at(23, 10, 5))
    fixed = correct(
        kit,
        name="cleo_park",
        **{"class": "art"},
        date="2026-11-23",
        period="09:00",
        status="excused",
        reason="  dentist\n",  # kept as one line: "dentist"
    )
    assert fixed.status_code == 201
    seen(kit, "ana_lima", at(24, 8, 45))  # Late; ben Absent
    seen(kit, "ben_ito", at(25, 8, 35))  # Present; ana Absent
    kit.clock.set(at(25, 9, 0))
    manual = correct(
        kit, name="dan_ro", **{"class": "math-7b"}, date="2026-11-25", status="present"
    )
    assert manual.status_code == 201, manual.get_json()
    seen(kit, "ana_lima", at(26, 8, 30))  # Present; ben, dan Absent
    seen(kit, "ana_lima", at(27, 8, 30))
    seen(kit, "ben_ito", at(27, 8, 31))  # dan Absent
    kit.clock.set(at(1, 7, 0, month=12))


def test_statistics_over_a_range_count_from_the_day_a_student_joined(
    school: Kit, command: Callable[..., Result]
) -> None:
    week(school)
    body = school.get("/statistics?from=2026-11-23&to=2026-11-30").get_json()
    rows = {
        s["name"]: (
            s["total_days"],
            s["days_present"],
            s["days_on_time"],
            s["days_late"],
            s["excused"],
            s["absent"],
            s["attendance_pct"],
        )
        for s in body["students"]
    }
    assert rows == {
        "=evil": (1, 0, 0, 0, 0, 1, 0.0),
        "ana_lima": (5, 4, 3, 1, 0, 1, 80.0),
        "ben_ito": (6, 4, 3, 1, 0, 2, 66.67),
        "cleo_park": (1, 0, 0, 0, 1, 0, 0.0),
        "dan_ro": (3, 1, 1, 0, 0, 2, 33.33),  # Wed (by hand), Thu, Fri: not Mon or Tue
    }
    assert body["days_on_record"] == 5
    art = school.get("/statistics?from=2026-11-23&to=2026-11-30&class=art").get_json()
    assert {s["name"]: s["total_days"] for s in art["students"]} == {
        "=evil": 1,
        "ana_lima": 0,
        "ben_ito": 1,
        "cleo_park": 1,
        "dan_ro": 0,
    }

    table = command("stats", "--from", "2026-11-23", "--to", "2026-11-30", "--class", "math-7b")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0] == "5 day(s) on record from 2026-11-23 to 2026-11-30 in math-7b"
    assert [line.split() for line in lines[2:]] == [
        ["=evil", "0", "0", "0", "-", "-"],  # not in math-7b: no period expected
        ["ana_lima", "4", "3", "1", "80.0", "25.0"],
        ["ben_ito", "3", "2", "1", "60.0", "33.3"],
        ["cleo_park", "0", "0", "0", "-", "-"],  # not in math-7b: no period expected
        ["dan_ro", "1", "1", "0", "33.3", "0.0"],
    ]
    as_json = command("stats", "--from", "2026-11-25", "--to", "2026-11-25", "--json")
    assert as_json.exit_code == 0, as_json.output
    by_name = {row["name"]: row for row in json.loads(as_json.stdout)}
    assert (by_name["dan_ro"]["total_days"], by_name["dan_ro"]["days_present"]) == (1, 1)
    assert (by_name["ana_lima"]["total_days"], by_name["ana_lima"]["absent"]) == (1, 1)
    wrong = command("stats", "--from", "2026-11-27", "--to", "2026-11-23")
    assert (wrong.exit_code, wrong.stderr) == (1, "Error: --to is before --from\n")
    unknown = command("stats", "--class", "gym")
    assert (unknown.exit_code, unknown.stderr) == (
        1,
        "Error: unknown class 'gym' (classes: math-7b, art)\n",
    )


REGISTER = [
    ["Date", "Class", "Period", "Student", "Display name", "External ID", "Status", "Time",
     "Source", "Reason", "Arrived late"],
    ["2026-11-23", "math-7b", "08:30", "ana_lima", "ana_lima", "S-001", "Present", "08:35:00",
     "camera:door-1", "", ""],
    ["2026-11-23", "math-7b", "08:30", "ben_ito", "ben_ito", "", "Late", "09:02:00",
     "camera:door-1", "", ""],
    ["2026-11-23", "art", "09:00", "'=evil", "'=evil", "'+33-1", "Absent", "", "", "", ""],
    ["2026-11-23", "art", "09:00", "ben_ito", "ben_ito", "", "Present", "09:02:00",
     "camera:door-1", "", ""],
    ["2026-11-23", "art", "09:00", "cleo_park", "cleo_park", "", "Excused", "", "api", "dentist",
     ""],
    ["2026-11-24", "math-7b", "08:30", "ana_lima", "ana_lima", "S-001", "Late", "08:45:00",
     "camera:door-1", "", ""],
    ["2026-11-24", "math-7b", "08:30", "ben_ito", "ben_ito", "", "Absent", "", "", "", ""],
    ["2026-11-25", "math-7b", "08:30", "ana_lima", "ana_lima", "S-001", "Absent", "", "", "", ""],
    ["2026-11-25", "math-7b", "08:30", "ben_ito", "ben_ito", "", "Present", "08:35:00",
     "camera:door-1", "", ""],
    ["2026-11-25", "math-7b", "08:30", "dan_ro", "dan_ro", "", "Present", "", "api", "", ""],
]  # fmt: skip
DAYS = [
    ["Student", "Display name", "External ID", "2026-11-23", "2026-11-24", "2026-11-25"],
    ["'=evil", "'=evil", "'+33-1", "A", "", ""],
    ["ana_lima", "ana_lima", "S-001", "P", "L", "A"],
    ["ben_ito", "ben_ito", "", "L P", "A", "P"],
    ["cleo_park", "cleo_park", "", "E", "", ""],
    ["dan_ro", "dan_ro", "", "", "", "P"],
]


def sheet_rows(data: bytes) -> dict[str, list[list[str]]]:
    book = load_workbook(io.BytesIO(data))
    return {
        sheet.title: [
            ["" if cell is None else cell for cell in row]
            for row in sheet.iter_rows(values_only=True)
        ]
        for sheet in book.worksheets
    }


def test_exports_from_the_command_and_the_api(
    school: Kit, command: Callable[..., Result], tmp_path: Path
) -> None:
    week(school)
    span = ("--from", "2026-11-23", "--to", "2026-11-25")
    csv_file, xlsx_file = tmp_path / "week.csv", tmp_path / "week.xlsx"
    written = command("export", *span, "--format", "csv", "--out", str(csv_file))
    assert written.exit_code == 0, written.output
    assert written.stdout == f"10 row(s) written to {csv_file}.\n"
    with csv_file.open(newline="", encoding="utf-8-sig") as handle:  # after its BOM
        assert list(csv.reader(handle)) == REGISTER
    assert command("export", *span, "--out", str(xlsx_file)).exit_code == 0  # from the suffix
    assert sheet_rows(xlsx_file.read_bytes()) == {"Register": REGISTER, "Days": DAYS}

    query = "from=2026-11-23&to=2026-11-25"
    got = school.get(f"/export.csv?{query}")
    assert got.status_code == 200
    assert got.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert got.headers["Content-Disposition"] == (
        'attachment; filename="attendance_2026-11-23_2026-11-25.csv"'
    )
    assert got.data == csv_file.read_bytes()
    book = school.get(f"/export.xlsx?{query}")
    assert book.status_code == 200
    assert book.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    assert sheet_rows(book.data) == {"Register": REGISTER, "Days": DAYS}

    art = school.get(f"/export.xlsx?{query}&class=art")
    assert art.headers["Content-Disposition"] == (
        'attachment; filename="attendance_2026-11-23_2026-11-25_art.xlsx"'
    )
    art_sheets = sheet_rows(art.data)
    assert art_sheets["Register"] == [REGISTER[0], *(r for r in REGISTER if r[1] == "art")]
    assert art_sheets["Days"] == [
        DAYS[0],
        ["'=evil", "'=evil", "'+33-1", "A", "", ""],
        ["ben_ito", "ben_ito", "", "P", "", ""],
        ["cleo_park", "cleo_park", "", "E", "", ""],
    ]
    one_day = school.get("/export.csv?from=2026-11-30&to=2026-11-30").data.decode("utf-8-sig")
    assert one_day.splitlines() == [",".join(REGISTER[0])]  # closed: nobody expected


@pytest.mark.parametrize(
    ("query", "code", "error"),
    [
        ("from=2026-11-23&to=nope", 400, "to must be a date as YYYY-MM-DD"),
        ("from=2026-11-25&to=2026-11-23", 400, "to is before from"),
        ("class=gym", 400, "unknown class 'gym' (classes: math-7b, art)"),
    ],
)
def test_a_bad_export_query_is_a_400(school: Kit, query: str, code: int, error: str) -> None:
    for path in ("/export.csv", "/export.xlsx"):
        response = school.get(f"{path}?{query}")
        assert response.status_code == code
        assert response.get_json() == {"status": "bad_request", "error": error}
    assert school.get("/export.csv", key=None).status_code == 401


def test_a_bad_export_command_is_one_line(command: Callable[..., Result], tmp_path: Path) -> None:
    out = tmp_path / "x.pdf"
    wrong = command("export", "--format", "pdf", "--out", str(out))
    assert (wrong.exit_code, wrong.stderr) == (
        1,
        "Error: format must be one of csv, xlsx, got 'pdf'\n",
    )
    assert not out.exists()
    nowhere = command("export", "--out", str(tmp_path / "missing" / "x.csv"))
    assert nowhere.exit_code == 1
    assert nowhere.stderr.startswith("Error: No such file or directory")
    assert len(nowhere.stderr.splitlines()) == 1


def test_mark_without_a_database_says_so_and_creates_none(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    data = tmp_path / "elsewhere"
    result = cli("mark", "ben_ito", "--status", "absent", env={"ATTENDANCE_DATA_DIR": str(data)})
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: no database at {data / 'attendance.db'}: run the command in the folder the "
        "server runs in, or set ATTENDANCE_DATA_DIR\n"
    )
    assert not data.exists()


def test_the_workbook_drops_control_characters_before_neutralising_formulas() -> None:
    from smart_attendance.attendance.export import register_xlsx
    from smart_attendance.attendance.register import Entry

    entry = Entry(MONDAY, "art", "09:00", "10:00", "\x01=sneaky", "Absent", reason="\x02@x")
    data = register_xlsx([entry], [StudentRow("\x01=sneaky", external_id="-1")], MONDAY, MONDAY)
    sheets = sheet_rows(data)
    assert sheets["Register"][1] == [
        "2026-11-23", "art", "09:00", "'=sneaky", "'=sneaky", "'-1", "Absent", "", "", "'@x", ""
    ]  # fmt: skip
    assert sheets["Days"][1] == ["'=sneaky", "'=sneaky", "'-1", "A"]


# --- a timetable change applies from the day it came into force ----------------------------------

SECOND_MATHS_PERIOD = (
    "  late_after_minutes = 10\n"
    "  [[class.period]]\n"
    '  days = ["mon", "tue", "wed", "thu", "fri"]\n'
    '  start = "10:00"\n'
    '  end = "10:50"\n'
)


def test_a_timetable_change_never_rewrites_the_days_before_it(tmp_path: Path) -> None:
    monday = make_kit(tmp_path, now=at(23, 8, 20), timetable=timetable_file(tmp_path))
    assert monday.services.attendance.adopt_timetable() is True  # the server's start
    assert monday.services.attendance.adopt_timetable() is False  # the same file again
    seen(monday, "ana_lima", at(23, 8, 35))
    monday.services.close()

    # Wednesday morning the school adds a second maths period and restarts the server.
    second = TIMETABLE.replace("  late_after_minutes = 10\n", SECOND_MATHS_PERIOD, 1)
    folder = tmp_path / "wednesday"
    folder.mkdir()
    later = make_kit(tmp_path, now=at(25, 7, 0), timetable=timetable_file(folder, second))
    try:
        assert later.services.attendance.adopt_timetable() is True
        later.clock.set(at(25, 12, 0))
        # Monday and Tuesday keep the one maths period they had: no new absences.
        assert statuses(day(later, "date=2026-11-23&class=math-7b")) == {
            ("math-7b", "08:30", "ana_lima"): "Present",
            ("math-7b", "08:30", "ben_ito"): "Absent",
        }
        tuesday = statuses(day(later, "date=2026-11-24&class=math-7b"))
        assert sorted({period for _cls, period, _name in tuesday}) == ["08:30"]
        # From Wednesday on, both periods.
        wednesday = statuses(day(later, "date=2026-11-25&class=math-7b"))
        assert sorted({period for _cls, period, _name in wednesday}) == ["08:30", "10:00"]
        stats = later.get("/statistics?from=2026-11-23&to=2026-11-24&class=math-7b").get_json()
        totals = {s["name"]: (s["total_days"], s["days_present"]) for s in stats["students"]}
        assert totals["ana_lima"] == (2, 1)
        assert totals["ben_ito"] == (2, 0)
        history = later.services.store.timetable_history()
        assert [(row.effective_from.isoformat(), row.kind) for row in history] == [
            ("2026-11-23", "file"),
            ("2026-11-25", "file"),
        ]
    finally:
        later.services.close()
