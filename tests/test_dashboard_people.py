"""The Student and Class pages of the dashboard, in this process: the calendar's day statuses
after camera marks and corrections made on the Today page, the statistics and the history of
corrections; the class's chart, roster and students under the alert threshold; the range and
its default; who may open what (403, 404); the photo route refusing path tricks and other
students' files; pages with no inline style or script."""

from __future__ import annotations

import html
import logging
import re
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest

from conftest import Kit
from dashboard_kit import post_form, sign_in
from smart_attendance.attendance import calendar
from smart_attendance.attendance.register import Entry
from smart_attendance.people.enrolment import photo_path
from smart_attendance.web.dashboard.people import months, term_range
from test_register import at
from test_register import school as school  # the register's fixture, used here

WEEK = "from=2026-11-23&to=2026-11-29"


def seen(kit: Kit, name: str, when: datetime) -> None:
    kit.clock.set(when)
    response = kit.recognize(kit.probe(name), camera="door-1")
    assert response.status_code == 200, response.get_json()


def correct(kit: Kit, token: str, name: str, day: str, status: str, reason: str = "") -> None:
    response = post_form(
        kit,
        "/today/correct",
        token,
        name=name,
        date=day,
        period="08:30",
        status=status,
        reason=reason,
        **{"class": "math-7b"},
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:300]


def a_week(kit: Kit) -> str:
    """ana: Present Mon, Late Tue, unseen Wed and Thu (Thu excused), Present Fri corrected to
    Late; ben Present in math every day, never seen in art. Friday 12:00 afterwards; the
    admin's CSRF token."""
    for day, minute in ((23, 35), (24, 50), (27, 32)):
        seen(kit, "ana_lima", at(day, 8, minute))
    for day in (23, 24, 25, 26, 27):
        seen(kit, "ben_ito", at(day, 8, 35))
    kit.clock.set(at(27, 12, 0))
    token = sign_in(kit, "ada", "admin")
    correct(kit, token, "ana_lima", "2026-11-26", "Excused", "doctor's note")
    correct(kit, token, "ana_lima", "2026-11-27", "Late", "came back after the bell")
    return token


def page(kit: Kit, url: str, status: int = 200) -> str:
    response = kit.client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def status_of(kit: Kit, url: str) -> int:
    with kit.client.get(url) as response:
        return response.status_code


def html_text(fragment: str) -> str:
    """The text of an HTML fragment, its tags dropped and its entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment))


def corrections(html: str) -> list[list[str]]:
    """The rows of the Student page's corrections table, as words."""
    table = html.split('id="fix-h"')[1].split("</table>")[0]
    return [html_text(row).split() for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]]


def day_cells(html: str) -> dict[str, tuple[str, str]]:
    """Calendar day -> (CSS status class, the status word for screen readers)."""
    found = re.findall(
        r'<td data-day="([\d-]+)" class="day ([\w-]+)".*?<span class="sr-only"> ([^<,]+)',
        html,
        re.S,
    )
    return {day: (css, word.strip()) for day, css, word in found}


# --- the Student page ------------------------------------------------------------------------


def test_the_calendar_shows_each_days_status_after_marks_and_corrections(school: Kit) -> None:
    a_week(school)
    html = page(school, f"/student/ana_lima?{WEEK}")
    assert day_cells(html) == {
        "2026-11-23": ("present", "Present"),
        "2026-11-24": ("late", "Late"),
        "2026-11-25": ("absent", "Absent"),
        "2026-11-26": ("excused", "Excused"),
        "2026-11-27": ("late", "Late"),
        "2026-11-28": ("none", "No class"),
        "2026-11-29": ("none", "No class"),
    }
    assert 'data-day="2026-11-27" class="day late"' in html
    assert re.search(r'data-day="2026-11-27"[^>]*aria-current="date"', html)  # today
    # the days of the month outside the range are shown, without a status
    assert 'data-day="2026-11-22"' not in html and "outside the range" in html
    # a legend with every status as a word
    for word in ("Present", "Late", "Absent", "Excused", "No class", "Not yet seen"):
        assert f"<strong>{word}</strong>" in html


def test_student_statistics_and_the_history_of_corrections(school: Kit) -> None:
    a_week(school)
    html = page(school, f"/student/ana_lima?{WEEK}")
    # 5 periods: Present, Late, Absent, Excused, Late -> 3 attended (60%), 2 of them late
    stats = dict(re.findall(r'data-stat="(\w+)">([^<]+)<', html))
    assert stats == {"attendance": "60%", "late": "66.67%", "absent": "1", "excused": "1"}
    assert "Below the alert threshold" in html
    table = [(row[0], row[1:]) for row in corrections(html)]
    # newest first: the Friday correction, then Thursday's; signed by the user, local time
    assert [day for day, _ in table] == ["2026-11-27", "2026-11-26"]
    friday = " ".join(table[0][1])
    assert "math-7b 08:30 Present → to Late came back after the bell user:ada" in friday
    assert friday.endswith("2026-11-27 12:00")
    assert "Absent → to Excused doctor's note user:ada" in " ".join(table[1][1])


