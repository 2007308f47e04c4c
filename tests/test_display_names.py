"""A student's display name wherever a person reads their name: Today and its messages, the
Review page (the candidate, the "This is…" list), the Reports, Class, Student and Enrol pages,
the daily emails, the register's exports (a ``Display name`` column beside the folder's name)
and ``POST /checkin``'s answer. What a program reads keeps the folder's name: JSON ``name``
fields, form values, links, the original's CSV files in ``logs/``. In process: real services
on SQLite, scripted faces, a fixed clock, the Flask test client."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from conftest import API_KEY, PARIS, Kit, make_kit
from dashboard_kit import post_form, sign_in
from scripted import ScriptedFace, identity, near

TIMETABLE = """
[[class]]
name = "math-7b"
teachers = ["math@school.test"]
students = ["ana_lima", "ben_ito"]
  [[class.period]]
  days = ["mon"]
  start = "08:30"
  end = "09:25"
  late_after_minutes = 10

[[class]]
name = "art"
students = ["cleo_park"]
  [[class.period]]
  days = ["mon"]
  start = "09:00"
  end = "10:00"
"""
# ben's display name must be escaped on every page; cleo has none: her folder's name shows.
SHOWN = {"ana_lima": "Zoë Martín", "ben_ito": "Ben <Ito>"}


def at(hour: int, minute: int) -> datetime:
    return datetime(2026, 11, 23, hour, minute, tzinfo=PARIS)  # a Monday


def named(kit: Kit) -> Kit:
    for name, shown in SHOWN.items():
        done = kit.client.patch(
            f"/students/{name}", json={"display_name": shown}, headers={"X-API-KEY": API_KEY}
        )
        assert done.status_code == 200, done.get_json()
    return kit


@pytest.fixture
def school(tmp_path: Path) -> Iterator[Kit]:
    """ana (Zoë Martín) and ben (Ben <Ito>) in math-7b at 08:30, cleo in art at 09:00."""
    timetable = tmp_path / "timetable.toml"
    timetable.write_text(TIMETABLE, encoding="utf-8")
    kit = make_kit(tmp_path, now=at(8, 20), timetable=timetable, session_idle_minutes=600)
    yield named(kit)
    kit.services.close()


def scan(kit: Kit, frame: bytes, when: datetime, camera: str = "door-1") -> dict[str, Any]:
    kit.clock.set(when)
    response = kit.recognize(frame, camera=camera)
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def jpeg(seed: int) -> bytes:
    """A real JPEG frame (the review queue and intruder photos crop real pixels)."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (320, 240), (seed * 20 % 256, 90, 140)).save(out, format="JPEG")
    return out.getvalue()


def page(kit: Kit, path: str) -> str:
    response = kit.client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_data(as_text=True)


def follow(kit: Kit, response: Any) -> list[str]:
    """The messages flashed on the page a form's answer leads to."""
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    shown = page(kit, response.headers["Location"])
    return [html.unescape(m) for m in re.findall(r'<p class="flash [a-z]+">([^<]*)</p>', shown)]


def links(text: str) -> list[str]:
    """The text of every link to a student's page."""
    return [html.unescape(m) for m in re.findall(r'href="/student/[^"]+">([^<]*)</a>', text)]


# --- the dashboard -------------------------------------------------------------------------------


def test_today_names_students_by_their_display_name_and_posts_their_folder_name(
    school: Kit,
) -> None:
    scan(school, school.probe("ana_lima"), at(8, 35))
    token = sign_in(school, "olga", "office")
    for board in (page(school, "/?date=2026-11-23"), page(school, "/today/board?date=2026-11-23")):
        assert links(board) == ["Ben <Ito>", "Zoë Martín", "cleo_park"]  # by class, then name
        assert "Ben &lt;Ito&gt;" in board and "Ben <Ito>" not in board
        assert 'aria-label="Mark Zoë Martín late"' in board
        assert '<input type="hidden" name="name" value="ana_lima">' in board  # what is posted
    fields = {"class": "math-7b", "date": "2026-11-23", "period": "08:30"}
    late = post_form(school, "/today/correct", token, name="ana_lima", status="Late", **fields)
    assert follow(school, late) == ["Zoë Martín: Late in math-7b at 08:30."]
    undo = post_form(school, "/today/undo", token, name="ana_lima", **fields)
    assert follow(school, undo) == ["Undone: Zoë Martín is Present again."]
    # The JSON of the register keeps the folder's name.
    day = school.get("/attendance?date=2026-11-23&class=math-7b").get_json()
    assert [s["name"] for s in day["classes"][0]["periods"][0]["students"]] == [
        "ana_lima",
        "ben_ito",
    ]


