"""The dashboard's Reports and Admin pages, in this process: the statistics and the chart of a
range follow the marks, the register's exports (CSV, XLSX) open and hold the marked students,
a teacher exports and previews their own classes only, the email preview is served under a
CSP without scripts; the admin adds, disables and re-keys accounts (a disabled user's session
ends at their next request), nobody else opens the admin page, secrets never reach it, and a
form without its CSRF token is refused."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from werkzeug.test import TestResponse

from conftest import API_KEY, Kit, make_kit
from dashboard_kit import PASSWORD, csrf_token, post_form, sign_in
from smart_attendance.web.dashboard.admin import without_password
from smart_attendance.web.dashboard.reports import PREVIEW_CSP
from test_register import CLASSES, at, timetable_file

WINTER_BREAK = """
[[closure]]
from = "2026-12-21"
to = "2027-01-03"
reason = "winter break"
"""
TIMETABLE = CLASSES + WINTER_BREAK  # the register's two classes, closed over the winter
SMTP_PASSWORD = "smtp-password-never-shown-4711"
RANGE = "from=2026-11-23&to=2026-11-24"


@pytest.fixture
def school(tmp_path: Path) -> Iterator[Kit]:
    """Two classes; students enrolled on Monday 2026-11-23 at 08:20."""
    kit = make_kit(
        tmp_path,
        now=at(23, 8, 20),
        timetable=timetable_file(tmp_path, TIMETABLE),
        sender_email="school@example.org",
        sender_password=SMTP_PASSWORD,
        teacher_email="office@example.org",
    )
    yield kit
    kit.services.close()


def seen(kit: Kit, name: str, when: datetime) -> None:
    kit.clock.set(when)
    response = kit.recognize(kit.probe(name), camera="door-1")
    assert response.status_code == 200, response.get_json()


@pytest.fixture
def marked(school: Kit) -> Kit:
    """Monday: ana Present in math, ben Late in math and Present in art, cleo Absent in art
    then excused. Tuesday: ana Late in math, ben Absent. Now Tuesday evening."""
    seen(school, "ana_lima", at(23, 8, 35))
    seen(school, "ben_ito", at(23, 9, 2))
    seen(school, "ana_lima", at(24, 8, 45))
    school.clock.set(at(24, 18, 0))
    excuse = {
        "name": "cleo_park",
        "date": "2026-11-23",
        "class": "art",
        "period": "09:00",
        "status": "Excused",
        "reason": "doctor",
    }
    done = school.client.post(
        "/attendance/corrections", json=excuse, headers={"X-API-KEY": API_KEY}
    )
    assert done.status_code in (200, 201), done.get_json()
    return school


class Tables(HTMLParser):
    """Every table of a page: its caption and its rows of cell texts."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tables: list[tuple[str, list[list[str]]]] = []
        self._cell: list[str] | None = None
        self._caption: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append(("", []))
        elif tag == "caption":
            self._caption = []
        elif tag == "tr" and self.tables:
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "caption" and self._caption is not None:
            rows = self.tables[-1][1]
            self.tables[-1] = (" ".join("".join(self._caption).split()), rows)
            self._caption = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        elif self._caption is not None:
            self._caption.append(data)

    def rows(self, caption: str) -> list[list[str]]:
        found = [rows for text, rows in self.tables if caption in text]
        assert found, f"no table captioned {caption!r}"
        return [row for row in found[0] if row]


def page(kit: Kit, url: str) -> str:
    response = kit.client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def second_browser(kit: Kit) -> Kit:
    """The same server seen from another browser (its own cookies)."""
    return replace(kit, client=kit.client.application.test_client())


# --- reports ------------------------------------------------------------------------------------


def test_statistics_and_chart_follow_the_marks(marked: Kit) -> None:
    sign_in(marked, "ada", "admin")
    html = page(marked, f"/reports?{RANGE}")
    tables = Tables(html)
    stats = {row[0]: row[1:] for row in tables.rows("Attendance per student")[1:]}
    # Attendance, On time, Late, Excused, Absent, Expected
    assert stats["ana_lima"] == ["100.0%", "1", "1", "0", "0", "2"]
    assert stats["ben_ito below 90%"] == ["66.7%", "1", "1", "0", "1", "3"]
    assert stats["cleo_park below 90%"] == ["0.0%", "0", "0", "1", "0", "1"]
    per_day = tables.rows("Student periods per day")
    assert per_day[1:] == [
        ["Mon 23 Nov 2026", "2", "1", "1", "0", "75.0%"],
        ["Tue 24 Nov 2026", "0", "1", "0", "1", "50.0%"],
    ]
    assert "66.7% attendance" in html
    # the chart: a column per day with its numbers, and the alert threshold
    assert "<title>2026-11-23: 2 present, 1 late, 1 excused</title>" in html
    assert "<title>2026-11-24: 1 late, 1 absent</title>" in html
    assert "alert threshold 90%" in html
    # its days as "23 Nov": a 23/11 or 11/23 label reads differently from country to country
    assert ">23 Nov</text>" in html and ">24 Nov</text>" in html and "23/11" not in html

    # one class: its students only
    art = Tables(page(marked, f"/reports?{RANGE}&class=art"))
    names = [row[0] for row in art.rows("Attendance per student")[1:]]
    assert names == ["ben_ito", "cleo_park below 90%"]

    # another range: nothing was expected
    empty = page(marked, "/reports?from=2026-11-25&to=2026-11-25")
    assert "No student was expected in this range" in empty