def test_an_undone_excuse_is_absent_again_with_both_in_the_history(school: Kit) -> None:
    token = a_week(school)
    response = post_form(
        school,
        "/today/undo",
        token,
        name="ana_lima",
        date="2026-11-26",
        period="08:30",
        **{"class": "math-7b"},
    )
    assert response.status_code == 303
    html = page(school, f"/student/ana_lima?{WEEK}")
    assert day_cells(html)["2026-11-26"] == ("absent", "Absent")
    rows = corrections(html)  # newest first: the undo, Friday's correction, the excuse
    assert [row[:2] + row[3:7] for row in rows] == [
        ["2026-11-26", "math-7b", "Excused", "→", "to", "Undone"],
        ["2026-11-27", "math-7b", "Present", "→", "to", "Late"],
        ["2026-11-26", "math-7b", "Absent", "→", "to", "Excused"],
    ]


def test_a_day_still_running_is_not_yet_seen_and_the_photos_are_listed(school: Kit) -> None:
    seen(school, "ben_ito", at(23, 8, 35))  # math Present; art (09:00) not seen yet at 09:30
    school.clock.set(at(23, 9, 30))
    sign_in(school, "ada", "admin")
    html = page(school, "/student/ben_ito?from=2026-11-23&to=2026-11-23")
    assert day_cells(html) == {"2026-11-23": ("present", "Present")}  # art still runs
    school.clock.set(at(24, 8, 40))  # Tuesday, math running, ben not seen yet
    sign_in(school, "ada", "admin")  # the session of Monday has expired
    html = page(school, "/student/ben_ito?from=2026-11-23&to=2026-11-24")
    assert day_cells(html) == {
        "2026-11-23": ("absent", "Absent"),  # art ended without him
        "2026-11-24": ("pending", "Not yet seen"),
    }
    assert "08:30 math-7b Present; 09:00 art Absent" in html  # the day's periods in words
    for n in (1, 2):
        assert f'<img src="/student/ben_ito/photos/{n}.jpg" alt="Photo {n} of ben_ito"' in html
    assert "2 photos in use for recognition" in html
    assert re.search(
        r'<a href="/class/math-7b">math-7b</a>.*<a href="/class/art">art</a>', html, re.S
    )


def test_the_range_defaults_to_the_term_so_far(school: Kit) -> None:
    sign_in(school, "ada", "admin")
    html = page(school, "/class/math-7b")  # nothing on record: the last 60 days
    assert 'name="from" value="2026-09-25"' in html and 'name="to" value="2026-11-23"' in html
    seen(school, "ana_lima", at(23, 8, 35))
    school.clock.set(at(27, 12, 0))
    sign_in(school, "ada", "admin")
    html = page(school, "/student/ana_lima")  # from the first day on record to today
    assert 'name="from" value="2026-11-23"' in html and 'name="to" value="2026-11-27"' in html
    assert "Bad" not in page(school, "/student/ana_lima?from=2026-11-24")
    page(school, "/student/ana_lima?from=2026-11-27&to=2026-11-23", 400)
    page(school, "/class/art?from=yesterday", 400)


# --- the Class page --------------------------------------------------------------------------


def test_the_class_chart_roster_and_students_under_the_threshold(school: Kit) -> None:
    a_week(school)
    html = page(school, f"/class/math-7b?{WEEK}")
    below = html.split('id="below-h"')[1].split("</section>")[0]
    assert re.findall(r'href="/student/(\w+)"', below) == ["ana_lima"]  # 60%; ben 100%
    assert "60%" in below and "3 of 5 periods attended, 1 absent, 1 excused" in below
    assert "Under the alert threshold (90%)" in html
    # the chart: one column per school day, its numbers in words, the threshold line
    chart = html.split('<svg class="chart"')[1].split("</svg>")[0]
    assert "<title>2026-11-23: 2 present</title>" in chart
    assert "<title>2026-11-25: 1 present, 1 absent</title>" in chart
    assert "<title>2026-11-26: 1 present, 1 excused</title>" in chart
    assert "<title>alert threshold 90%</title>" in chart
    assert chart.count("<g><title>") == 5  # Monday to Friday; no weekend column
    numbers = dict(
        re.findall(r'<tr data-day="([\d-]+)">.*?<td class="num">([^<]+)</td></tr>', html, re.S)
    )
    assert numbers == {
        "2026-11-23": "100%",
        "2026-11-24": "100%",
        "2026-11-25": "50%",
        "2026-11-26": "50%",
        "2026-11-27": "100%",
    }
    roster = {
        name: (photos, pct)
        for name, photos, pct in re.findall(
            r'<tr data-student="(\w+)">.*?</th>\s*<td class="num">(\d+)</td>\s*'
            r'<td class="num">([\d.]+%)',
            html,
            re.S,
        )
    }
    assert roster == {"ana_lima": ("2", "60%"), "ben_ito": ("2", "100%")}
    assert '<a href="/student/ana_lima">ana_lima</a>' in html


