"""Server-verified liveness (ATTENDANCE_REQUIRE_LIVENESS): only a blinking burst marks.

In process, with scripted eye aspect ratios (EAR); the blink detector itself is tested on real
video in test_liveness.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

import pytest

from conftest import Kit, make_kit
from scripted import BOX, ScriptedFace, near
from smart_attendance.models import Box

MONDAY = date(2026, 11, 23)
BLINK = [0.30] * 8 + [0.28, 0.12, 0.08, 0.15, 0.29] + [0.30] * 6  # 19 frames, one blink
STILL = [0.30] * 19


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Kit]:
    made = make_kit(tmp_path, require_liveness=True)
    yield made
    made.services.close()


def burst(kit: Kit, name: str, ears: Sequence[float]) -> list[bytes]:
    """Frames of ``name`` in time order, eyes as ``ears`` says, the face a little different in
    each frame (a new photo every time)."""
    return [kit.probe(name, seed=i, ear=ear) for i, ear in enumerate(ears)]


def assert_nobody_marked(kit: Kit) -> None:
    assert kit.services.store.marks_on(MONDAY) == []
    assert kit.get("/statistics").get_json()["days_on_record"] == 0
    assert not (kit.logs / "attendance_2026-11-23.csv").exists()


def test_a_single_frame_is_refused_and_names_nobody(live: Kit) -> None:
    response = live.recognize(live.probe("ana_lima"))
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["reason"]) == (
        "liveness_failed",
        "send a burst of frames around a blink",
    )
    assert set(body) == {"status", "reason", "faces"}
    [face] = body["faces"]
    assert (face["name"], face["box"]) == (None, BOX.as_dict())
    assert "ana_lima" not in response.get_data(as_text=True)
    assert_nobody_marked(live)


def test_a_still_photo_burst_is_refused(live: Kit) -> None:
    body = live.recognize(*burst(live, "ana_lima", STILL), fps="25").get_json()
    assert (body["status"], body["reason"]) == ("liveness_failed", "no blink seen in the burst")
    assert [face["name"] for face in body["faces"]] == [None]
    assert_nobody_marked(live)


def test_a_blinking_burst_marks_the_student(live: Kit) -> None:
    response = live.recognize(*burst(live, "ana_lima", BLINK), fps="25")
    body = response.get_json()
    assert body["status"] == "success", body
    assert (body["name"], body["new"], body["attendance"], body["time"]) == (
        "ana_lima",
        True,
        "Present",
        "08:55:00",
    )
    assert [m.name for m in live.services.store.marks_on(MONDAY)] == ["ana_lima"]


def test_a_blink_too_slow_for_the_frame_rate_is_refused(live: Kit) -> None:
    # The same EARs at 5 frames a second: the eyes stay shut 0.6 s, longer than a blink.
    body = live.recognize(*burst(live, "ana_lima", BLINK), fps="5").get_json()
    assert (body["status"], body["reason"]) == ("liveness_failed", "no blink seen in the burst")
    assert_nobody_marked(live)


def test_only_the_face_that_blinks_is_marked(live: Kit) -> None:
    """A student blinking beside a photo of another student held up to the camera."""
    held = Box(400, 100, 560, 260)
    frames = [
        live.frame(
            ScriptedFace(near(live.people["ana_lima"], 0.2, i), ear=ear),
            ScriptedFace(near(live.people["ben_ito"], 0.2, i), box=held, ear=0.30),
            label=f"pair{i}",
        )
        for i, ear in enumerate(BLINK)
    ]
    body = live.recognize(*frames, fps="25").get_json()
    assert body["status"] == "success", body
    assert [(m["name"], m["new"]) for m in body["marks"]] == [("ana_lima", True)]
    assert [m.name for m in live.services.store.marks_on(MONDAY)] == ["ana_lima"]


def test_a_bad_frame_rate_is_refused(live: Kit) -> None:
    response = live.recognize(*burst(live, "ana_lima", BLINK), fps="fast")
    assert response.status_code == 400
    assert response.get_json() == {"status": "bad_request", "error": "fps must be a number"}
    assert_nobody_marked(live)


def test_without_the_setting_a_single_frame_marks(kit: Kit) -> None:
    assert kit.settings.require_liveness == "off"
    body = kit.recognize(kit.probe("ana_lima")).get_json()
    assert (body["status"], body["name"]) == ("success", "ana_lima")
