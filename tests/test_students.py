"""The students registry through the API: list, add, change, rename, photos enrolled at once,
and enrolments of another process seen by a running server without a restart.

In process (``make_kit``): the real services and app on a real SQLite file, scripted faces; the
tests whose writes differ between engines also on a real PostgreSQL server (``kit_on_db``). An
uploaded photo must be a real image (its header is checked), so the tests register small real
PNGs with the scripted analyzer, with the faces each test chooses.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from PIL import Image
from werkzeug.test import TestResponse

from conftest import API_KEY, MONDAY_0855, Kit, io_bytes, make_kit, scripted_folder
from dashboard_kit import post_form, sign_in
from scripted import ScriptedAnalyzer, ScriptedFace, identity, near
from smart_attendance import app as app_module
from smart_attendance.app import build_services
from smart_attendance.models import Box
from smart_attendance.people.names import name_key
from smart_attendance.people.service import GALLERY_VERSION
from smart_attendance.people.watcher import GalleryWatcher

MONDAY = MONDAY_0855.date()
HEADERS = {"X-API-KEY": API_KEY}

TIMETABLE = """
[[class]]
name = "math-7b"
students = ["ana_lima", "ben_ito"]
  [[class.period]]
  days = ["mon", "tue", "wed", "thu", "fri"]
  start = "09:00"
  end = "10:00"

[[class]]
name = "art"
students = ["cleo_park"]
  [[class.period]]
  days = ["mon"]
  start = "08:45"
  end = "09:45"
"""


@pytest.fixture
def kit_on_db(tmp_path: Path, db_url: str) -> Iterator[Kit]:
    """The kit on SQLite (its own file) and on PostgreSQL (``db_url``): for the tests whose
    writes differ between the engines (unique conflicts, renames across tables, counters)."""
    made = make_kit(tmp_path, database_url="" if db_url.startswith("sqlite") else db_url)
    yield made
    made.services.close()


def png(seed: int) -> bytes:
    """A small real image, different for every seed."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (seed % 256, (seed * 7) % 256, (seed * 13) % 256)).save(
        out, format="PNG"
    )
    return out.getvalue()


def post(kit: Kit, path: str, body: Any) -> TestResponse:
    return kit.client.post(path, json=body, headers=HEADERS)


def patch(kit: Kit, name: str, body: Any) -> TestResponse:
    return kit.client.patch(f"/students/{name}", json=body, headers=HEADERS)


def upload(kit: Kit, name: str, *photos: tuple[str, bytes]) -> TestResponse:
    data = {"image": [(io_bytes(content), file) for file, content in photos]}
    return kit.client.post(f"/students/{name}/photos", data=data, headers=HEADERS)


def listing(kit: Kit) -> dict[str, dict[str, Any]]:
    response = kit.get("/students")
    assert response.status_code == 200
    return {s["name"]: s for s in response.get_json()["students"]}


def test_every_student_of_the_registry_is_listed(kit: Kit) -> None:
    assert kit.get("/students", key=None).status_code == 401
    students = listing(kit)
    assert sorted(students) == ["ana_lima", "ben_ito", "cleo_park"]
    assert students["ana_lima"] == {
        "name": "ana_lima",
        "display_name": "",
        "external_id": None,
        "classes": ["default"],
        "photos": 2,
        "active": True,
        "joined": "2026-11-23",
        "consent": "none",
    }


def test_a_student_is_added_with_a_dataset_folder(kit_on_db: Kit) -> None:
    kit = kit_on_db
    kit.clock.advance(days=1)
    response = post(
        kit,
        "/students",
        {"name": "dan_roe", "display_name": " Dan Roe ", "external_id": "S-104", "classes": []},
    )
    assert response.status_code == 201
    assert response.get_json()["student"] == {
        "name": "dan_roe",
        "display_name": "Dan Roe",
        "external_id": "S-104",
        "classes": ["default"],
        "photos": 0,
        "active": True,
        "joined": "2026-11-24",  # today, by the injected clock
        "consent": "none",
    }
    assert (kit.settings.dataset_dir / "dan_roe").is_dir()
    assert listing(kit)["dan_roe"]["joined"] == "2026-11-24"
    row = kit.services.store.student("dan_roe")
    assert row is not None and row.external_id == "S-104"

    again = post(kit, "/students", {"name": "dan_roe"})
    assert again.status_code == 409
    assert again.get_json()["status"] == "conflict"
    assert post(kit, "/students", {"name": "ana_lima"}).status_code == 409


