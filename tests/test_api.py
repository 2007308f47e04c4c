"""The HTTP API in process: real services and app, scripted faces, a fixed clock.

Class of ana_lima, ben_ito and cleo_park; class at 09:00 Paris, Late after 09:15; the clock
stands at Monday 2026-11-23 08:55 Paris unless a test moves it.
"""

from __future__ import annotations

import csv
import io
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conftest import API_KEY, MONDAY_0855, Kit, make_kit
from scripted import BOX, ScriptedAnalyzer, ScriptedFace, identity, near
from smart_attendance.models import Box, DetectParams, Frame

MONDAY = date(2026, 11, 23)
THRESHOLD = 0.47  # ATTENDANCE_MATCH_THRESHOLD's default


def at(hour: int, minute: int, day: int = 23) -> datetime:
    """A Paris time in the week of the tests."""
    return MONDAY_0855.replace(day=day, hour=hour, minute=minute)


def jpeg(seed: int) -> bytes:
    """A small real JPEG (the intruder service keeps the frame's bytes and format)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def day_rows(kit: Kit, day: str) -> list[tuple[str, str, str]]:
    rows = read_csv(kit.logs / f"attendance_{day}.csv")
    return [(row["Name"], row["Time"], row["Status"]) for row in rows]


def stats_by_name(kit: Kit) -> dict[str, dict[str, Any]]:
    body = kit.get("/statistics").get_json()
    return {s["name"]: s for s in body["students"]}


@pytest.fixture
def new_kit(tmp_path: Path) -> Iterator[Callable[..., Kit]]:
    """``make_kit`` in a sub-folder of tmp_path; every kit made is closed afterwards."""
    made: list[Kit] = []

    def factory(folder: str = "kit", **kwargs: Any) -> Kit:
        made.append(make_kit(tmp_path / folder, **kwargs))
        return made[-1]

    yield factory
    for kit in made:
        kit.services.close()


# --- health and keys -----------------------------------------------------------------------------


def test_health_counts_without_personal_data(kit: Kit) -> None:
    response = kit.get("/health", key=None)
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "students": 3,
        "photos": 6,
        "skipped_photos": 0,
        "workers": 2,
        "embedder": "scripted",
    }


def test_before_enrolment_the_server_answers_starting(new_kit: Callable[..., Kit]) -> None:
    kit = new_kit(enrol=False)
    health = kit.get("/health", key=None)
    assert health.status_code == 503
    assert health.get_json()["status"] == "starting"
    scan = kit.recognize(kit.probe("ana_lima"))
    assert scan.status_code == 503
    assert scan.get_json()["status"] == "starting"
    assert kit.get("/enrolment").status_code == 503
    kit.services.enrolment.enroll()
    assert kit.recognize(kit.probe("ana_lima")).get_json()["name"] == "ana_lima"


@pytest.mark.parametrize("key", ["wrong", "", API_KEY + "x", API_KEY[:-1], None])
def test_a_wrong_or_missing_key_is_denied(kit: Kit, key: str | None) -> None:
    response = kit.recognize(kit.probe("ana_lima"), key=key)
    assert response.status_code == 401
    assert response.get_json() == {
        "status": "denied",  # and where keys come from
        "error": "missing or wrong X-API-KEY: send the admin key (API_SECRET_KEY, or the key "
        "the server generated in its data folder, data/api_key) or a camera key made with "
        "`attendance keys add NAME`",
    }
    for path in ("/statistics", "/enrolment"):
        assert kit.get(path, key=key).status_code == 401
    assert kit.services.store.marks_on(MONDAY) == []
    assert kit.analyzer.calls == 0  # refused before any image is looked at


def test_the_key_is_taken_only_from_the_header(kit: Kit) -> None:
    response = kit.client.post(
        f"/recognize?api_key={API_KEY}&X-API-KEY={API_KEY}",
        data={"image": (io.BytesIO(kit.probe("ana_lima")), "f.jpg"), "X-API-KEY": API_KEY},
    )
    assert response.status_code == 401
    assert response.get_json()["status"] == "denied"
    assert kit.client.get(f"/statistics?api_key={API_KEY}").status_code == 401
    assert kit.services.store.marks_on(MONDAY) == []


# --- marks ---------------------------------------------------------------------------------------


def test_a_known_face_is_marked_once_a_day(kit: Kit) -> None:
    first = kit.recognize(kit.probe("ana_lima"))
    assert first.status_code == 200, first.get_data(as_text=True)
    body = first.get_json()
    assert body["status"] == "success"
    assert (body["name"], body["attendance"], body["new"], body["time"]) == (
        "ana_lima",
        "Present",
        True,
        "08:55:00",
    )
    assert body["marks"] == [
        {
            "name": "ana_lima",
            "display_name": "ana_lima",  # no display name in the registry: the folder name
            "attendance": "Present",
            "new": True,
            "time": "08:55:00",
        }
    ]
    [face] = body["faces"]
    assert (face["name"], face["box"]) == ("ana_lima", BOX.as_dict())
    assert 0 < face["distance"] <= THRESHOLD
    kit.clock.advance(minutes=30)  # 09:25: a first mark now would be Late
    again = kit.recognize(kit.probe("ana_lima", seed=2)).get_json()
    assert (again["name"], again["new"], again["time"], again["attendance"]) == (
        "ana_lima",
        False,
        "08:55:00",
        "Present",
    )
    assert day_rows(kit, "2026-11-23") == [("ana_lima", "08:55:00", "Present")]


@pytest.mark.parametrize(
    ("hour", "minute", "status"),
    [(8, 55, "Present"), (9, 15, "Present"), (9, 16, "Late"), (13, 0, "Late")],
)
def test_present_until_the_grace_ends_then_late(
    kit: Kit, hour: int, minute: int, status: str
) -> None:
    kit.clock.set(at(hour, minute))
    body = kit.recognize(kit.probe("ben_ito")).get_json()
    expected_time = f"{hour:02d}:{minute:02d}:00"
    assert (body["name"], body["attendance"], body["time"]) == ("ben_ito", status, expected_time)
    assert day_rows(kit, "2026-11-23") == [("ben_ito", expected_time, status)]


def test_the_next_day_is_a_new_mark(kit: Kit) -> None:
    assert kit.recognize(kit.probe("ana_lima")).get_json()["new"] is True
    kit.clock.set(at(9, 20, day=24))
    body = kit.recognize(kit.probe("ana_lima")).get_json()
    assert (body["new"], body["time"], body["attendance"]) == (True, "09:20:00", "Late")
    assert day_rows(kit, "2026-11-23") == [("ana_lima", "08:55:00", "Present")]
    assert day_rows(kit, "2026-11-24") == [("ana_lima", "09:20:00", "Late")]


def test_days_and_times_are_those_of_the_configured_zone(new_kit: Callable[..., Kit]) -> None:
    # 23:30 UTC on Monday is 00:30 on Tuesday in Paris.
    kit = new_kit(now=datetime(2026, 11, 23, 23, 30, tzinfo=timezone.utc), intruder_threshold=1)
    body = kit.recognize(kit.probe("cleo_park")).get_json()
    assert (body["name"], body["time"], body["attendance"]) == ("cleo_park", "00:30:00", "Present")
    assert day_rows(kit, "2026-11-24") == [("cleo_park", "00:30:00", "Present")]
    assert not (kit.logs / "attendance_2026-11-23.csv").exists()
    kit.analyzer.add(stranger := jpeg(1), ScriptedFace(identity(10_001)))
    kit.recognize(stranger, camera="gate")
    [photo] = (kit.settings.intruders_dir).rglob("intruder_*")
    assert photo.parent.name == "2026-11-24"
    assert photo.name.startswith("intruder_003000_gate_")


def test_a_stranger_is_unknown(kit: Kit) -> None:
    response = kit.recognize(kit.stranger())
    assert response.status_code == 200
    body = response.get_json()
    [face] = body["faces"]
    assert body == {
        "status": "unknown",
        "reason": "unknown_face",
        "faces": [
            {
                "box": BOX.as_dict(),
                "name": None,
                "distance": face["distance"],
                "margin": face["margin"],
            }
        ],
    }
    assert face["distance"] > THRESHOLD
    assert kit.services.store.marks_on(MONDAY) == []


def test_a_frame_without_a_face_is_unknown(kit: Kit) -> None:
    empty = kit.analyzer.add(jpeg(2))  # a real image with no face in it
    response = kit.recognize(empty)
    assert response.status_code == 200
    assert response.get_json() == {"status": "unknown", "reason": "no_face", "faces": []}


def test_a_face_too_small_to_trust_is_unknown(kit: Kit) -> None:
    small = Box(10, 10, 50, 50)
    body = kit.recognize(kit.frame(ScriptedFace(kit.people["ana_lima"], box=small))).get_json()
    assert body == {
        "status": "unknown",
        "reason": "face_too_small",
        "faces": [
            {
                "box": small.as_dict(),
                "name": None,
                "distance": None,
                "margin": None,
                "reason": "face too small",
            }
        ],
    }
    assert kit.services.store.marks_on(MONDAY) == []


def test_every_face_in_a_group_photo_is_handled(kit: Kit) -> None:
    big = Box(20, 20, 220, 220)
    group = kit.frame(
        ScriptedFace(near(kit.people["ben_ito"], 0.2, 1), box=BOX),
        ScriptedFace(near(kit.people["ana_lima"], 0.2, 2), box=big),
        ScriptedFace(identity(10_005), box=Box(400, 100, 560, 260)),
    )
    body = kit.recognize(group).get_json()
    assert body["status"] == "success"
    assert body["name"] == "ana_lima"  # the largest recognised face answers
    assert body["marks"] == [
        {
            "name": "ana_lima",
            "display_name": "ana_lima",
            "attendance": "Present",
            "new": True,
            "time": "08:55:00",
        },
        {
            "name": "ben_ito",
            "display_name": "ben_ito",
            "attendance": "Present",
            "new": True,
            "time": "08:55:00",
        },
    ]
    assert [f["name"] for f in body["faces"]] == ["ben_ito", "ana_lima", None]
    assert sorted(day_rows(kit, "2026-11-23")) == [
        ("ana_lima", "08:55:00", "Present"),
        ("ben_ito", "08:55:00", "Present"),
    ]


class GatedAnalyzer(ScriptedAnalyzer):
    """Holds every recognition at a barrier until all the concurrent requests are in, so they
    reach the register together."""

    gate: threading.Barrier | None = None

    def analyze(
        self, images: Sequence[bytes], params: DetectParams, describe: int | None = None
    ) -> list[Frame]:
        frames = super().analyze(images, params, describe)
        if self.gate is not None:
            self.gate.wait()
        return frames


def _scan_together(kits: Sequence[Kit], analyzer: GatedAnalyzer, per_kit: int) -> list[Any]:
    """``per_kit`` simultaneous scans of ana_lima through each kit, one test client each."""
    analyzer.gate = threading.Barrier(len(kits) * per_kit, timeout=20)
    jobs = [(kit, i) for kit in kits for i in range(per_kit)]

    def scan(job: tuple[Kit, int]) -> Any:
        kit, seed = job
        client = kit.client.application.test_client()
        data = {"image": (io.BytesIO(kit.probe("ana_lima", seed=seed)), "f.jpg")}
        return client.post("/recognize", data=data, headers={"X-API-KEY": API_KEY}).get_json()

    try:
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            return list(pool.map(scan, jobs))
    finally:
        analyzer.gate = None


def test_concurrent_requests_mark_once(new_kit: Callable[..., Kit]) -> None:
    analyzer = GatedAnalyzer()
    kit = new_kit(analyzer=analyzer)
    bodies = _scan_together([kit], analyzer, per_kit=8)
    assert [b["name"] for b in bodies] == ["ana_lima"] * 8, bodies
    assert sum(b["new"] for b in bodies) == 1
    assert {b["time"] for b in bodies} == {"08:55:00"}
    assert [m.name for m in kit.services.store.marks_on(MONDAY)] == ["ana_lima"]
    assert day_rows(kit, "2026-11-23") == [("ana_lima", "08:55:00", "Present")]


def test_two_servers_on_one_database_mark_once(new_kit: Callable[..., Kit]) -> None:
    """Two processes' services (each with its own memory of today's marks) on one SQLite file:
    the database's unique constraint keeps one mark."""
    analyzer = GatedAnalyzer()
    first = new_kit("shared", analyzer=analyzer)
    second = new_kit("shared", analyzer=analyzer)
    assert first.settings.db_url == second.settings.db_url
    bodies = _scan_together([first, second], analyzer, per_kit=4)
    assert [b["name"] for b in bodies] == ["ana_lima"] * 8, bodies
    assert sum(b["new"] for b in bodies) == 1
    assert len(first.services.store.marks_on(MONDAY)) == 1