def test_nobody_under_the_threshold_and_an_empty_range(school: Kit) -> None:
    a_week(school)
    html = page(school, f"/class/art?{WEEK}")  # ben absent in art on Monday; cleo too
    below = html.split('id="below-h"')[1].split("</section>")[0]
    assert re.findall(r'href="/student/(\w+)"', below) == ["ben_ito", "cleo_park"]
    html = page(school, "/class/math-7b?from=2026-11-28&to=2026-11-29")  # a weekend
    assert "Nobody is under 90%" in html
    assert "No class period from 2026-11-28 to 2026-11-29" in html
    assert '<svg class="chart"' not in html


# --- who may open what -----------------------------------------------------------------------


def test_a_teacher_opens_their_class_and_its_students_only(school: Kit) -> None:
    a_week(school)
    sign_in(school, "tess", "teacher", ["art"])
    assert "Not allowed" in page(school, "/class/math-7b", 403)
    page(school, f"/class/art?{WEEK}")
    page(school, "/student/ana_lima", 403)  # math-7b only
    page(school, "/student/ana_lima/photos/1.jpg", 403)
    assert status_of(school, "/student/ben_ito/photos/1.jpg") == 200
    # ben's page shows the teacher's class only: Monday's art absence, no math period
    html = page(school, f"/student/ben_ito?{WEEK}")
    cells = day_cells(html)
    assert cells["2026-11-23"] == ("absent", "Absent")
    assert cells["2026-11-24"] == ("none", "No class")
    assert "math-7b Present" not in html and "in your classes only" in html
    assert 'data-stat="attendance">0%' in html
    # math-7b is named among ben's classes, but not as a link for this teacher
    assert '<a href="/class/math-7b">' not in html and "<li>math-7b</li>" in html
    # an unknown class or student is not the teacher's either
    page(school, "/class/nope", 403)
    page(school, "/student/nobody", 403)


def test_unknown_students_classes_and_photos_are_404_pages(school: Kit) -> None:
    sign_in(school, "ada", "admin")
    html = page(school, "/student/nobody", 404)
    assert "<h1>Not found</h1>" in html and "no student named" in html
    html = page(school, "/class/nope", 404)
    assert "no class named 'nope'" in html_text(html)
    page(school, "/student/nobody/photos/1.jpg", 404)
    page(school, "/student/ana_lima/photos/9.jpg", 404)