@pytest.mark.parametrize(
    "name", ["../evil", "a/b", "..", ".hidden", "bad\x07name", "", " padded", "x" * 101, 7]
)
def test_a_bad_name_is_refused(kit: Kit, name: Any) -> None:
    response = post(kit, "/students", {"name": name})
    assert response.status_code == 400
    assert response.get_json()["status"] == "bad_request"
    assert sorted(p.name for p in kit.settings.dataset_dir.parent.iterdir()) == ["data", "dataset"]
    assert sorted(p.name for p in kit.settings.dataset_dir.iterdir()) == [
        "ana_lima",
        "ben_ito",
        "cleo_park",
    ]
    assert len(kit.services.store.students()) == 3


@pytest.mark.parametrize(
    "body",
    [
        {"name": "dan_roe", "classes": ["chemistry"]},  # not a class of the timetable
        {"name": "dan_roe", "classes": "default"},
        {"name": "dan_roe", "display_name": 5},
        {"name": "dan_roe", "display_name": "x" * 256},
        {"name": "dan_roe", "external_id": "a\nb"},
        {"name": "dan_roe", "nickname": "D"},
        {"display_name": "Dan"},
        ["dan_roe"],
    ],
)
def test_bad_fields_are_refused(kit: Kit, body: Any) -> None:
    response = post(kit, "/students", body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["status"] == "bad_request"
    assert kit.services.store.student("dan_roe") is None
    assert not (kit.settings.dataset_dir / "dan_roe").exists()


def test_classes_are_those_of_the_timetable(tmp_path: Path) -> None:
    timetable = tmp_path / "timetable.toml"
    timetable.write_text(TIMETABLE, encoding="utf-8")
    kit = make_kit(tmp_path, timetable=timetable)
    try:
        assert (
            post(kit, "/students", {"name": "dan_roe", "classes": ["default"]}).status_code == 400
        )
        response = post(kit, "/students", {"name": "dan_roe", "classes": ["art", "art"]})
        assert response.status_code == 201
        students = listing(kit)
        assert students["dan_roe"]["classes"] == ["art"]
        assert students["ana_lima"]["classes"] == ["math-7b"]
        changed = patch(kit, "ana_lima", {"classes": ["art"]})
        assert changed.get_json()["student"]["classes"] == ["math-7b", "art"]
        assert patch(kit, "ana_lima", {"classes": ["gym"]}).status_code == 400
    finally:
        kit.services.close()


def test_photos_are_enrolled_or_refused_and_recognised_at_once(kit: Kit) -> None:
    assert post(kit, "/students", {"name": "dan_roe"}).status_code == 201
    dan = identity(50)
    kit.people["dan_roe"] = dan
    assert kit.recognize(kit.probe("dan_roe")).get_json()["status"] == "unknown"
    version = kit.services.store.meta_number(GALLERY_VERSION)

    good = kit.analyzer.add(png(1), ScriptedFace(near(dan, 0.1, 1)))
    nobody = png(2)  # a real image nobody scripted: no face
    two = kit.analyzer.add(
        png(3),
        ScriptedFace(near(dan, 0.1, 2), Box(40, 100, 200, 260)),
        ScriptedFace(identity(51), Box(400, 100, 560, 260)),
    )
    tiny = kit.analyzer.add(png(4), ScriptedFace(near(dan, 0.1, 3), Box(10, 10, 50, 50)))
    response = upload(
        kit,
        "dan_roe",
        ("good.png", good),
        ("wall.png", nobody),
        ("party.png", two),
        ("far.png", tiny),
        ("notes.txt", b"not an image at all"),
    )
    assert response.status_code == 201
    body = response.get_json()
    assert (body["enrolled"], body["refused"]) == (1, 4)
    results = body["photos"]
    assert [(r["file"], r["status"], r.get("reason")) for r in results] == [
        ("good.png", "enrolled", None),
        ("wall.png", "refused", "no_face"),
        ("party.png", "refused", "many_faces"),
        ("far.png", "refused", "too_small"),
        ("notes.txt", "refused", "unreadable"),
    ]
    assert results[1]["detail"] == "no face found"
    assert results[2]["detail"] == "2 faces found, need exactly one"
    assert "too small" in results[3]["detail"]
    assert "not an image" in results[4]["detail"]

    # Only the enrolled photo is kept, under a name from its content.
    kept = sorted(p.name for p in (kit.settings.dataset_dir / "dan_roe").iterdir())
    assert len(kept) == 1 and kept[0].startswith("upload-") and kept[0].endswith(".png")
    assert results[0]["path"] == f"dan_roe/{kept[0]}"
    assert listing(kit)["dan_roe"]["photos"] == 1
    assert kit.services.store.meta_number(GALLERY_VERSION) == version + 1

    # Recognised by this server right away: no restart, no enrol command.
    scan = kit.recognize(kit.probe("dan_roe")).get_json()
    assert (scan["status"], scan["name"], scan["attendance"]) == ("success", "dan_roe", "Present")

    # The same photo again: still enrolled, nothing new written, no new version.
    again = upload(kit, "dan_roe", ("copy.png", good)).get_json()
    assert again["photos"][0]["path"] == results[0]["path"]
    assert len(list((kit.settings.dataset_dir / "dan_roe").iterdir())) == 1
    assert kit.services.store.meta_number(GALLERY_VERSION) == version + 1


def test_photos_of_an_unknown_student_or_without_images_are_refused(kit: Kit) -> None:
    response = upload(kit, "nobody", ("a.png", png(1)))
    assert response.status_code == 404
    assert response.get_json()["status"] == "not_found"
    assert not (kit.settings.dataset_dir / "nobody").exists()
    empty = kit.client.post("/students/ana_lima/photos", data={}, headers=HEADERS)
    assert empty.status_code == 400
    assert empty.get_json()["status"] == "bad_request"
    denied = kit.client.post(
        "/students/ana_lima/photos", data={"image": [(io_bytes(png(1)), "a.png")]}
    )
    assert denied.status_code == 401


def test_display_name_external_id_and_active_are_changed(kit: Kit) -> None:
    response = patch(kit, "ana_lima", {"display_name": "Ana Lima", "external_id": "S-001"})
    assert response.status_code == 200
    student = response.get_json()["student"]
    assert (student["display_name"], student["external_id"]) == ("Ana Lima", "S-001")
    assert student["joined"] == "2026-11-23"
    cleared = patch(kit, "ana_lima", {"external_id": None}).get_json()["student"]
    assert (cleared["display_name"], cleared["external_id"]) == ("Ana Lima", None)

    assert patch(kit, "ana_lima", {"active": "no"}).status_code == 400
    assert patch(kit, "nobody", {"active": False}).status_code == 404
    assert patch(kit, "nobody", {"active": False}).get_json()["status"] == "not_found"
    assert kit.client.patch("/students/ana_lima", data="x", headers=HEADERS).status_code == 400

    # A student who left is still recognised, but seen, not marked.
    assert patch(kit, "ana_lima", {"active": False}).get_json()["student"]["active"] is False
    assert listing(kit)["ana_lima"]["active"] is False
    kit.recognize(kit.probe("ana_lima"))
    assert kit.services.store.marks_on(MONDAY) == []
    assert [s[0] for s in kit.services.store.sightings_on(MONDAY)] == ["ana_lima"]

    assert patch(kit, "ana_lima", {"active": True}).status_code == 200
    scan = kit.recognize(kit.probe("ana_lima", seed=1)).get_json()
    assert (scan["name"], scan["attendance"], scan["new"]) == ("ana_lima", "Present", True)


def test_a_rename_keeps_the_history_and_the_photos(kit_on_db: Kit) -> None:
    kit = kit_on_db
    first = kit.recognize(kit.probe("ana_lima")).get_json()
    assert first["new"] is True
    response = patch(kit, "ana_lima", {"name": "ana_silva", "display_name": "Ana Silva"})
    assert response.status_code == 200
    assert response.get_json()["student"]["photos"] == 2

    dataset = kit.settings.dataset_dir
    assert not (dataset / "ana_lima").exists()
    assert sorted(p.name for p in (dataset / "ana_silva").iterdir()) == ["1.jpg", "2.jpg"]
    assert [m.name for m in kit.services.store.marks_on(MONDAY)] == ["ana_silva"]
    students = listing(kit)
    assert "ana_lima" not in students
    assert students["ana_silva"]["joined"] == "2026-11-23"

    # Recognised under the new name at once, with the mark made under the old one.
    scan = kit.recognize(kit.probe("ana_lima", seed=2)).get_json()
    assert (scan["name"], scan["new"], scan["time"]) == ("ana_silva", False, first["time"])
    stats = {s["name"]: s for s in kit.get("/statistics").get_json()["students"]}
    assert stats["ana_silva"]["days_present"] == 1
    assert "ana_lima" not in stats
    assert kit.services.enrolment.enrolled() == ["ana_silva", "ben_ito", "cleo_park"]


def test_a_rename_to_a_taken_or_bad_name_is_refused(kit_on_db: Kit) -> None:
    kit = kit_on_db
    taken = patch(kit, "ben_ito", {"name": "cleo_park"})
    assert taken.status_code == 409
    assert taken.get_json()["status"] == "conflict"
    (kit.settings.dataset_dir / "stray").mkdir()  # a folder not enrolled yet
    assert patch(kit, "ben_ito", {"name": "stray"}).status_code == 409
    assert patch(kit, "ben_ito", {"name": "../ben"}).status_code == 400
    assert sorted(p.name for p in (kit.settings.dataset_dir / "ben_ito").iterdir()) == [
        "1.jpg",
        "2.jpg",
    ]
    assert kit.services.store.student("ben_ito") is not None
    assert kit.recognize(kit.probe("ben_ito")).get_json()["name"] == "ben_ito"


def test_an_enrolment_by_another_process_is_seen_after_refresh(kit_on_db: Kit) -> None:
    kit = kit_on_db
    other = build_services(kit.settings, clock=kit.clock, analyzer=kit.analyzer)
    try:
        assert kit.services.enrolment.refresh() is False  # nothing changed anywhere
        scripted_folder(kit, "eve_sun", 60)
        report = other.enrolment.enroll()  # `attendance enroll`, in another process
        assert report.encoded == 2
        assert kit.recognize(kit.probe("eve_sun")).get_json()["status"] == "unknown"

        assert kit.services.enrolment.refresh() is True
        scan = kit.recognize(kit.probe("eve_sun", seed=1)).get_json()
        assert (scan["name"], scan["attendance"]) == ("eve_sun", "Present")
        assert listing(kit)["eve_sun"]["photos"] == 2
        # Seen once: neither server enrols again until something else changes.
        assert kit.services.enrolment.refresh() is False
        assert other.enrolment.refresh() is False
        version = kit.services.store.meta_number(GALLERY_VERSION)

        # And the other way round: a photo sent to this server reaches the other one.
        assert post(kit, "/students", {"name": "fay_wu"}).status_code == 201
        photo = kit.analyzer.add(png(9), ScriptedFace(identity(70)))
        assert upload(kit, "fay_wu", ("fay.png", photo)).get_json()["enrolled"] == 1
        assert kit.services.store.meta_number(GALLERY_VERSION) == version + 1
        assert "fay_wu" not in other.enrolment.enrolled()
        assert other.enrolment.refresh() is True
        assert "fay_wu" in other.enrolment.enrolled()
    finally:
        other.close()


def test_the_watcher_refreshes_a_running_server_by_itself(kit: Kit) -> None:
    other = build_services(kit.settings, clock=kit.clock, analyzer=kit.analyzer)
    watcher = GalleryWatcher(kit.services.enrolment, interval=0.02)
    watcher.start()
    try:
        scripted_folder(kit, "eve_sun", 60)
        other.enrolment.enroll()
        deadline = time.monotonic() + 10
        while "eve_sun" not in kit.services.enrolment.enrolled() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "eve_sun" in kit.services.enrolment.enrolled()
    finally:
        watcher.stop()
        other.close()
    assert watcher._thread is not None and not watcher._thread.is_alive()


def test_the_gallery_version_is_a_shared_counter(kit_on_db: Kit) -> None:
    kit = kit_on_db
    store = kit.services.store
    assert store.meta_value("nothing") is None
    assert store.meta_number("nothing") == 0
    assert [store.bump_meta("counter") for _ in range(3)] == [1, 2, 3]
    store.set_meta("counter", "41")
    assert store.bump_meta("counter") == 42
    assert store.meta_value("counter") == "42"


# --- names that look the same ----------------------------------------------------------------


def test_a_name_like_another_students_is_added_with_a_warning(kit: Kit) -> None:
    assert name_key("Zoë  Martín") == name_key("zoe_martin") == name_key("ZOE-MARTIN")
    first = post(kit, "/students", {"name": "Zoë Martín"})
    assert (first.status_code, first.get_json()["warnings"]) == (201, [])
    again = post(kit, "/students", {"name": "zoe martin", "display_name": "Zoe"})
    assert again.status_code == 201  # two students may share a name: added all the same
    assert again.get_json()["warnings"] == [
        "'zoe martin' looks like 'Zoë Martín' (the same name but for case, accents, spaces or "
        "underscores): check that it is not the same student added twice"
    ]
    # A display name counts too; a name that only shares a part does not.
    shown = post(kit, "/students", {"name": "zm_7", "display_name": "ZOE MARTIN"})
    assert "'zm_7' looks like 'Zoë Martín', 'zoe martin'" in shown.get_json()["warnings"][0]
    other = post(kit, "/students", {"name": "zoe_martinez"})
    assert other.get_json()["warnings"] == []
    assert {"Zoë Martín", "zoe martin", "zm_7", "zoe_martinez"} <= set(listing(kit))


def test_the_enrol_page_and_the_commands_warn_of_a_name_like_anothers(
    kit: Kit, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = sign_in(kit, "olga", "office")
    post_form(kit, "/enrol/students", token, name="Ana Lima")  # ana_lima is in the class
    page = kit.client.get("/enrol/Ana%20Lima").get_data(as_text=True)
    assert (
        '<p class="flash warning">Note: &#39;Ana Lima&#39; looks like &#39;ana_lima&#39; (the '
        "same name but for case, accents, spaces or underscores): check that it is not the "
        "same student added twice.</p>"
    ) in page
    # attendance enroll: two folders of one student, as the dataset holds them now.
    monkeypatch.setattr(app_module, "make_analyzer", lambda *_args: ScriptedAnalyzer())
    env = {
        "ATTENDANCE_DATA_DIR": str(kit.settings.data_dir),
        "ATTENDANCE_DATASET_DIR": str(kit.settings.dataset_dir),
        "ATTENDANCE_WORKERS": "1",
    }
    enrolled = cli("enroll", env=env)
    assert enrolled.exit_code == 0, enrolled.output
    assert enrolled.stderr.splitlines()[-1] == (
        "Warning: 'ana_lima' looks like 'Ana Lima' (the same name but for case, accents, "
        "spaces or underscores): check that it is not the same student added twice."
    )
    # attendance consent give, registering a folder copied in: the same warning.
    (kit.settings.dataset_dir / "Ben Ito").mkdir()
    given = cli("consent", "give", "Ben Ito", "--by", "x", "--document", "y", env=env)
    assert given.exit_code == 0, given.output
    assert given.stderr == (
        "Warning: 'Ben Ito' looks like 'ben_ito' (the same name but for case, accents, spaces "
        "or underscores): check that it is not the same student added twice.\n"
    )
