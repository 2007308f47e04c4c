"""The liveness challenge through a real server process (``attendance serve`` with
ATTENDANCE_REQUIRE_LIVENESS=challenge): dlib and the ONNX network on real video frames.

The people of ../shared/faces/video are enrolled from frames of their own clips (they are not in
the identity folders). A burst that follows the challenge marks: frames of
talking_head_wda_aoc.mp4 around a blink and a double blink, and of talking_head_d3.mp4 turning
to the subject's left (mirrored: to her right). A reused, expired or missing nonce, a still
photo and a burst spliced from two people are refused and mark nobody.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import requests

from conftest import ServerProcess, require_faces

pytestmark = pytest.mark.real

CHALLENGE_SECONDS = 6.0  # short, so that a nonce can be seen to expire
AOC = "talking_head_wda_aoc.mp4"  # blinks at 10-12, 25-27 + 33-36 (a double blink), 56-58, ...
D3 = "talking_head_d3.mp4"  # head turned to the subject's left at 251-284
D14 = "talking_head_d14.mp4"  # another person, never enrolled here
# Frames that enrol each person (facing the camera, eyes open, away from the bursts used)
ENROL = {"alex_ortiz": (AOC, (70, 105, 140, 190)), "dana_fox": (D3, (33, 105, 120, 196))}


@functools.cache
def clip_frames(name: str, mirror: bool = False) -> tuple[bytes, ...]:
    """Every frame of a clip as the JPEG a camera would send (mirrored left to right if asked:
    a turn to the subject's left becomes one to her right)."""
    import cv2

    capture = cv2.VideoCapture(str(require_faces() / "video" / name))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if mirror:
            image = np.ascontiguousarray(image[:, ::-1])
        frames.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 88])[1].tobytes())
    capture.release()
    return tuple(frames)


def still_photo(count: int = 40) -> list[bytes]:
    """A photo of the enrolled student held to the camera: moved, scaled, re-lit a little."""
    import cv2

    photo = cv2.imdecode(np.frombuffer(clip_frames(AOC)[60], np.uint8), cv2.IMREAD_COLOR)
    frames = []
    for i in range(count):
        matrix = cv2.getRotationMatrix2D((256, 256), 2.0 * np.sin(i / 7), 0.9)
        matrix[:, 2] += (6 * np.sin(i / 4), 4 * np.cos(i / 6))
        moved = cv2.warpAffine(photo, matrix, (512, 512), borderValue=(90, 90, 90))
        moved = cv2.convertScaleAbs(moved, alpha=1.0 + 0.05 * np.sin(i / 5), beta=0)
        frames.append(cv2.imencode(".jpg", moved, [cv2.IMWRITE_JPEG_QUALITY, 88])[1].tobytes())
    return frames


# What the clips can perform, action by action: (frames, frame rate). The turn windows start
# with the head still facing the camera, as a student's burst starts when the prompt shows.
def blink_burst() -> tuple[list[bytes], float]:
    return list(clip_frames(AOC)[44:70]), 25.0  # the blink at 56-58


def blink_twice_burst() -> tuple[list[bytes], float]:
    return list(clip_frames(AOC)[13:46]), 25.0  # 25-27 and 33-36


def turn_burst(mirror: bool) -> Callable[[], tuple[list[bytes], float]]:
    """From where she faces the camera with her eyes open (just before the turn she looks
    down, lids over her eyes: no neutral start), every other frame (15 a second)."""

    def burst() -> tuple[list[bytes], float]:
        return list(clip_frames(D3, mirror)[192:292:2]), 15.0

    return burst


