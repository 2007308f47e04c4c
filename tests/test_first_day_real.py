"""A school's first day through a real server process, on real faces and the real clock (marker
``real``): a student the office adds on the dashboard's Enrol page with a class, in the
middle of the morning, is marked at the door in that class's open period, and is not Absent
for the period that ended before they were added (nor are the students of the dataset, first
registered when the server started at midday), while a student added with the day as their
join day is.

The server runs in a fixed-offset zone where it is midday now, so the periods of the test's
timetable (09:00-10:00, ended; 11:00-14:00, open) fall inside today whatever the hour of the
run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from conftest import API_KEY, ServerProcess, build_dataset, face_bytes, require_faces, run_cli

pytestmark = pytest.mark.real

PASSWORD = "a long enough password"
NEWCOMER = "bob_hope"
NEWCOMER_PHOTOS = [f"lfw/{NEWCOMER}/{i}.jpg" for i in (1, 2, 3, 4)]
NEWCOMER_PROBE = f"lfw/{NEWCOMER}/6.jpg"
TIMETABLE = """
[[class]]
name = "maths"
students = ["colin_powell"]
  [[class.period]]
  days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
  start = "09:00"
  end = "10:00"
  [[class.period]]
  days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
  start = "11:00"
  end = "14:00"
  late_after_minutes = 180
"""


def midday_zone(now: datetime) -> str:
    """A fixed-offset zone in which ``now`` (UTC) is between 12:00 and 12:59."""
    offset = 12 - now.hour  # hours east of UTC
    if offset > 14:
        offset -= 24
    if offset < -12:
        offset += 24
    # POSIX-style names: Etc/GMT-3 is three hours east of UTC
    return "Etc/GMT" + ("" if offset == 0 else f"{-offset:+d}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    require_faces()
    base = tmp_path_factory.mktemp("first-day")
    timetable = base / "timetable.toml"
    timetable.write_text(TIMETABLE, encoding="utf-8")
    students = {"colin_powell": [f"lfw/colin_powell/{i}.jpg" for i in (1, 2, 3, 4)]}
    env = {
        "ATTENDANCE_TIMETABLE": str(timetable),
        "ATTENDANCE_TIMEZONE": midday_zone(datetime.now(UTC)),
    }
    proc = ServerProcess(build_dataset(base / "dataset", students), base / "data", env=env)
    proc.start()
    yield proc
    proc.stop()


def signed_in(server: ServerProcess) -> tuple[requests.Session, str]:
    """An office account made by ``attendance users add``, signed in; the CSRF token."""
    env = {
        "ATTENDANCE_DATA_DIR": str(server.data_dir),
        "ATTENDANCE_DATASET_DIR": str(server.dataset),
        "ATTENDANCE_TIMETABLE": server.env["ATTENDANCE_TIMETABLE"],
        "ATTENDANCE_TIMEZONE": server.env["ATTENDANCE_TIMEZONE"],
    }
    args = ["users", "add", "olga", "--role", "office", "--password-stdin"]
    done = run_cli(*args, env=env, cwd=server.data_dir, input=PASSWORD + "\n", timeout_s=120)
    assert done.returncode == 0, done.stderr
    web = requests.Session()
    token = _token(web.get(server.url + "/login", timeout=30).text)
    answer = web.post(
        server.url + "/login",
        data={"username": "olga", "password": PASSWORD, "csrf_token": token},
        timeout=30,
    )
    assert answer.status_code == 200 and "Sign out" in answer.text, answer.text[:300]
    return web, _token(web.get(server.url + "/enrol", timeout=30).text)


def _token(html: str) -> str:
    found = re.search(
        r'name="csrf-token" content="([^"]+)"|name="csrf_token" value="([^"]+)"', html
    )
    assert found, "no CSRF token on the page"
    return found[1] or found[2]


def test_a_student_added_on_the_dashboard_mid_morning_is_marked_and_not_absent(
    server: ServerProcess,
) -> None:
    web, token = signed_in(server)
    added = web.post(
        server.url + "/enrol/students",
        data={"csrf_token": token, "name": NEWCOMER, "display_name": "Bob", "classes": "maths"},
        timeout=30,
    )
    assert added.status_code == 200 and "Bob added" in added.text, added.text[:300]
    photos = [("image", (Path(p).name, face_bytes(p), "image/jpeg")) for p in NEWCOMER_PHOTOS]
    enrolled = requests.post(
        f"{server.url}/students/{NEWCOMER}/photos",
        files=photos,
        headers={"X-API-KEY": API_KEY},
        timeout=120,
    )
    assert enrolled.status_code == 201 and enrolled.json()["enrolled"] >= 3, enrolled.text

    # At the door, in the open period: marked in the class the office gave him.
    answer = server.recognize(face_bytes(NEWCOMER_PROBE), camera="door-1").json()
    assert answer["status"] == "success" and answer["name"] == NEWCOMER, answer
    assert "reason" not in answer, answer
    assert [(m["class"], m["period"], m["attendance"]) for m in answer["marks"]] == [
        ("maths", "11:00", "Present")
    ]

    # A student whose join day is given by hand is expected from the start of the day.
    today = server.get("/attendance").json()["date"]
    known = requests.post(
        server.url + "/students",
        json={"name": "al_gore", "classes": ["maths"], "joined": today},
        headers={"X-API-KEY": API_KEY},
        timeout=30,
    )
    assert known.status_code == 201, known.text

    # The register: the periods began before the newcomer was added and before the server
    # first registered colin_powell: neither is expected in them (the newcomer is listed in
    # the open one because he was marked there); the join day given by hand is.
    day = server.get("/attendance?class=maths").json()
    periods = {
        p["start"]: {s["name"]: s["status"] for s in p["students"]}
        for p in day["classes"][0]["periods"]
    }
    assert periods["09:00"] == {"al_gore": "Absent"}
    assert periods["11:00"] == {"al_gore": None, NEWCOMER: "Present"}
    stats = {s["name"]: s for s in server.get("/statistics").json()["students"]}
    assert (stats[NEWCOMER]["total_days"], stats[NEWCOMER]["absent"]) == (1, 0)
    assert (stats["colin_powell"]["total_days"], stats["colin_powell"]["absent"]) == (0, 0)
    assert (stats["al_gore"]["total_days"], stats["al_gore"]["absent"]) == (1, 1)
