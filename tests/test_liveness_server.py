"""Server-verified liveness: with ATTENDANCE_REQUIRE_LIVENESS=1 only a blinking burst marks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import ServerProcess, require_faces

CLIP = "talking_head_wda_aoc.mp4"  # blinks at frames 10-12, 25-27, ...


def _frames(indices: list[int]) -> dict[int, np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(require_faces() / "video" / CLIP))
    wanted, found, index = set(indices), {}, 0
    while len(found) < len(wanted):
        ok, frame = capture.read()
        if not ok:
            break
        if index in wanted:
            found[index] = frame
        index += 1
    capture.release()
    return found


def _jpeg(frame: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("live")
    person = base / "dataset" / "speaker"
    person.mkdir(parents=True)
    for index, frame in _frames([60, 120, 190]).items():
        (person / f"{index}.jpg").write_bytes(_jpeg(frame))
    server = ServerProcess(
        base / "dataset", base / "data", env={"ATTENDANCE_REQUIRE_LIVENESS": "1"}
    ).start()
    yield server
    server.stop()


def test_a_single_frame_is_refused(live_server: ServerProcess) -> None:
    frame = _frames([0])[0]
    body = live_server.recognize(_jpeg(frame)).json()
    assert body["status"] == "liveness_failed"
    assert "burst" in body["reason"]
    assert all(face["name"] is None for face in body["faces"])  # no name leaks


def test_a_still_photo_burst_is_refused(live_server: ServerProcess, tmp_path: Path) -> None:
    import cv2

    still = _frames([0])[0]
    burst = []
    for i in range(20):
        matrix = np.float32([[1, 0, 3 * np.sin(i / 3)], [0, 1, 2 * np.cos(i / 4)]])
        burst.append(_jpeg(cv2.warpAffine(still, matrix, (still.shape[1], still.shape[0]))))
    body = live_server.recognize(*burst, fps="25").json()
    assert body["status"] == "liveness_failed"
    assert body["reason"] == "no blink seen in the burst"
    stats = live_server.get("/statistics").json()
    assert stats["days_on_record"] == 0  # nobody was marked


def test_a_blinking_burst_marks_the_student(live_server: ServerProcess) -> None:
    frames = _frames(list(range(0, 20)))
    burst = [_jpeg(frames[i]) for i in range(20)]
    body = live_server.recognize(*burst, fps="25").json()
    assert body["status"] == "success", body
    assert body["name"] == "speaker" and body["new"] is True
    bad = live_server.recognize(*burst, fps="fast")
    assert bad.status_code == 400