def test_the_photo_route_serves_the_students_own_files_only(
    school: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    sign_in(school, "ada", "admin")
    dataset = school.settings.dataset_dir
    caplog.set_level(logging.DEBUG)
    with school.client.get("/student/ana_lima/photos/1.jpg") as response:
        assert response.status_code == 200
        # Sealed at rest, served plain to a signed-in user.
        assert response.data == b"photo:ana_lima:1"
        assert (dataset / "ana_lima" / "1.jpg").read_bytes().startswith(b"SMART-ATTENDANCE")
        assert response.mimetype == "image/jpeg"
        assert response.headers["Cache-Control"] == "no-store"
    assert "photo:ana_lima" not in caplog.text  # the photo's bytes are never logged
    # things in or beside the folder that are not its photos
    (dataset / "ana_lima" / "notes.txt").write_text("private")
    (dataset / "ana_lima" / ".hidden.jpg").write_bytes(b"hidden")
    (dataset / "ana_lima" / "ben.jpg").symlink_to(dataset / "ben_ito" / "1.jpg")
    (dataset.parent / "outside.jpg").write_bytes(b"outside")
    (dataset / "ana_lima" / "out.jpg").symlink_to(dataset.parent / "outside.jpg")
    for tail in (
        "notes.txt",
        ".hidden.jpg",
        "ben.jpg",  # a link to another student's photo
        "out.jpg",  # a link out of the dataset
        "..",
        "%2e%2e",
        "..%2Fben_ito%2F1.jpg",
        "..%5Cben_ito%5C1.jpg",
        "%2e%2e%2f%2e%2e%2foutside.jpg",
    ):
        with school.client.get(f"/student/ana_lima/photos/{tail}") as response:
            assert response.status_code == 404, tail
            assert response.data not in (b"private", b"hidden", b"outside")
    for url in ("/student/../photos/outside.jpg", "/student/%2e%2e/photos/outside.jpg"):
        assert status_of(school, url) == 404, url
    # the page lists the real photos only
    html = page(school, "/student/ana_lima")
    assert re.findall(r'<img src="/student/ana_lima/photos/([^"]+)"', html) == ["1.jpg", "2.jpg"]


def test_pages_have_no_inline_style_or_script_and_their_css_is_served(school: Kit) -> None:
    a_week(school)
    for url in (f"/student/ana_lima?{WEEK}", f"/class/math-7b?{WEEK}"):
        response = school.client.get(url)
        html = response.get_data(as_text=True)
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert " style=" not in html and "<style" not in html
        assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/app.js" defer>']
        assert '<link rel="stylesheet" href="/static/people.css">' in html
        # every input has its label, and the range form has its Show button
        ids = re.findall(r'<input id="(\w+)"', html)
        assert ids == ["from", "to"]
        for field in ids:
            assert f'<label for="{field}">' in html
        assert '<button type="submit">Show</button>' in html
    with school.client.get("/static/people.css") as response:
        assert response.status_code == 200
        assert b"table.cal" in response.data


# --- the pure parts --------------------------------------------------------------------------


def entry(day: int, status: str | None, period: str = "08:30") -> Entry:
    return Entry(date(2026, 11, day), "math-7b", period, "09:25", "ana_lima", status)


def test_a_days_status_is_the_worst_of_its_periods() -> None:
    status = calendar.day_status
    assert status([]) == "No class"
    assert status([None, None]) == "Not yet seen"
    assert status(["Present", None]) == "Present"
    assert status(["Present", "Present"]) == "Present"
    assert status(["Present", "Late"]) == "Late"
    assert status(["Excused", "Present"]) == "Excused"
    assert status(["Excused", "Late"]) == "Late"
    assert status(["Late", "Absent", "Excused"]) == "Absent"
    days = calendar.student_days(
        [entry(23, "Late", "09:00"), entry(23, "Present"), entry(25, None)],
        date(2026, 11, 23),
        date(2026, 11, 25),
    )
    assert [(d.status, d.detail) for d in days.values()] == [
        ("Late", "08:30 math-7b Present; 09:00 math-7b Late"),
        ("No class", ""),
        ("Not yet seen", "08:30 math-7b Not yet seen"),
    ]
    counts = calendar.daily_counts([entry(24, "Absent"), entry(23, "Late"), entry(24, None)])
    assert counts == [
        (date(2026, 11, 23), Counter({"Late": 1})),
        (date(2026, 11, 24), Counter({"Absent": 1, "Not yet seen": 1})),
    ]
    assert calendar.attendance_pct(Counter({"Present": 2, "Late": 1, "Excused": 1})) == 75.0
    assert calendar.attendance_pct(Counter({"Not yet seen": 3})) is None


def test_months_are_weeks_from_monday() -> None:
    found = months(date(2026, 11, 23), date(2027, 1, 2))
    assert [m.title for m in found] == ["November 2026", "December 2026", "January 2027"]
    november = found[0].weeks
    assert november[0] == (None,) * 6 + (date(2026, 11, 1),)  # the 1st is a Sunday
    assert november[-1][0] == date(2026, 11, 30) and november[-1][1:] == (None,) * 6
    assert sum(d is not None for week in november for d in week) == 30
    assert all(len(week) == 7 for m in found for week in m.weeks)


def test_the_term_range() -> None:
    today = date(2026, 11, 27)
    assert term_range(None, today, None, None) == (date(2026, 9, 29), today)
    assert term_range(date(2026, 9, 1), today, None, None) == (date(2026, 9, 1), today)
    assert term_range(date(2026, 9, 1), today, None, "2026-08-31") == (
        date(2026, 7, 3),
        date(2026, 8, 31),
    )
    assert term_range(None, today, "2026-11-01", "2026-11-02") == (
        date(2026, 11, 1),
        date(2026, 11, 2),
    )


def test_photo_path_refuses_what_is_not_a_plain_photo_of_the_folder(tmp_path: Path) -> None:
    (tmp_path / "ana").mkdir()
    (tmp_path / "ana" / "1.jpg").write_bytes(b"x")
    assert photo_path(tmp_path, "ana", "1.jpg") == (tmp_path / "ana" / "1.jpg").resolve()
    for name, file in (
        ("ana", "../ana/1.jpg"),
        ("ana", "..\\ana\\1.jpg"),
        ("..", "ana"),
        (".", "1.jpg"),
        ("ana", "1.JPG.txt"),
        ("ana", "2.jpg"),
        ("ana", "\x001.jpg"),
    ):
        assert photo_path(tmp_path, name, file) is None, (name, file)