PERFORMABLE: dict[tuple[str, ...], Callable[[], tuple[list[bytes], float]]] = {
    ("blink",): blink_burst,
    ("blink_twice",): blink_twice_burst,
    ("turn_left",): turn_burst(mirror=False),
    ("turn_right",): turn_burst(mirror=True),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    require_faces()
    base = tmp_path_factory.mktemp("challenge")
    dataset = base / "dataset"
    for student, (clip, numbers) in ENROL.items():
        (dataset / student).mkdir(parents=True)
        for n in numbers:
            (dataset / student / f"{n}.jpg").write_bytes(clip_frames(clip)[n])
    proc = ServerProcess(
        dataset,
        base / "data",
        env={
            "ATTENDANCE_REQUIRE_LIVENESS": "challenge",
            "ATTENDANCE_CHALLENGE_SECONDS": str(CHALLENGE_SECONDS),
            "ATTENDANCE_CLASS_START": "00:00",
            "ATTENDANCE_LATE_AFTER_MINUTES": "1440",
        },
    ).start()
    enrolled = proc.get("/enrolment").json()
    assert enrolled["students"] == 2, enrolled
    yield proc
    proc.stop()


def ask(server: ServerProcess, camera: str = "door") -> dict[str, Any]:
    response = server.get(f"/liveness/challenge?camera={camera}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ask_for(server: ServerProcess, wanted: set[tuple[str, ...]]) -> dict[str, Any]:
    """Challenges until one whose actions are in ``wanted``, each for a new camera id (the
    admin key names any): a camera asking again keeps its actions. The camera is added to the
    answer as ``camera``."""
    for n in range(1000):
        camera = f"door-{n}-{time.monotonic_ns()}"[:64]
        body = ask(server, camera)
        if tuple(body["actions"]) in wanted:
            return {**body, "camera": camera}
    raise AssertionError(f"no challenge among {wanted} in 1000 draws")


def send(
    server: ServerProcess,
    frames: list[bytes],
    fps: float,
    nonce: str | None,
    camera: str = "door",
    wait: bool = True,
) -> dict[str, Any]:
    """Send a burst; first wait as long as it lasts (``wait``), as a camera filming it would:
    a burst sent the moment its challenge is issued was filmed before the prompt."""
    extra = {"fps": str(fps)}
    if nonce is not None:
        extra["nonce"] = nonce
    if wait:
        time.sleep(len(frames) / fps)
    response = server.recognize(*frames, camera=camera, **extra)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_refused(body: dict[str, Any], reason: str | None = None) -> None:
    assert body["status"] == "liveness_failed", body
    if reason is not None:
        assert body["reason"] == reason, body
    assert "marks" not in body and all(face["name"] is None for face in body["faces"])


def nobody_marked(server: ServerProcess) -> bool:
    return bool(server.get("/statistics").json()["days_on_record"] == 0)


def test_the_server_hands_out_challenges(server: ServerProcess) -> None:
    body = ask(server)
    assert body["mode"] == "challenge"
    assert set(body) == {"mode", "nonce", "actions", "prompts", "expires_in", "expires_at"}
    assert body["expires_in"] == CHALLENGE_SECONDS
    assert (
        requests.get(server.url + "/liveness/challenge?camera=door", timeout=10).status_code == 401
    )
    assert server.get("/liveness/challenge").status_code == 400


def test_a_missing_nonce_is_refused(server: ServerProcess) -> None:
    frames, fps = blink_burst()
    assert_refused(send(server, frames, fps, None), "nonce_missing")
    assert nobody_marked(server)


def test_an_expired_nonce_is_refused(server: ServerProcess) -> None:
    body = ask(server)
    frames, fps = PERFORMABLE.get(tuple(body["actions"]), blink_burst)()
    time.sleep(CHALLENGE_SECONDS + 0.5)
    assert_refused(send(server, frames, fps, body["nonce"]), "nonce_expired")
    assert nobody_marked(server)


def test_a_still_photo_is_refused(server: ServerProcess) -> None:
    for _ in range(3):  # whatever the challenge
        body = ask(server)
        answer = send(server, still_photo(), 25.0, body["nonce"])
        assert_refused(answer)
        assert answer["reason"].startswith("action_missing:"), answer
    assert nobody_marked(server)


def test_a_burst_spliced_from_two_people_is_refused(server: ServerProcess) -> None:
    """The enrolled student facing the camera, then another person (in the same place) who
    blinks: the blink is not the student's."""
    body = ask_for(server, {("blink",)})
    frames = list(clip_frames(AOC)[40:55]) + list(clip_frames(D14)[6:30])  # d14 blinks at 16-20
    assert_refused(send(server, frames, 25.0, body["nonce"], body["camera"]), "face_changed")
    assert nobody_marked(server)


def test_a_burst_without_the_action_is_refused(server: ServerProcess) -> None:
    body = ask_for(server, {("turn_left",), ("turn_right",)})
    frames, fps = blink_burst()  # blinks, never turns
    answer = send(server, frames, fps, body["nonce"], body["camera"])
    assert_refused(answer, f"action_missing:{body['actions'][0]}")
    assert nobody_marked(server)


def test_bursts_that_follow_the_challenge_mark_and_a_nonce_is_used_once(
    server: ServerProcess,
) -> None:
    names = {("blink",): "alex_ortiz", ("blink_twice",): "alex_ortiz"}
    for actions, burst in PERFORMABLE.items():
        body = ask_for(server, {actions})
        frames, fps = burst()
        answer = send(server, frames, fps, body["nonce"], body["camera"])
        assert answer["status"] == "success", (actions, answer)
        expected = names.get(actions, "dana_fox")
        assert answer["name"] == expected
        assert answer["marks"][0]["display_name"] == expected
        # the same burst with the same nonce again: refused, whoever sends it
        again = send(server, frames, fps, body["nonce"], body["camera"], wait=False)
        assert_refused(again, "nonce_used")
    assert not nobody_marked(server)


def test_one_recorded_clip_does_not_pass_whatever_is_drawn(server: ServerProcess) -> None:
    """A clip of the student doing more than one thing (a blink, a double blink, another
    blink: three blinks more than a plain blink asks) is refused, and a burst sent the moment
    its challenge is issued too (recorded before the prompt)."""
    body = ask_for(server, {("blink",)})
    frames = list(clip_frames(AOC)[44:120])[::2]  # blinks at 56-58, 80-82, 97, 110-111
    assert_refused(
        send(server, frames, 12.5, body["nonce"], body["camera"]), "action_not_asked:blink"
    )
    body = ask_for(server, {("blink",)})
    frames, fps = blink_burst()
    answer = send(server, frames, fps, body["nonce"], body["camera"], wait=False)
    assert_refused(answer, "action_too_soon:blink")


def test_no_scan_left_a_worker_behind(server: ServerProcess) -> None:
    assert server.get("/health").json()["status"] == "ok"
    assert "Traceback" not in server.output()