# --- CSV files and statistics -------------------------------------------------------------------


def test_csv_files_and_statistics(kit: Kit) -> None:
    kit.recognize(kit.probe("ana_lima"))  # 08:55 Present
    kit.clock.set(at(9, 16))
    kit.recognize(kit.probe("ben_ito"))  # 09:16 Late
    assert day_rows(kit, "2026-11-23") == [
        ("ana_lima", "08:55:00", "Present"),
        ("ben_ito", "09:16:00", "Late"),
    ]
    stats = kit.get("/statistics").get_json()
    # Statistics count the periods a student was expected in: today's period runs until
    # midnight, so Cleo, not seen yet, is not absent yet.
    assert stats == {
        "status": "success",
        "days_on_record": 1,
        "students": [
            {
                "name": "ana_lima",
                "days_present": 1,
                "days_on_time": 1,
                "days_late": 0,
                "total_days": 1,
                "attendance_pct": 100.0,
                "late_pct": 0.0,
                "excused": 0,
                "absent": 0,
                "below_threshold": False,
            },
            {
                "name": "ben_ito",
                "days_present": 1,
                "days_on_time": 0,
                "days_late": 1,
                "total_days": 1,
                "attendance_pct": 100.0,
                "late_pct": 100.0,
                "excused": 0,
                "absent": 0,
                "below_threshold": False,
            },
            {
                "name": "cleo_park",
                "days_present": 0,
                "days_on_time": 0,
                "days_late": 0,
                "total_days": 0,
                "attendance_pct": 0.0,
                "late_pct": 0.0,
                "excused": 0,
                "absent": 0,
                "below_threshold": False,
            },
        ],
    }

    kit.clock.set(at(8, 50, day=24))  # Tuesday: only ana comes; Monday has ended
    kit.recognize(kit.probe("ana_lima"))
    by_name = stats_by_name(kit)
    assert {n: (s["days_present"], s["total_days"], s["absent"]) for n, s in by_name.items()} == {
        "ana_lima": (2, 2, 0),
        "ben_ito": (1, 1, 0),
        "cleo_park": (0, 1, 1),
    }
    assert by_name["ben_ito"]["attendance_pct"] == 100.0
    assert by_name["ben_ito"]["late_pct"] == 100.0
    assert by_name["cleo_park"]["below_threshold"] is True  # 0% < 90%
    table = read_csv(kit.logs / "student_statistics.csv")
    assert table == [
        {
            "Student Name": "ana_lima",
            "Total Days Present": "2",
            "Days On Time": "2",
            "Days Late": "0",
            "Attendance Percentage": "100.0",
            "Late Percentage": "0.0",
        },
        {
            "Student Name": "ben_ito",
            "Total Days Present": "1",
            "Days On Time": "0",
            "Days Late": "1",
            "Attendance Percentage": "100.0",
            "Late Percentage": "100.0",
        },
        {
            "Student Name": "cleo_park",
            "Total Days Present": "0",
            "Days On Time": "0",
            "Days Late": "0",
            "Attendance Percentage": "0.0",
            "Late Percentage": "0.0",
        },
    ]
    assert day_rows(kit, "2026-11-24") == [("ana_lima", "08:50:00", "Present")]


