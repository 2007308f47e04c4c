"""A school's first day, in this process: every way of putting a student in a class marks them
(the Enrol page, ``POST /students``, ``PATCH /students/<name>``; a face or a badge), a student
added during the day is expected only in the periods that begin after that (or from the start
of a join day given by hand), a timetable adopted during the day governs only the periods that
begin after it, and ``/recognize`` says why a recognised student was not marked."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from PIL import Image

from conftest import API_KEY, PARIS, Kit, command_on, make_kit
from dashboard_kit import post_form, sign_in
from scripted import ScriptedFace, identity, near

MONDAY = date(2026, 11, 23)
# ana and ben are on the maths roster; cleo is on none: the office puts her in classes by hand.
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
  days = ["mon", "tue", "wed", "thu", "fri"]
  start = "13:00"
  end = "14:00"

[[class]]
name = "art"
students = ["ben_ito"]
  [[class.period]]
  days = ["mon"]
  start = "09:00"
  end = "10:00"
  late_after_minutes = 5

[[closure]]
from = "2026-11-30"
to = "2026-11-30"
reason = "teacher training"
"""


def at(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=PARIS)


def timetable_file(folder: Path, text: str = TIMETABLE) -> Path:
    path = folder / "timetable.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def school(tmp_path: Path) -> Iterator[Kit]:
    """ana, ben and cleo enrolled before Monday 2026-11-23; the clock at 08:20."""
    kit = make_kit(tmp_path, now=at(23, 8, 20), timetable=timetable_file(tmp_path))
    kit.services.attendance.adopt_timetable()
    yield kit
    kit.services.close()


def api(kit: Kit, method: str, url: str, **body: Any) -> tuple[int, Any]:
    response = kit.client.open(url, method=method, json=body, headers={"X-API-KEY": API_KEY})
    return response.status_code, response.get_json()