def test_review_shows_the_candidate_and_the_this_is_list_by_display_name(school: Kit) -> None:
    # A face just too far from ana's: queued as uncertain, ana its candidate.
    near_ana = school.analyzer.add(jpeg(1), ScriptedFace(near(school.people["ana_lima"], 0.49, 3)))
    assert scan(school, near_ana, at(8, 35))["status"] == "unknown"
    for n in range(school.settings.intruder_threshold):  # an intruder photo at the gate
        stranger = school.analyzer.add(jpeg(10 + n), ScriptedFace(identity(20_000 + n)))
        scan(school, stranger, at(8, 40), camera="gate")
    token = sign_in(school, "olga", "office")
    review = page(school, "/review?date=2026-11-23")
    assert "Confirm: this is Zoë Martín" in review
    assert 'aria-label="Reject: this is not Zoë Martín"' in review
    options = re.findall(r'<option value="([^"]+)">([^<]*)</option>', review)
    # by the name a person reads, casefolded: Ben, cleo, Zoë; the value is the folder's name
    assert [(v, html.unescape(t)) for v, t in options] == [
        ("ben_ito", "Ben <Ito>"),
        ("cleo_park", "cleo_park"),
        ("ana_lima", "Zoë Martín"),
    ]
    [row] = school.services.store.intruder_rows(at(8, 0).date(), at(8, 0).date())
    named_it = post_form(
        school, f"/review/intruders/{row.id}", token, action="identify", student="ana_lima"
    )
    [message] = follow(school, named_it)
    assert "Zoë Martín marked Present in math-7b at 08:30" in message


def test_reports_class_student_and_enrol_pages_show_display_names(school: Kit) -> None:
    scan(school, school.probe("ana_lima"), at(8, 35))
    school.clock.set(at(11, 0))
    sign_in(school, "ada", "admin")
    reports = page(school, "/reports?from=2026-11-23&to=2026-11-23")
    # by the name a person reads, casefolded
    assert links(reports) == ["Ben <Ito>", "cleo_park", "Zoë Martín"]
    roster = page(school, "/class/math-7b?from=2026-11-23&to=2026-11-23")
    assert links(roster) == ["Ben <Ito>", "Ben <Ito>", "Zoë Martín"]  # under the alert; roster
    student = page(school, "/student/ana_lima")
    assert "<legend>Consent of Zoë Martín</legend>" in student
    assert "Export everything held on Zoë Martín (zip)" in student
    enrol = page(school, "/enrol")
    assert 'aria-label="Photos of Zoë Martín"' in enrol
    assert "Enrol</a> › Zoë Martín</p>" in page(school, "/enrol/ana_lima")


def test_the_enrol_list_sorts_by_casefold(tmp_path: Path) -> None:
    kit = make_kit(tmp_path, students=("bob", "Alice", "carol", "Dave"))
    try:
        sign_in(kit, "olga", "office")
        listed = re.findall(r'<span class="name">([^<]+)</span>', page(kit, "/enrol"))
        assert listed == ["Alice", "bob", "carol", "Dave"]  # not Alice, Dave, bob, carol
    finally:
        kit.services.close()


# --- the emails ----------------------------------------------------------------------------------


def test_the_class_and_school_emails_name_students_by_display_name(school: Kit) -> None:
    from smart_attendance.attendance import corrections

    scan(school, school.probe("ana_lima"), at(8, 35))
    school.clock.set(at(9, 30))
    corrections.correct(
        school.services.attendance,
        school.services.files,
        name="ben_ito",
        day=at(0, 0).date(),
        status="Excused",
        reason="dentist",
        by="office",
        class_name="math-7b",
        period="08:30",
    )
    school.clock.set(at(17, 30))
    _day, outgoing = school.services.reports.messages()
    school_mail, class_mail = (o.message for o in outgoing)
    text = _body(class_mail)
    assert "  08:35:00  Present  Zoë Martín\n" in text
    assert "Excused: Ben <Ito> (08:30: dentist)" in text
    assert "Ben <Ito>, 08:30: Absent -> Excused (by office: dentist)" in text
    assert "  Zoë Martín: 1/1 present (100.0%)" in text
    assert "ana_lima" not in text and "ben_ito" not in text
    body = _body(class_mail, "html")
    assert "<tr><td>Zoë Martín</td>" in body and "Ben &lt;Ito&gt;" in body
    assert "ana_lima" not in body and "<Ito>" not in body
    [register] = _attachments(class_mail).values()
    assert register.startswith("\ufeff")  # Excel on Windows reads it as UTF-8
    assert register[1:].splitlines()[:3] == [
        "Class,Period,End,Name,Display name,Status,Time,Source,Reason",
        "math-7b,08:30,09:25,ana_lima,Zoë Martín,Present,08:35:00,camera:door-1,",
        "math-7b,08:30,09:25,ben_ito,Ben <Ito>,Excused,,office,dentist",
    ]
    school_text = _body(school_mail)
    assert "Excused: Ben <Ito> (math-7b 08:30: dentist)" in school_text
    assert "Absent: cleo_park (art 09:00)" in school_text
    # The original's files keep the folder's name, and an excused student has no time.
    day_file = _attachments(school_mail)["attendance_2026-11-23.csv"]
    assert day_file.splitlines() == [
        "Name,Time,Status",
        "ben_ito,,Excused",
        "ana_lima,08:35:00,Present",
    ]