def test_statistics_before_any_mark(kit: Kit) -> None:
    stats = kit.get("/statistics").get_json()
    assert stats["days_on_record"] == 0
    assert [(s["name"], s["days_present"]) for s in stats["students"]] == [
        ("ana_lima", 0),
        ("ben_ito", 0),
        ("cleo_park", 0),
    ]


# --- intruders -----------------------------------------------------------------------------------


def test_intruder_saved_after_consecutive_unknown_frames(kit: Kit) -> None:
    camera = "door-7"
    assert kit.settings.intruder_threshold == 3

    def saved() -> list[Path]:
        return sorted(kit.settings.intruders_dir.glob(f"*/intruder_*_{camera}_*"))

    stranger = kit.analyzer.add(jpeg(10), ScriptedFace(identity(10_010)))
    other = kit.analyzer.add(jpeg(11), ScriptedFace(identity(10_011)))
    no_face = kit.analyzer.add(jpeg(12))
    for frame in (stranger, no_face, stranger):  # frames with no face do not count
        assert kit.recognize(frame, camera=camera).status_code == 200
    kit.recognize(other, camera="another-camera")  # another camera has its own count
    kit.recognize(no_face, camera="another-camera")
    assert saved() == []
    kit.recognize(stranger, camera=camera)  # the third unknown face in a row on door-7
    [photo] = saved()
    assert kit.services.sealer.open(photo.read_bytes()) == stranger  # sealed at rest
    assert photo.parent.name == "2026-11-23"
    assert re.fullmatch(r"intruder_085500_door-7_[0-9a-f]{8}\.jpg", photo.name)
    assert kit.services.store.intruders_on(MONDAY) == [
        {"seen_at": datetime(2026, 11, 23, 8, 55), "camera": camera, "path": str(photo)}
    ]
    assert list(kit.settings.intruders_dir.glob("*/intruder_*_another-camera_*")) == []

    # The streak starts again after a photo, and a known face resets it.
    kit.recognize(stranger, camera=camera)
    assert kit.recognize(kit.probe("ana_lima"), camera=camera).get_json()["name"] == "ana_lima"
    kit.recognize(stranger, camera=camera)
    kit.recognize(stranger, camera=camera)
    assert len(saved()) == 1
    kit.clock.advance(seconds=kit.settings.intruder_cooldown_s)  # the same stranger, later
    kit.recognize(stranger, camera=camera)
    assert len(saved()) == 2