def test_bad_ranges_are_refused(marked: Kit) -> None:
    sign_in(marked, "ada", "admin")
    assert marked.client.get("/reports?from=2026-11-24&to=2026-11-23").status_code == 400
    assert marked.client.get("/reports?from=yesterday").status_code == 400
    assert marked.client.get("/reports?class=chemistry").status_code == 400


def read_csv(response: TestResponse) -> list[dict[str, str]]:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.content_type.startswith("text/csv")
    assert response.data.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads UTF-8
    return list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"))))


def read_xlsx(response: TestResponse) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert "spreadsheetml" in response.content_type
    book = load_workbook(io.BytesIO(response.data), read_only=True)
    rows = list(book["Register"].iter_rows(values_only=True))
    header = [str(cell) for cell in rows[0]]
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


def test_the_exports_download_and_hold_the_marks(marked: Kit) -> None:
    sign_in(marked, "ada", "admin")
    html = page(marked, f"/reports?{RANGE}")
    assert "/reports/export.csv?from=2026-11-23&amp;to=2026-11-24" in html
    assert "/reports/export.xlsx?from=2026-11-23&amp;to=2026-11-24" in html

    response = marked.client.get(f"/reports/export.csv?{RANGE}")
    assert (
        'filename="attendance_2026-11-23_2026-11-24.csv"' in response.headers["Content-Disposition"]
    )
    rows = read_csv(response)
    got = {(r["Date"], r["Class"], r["Student"]): r["Status"] for r in rows}
    assert got == {
        ("2026-11-23", "math-7b", "ana_lima"): "Present",
        ("2026-11-23", "math-7b", "ben_ito"): "Late",
        ("2026-11-23", "art", "ben_ito"): "Present",
        ("2026-11-23", "art", "cleo_park"): "Excused",
        ("2026-11-24", "math-7b", "ana_lima"): "Late",
        ("2026-11-24", "math-7b", "ben_ito"): "Absent",
    }
    ana = next(r for r in rows if r["Student"] == "ana_lima" and r["Date"] == "2026-11-23")
    assert ana["Time"] == "08:35:00"
    assert ana["Source"] == "camera:door-1"

    book = read_xlsx(marked.client.get(f"/reports/export.xlsx?{RANGE}&class=art"))
    assert [(r["Student"], r["Status"]) for r in book] == [
        ("ben_ito", "Present"),
        ("cleo_park", "Excused"),
    ]


def test_a_teacher_exports_and_previews_their_classes_only(marked: Kit) -> None:
    sign_in(marked, "tom", "teacher", ["math-7b"])
    html = page(marked, f"/reports?{RANGE}")
    names = [row[0] for row in Tables(html).rows("Attendance per student")[1:]]
    assert names == ["ana_lima", "ben_ito below 90%"]  # cleo is in art only
    assert '<option value="art"' not in html
    assert "The school&#39;s email" not in html

    # without a class: the rows of their classes only
    rows = read_csv(marked.client.get(f"/reports/export.csv?{RANGE}"))
    assert {r["Class"] for r in rows} == {"math-7b"}
    assert len(rows) == 4
    book = read_xlsx(marked.client.get(f"/reports/export.xlsx?{RANGE}"))
    assert {r["Class"] for r in book} == {"math-7b"}
    assert read_csv(marked.client.get(f"/reports/export.csv?{RANGE}&class=math-7b"))

    # another class: refused everywhere
    for url in (
        f"/reports?{RANGE}&class=art",
        f"/reports/export.csv?{RANGE}&class=art",
        f"/reports/export.xlsx?{RANGE}&class=art",
        "/reports/preview?date=2026-11-23&class=art",
        "/reports/preview?date=2026-11-23",  # the school's email
    ):
        assert marked.client.get(url).status_code == 403, url

    preview = marked.client.get("/reports/preview?date=2026-11-23&class=math-7b")
    assert preview.status_code == 200
    body = preview.get_data(as_text=True)
    assert "math-7b" in body and "ana_lima" in body
    assert "cleo_park" not in body
    # the page frames the preview of the teacher's class
    assert 'src="/reports/preview?date=2026-11-24&amp;class=math-7b"' in html