def test_the_report_without_a_timetable_names_students_by_display_name(tmp_path: Path) -> None:
    kit = named(make_kit(tmp_path))  # ana, ben and cleo in the one class at 09:00
    try:
        scan(kit, kit.probe("ana_lima"), at(8, 55))
        kit.clock.set(at(17, 0))
        _day, message = kit.services.reports.message()
        text = _body(message)
        assert "  08:55:00  Present  Zoë Martín\n" in text
        assert "Absent: Ben <Ito>, cleo_park\n" in text
        assert "  Zoë Martín: 100.0% present" in text
        body = _body(message, "html")
        assert "<tr><td>Zoë Martín</td><td>08:55:00</td>" in body
        assert "Ben &lt;Ito&gt;, cleo_park" in body
    finally:
        kit.services.close()


def _body(message: Any, kind: str = "plain") -> str:
    part = message.get_body(preferencelist=(kind,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def _attachments(message: Any) -> dict[str, str]:
    return {
        str(part.get_filename()): part.get_content().replace("\r\n", "\n")
        for part in message.iter_attachments()
    }


# --- the exports and /checkin --------------------------------------------------------------------


def test_the_exports_have_a_display_name_column_and_the_csv_a_bom(school: Kit) -> None:
    scan(school, school.probe("ana_lima"), at(8, 35))
    school.clock.set(at(11, 0))
    # A month back: the register begins on the 23rd, the days before are not columns.
    query = "from=2026-10-24&to=2026-11-23"
    got = school.get(f"/export.csv?{query}")
    assert got.data.startswith("\ufeffDate,Class,Period,Student,Display name,".encode())
    rows = list(csv.DictReader(io.StringIO(got.data.decode("utf-8-sig"))))
    assert [(r["Student"], r["Display name"], r["Status"]) for r in rows] == [
        ("ana_lima", "Zoë Martín", "Present"),
        ("ben_ito", "Ben <Ito>", "Absent"),
        ("cleo_park", "cleo_park", "Absent"),
    ]
    sign_in(school, "olga", "office")
    mine = school.client.get(f"/reports/export.csv?{query}")
    assert mine.data == got.data  # the dashboard's file is the API's

    book = load_workbook(io.BytesIO(school.get(f"/export.xlsx?{query}").data))
    days = [list(row) for row in book["Days"].iter_rows(values_only=True)]
    assert days == [
        ["Student", "Display name", "External ID", "2026-11-23"],  # no 30 empty days first
        ["ana_lima", "Zoë Martín", None, "P"],
        ["ben_ito", "Ben <Ito>", None, "A"],
        ["cleo_park", "cleo_park", None, "A"],
    ]
    header = [c.value for c in book["Register"][1]]
    assert header[3:5] == ["Student", "Display name"]


def test_checkin_answers_with_the_display_name(school: Kit) -> None:
    cards = school.services.badges.prepare(["ana_lima"])
    school.services.badges.issue(cards, "cli:test")
    school.clock.set(at(8, 35))
    answer = school.client.post(
        "/checkin", json={"badge": cards[0].token}, headers={"X-API-KEY": API_KEY}
    ).get_json()
    assert answer["name"] == "ana_lima"  # what a program reads keeps the folder's name
    assert [(m["name"], m["display_name"]) for m in answer["marks"]] == [("ana_lima", "Zoë Martín")]


def test_the_access_export_says_whose_data_it_is_by_display_name(school: Kit) -> None:
    import zipfile

    answer = school.get("/students/ana_lima/export")
    assert answer.status_code == 200
    readme = zipfile.ZipFile(io.BytesIO(answer.data)).read("README.txt").decode()
    assert readme.startswith("Personal data held by Smart Attendance on Zoë Martín (ana_lima)\n")