# --- enrolment -----------------------------------------------------------------------------------


def test_enrolment_lists_skipped_photos(new_kit: Callable[..., Kit]) -> None:
    kit = new_kit(enrol=False)
    dataset = kit.settings.dataset_dir
    (dataset / "ana_lima" / "3.jpg").write_bytes(kit.analyzer.add(jpeg(20)))  # no face
    two = kit.analyzer.add(
        b"photo:two-faces",
        ScriptedFace(kit.people["ben_ito"]),
        ScriptedFace(kit.people["cleo_park"], box=Box(400, 100, 560, 260)),
    )
    (dataset / "ben_ito" / "3.jpg").write_bytes(two)
    small = kit.analyzer.add(
        b"photo:small", ScriptedFace(kit.people["cleo_park"], box=Box(0, 0, 40, 40))
    )
    (dataset / "cleo_park" / "3.jpg").write_bytes(small)
    (dataset / "cleo_park" / "4.jpg").write_bytes(b"not a photo at all\n")
    kit.services.enrolment.enroll()

    body = kit.get("/enrolment").get_json()
    assert (body["status"], body["students"], body["photos"]) == ("success", 3, 6)
    assert body["skipped"] == [
        {"path": "ana_lima/3.jpg", "reason": "no face found"},
        {"path": "ben_ito/3.jpg", "reason": "2 faces found, need exactly one"},
        {
            "path": "cleo_park/3.jpg",
            "reason": "face is 40 px wide, too small to trust (minimum 60 px)",
        },
        {
            "path": "cleo_park/4.jpg",
            "reason": "not an image we can read (send JPEG, PNG, WebP or BMP)",
        },
    ]
    health = kit.get("/health", key=None).get_json()
    assert (health["photos"], health["skipped_photos"]) == (6, 4)
    assert "ana_lima" not in kit.get("/health", key=None).get_data(as_text=True)
    assert kit.get("/enrolment", key=None).status_code == 401


# --- routes --------------------------------------------------------------------------------------


def test_unknown_route_and_method_are_json(kit: Kit) -> None:
    missing = kit.get("/nope")
    assert missing.status_code == 404
    assert missing.get_json()["status"] == "not_found"
    wrong_method = kit.get("/recognize")
    assert wrong_method.status_code == 405
    assert wrong_method.get_json()["status"] == "method_not_allowed"