def test_the_preview_is_the_email_under_a_csp_without_scripts(marked: Kit) -> None:
    sign_in(marked, "ada", "admin")
    response = marked.client.get("/reports/preview?date=2026-11-23")
    assert response.status_code == 200
    assert response.content_type == "text/html; charset=utf-8"
    assert response.headers["Content-Security-Policy"] == PREVIEW_CSP
    assert "script-src" not in PREVIEW_CSP and "default-src 'none'" in PREVIEW_CSP
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    body = response.get_data(as_text=True)
    assert "<script" not in body.lower()
    assert "cleo_park" in body and "ben_ito" in body  # the school's email: every class
    assert "cid:" not in body and "data:image/png;base64," in body  # the chart, inline

    # a class's email; and a day it had no period
    art = marked.client.get("/reports/preview?date=2026-11-23&class=art")
    assert "cleo_park" in art.get_data(as_text=True)
    assert art.headers["Content-Security-Policy"] == PREVIEW_CSP
    none = marked.client.get("/reports/preview?date=2026-11-24&class=art")
    assert none.status_code == 200
    assert "No email for class art" in none.get_data(as_text=True)

    # the page itself keeps the strict policy and frames the preview
    html = marked.client.get(f"/reports?{RANGE}&day=2026-11-23")
    assert "frame-ancestors 'none'" in html.headers["Content-Security-Policy"]
    assert 'src="/reports/preview?date=2026-11-23"' in html.get_data(as_text=True)
    assert "sandbox" in html.get_data(as_text=True)


def test_the_pages_carry_no_inline_style_or_script(marked: Kit) -> None:
    sign_in(marked, "ada", "admin")
    for url in (f"/reports?{RANGE}", "/admin"):
        html = page(marked, url)
        assert " style=" not in html, url
        assert "<script>" not in html and "<script " not in html.replace(
            '<script src="/static/app.js" defer>', ""
        ), url
        assert "<style" not in html, url
    for sheet in ("reports.css", "admin.css"):
        with marked.client.get(f"/static/{sheet}") as response:
            assert response.status_code == 200, sheet


# --- admin ----------------------------------------------------------------------------------------


def test_the_admin_adds_disables_and_re_keys_a_user(marked: Kit) -> None:
    token = sign_in(marked, "ada", "admin")
    added = post_form(
        marked,
        "/admin/users",
        token,
        name="tina",
        role="teacher",
        classes="math-7b",
        password="tina's first password",
        confirm="tina's first password",
    )
    assert added.status_code == 303
    assert "User tina added as teacher (math-7b)." in page(marked, "/admin")
    tina = marked.services.accounts.user("tina")
    assert (tina.role, tina.classes, tina.active) == ("teacher", ("math-7b",), True)

    # tina signs in on her own browser
    browser = second_browser(marked)
    login = browser.client.post(
        "/login",
        data={
            "username": "tina",
            "password": "tina's first password",
            "csrf_token": csrf_token(browser.client.get("/login")),
        },
    )
    assert login.status_code == 303
    assert browser.client.get("/reports").status_code == 200

    # disabled: her session ends at her next request
    assert post_form(marked, "/admin/users/tina", token, action="disable").status_code == 303
    assert "disabled" in page(marked, "/admin")
    gone = browser.client.get("/reports")
    assert gone.status_code == 302 and "/login" in gone.headers["Location"]

    # enabled again with a new password: the old one no longer works
    assert post_form(marked, "/admin/users/tina", token, action="enable").status_code == 303
    changed = post_form(
        marked,
        "/admin/users/tina",
        token,
        action="password",
        password="tina's second password",
        confirm="tina's second password",
    )
    assert changed.status_code == 303
    assert "Password of tina changed" in page(marked, "/admin")

    def login_as(password: str) -> int:
        fresh = second_browser(marked)
        answer = fresh.client.post(
            "/login",
            data={
                "username": "tina",
                "password": password,
                "csrf_token": csrf_token(fresh.client.get("/login")),
            },
        )
        return answer.status_code

    assert login_as("tina's first password") == 401
    assert login_as("tina's second password") == 303

    # her classes
    post_form(marked, "/admin/users/tina", token, action="classes", classes=["art", "math-7b"])
    assert marked.services.accounts.user("tina").classes == ("art", "math-7b")