def give_photos(kit: Kit, name: str, seed: int) -> None:
    """Two scripted photos of a new face for ``name``, through ``POST /students/<name>/photos``
    (small real PNGs: uploads are decoded before the analyzer sees them)."""
    photos = [
        kit.analyzer.add(png(seed * 10 + n), ScriptedFace(near(identity(seed), 0.1, n)))
        for n in (1, 2)
    ]
    data = {"image": [(io.BytesIO(p), f"{n}.jpg") for n, p in enumerate(photos)]}
    response = kit.client.post(
        f"/students/{name}/photos", data=data, headers={"X-API-KEY": API_KEY}
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["enrolled"] == 2
    kit.people[name] = identity(seed)


def png(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (seed % 256, (seed * 7) % 256, (seed * 13) % 256)).save(out, "PNG")
    return out.getvalue()


def seen(kit: Kit, name: str, when: datetime) -> dict[str, Any]:
    kit.clock.set(when)
    response = kit.recognize(kit.probe(name), camera="door-1")
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def marks_of(body: dict[str, Any]) -> set[tuple[str | None, str | None, str | None]]:
    return {(m.get("class"), m.get("period"), m["attendance"]) for m in body["marks"]}


def register_of(kit: Kit, day: str) -> dict[tuple[str, str, str], str | None]:
    status, body = api(kit, "GET", f"/attendance?date={day}")
    assert status == 200, body
    return {
        (cls["name"], period["start"], student["name"]): student["status"]
        for cls in body["classes"]
        for period in cls["periods"]
        for student in period["students"]
    }


def stats_of(kit: Kit, query: str = "") -> dict[str, dict[str, Any]]:
    status, body = api(kit, "GET", f"/statistics{query}")
    assert status == 200, body
    return {s["name"]: s for s in body["students"]}


# --- every way into a class marks the student -----------------------------------------------


def test_a_student_added_by_the_api_with_a_class_is_marked_in_it(school: Kit) -> None:
    school.clock.set(at(23, 8, 40))
    status, body = api(school, "POST", "/students", name="dan_roe", classes=["art"])
    assert status == 201, body
    assert body["student"]["classes"] == ["art"]
    give_photos(school, "dan_roe", 71)
    answer = seen(school, "dan_roe", at(23, 9, 2))
    assert answer["attendance"] == "Present"
    assert marks_of(answer) == {("art", "09:00", "Present")}
    assert register_of(school, "2026-11-23")[("art", "09:00", "dan_roe")] == "Present"


def test_a_class_given_by_patch_marks_the_student_by_face_and_by_badge(school: Kit) -> None:
    # cleo is on no roster: seen at 08:35 she is not marked, and the answer says why
    before = seen(school, "cleo_park", at(23, 8, 35))
    assert before["attendance"] is None and before["reason"] == "not_in_a_class"
    status, body = api(school, "PATCH", "/students/cleo_park", classes=["math-7b", "art"])
    assert status == 200, body
    assert body["student"]["classes"] == ["math-7b", "art"]
    answer = seen(school, "cleo_park", at(23, 8, 36))
    assert marks_of(answer) == {("math-7b", "08:30", "Present")}
    # her badge marks her in the next class too
    cards = school.services.badges.prepare(["cleo_park"])
    school.services.badges.issue(cards, "cli:test")
    school.clock.set(at(23, 9, 7))
    response = school.client.post(
        "/checkin",
        json={"badge": cards[0].token, "camera": "door-2"},
        headers={"X-API-KEY": API_KEY},
    )
    assert response.status_code == 200, response.get_json()
    # the art period (Late after 09:05) and the maths period she was already marked in
    assert marks_of(response.get_json()) == {
        ("art", "09:00", "Late"),
        ("math-7b", "08:30", "Present"),
    }


def test_a_student_added_on_the_enrol_page_with_a_class_is_marked_in_it(school: Kit) -> None:
    school.clock.set(at(23, 12, 0))
    token = sign_in(school, "olga", "office")
    response = post_form(
        school, "/enrol/students", token, name="dan_roe", display_name="Dan", classes=["math-7b"]
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    give_photos(school, "dan_roe", 72)
    answer = seen(school, "dan_roe", at(23, 12, 50))
    assert marks_of(answer) == {("math-7b", "13:00", "Present")}


def test_the_reason_a_recognised_student_was_not_marked(school: Kit) -> None:
    lunch = seen(school, "ana_lima", at(23, 11, 0))
    assert (lunch["status"], lunch["attendance"], lunch["reason"]) == (
        "success",
        None,
        "no_period_now",
    )
    closed = seen(school, "ana_lima", at(30, 8, 35))  # the training day
    assert closed["reason"] == "closure_day"
    status, _ = api(school, "PATCH", "/students/ana_lima", active=False)
    assert status == 200
    left = seen(school, "ana_lima", at(24, 8, 35))
    assert left["reason"] == "student_left" and left["marks"][0]["reason"] == "student_left"
    marked = seen(school, "ben_ito", at(24, 8, 35))
    assert "reason" not in marked and "reason" not in marked["marks"][0]


# --- a student is expected from the moment they joined ----------------------------------------


def test_a_student_added_mid_morning_is_not_absent_for_the_morning(school: Kit) -> None:
    school.clock.set(at(23, 10, 0))
    status, body = api(school, "POST", "/students", name="dan_roe", classes=["math-7b"])
    assert status == 201, body
    # a join day given by hand counts from the start of that day
    status, body = api(
        school, "POST", "/students", name="eve_ode", classes=["math-7b"], joined="2026-11-23"
    )
    assert status == 201 and body["student"]["joined"] == "2026-11-23"
    school.clock.set(at(23, 15, 0))
    register = register_of(school, "2026-11-23")
    assert ("math-7b", "08:30", "dan_roe") not in register  # began before he was added
    assert register[("math-7b", "13:00", "dan_roe")] == "Absent"
    assert register[("math-7b", "08:30", "eve_ode")] == "Absent"
    assert register[("math-7b", "08:30", "ana_lima")] == "Absent"  # the class was there
    stats = stats_of(school, "?from=2026-11-23&to=2026-11-23")
    assert (stats["dan_roe"]["total_days"], stats["dan_roe"]["absent"]) == (1, 1)
    assert (stats["eve_ode"]["total_days"], stats["eve_ode"]["absent"]) == (2, 2)
    # the export agrees with the register
    export = school.get("/export.csv?from=2026-11-23&to=2026-11-23").get_data(as_text=True)
    dan_rows = [line for line in export.splitlines() if "dan_roe" in line]
    assert len(dan_rows) == 1 and "13:00" in dan_rows[0]
    # the office may still record the morning by hand (he was there before being added)
    status, body = api(
        school,
        "POST",
        "/attendance/corrections",
        name="dan_roe",
        date="2026-11-23",
        **{"class": "math-7b"},
        period="08:30",
        status="Present",
        reason="added late on the first day",
    )
    assert status == 201, body
    assert register_of(school, "2026-11-23")[("math-7b", "08:30", "dan_roe")] == "Present"


def test_without_a_timetable_a_student_added_in_the_evening_is_expected_the_next_day(
    tmp_path: Path,
) -> None:
    kit = make_kit(tmp_path, now=at(23, 8, 0))  # the default class: Late after 09:15
    try:
        kit.clock.set(at(23, 22, 45))
        status, body = api(kit, "POST", "/students", name="dan_roe")
        assert status == 201, body
        kit.clock.set(at(25, 8, 0))
        stats = stats_of(kit, "?from=2026-11-23&to=2026-11-24")
        # Monday's day began at class start, before he was added: only Tuesday counts
        assert (stats["dan_roe"]["total_days"], stats["dan_roe"]["absent"]) == (1, 1)
        # the others, enrolled before class start on Monday, are expected both days
        assert stats["ana_lima"]["total_days"] == 2
    finally:
        kit.services.close()


# --- a timetable adopted during the day ------------------------------------------------------


def test_a_timetable_adopted_during_the_day_governs_the_periods_after_it(tmp_path: Path) -> None:
    first = make_kit(tmp_path, now=at(23, 7, 0), timetable=timetable_file(tmp_path))
    assert first.services.attendance.adopt_timetable() is True
    first.services.close()
    # At 11:00 the school adds a maths period at 10:00 (already over) and one at 15:00.
    extra = (
        '  [[class.period]]\n  days = ["mon", "tue"]\n  start = "10:00"\n  end = "10:50"\n'
        '  [[class.period]]\n  days = ["mon", "tue"]\n  start = "15:00"\n  end = "15:50"\n'
    )
    changed = TIMETABLE.replace('  end = "14:00"\n', '  end = "14:00"\n' + extra, 1)
    folder = tmp_path / "later"
    folder.mkdir()
    later = make_kit(
        tmp_path, now=at(23, 11, 0), timetable=timetable_file(folder, changed), enrol=False
    )
    try:
        assert later.services.attendance.adopt_timetable() is True
        later.clock.set(at(23, 18, 0))
        periods = {
            period for cls, period, _ in register_of(later, "2026-11-23") if cls == "math-7b"
        }
        assert periods == {"08:30", "13:00", "15:00"}  # not 10:00: it began before the change
        assert register_of(later, "2026-11-24").keys() >= {("math-7b", "10:00", "ana_lima")}
        history = later.services.store.timetable_history()
        assert [row.effective_at for row in history] == [
            datetime(2026, 11, 23, 6, 0),  # UTC
            datetime(2026, 11, 23, 10, 0),
        ]
    finally:
        later.services.close()


def test_the_admin_page_lists_two_timetables_of_one_day_in_order(tmp_path: Path) -> None:
    first = make_kit(tmp_path, now=at(23, 7, 0), timetable=timetable_file(tmp_path))
    first.services.attendance.adopt_timetable()
    first.services.close()
    folder = tmp_path / "later"
    folder.mkdir()
    changed = TIMETABLE.replace('start = "13:00"', 'start = "13:30"')
    later = make_kit(
        tmp_path, now=at(23, 11, 5), timetable=timetable_file(folder, changed), enrol=False
    )
    try:
        later.services.attendance.adopt_timetable()
        sign_in(later, "ada", "admin")
        html = later.client.get("/admin").get_data(as_text=True)
        rows = html.split("Timetables in force", 1)[1].split("</table>", 1)[0]
        assert "<td>2026-11-23 11:05</td><td>now</td>" in rows
        assert "<td>2026-11-23 07:00</td><td>2026-11-23 11:05</td>" in rows
    finally:
        later.services.close()


# --- bulk corrections ------------------------------------------------------------------------


def test_a_student_is_excused_for_days_in_one_step_and_marks_are_kept(school: Kit) -> None:
    seen(school, "ben_ito", at(23, 9, 30))  # ben came late to art on Monday, missed maths
    school.clock.set(at(23, 15, 0))
    status, body = api(
        school,
        "POST",
        "/attendance/corrections/days",
        name="ben_ito",
        **{"from": "2026-11-23", "to": "2026-11-24"},
        reason="dentist, then flu",
    )
    assert status == 201, body
    changed = {(e["date"], e["class"], e["period"]) for e in body["entries"]}
    assert changed == {
        ("2026-11-23", "math-7b", "08:30"),
        ("2026-11-23", "math-7b", "13:00"),
        ("2026-11-24", "math-7b", "08:30"),  # a day ahead: a planned absence
        ("2026-11-24", "math-7b", "13:00"),
    }
    assert body["kept"] == 1  # art, where he was seen
    monday = register_of(school, "2026-11-23")
    assert monday[("art", "09:00", "ben_ito")] == "Late"
    assert monday[("math-7b", "08:30", "ben_ito")] == "Excused"
    again = api(
        school,
        "POST",
        "/attendance/corrections/days",
        name="ben_ito",
        **{"from": "2026-11-23"},
        reason="dentist, then flu",
    )
    assert again[0] == 200 and again[1]["changed"] == 0
    audit = school.services.audit.entries(subject="ben_ito")
    assert [a.detail for a in audit if a.action == "correct"] == [
        "Excused: 4 class periods, 2026-11-23 to 2026-11-24"
    ]
    for bad, why in (
        ({"to": "2026-11-01"}, "to is before from"),
        ({"to": "2027-06-01"}, "at most 92 days"),
        ({"reason": ""}, "needs a reason"),
        ({"name": "nobody"}, "unknown student"),
    ):
        fields = {"name": "ben_ito", "from": "2026-11-23", "reason": "x", **bad}
        status, body = api(school, "POST", "/attendance/corrections/days", **fields)
        assert status == 400 and why in body["error"], (bad, body)


def test_a_class_period_is_marked_present_in_one_step(school: Kit) -> None:
    seen(school, "ana_lima", at(23, 8, 41))  # Late
    school.clock.set(at(23, 10, 0))
    status, body = api(
        school,
        "POST",
        "/attendance/corrections/period",
        **{"class": "math-7b"},
        date="2026-11-23",
        period="08:30",
        reason="camera down",
    )
    assert status == 201, body
    assert [(e["name"], e["status"]) for e in body["entries"]] == [("ben_ito", "Present")]
    monday = register_of(school, "2026-11-23")
    assert monday[("math-7b", "08:30", "ana_lima")] == "Late"  # her mark is kept
    assert monday[("math-7b", "08:30", "ben_ito")] == "Present"
    status, body = api(
        school, "POST", "/attendance/corrections/period", **{"class": "math-7b"}, date="2026-11-23"
    )
    assert status == 400 and "period is required" in body["error"]


def test_the_dashboard_makes_bulk_corrections(school: Kit) -> None:
    school.clock.set(at(23, 15, 0))
    token = sign_in(school, "olga", "office")
    response = post_form(
        school, "/student/cleo_park/excuse", token, **{"from": "2026-11-24"}, reason="trip"
    )
    assert response.status_code == 303
    page = school.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "cleo_park is expected in no class period from 2026-11-24" in page  # in no class
    response = post_form(
        school, "/student/ben_ito/excuse", token, **{"from": "2026-11-24"}, reason="trip"
    )
    page = school.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "ben_ito: 2 class periods excused." in page
    html = school.client.get("/?date=2026-11-23").get_data(as_text=True)
    assert "Mark everyone not seen" in html and 'action="/today/period"' in html
    response = post_form(
        school,
        "/today/period",
        token,
        **{"class": "art"},
        date="2026-11-23",
        period="09:00",
        status="Present",
        reason="lesson outside",
    )
    assert response.status_code == 303
    assert register_of(school, "2026-11-23")[("art", "09:00", "ben_ito")] == "Present"


def test_the_commands_make_bulk_corrections(
    school: Kit, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    command = command_on(school, cli, monkeypatch)
    school.clock.set(at(23, 15, 0))
    result = command("excuse", "ben_ito", "--from", "2026-11-23", "--reason", "dentist")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "2026-11-23 math-7b 08:30  ben_ito: Excused",
        "2026-11-23 art 09:00  ben_ito: Excused",
        "2026-11-23 math-7b 13:00  ben_ito: Excused",
        "3 class periods corrected, 0 left as they were.",
    ]
    again = command("excuse", "ben_ito", "--from", "2026-11-23", "--reason", "dentist")
    assert again.stdout.splitlines() == [
        "Nothing to excuse for ben_ito (3 left as they were); nothing recorded."
    ]
    result = command("mark-period", "math-7b", "--date", "2026-11-23", "--period", "08:30")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "1 class periods corrected, 1 left as they were."
    bad = command(
        "excuse", "ben_ito", "--from", "2026-11-23", "--to", "2026-11-20", "--reason", "x"
    )
    assert bad.exit_code == 1 and bad.stderr == "Error: --to is before --from\n"
    audit = school.services.audit.entries(subject="ben_ito")
    assert audit[0].actor == "cli:teacher1" and audit[0].action == "correct"


def test_a_join_day_set_by_hand_makes_the_morning_count(school: Kit) -> None:
    school.clock.set(at(23, 10, 0))
    status, _ = api(school, "POST", "/students", name="dan_roe", classes=["math-7b"])
    assert status == 201
    school.clock.set(at(24, 9, 0))
    assert stats_of(school, "?from=2026-11-23&to=2026-11-23")["dan_roe"]["total_days"] == 1
    status, body = api(school, "PATCH", "/students/dan_roe", joined="2026-11-23")
    assert status == 200 and body["student"]["joined"] == "2026-11-23"
    assert register_of(school, "2026-11-23")[("math-7b", "08:30", "dan_roe")] == "Absent"
    assert stats_of(school, "?from=2026-11-23&to=2026-11-23")["dan_roe"]["total_days"] == 2
    status, body = api(school, "PATCH", "/students/dan_roe", joined="23/11/2026")
    assert status == 400 and "joined must be a date" in body["error"]


# --- the first day, walked through as the docs tell it ---------------------------------------


def test_the_first_day_walked_through_as_the_docs_say(tmp_path: Path) -> None:
    """Consent first, then students by the API and the dashboard with classes, photos,
    scans at the door, Today, a correction, an excused day and the export: every answer as
    docs/api.md and docs/dashboard.md say."""
    kit = make_kit(
        tmp_path, now=at(23, 7, 30), timetable=timetable_file(tmp_path), require_consent=True
    )
    try:
        kit.services.attendance.adopt_timetable()
        # the dataset's students await consent: recognised by nobody yet
        assert kit.recognize(kit.probe("ana_lima")).get_json()["status"] == "unknown"
        for name in ("ana_lima", "ben_ito"):
            status, body = api(
                kit,
                "PUT",
                f"/students/{name}/consent",
                state="given",
                by="parents",
                document="form 1",
            )
            assert status == 200 and body["student"]["consent"] == "given", body
        status, body = api(kit, "PUT", "/students/cleo_park/consent", state="refused", by="dad")
        assert status == 200 and body["student"]["consent"] == "refused"
        # a new student by the API, another by the dashboard, each in a class
        status, body = api(kit, "POST", "/students", name="dan_roe", classes=["math-7b"])
        assert status == 201 and body["student"]["classes"] == ["math-7b"], body
        token = sign_in(kit, "olga", "office")
        response = post_form(kit, "/enrol/students", token, name="eve_ode", classes=["art"])
        assert response.status_code == 303
        for name, seed in (("dan_roe", 81), ("eve_ode", 82)):
            status, _ = api(
                kit,
                "PUT",
                f"/students/{name}/consent",
                state="given",
                by="parents",
                document="form 2",
            )
            assert status == 200
            give_photos(kit, name, seed)
        # the door, in the morning's periods
        assert marks_of(seen(kit, "ana_lima", at(23, 8, 32))) == {("math-7b", "08:30", "Present")}
        assert marks_of(seen(kit, "dan_roe", at(23, 8, 45))) == {("math-7b", "08:30", "Late")}
        assert marks_of(seen(kit, "eve_ode", at(23, 9, 2))) == {("art", "09:00", "Present")}
        refused = seen(kit, "cleo_park", at(23, 9, 3))
        assert refused["status"] == "unknown"  # no photo of hers is read: she refused
        # Today after the morning: ben missed maths (Absent), art's ben is not yet seen
        kit.clock.set(at(23, 9, 30))
        register = register_of(kit, "2026-11-23")
        assert register[("math-7b", "08:30", "ben_ito")] == "Absent"
        assert register[("math-7b", "08:30", "dan_roe")] == "Late"
        assert register[("art", "09:00", "ben_ito")] is None
        sign_in(kit, "olga", "office")  # an hour later: signed in again
        today = kit.client.get("/").get_data(as_text=True)
        assert "eve_ode" in today and "dan_roe" in today
        # a correction (the teacher saw dan on time) and ben excused for the rest of the day
        status, body = api(
            kit,
            "POST",
            "/attendance/corrections",
            name="dan_roe",
            date="2026-11-23",
            period="08:30",
            status="Present",
            reason="was in class",
        )
        assert status == 201 and body["student"]["status"] == "Present", body
        status, body = api(
            kit,
            "POST",
            "/attendance/corrections/days",
            name="ben_ito",
            **{"from": "2026-11-23"},
            reason="dentist",
        )
        assert status == 201 and body["changed"] == 3, body
        # the export says the same
        export = kit.get("/export.csv?from=2026-11-23&to=2026-11-23").get_data(as_text=True)
        rows = {
            tuple(line.split(",")[1:4]): line.split(",")[6]
            for line in export.lstrip("\ufeff").splitlines()[1:]
        }
        assert rows[("math-7b", "08:30", "dan_roe")] == "Present"
        assert rows[("math-7b", "08:30", "ben_ito")] == "Excused"
        assert rows[("art", "09:00", "eve_ode")] == "Present"
        assert not any(name == "cleo_park" for _cls, _p, name in rows)  # in no class
    finally:
        kit.services.close()


def test_a_large_schools_board_shows_counts_and_a_link_per_class(
    school: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smart_attendance.web.dashboard import today

    sign_in(school, "olga", "office")
    full = school.client.get("/?date=2026-11-23").get_data(as_text=True)
    assert 'class="roster"' in full and "Open the board of" not in full
    monkeypatch.setattr(today, "BOARD_ROWS", 3)  # this school's day has 5 rows
    summary = school.client.get("/?date=2026-11-23").get_data(as_text=True)
    assert 'class="roster"' not in summary
    assert 'href="/?date=2026-11-23&amp;class=math-7b">Open the board of math-7b' in summary
    one = school.client.get("/?date=2026-11-23&class=math-7b").get_data(as_text=True)
    assert 'class="roster"' in one  # a class's own board lists its students