def test_admin_forms_say_what_went_wrong(marked: Kit) -> None:
    token = sign_in(marked, "ada", "admin")
    differ = post_form(
        marked,
        "/admin/users",
        token,
        name="otto",
        role="office",
        password="a long enough password",
        confirm="another long password",
    )
    assert differ.status_code == 303
    assert "the two passwords differ" in page(marked, "/admin")
    assert marked.services.store.user("otto") is None

    post_form(
        marked, "/admin/users", token, name="otto", role="office", password="short", confirm="short"
    )
    assert "at least 10 characters" in page(marked, "/admin")

    post_form(
        marked,
        "/admin/users",
        token,
        name="otto",
        role="teacher",
        classes="chemistry",
        password=PASSWORD,
        confirm=PASSWORD,
    )
    assert "unknown class" in page(marked, "/admin")

    post_form(marked, "/admin/users/ada", token, action="disable")
    assert "you cannot disable your own account" in page(marked, "/admin")
    assert marked.services.accounts.user("ada").active

    post_form(marked, "/admin/users/nobody", token, action="enable")
    assert "no user named" in page(marked, "/admin")


def test_the_admin_changing_their_own_password_stays_signed_in(marked: Kit) -> None:
    token = sign_in(marked, "ada", "admin")
    other = second_browser(marked)
    sign_in(other, "ada", "admin")
    marked.clock.advance(minutes=1)
    new = "ada's brand new password"
    done = post_form(
        marked, "/admin/users/ada", token, action="password", password=new, confirm=new
    )
    assert done.status_code == 303
    assert marked.client.get("/admin").status_code == 200  # this browser goes on
    assert other.client.get("/admin").status_code == 302  # the other session ended


@pytest.mark.parametrize(("role", "classes"), [("office", ()), ("teacher", ("math-7b",))])
def test_office_and_teachers_cannot_open_the_admin_page(
    marked: Kit, role: str, classes: tuple[str, ...]
) -> None:
    marked.services.accounts.add("root", "admin", PASSWORD)
    token = sign_in(marked, "someone", role, classes)
    assert marked.client.get("/admin").status_code == 403
    assert 'href="/admin"' not in page(marked, "/reports")  # not in the navigation
    added = post_form(
        marked,
        "/admin/users",
        token,
        name="mallory",
        role="admin",
        password=PASSWORD,
        confirm=PASSWORD,
    )
    assert added.status_code == 403
    assert marked.services.store.user("mallory") is None
    for action in ("disable", "password", "classes"):
        answer = post_form(
            marked, "/admin/users/root", token, action=action, password="x" * 12, confirm="x" * 12
        )
        assert answer.status_code == 403
    assert marked.services.accounts.user("root").active


def test_the_admin_page_shows_the_timetable_settings_and_health_but_no_secret(
    marked: Kit,
) -> None:
    marked.services.attendance.adopt_timetable()  # as the server does when it starts
    sign_in(marked, "ada", "admin")
    marked.services.store.record_attempt(
        at(23, 17, 0).date(),
        "manual",
        datetime(2026, 11, 23, 16, 0),
        "failed",
        ["office@example.org"],
        "SMTP refused the login",
    )
    html = page(marked, "/admin")
    for secret in (API_KEY, SMTP_PASSWORD, marked.settings.session_secret):
        assert secret not in html
    tables = Tables(html)
    settings = {row[0]: row[1] for row in tables.rows("Effective settings")[1:]}
    assert settings["API_SECRET_KEY"] == "set"
    assert settings["SENDER_PASSWORD"] == "set"
    assert settings["ATTENDANCE_SESSION_SECRET"] == "set"
    assert settings["SENDER_EMAIL"] == "school@example.org"
    assert settings["ATTENDANCE_TIMEZONE"] == "Europe/Paris"
    # the timetable as loaded, per weekday, and its closures
    math = tables.rows("Periods of math-7b per weekday")
    assert [row[0] for row in math[1:]] == ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
    assert "08:30–09:25" in math[1][1]
    assert tables.rows("Periods of art per weekday")[1:] == [
        ["Monday", "09:00–10:00 (late after 5 min, opens 15 min before)"]
    ]
    assert "2026-12-21 to 2027-01-03: winter break" in html
    in_force = tables.rows("timetables in force")
    assert in_force[1][:2] == ["2026-11-24 18:00", "now"]  # recorded today, when it started
    # health and the report log
    assert "Camera keys" in html and "No camera key yet" in html
    assert "SMTP refused the login" in html
    users = {row[0]: row[1:4] for row in tables.rows("Dashboard accounts")[1:]}
    assert users["ada (you)"] == ["admin", "all", "active"]


def test_a_database_password_is_never_shown() -> None:
    shown = without_password("postgresql+psycopg://att:hunter2-secret@db.local:5432/attendance")
    assert "hunter2-secret" not in shown
    assert "db.local" in shown


def test_a_form_without_its_csrf_token_is_refused(marked: Kit) -> None:
    sign_in(marked, "ada", "admin")
    fields = {"name": "eve", "role": "office", "password": PASSWORD, "confirm": PASSWORD}
    assert marked.client.post("/admin/users", data=fields).status_code == 400
    assert marked.client.post("/admin/users/ada", data={"action": "disable"}).status_code == 400
    assert marked.services.store.user("eve") is None
