"""The liveness challenge (ATTENDANCE_REQUIRE_LIVENESS=challenge), in process: scripted faces
(eye ratios, head yaw, descriptors), the real services and app on a real SQLite file.

``GET /liveness/challenge`` hands out a one-use nonce and random actions; ``POST /recognize``
uses the nonce up and marks only a face that stays the same and performs the actions in order.
The verification's pure functions (``recognition/challenge.py``) are tested on scripted faces
too; the real engine on real video is in test_challenge_real.py.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import API_KEY, Kit, io_bytes, make_kit, make_settings
from dashboard_kit import sign_in
from scripted import BOX, ScriptedAnalyzer, ScriptedFace, identity, near
from smart_attendance.attendance import scan
from smart_attendance.config import load_settings
from smart_attendance.errors import ConfigError
from smart_attendance.models import (
    ACTIONS,
    BLINK,
    BLINK_TWICE,
    PROMPTS,
    TURN_LEFT,
    TURN_RIGHT,
    Box,
    Face,
    FaceResult,
    Frame,
    LivenessChallenge,
    MarkResult,
    Recognition,
)
from smart_attendance.recognition import challenge as rules
from smart_attendance.recognition.decisions import FrameDecision

MONDAY = date(2026, 11, 23)
LEAD = [0.30] * 8  # open eyes before anything happens: the blink rule's baseline
BLINK_EARS = [0.28, 0.12, 0.08, 0.15, 0.29, 0.30, 0.30, 0.30, 0.30]  # one blink, 9 frames
TURN_YAWS = [0.05, 0.15, 0.25, 0.35, 0.40, 0.35, 0.25, 0.15, 0.05, 0.0]  # out and back, 10
TAIL = [0.30] * 6


# --- a burst, action by action -----------------------------------------------------------------


def moves(*actions: str, blink: Sequence[float] = BLINK_EARS) -> tuple[list[float], list[float]]:
    """The eye ratios and yaws of a face performing ``actions`` in order, with open eyes and
    the head still before, between and after them (``blink``: the eye ratios of one blink)."""
    ears, yaws = list(LEAD), [0.0] * len(LEAD)
    for action in actions:
        if action in (BLINK, BLINK_TWICE):
            times = 2 if action == BLINK_TWICE else 1
            ears += list(blink) * times
            yaws += [0.0] * len(blink) * times
        else:
            sign = 1.0 if action == TURN_LEFT else -1.0
            ears += [0.30] * len(TURN_YAWS)
            yaws += [sign * y for y in TURN_YAWS]
    return ears + TAIL, yaws + [0.0] * len(TAIL)


def burst(kit: Kit, name: str, *actions: str, seed: int = 0, **face: Any) -> list[bytes]:
    """Frames of student ``name`` performing ``actions`` (each frame a new photo of them)."""
    ears, yaws = moves(*actions)
    return [
        kit.probe(name, seed=seed + i, ear=ear, yaw=yaw, **face)
        for i, (ear, yaw) in enumerate(zip(ears, yaws, strict=True))
    ]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Kit]:
    made = make_kit(tmp_path, require_liveness="challenge")
    yield made
    made.services.close()


def challenge(
    kit: Kit,
    monkeypatch: pytest.MonkeyPatch,
    actions: Sequence[str],
    camera: str = "door",
    key: str = API_KEY,
) -> dict[str, Any]:
    """A challenge of ``actions`` (the random draw replaced) for ``camera``."""
    monkeypatch.setattr(scan, "draw_actions", lambda: tuple(actions))
    response = kit.get(f"/liveness/challenge?camera={camera}", key=key)
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    assert body["actions"] == list(actions)
    return body


def scan_with(
    kit: Kit, frames: Sequence[bytes], nonce: str | None, camera: str = "door", wait: bool = True
) -> Any:
    """Send a burst at 25 frames a second, after the time it took to film (``wait``): the
    clock moves on by its length and a little more."""
    form = {"fps": "25"}
    if nonce is not None:
        form["nonce"] = nonce
    if wait:
        kit.clock.advance(seconds=len(frames) / 25 + 0.2)
    response = kit.recognize(*frames, camera=camera, **form)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def assert_refused(body: dict[str, Any], reason: str | None = None) -> None:
    assert body["status"] == "liveness_failed", body
    if reason is not None:
        assert body["reason"] == reason, body
    assert set(body) == {"status", "reason", "faces"}
    assert all(face["name"] is None for face in body["faces"])


def marked(kit: Kit) -> list[str]:
    return [m.name for m in kit.services.store.marks_on(MONDAY)]


# --- GET /liveness/challenge --------------------------------------------------------------------


def test_a_challenge_is_a_random_nonce_and_one_to_three_actions(live: Kit) -> None:
    seen: set[tuple[str, ...]] = set()
    nonces = set()
    for n in range(30):  # a camera's first challenge each: drawn afresh
        response = live.get(f"/liveness/challenge?camera=door-{n}")
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        body = response.get_json()
        assert set(body) == {"mode", "nonce", "actions", "prompts", "expires_in", "expires_at"}
        assert body["mode"] == "challenge"
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", body["nonce"])  # 192 bits, URL-safe
        actions = tuple(body["actions"])
        assert 1 <= len(actions) <= 3 and set(actions) <= set(ACTIONS)
        assert actions in rules.CHALLENGES
        assert body["prompts"] == [PROMPTS[a] for a in actions]
        assert not any(a in (BLINK, BLINK_TWICE) for a in actions[:-1])  # blinks: last only
        assert body["expires_in"] == 20.0
        assert body["expires_at"] == "2026-11-23T07:55:20+00:00"  # 08:55 Paris, plus 20 s
        seen.add(actions)
        nonces.add(body["nonce"])
    assert len(nonces) == 30
    assert len(seen) >= 8  # drawn from the eighteen challenges
    assert live.services.store.challenge_count() == 30


def test_the_prompts_name_each_action_in_plain_words() -> None:
    answer = LivenessChallenge("challenge", "n" * 32, (TURN_LEFT, BLINK), 20.0)
    assert answer.prompts == ("Turn your head to your left", "Blink")
    assert LivenessChallenge.from_json(answer.to_json()).actions == (TURN_LEFT, BLINK)
    assert LivenessChallenge.from_json({"mode": "blink"}) == LivenessChallenge("blink")


def test_the_nonce_is_stored_hashed(live: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    nonce = challenge(live, monkeypatch, [BLINK])["nonce"]
    live.services.store.close()  # everything written to the file
    raw = (live.settings.data_dir / "attendance.db").read_bytes()
    wal = live.settings.data_dir / "attendance.db-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert nonce.encode() not in raw
    assert scan.nonce_digest(nonce).encode() in raw


@pytest.mark.parametrize(("mode", "setting"), [("off", "off"), ("blink", "blink")])
def test_other_modes_answer_the_mode_alone(tmp_path: Path, mode: str, setting: str) -> None:
    kit = make_kit(tmp_path, require_liveness=setting)
    try:
        response = kit.get("/liveness/challenge?camera=door")
        assert (response.status_code, response.get_json()) == (200, {"mode": mode})
        assert kit.services.store.challenge_count() == 0
    finally:
        kit.services.close()


def test_a_challenge_needs_a_camera_and_a_key(live: Kit) -> None:
    for path in ("/liveness/challenge", "/liveness/challenge?camera=", "/liveness/challenge?x=1"):
        response = live.get(path)
        assert response.status_code == 400
        body = response.get_json()
        assert body["status"] == "bad_request" and "camera" in body["error"]
    response = live.get("/liveness/challenge?camera=a%20b")
    assert response.status_code == 400
    response = live.get("/liveness/challenge?camera=door", key="wrong")
    assert (response.status_code, response.get_json()["status"]) == (401, "denied")
    response = live.get("/liveness/challenge?camera=door", key=None)
    assert response.status_code == 401
    assert live.services.store.challenge_count() == 0


def test_a_camera_key_asks_for_challenges_and_uses_them(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    camera_key = live.services.keys.add("door-1").key
    nonce = challenge(live, monkeypatch, [BLINK], key=camera_key)["nonce"]
    live.clock.advance(seconds=1.5)
    response = live.recognize(
        *burst(live, "ana_lima", BLINK), key=camera_key, camera="door", fps="25", nonce=nonce
    )
    assert response.get_json()["status"] == "success"
    assert live.get("/students", key=camera_key).status_code == 403  # still the camera's only


# --- POST /recognize with a nonce ---------------------------------------------------------------


@pytest.mark.parametrize(
    "actions",
    [
        [BLINK],
        [BLINK_TWICE],
        [TURN_LEFT],
        [TURN_RIGHT],
        [TURN_LEFT, BLINK],
        [TURN_RIGHT, BLINK],
        [BLINK, TURN_LEFT],
        [BLINK, TURN_RIGHT],
    ],
)
def test_a_burst_that_follows_the_challenge_marks(
    live: Kit, monkeypatch: pytest.MonkeyPatch, actions: list[str]
) -> None:
    nonce = challenge(live, monkeypatch, actions)["nonce"]
    body = scan_with(live, burst(live, "ana_lima", *actions), nonce)
    assert body["status"] == "success", body
    assert (body["name"], body["new"], body["attendance"]) == ("ana_lima", True, "Present")
    assert body["marks"][0]["display_name"] == "ana_lima"  # no display name in the registry
    assert marked(live) == ["ana_lima"]


def test_the_nonce_may_come_as_a_header(live: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    nonce = challenge(live, monkeypatch, [BLINK])["nonce"]
    frames = burst(live, "ana_lima", BLINK)
    live.clock.advance(seconds=1.5)
    data = {"image": [(io_bytes(f), f"{i}.jpg") for i, f in enumerate(frames)]}
    response = live.client.post(
        "/recognize",
        data={**data, "camera": "door", "fps": "25"},
        headers={"X-API-KEY": API_KEY, "X-Liveness-Nonce": nonce},
    )
    assert response.get_json()["status"] == "success"


def test_a_missing_unknown_or_malformed_nonce_marks_nobody(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = burst(live, "ana_lima", BLINK)
    calls = live.analyzer.calls
    assert_refused(scan_with(live, frames, None), "nonce_missing")
    assert_refused(scan_with(live, frames, ""), "nonce_missing")
    assert_refused(scan_with(live, frames, "A" * 32), "nonce_unknown")
    assert_refused(scan_with(live, frames, "not a nonce!"), "nonce_unknown")
    assert_refused(scan_with(live, frames, "x" * 5000), "nonce_unknown")
    assert live.analyzer.calls == calls  # refused before any frame is analysed
    assert marked(live) == []
    assert not (live.logs / "attendance_2026-11-23.csv").exists()


def test_a_nonce_is_used_once(live: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    nonce = challenge(live, monkeypatch, [BLINK])["nonce"]
    assert scan_with(live, burst(live, "ana_lima", BLINK), nonce)["status"] == "success"
    assert_refused(scan_with(live, burst(live, "ben_ito", BLINK), nonce), "nonce_used")
    assert marked(live) == ["ana_lima"]


def test_a_refused_burst_uses_its_nonce_up_too(live: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    """A nonce is one try: a failed burst cannot be followed by another on the same nonce."""
    nonce = challenge(live, monkeypatch, [TURN_LEFT])["nonce"]
    assert_refused(scan_with(live, burst(live, "ana_lima"), nonce), "action_missing:turn_left")
    assert_refused(scan_with(live, burst(live, "ana_lima", TURN_LEFT), nonce), "nonce_used")
    assert marked(live) == []


def test_an_expired_nonce_marks_nobody(live: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    nonce = challenge(live, monkeypatch, [BLINK])["nonce"]
    live.clock.advance(seconds=20)
    assert_refused(scan_with(live, burst(live, "ana_lima", BLINK), nonce), "nonce_expired")
    assert marked(live) == []


def test_a_nonce_just_in_time_marks(live: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    nonce = challenge(live, monkeypatch, [BLINK])["nonce"]
    live.clock.advance(seconds=19.9)
    assert scan_with(live, burst(live, "ana_lima", BLINK), nonce, wait=False)["status"] == "success"


def test_the_validity_follows_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kit = make_kit(tmp_path, require_liveness="challenge", challenge_seconds=5)
    try:
        body = challenge(kit, monkeypatch, [BLINK])
        assert (body["expires_in"], body["expires_at"]) == (5.0, "2026-11-23T07:55:05+00:00")
        kit.clock.advance(seconds=6)
        assert_refused(
            scan_with(kit, burst(kit, "ana_lima", BLINK), body["nonce"]), "nonce_expired"
        )
    finally:
        kit.services.close()


def test_another_cameras_or_keys_nonce_is_unknown(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    nonce = challenge(live, monkeypatch, [BLINK], camera="door-a")["nonce"]
    frames = burst(live, "ana_lima", BLINK)
    assert_refused(scan_with(live, frames, nonce, camera="door-b"), "nonce_unknown")
    other_key = live.services.keys.add("door-b").key
    response = live.recognize(*frames, key=other_key, camera="door-a", fps="25", nonce=nonce)
    assert_refused(response.get_json(), "nonce_unknown")
    # still unused: its own camera (and key) may use it
    assert scan_with(live, frames, nonce, camera="door-a")["status"] == "success"


def test_expired_challenges_are_purged_as_new_ones_are_issued(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = challenge(live, monkeypatch, [BLINK])["nonce"]
    live.clock.advance(minutes=30)
    challenge(live, monkeypatch, [BLINK])
    assert live.services.store.challenge_count() == 2  # expired, kept a while: "expired"
    assert_refused(scan_with(live, burst(live, "ana_lima", BLINK), old), "nonce_expired")
    live.clock.advance(minutes=31)  # the first expired over an hour ago, the second not
    challenge(live, monkeypatch, [BLINK])
    assert live.services.store.challenge_count() == 2  # the first one is gone
    assert_refused(scan_with(live, burst(live, "ana_lima", BLINK), old), "nonce_unknown")


# --- what the burst must show -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actions", "performed", "reason"),
    [
        ([TURN_LEFT], [BLINK], "action_missing:turn_left"),
        ([TURN_LEFT], [TURN_RIGHT], "action_missing:turn_left"),
        ([TURN_RIGHT], [TURN_LEFT], "action_missing:turn_right"),
        ([BLINK], [], "action_missing:blink"),
        ([BLINK_TWICE], [BLINK], "action_missing:blink_twice"),
        ([TURN_LEFT, BLINK], [TURN_LEFT], "action_missing:blink"),
        ([BLINK, TURN_RIGHT], [BLINK], "action_missing:turn_right"),
        ([TURN_LEFT, BLINK], [BLINK, TURN_LEFT], "actions_out_of_order"),
        ([BLINK, TURN_RIGHT], [TURN_RIGHT, BLINK], "actions_out_of_order"),
    ],
)
def test_a_burst_without_the_actions_in_order_marks_nobody(
    live: Kit,
    monkeypatch: pytest.MonkeyPatch,
    actions: list[str],
    performed: list[str],
    reason: str,
) -> None:
    nonce = challenge(live, monkeypatch, actions)["nonce"]
    assert_refused(scan_with(live, burst(live, "ana_lima", *performed), nonce), reason)
    assert marked(live) == []


@pytest.mark.parametrize(
    ("actions", "performed", "reason"),
    [
        ([TURN_LEFT], [TURN_LEFT, TURN_RIGHT], "action_not_asked:turn_right"),
        ([BLINK, TURN_LEFT], [TURN_RIGHT, BLINK, TURN_LEFT], "action_not_asked:turn_right"),
        ([TURN_LEFT, BLINK], [TURN_LEFT, BLINK, TURN_LEFT], "action_not_asked:turn_left"),
        ([BLINK], [BLINK, BLINK, BLINK], "action_not_asked:blink"),
        ([TURN_RIGHT], [BLINK, BLINK, TURN_RIGHT], "action_not_asked:blink"),
    ],
)
def test_a_burst_with_movements_not_asked_for_marks_nobody(
    live: Kit,
    monkeypatch: pytest.MonkeyPatch,
    actions: list[str],
    performed: list[str],
    reason: str,
) -> None:
    nonce = challenge(live, monkeypatch, actions)["nonce"]
    assert_refused(scan_with(live, burst(live, "ana_lima", *performed), nonce), reason)
    assert marked(live) == []


@pytest.mark.parametrize(
    ("actions", "performed"),
    [
        ([TURN_LEFT], [BLINK, TURN_LEFT]),
        ([BLINK], [BLINK_TWICE]),
        ([TURN_RIGHT, BLINK], [TURN_RIGHT, BLINK_TWICE]),
        ([BLINK_TWICE, TURN_LEFT], [BLINK_TWICE, TURN_LEFT, BLINK]),
    ],
)
def test_one_blink_more_than_asked_is_allowed(
    live: Kit, monkeypatch: pytest.MonkeyPatch, actions: list[str], performed: list[str]
) -> None:
    """People blink on their own: one blink more than the challenge asks still marks."""
    nonce = challenge(live, monkeypatch, actions)["nonce"]
    assert scan_with(live, burst(live, "ana_lima", *performed), nonce)["status"] == "success"


# A clip recorded once: blink, blink, turn left, blink, turn right, blink (short blinks, so that
# the whole clip fits in one burst of 58 frames).
UNIVERSAL = (BLINK, BLINK, TURN_LEFT, BLINK, TURN_RIGHT, BLINK)
SHORT_BLINK = BLINK_EARS[:7]


def test_one_universal_clip_passes_no_challenge(live: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, this clip passed all eight challenges (the actions were looked for as a
    subsequence); now it has movements that no challenge asks for."""
    ears, yaws = moves(*UNIVERSAL, blink=SHORT_BLINK)
    frames = [
        live.probe("ana_lima", seed=i, ear=ear, yaw=yaw)
        for i, (ear, yaw) in enumerate(zip(ears[:-4], yaws[:-4], strict=True))
    ]
    assert len(frames) <= 60
    for n, actions in enumerate(([BLINK], [TURN_LEFT, BLINK], [BLINK, TURN_RIGHT])):
        nonce = challenge(live, monkeypatch, actions, camera=f"door-{n}")["nonce"]
        body = scan_with(live, frames, nonce, camera=f"door-{n}")
        assert body["status"] == "liveness_failed", (actions, body)
        assert body["reason"].startswith("action_not_asked:"), body
    assert marked(live) == []
    faces = [Face(BOX, ear=e, yaw=y) for e, y in zip(ears, yaws, strict=True)]
    seen = rules.events(faces, 25.0)
    assert [e.action for e in seen] == list(UNIVERSAL)
    for actions in rules.CHALLENGES:  # every challenge that can be drawn
        assert rules.check_burst(faces, actions, 25.0) is not None, actions


def test_a_burst_must_start_neutral(live: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    """A head already half turned when the burst starts, which turns on from there; eyes
    closed through the start, then a blink: neither is a neutral start."""
    yaws = [0.22] * 8 + [0.3, 0.4, 0.45, 0.45, 0.4, 0.3, 0.22] + [0.22] * 6
    frames = [live.probe("ana_lima", seed=i, yaw=y) for i, y in enumerate(yaws)]
    nonce = challenge(live, monkeypatch, [TURN_LEFT])["nonce"]
    assert_refused(scan_with(live, frames, nonce), "no_neutral_start")
    ears = [0.1] * 8 + LEAD + BLINK_EARS + TAIL
    frames = [live.probe("ana_lima", seed=i, ear=e) for i, e in enumerate(ears)]
    nonce = challenge(live, monkeypatch, [BLINK])["nonce"]
    assert_refused(scan_with(live, frames, nonce), "no_neutral_start")
    assert marked(live) == []


def test_an_action_right_on_top_of_the_one_before_is_too_soon(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn and a blink cut together with no time to read the next prompt in between."""
    yaws = [0.0] * 8 + TURN_YAWS + [0.0] * 6
    ears = [0.30] * 8 + [0.30] * 3 + [0.28, 0.08, 0.12, 0.29] + [0.30] * 3 + [0.30] * 6
    frames = [
        live.probe("ana_lima", seed=i, ear=e, yaw=y)
        for i, (e, y) in enumerate(zip(ears, yaws, strict=True))
    ]
    nonce = challenge(live, monkeypatch, [TURN_LEFT, BLINK])["nonce"]
    assert_refused(scan_with(live, frames, nonce), "action_too_soon:blink")


def test_the_two_blinks_of_blink_twice_come_close_together(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two blinks 2 s apart (at 20 frames a second) are two single blinks, not blink_twice."""
    ears = LEAD + SHORT_BLINK + [0.30] * 33 + SHORT_BLINK + [0.30] * 2
    frames = [live.probe("ana_lima", seed=i, ear=e) for i, e in enumerate(ears)]
    nonce = challenge(live, monkeypatch, [BLINK_TWICE])["nonce"]
    live.clock.advance(seconds=4)
    body = live.recognize(*frames, camera="door", fps="20", nonce=nonce).get_json()
    assert_refused(body, "action_too_late:blink_twice")


def test_a_burst_sent_the_moment_its_challenge_was_issued_is_refused(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames filmed before the prompt: the blink came before the challenge could be read."""
    nonce = challenge(live, monkeypatch, [BLINK])["nonce"]
    body = scan_with(live, burst(live, "ana_lima", BLINK), nonce, wait=False)
    assert_refused(body, "action_too_soon:blink")


def test_the_frame_rate_must_fit_the_time_since_the_challenge(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 24-frame burst claimed at 8 frames a second lasts 2.9 s: not 1 s after the prompt.
    Under 7 frames a second blinks fall between the frames: refused whatever the time."""
    frames = burst(live, "ana_lima", TURN_LEFT)
    nonce = challenge(live, monkeypatch, [TURN_LEFT])["nonce"]
    live.clock.advance(seconds=1)
    body = live.recognize(*frames, camera="door", fps="8", nonce=nonce).get_json()
    assert_refused(body, "fps_inconsistent")
    nonce = challenge(live, monkeypatch, [TURN_LEFT])["nonce"]
    live.clock.advance(seconds=3)  # filmed at 8 frames a second: it fits
    body = live.recognize(*frames, camera="door", fps="8", nonce=nonce).get_json()
    assert body["status"] == "success", body
    nonce = challenge(live, monkeypatch, [TURN_LEFT], camera="door-2")["nonce"]
    live.clock.advance(seconds=6)
    body = live.recognize(*frames, camera="door-2", fps="5", nonce=nonce).get_json()
    assert_refused(body, "fps_too_low")


def test_the_time_windows_of_the_rules() -> None:
    def at(*pairs: tuple[int, str]) -> list[rules.Event]:
        return [rules.Event(frame, action) for frame, action in pairs]

    # at 25 frames a second: a turn at 0.6 s, a blink 1 s later
    assert rules.check_timing(at((15, TURN_LEFT), (40, BLINK)), [TURN_LEFT, BLINK], 25, 50) is None
    assert rules.check_timing(at((15, TURN_LEFT), (20, BLINK)), [TURN_LEFT, BLINK], 25, 50) == (
        "action_too_soon:blink"
    )
    late = at((15, TURN_LEFT), (15 + 25 * 7, BLINK))
    assert rules.check_timing(late, [TURN_LEFT, BLINK], 25, 200) == "action_too_late:blink"
    assert rules.check_timing(at((3, BLINK)), [BLINK], 25, 20) == "action_too_soon:blink"
    assert rules.check_timing(at((10, BLINK)), [BLINK], 25, 20) is None
    # with the time since the challenge: the blink 9 frames before the end, 0.2 s after it
    assert rules.check_timing(at((10, BLINK)), [BLINK], 25, 20, elapsed_s=0.56) == (
        "action_too_soon:blink"
    )
    assert rules.check_timing(at((10, BLINK)), [BLINK], 25, 20, elapsed_s=1.0) is None
    assert rules.fps_consistent(50, 25.0, 1.0)  # 2 s of frames, 1 s after: the lead allowed
    assert not rules.fps_consistent(50, 10.0, 1.0)
    assert rules.fps_consistent(50, 10.0, None)  # no challenge time: not checked


# --- one challenge per camera, drawn at a bounded rate ------------------------------------------


def test_a_new_challenge_replaces_the_cameras_last_and_keeps_its_actions(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asking again while a challenge is outstanding gives a new nonce for the same actions:
    drawing until an easy challenge comes up draws nothing new."""
    first = challenge(live, monkeypatch, [TURN_LEFT, BLINK, TURN_RIGHT])
    monkeypatch.setattr(scan, "draw_actions", lambda: (BLINK,))  # an easy draw, if any
    asked = [live.get("/liveness/challenge?camera=door").get_json() for _ in range(20)]
    assert {tuple(a["actions"]) for a in asked} == {(TURN_LEFT, BLINK, TURN_RIGHT)}
    frames = burst(live, "ana_lima", TURN_LEFT, BLINK, TURN_RIGHT)
    for old in [first, *asked[:-1]]:  # one outstanding challenge: the last
        assert_refused(scan_with(live, frames, old["nonce"], wait=False), "nonce_replaced")
    assert scan_with(live, frames, asked[-1]["nonce"])["status"] == "success"
    # used: the next one is drawn anew; another camera's challenge is its own
    assert live.get("/liveness/challenge?camera=door").get_json()["actions"] == [BLINK]
    assert live.get("/liveness/challenge?camera=door-2").get_json()["actions"] == [BLINK]
    # expired unused: drawn anew too
    monkeypatch.setattr(scan, "draw_actions", lambda: (TURN_RIGHT,))
    live.clock.advance(seconds=21)
    assert live.get("/liveness/challenge?camera=door").get_json()["actions"] == [TURN_RIGHT]


def test_challenges_are_rate_limited_per_key_and_camera(live: Kit) -> None:
    camera_key = live.services.keys.add("door-1").key
    for _ in range(30):
        assert live.get("/liveness/challenge?camera=door-1", key=camera_key).status_code == 200
        live.clock.advance(seconds=1)
    refused = live.get("/liveness/challenge?camera=door-1", key=camera_key)
    assert refused.status_code == 429
    assert refused.get_json()["status"] == "too_many_requests"
    assert "at most 30 a minute" in refused.get_json()["error"]
    assert refused.headers["Retry-After"] == "30"  # the first of the minute leaves in 30 s
    assert live.get("/liveness/challenge?camera=door-2").status_code == 200  # another camera
    assert live.services.store.challenge_count() == 31
    live.clock.advance(seconds=30)
    assert live.get("/liveness/challenge?camera=door-1", key=camera_key).status_code == 200


def test_liveness_failures_are_counted_per_camera_and_shown_to_the_admin(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    for camera in ("door-a", "door-a", "door-b"):
        nonce = challenge(live, monkeypatch, [TURN_LEFT], camera=camera)["nonce"]
        assert_refused(scan_with(live, burst(live, "ana_lima"), nonce, camera=camera))
    assert_refused(scan_with(live, burst(live, "ana_lima"), None, camera="door-c"))
    nonce = challenge(live, monkeypatch, [BLINK], camera="door-b")["nonce"]
    assert scan_with(live, burst(live, "ana_lima", BLINK), nonce, camera="door-b")["status"] == (
        "success"
    )
    counts = {(f.camera, f.count) for f in live.services.store.liveness_failures(MONDAY, MONDAY)}
    assert counts == {("door-a", 2), ("door-b", 1), ("door-c", 1)}
    sign_in(live)
    page = live.client.get("/admin").get_data(as_text=True)
    row = re.search(r'<tr data-camera="door-a">(.*?)</tr>', page)
    assert row and re.findall(r"<td[^>]*>(\d+)</td>", row[1]) == ["2", "2"]
    live.clock.advance(days=1)
    sign_in(live)
    page = live.client.get("/admin").get_data(as_text=True)
    row = re.search(r'<tr data-camera="door-a">(.*?)</tr>', page)
    assert row and re.findall(r"<td[^>]*>(\d+)</td>", row[1]) == ["0", "2"]  # today, the week


def test_a_still_photo_and_a_single_frame_mark_nobody(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    nonce = challenge(live, monkeypatch, [BLINK])["nonce"]
    still = [live.probe("ana_lima", seed=1)] * 30
    assert_refused(scan_with(live, still, nonce), "action_missing:blink")
    nonce = challenge(live, monkeypatch, [TURN_RIGHT])["nonce"]
    assert_refused(scan_with(live, [live.probe("ana_lima")], nonce), "action_missing:turn_right")
    assert marked(live) == []


def test_a_photo_of_a_turned_head_makes_no_turn(live: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    """Turned from the start: no neutral start, and no turn either."""
    nonce = challenge(live, monkeypatch, [TURN_LEFT])["nonce"]
    turned = [live.probe("ana_lima", seed=i, yaw=0.4) for i in range(30)]
    assert_refused(scan_with(live, turned, nonce), "no_neutral_start")
    assert rules.turns([Face(BOX, ear=0.3, yaw=0.4)] * 30) == []


def test_a_burst_spliced_from_two_students_is_refused(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ana's face at first, Ben's doing the actions: the names change midway."""
    nonce = challenge(live, monkeypatch, [BLINK, TURN_LEFT])["nonce"]
    ana, ben = burst(live, "ana_lima", BLINK, TURN_LEFT), burst(live, "ben_ito", BLINK, TURN_LEFT)
    assert_refused(scan_with(live, ana[:12] + ben[12:], nonce), "face_changed")
    assert marked(live) == []


def test_a_burst_spliced_with_a_stranger_is_refused(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recognised student for a few frames, then a stranger in the same place performing
    the actions (and the reverse): the descriptors before and after the splice differ."""
    ears, yaws = moves(TURN_LEFT, BLINK)
    stranger = [
        live.stranger(seed=7, ear=ear, yaw=yaw) for ear, yaw in zip(ears, yaws, strict=True)
    ]
    ana = burst(live, "ana_lima", TURN_LEFT, BLINK)
    for frames in (ana[:10] + stranger[10:], stranger[:20] + ana[20:]):
        nonce = challenge(live, monkeypatch, [TURN_LEFT, BLINK])["nonce"]
        assert_refused(scan_with(live, frames, nonce), "face_changed")
    assert marked(live) == []


def test_another_face_in_place_of_the_student_is_refused(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The student's face, then another face elsewhere in the frame (the box jumps)."""
    elsewhere = Box(20, 20, 180, 180)  # no overlap with BOX
    ears, yaws = moves(BLINK)
    ana = burst(live, "ana_lima", BLINK)
    other = [
        live.stranger(seed=8, box=elsewhere, ear=ear, yaw=yaw)
        for ear, yaw in zip(ears, yaws, strict=True)
    ]
    nonce = challenge(live, monkeypatch, [BLINK])["nonce"]
    assert_refused(scan_with(live, ana[:8] + other[8:], nonce), "face_changed")


def test_the_same_face_moving_across_the_frame_is_followed(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    ears, yaws = moves(TURN_LEFT, BLINK)
    frames = [
        live.probe(
            "ana_lima",
            seed=i,
            ear=ear,
            yaw=yaw,
            box=Box(BOX.left + 6 * i, BOX.top, BOX.right + 6 * i, BOX.bottom),
        )
        for i, (ear, yaw) in enumerate(zip(ears, yaws, strict=True))
    ]
    nonce = challenge(live, monkeypatch, [TURN_LEFT, BLINK])["nonce"]
    assert scan_with(live, frames, nonce)["status"] == "success"


def test_only_the_student_who_performs_is_marked(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A student doing the challenge beside a photo of another student held up still."""
    held = Box(400, 100, 560, 260)
    ears, yaws = moves(BLINK, TURN_RIGHT)
    frames = [
        live.frame(
            ScriptedFace(near(live.people["ana_lima"], 0.2, i), ear=ear, yaw=yaw),
            ScriptedFace(near(live.people["ben_ito"], 0.2, i), box=held),
            label=f"pair{i}",
        )
        for i, (ear, yaw) in enumerate(zip(ears, yaws, strict=True))
    ]
    nonce = challenge(live, monkeypatch, [BLINK, TURN_RIGHT])["nonce"]
    body = scan_with(live, frames, nonce)
    assert body["status"] == "success", body
    assert [m["name"] for m in body["marks"]] == ["ana_lima"]
    assert marked(live) == ["ana_lima"]


def test_every_frame_is_described_in_challenge_mode(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    described: list[int | None] = []
    analyze = live.analyzer.analyze

    def spy(images: Sequence[bytes], params: Any, describe: int | None = None) -> list[Frame]:
        described.append(describe)
        return analyze(images, params, describe)

    monkeypatch.setattr(live.analyzer, "analyze", spy)
    nonce = challenge(live, monkeypatch, [BLINK])["nonce"]
    scan_with(live, burst(live, "ana_lima", BLINK), nonce)
    assert described == [None]


# --- the one-use rule across servers ------------------------------------------------------------


def race(first: Kit, second: Kit, nonce: str, seed: int) -> list[str]:
    """The same nonce sent to both servers at once, with a burst that follows it: what each
    answered (the reason, or the status)."""
    start = threading.Barrier(2)
    answers: list[str] = []

    def send(kit: Kit) -> None:
        frames = burst(kit, "ben_ito", BLINK, seed=seed)
        start.wait()
        body = kit.recognize(*frames, camera="door", fps="25", nonce=nonce).get_json()
        answers.append(body.get("reason") or body["status"])

    for kit in (first, second):  # the time the burst took
        kit.clock.advance(seconds=1.5)
    threads = [threading.Thread(target=send, args=(kit,)) for kit in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


@pytest.fixture
def two_servers(tmp_path: Path, db_url: str) -> Iterator[tuple[Kit, Kit]]:
    """Two servers of one school (two sets of services and apps): one database (SQLite, and
    PostgreSQL among the real tests), one dataset and data folder, the same scripted faces."""
    base = tmp_path / "school"
    scripted = ScriptedAnalyzer(make_settings(base).max_image_pixels)
    first = make_kit(base, analyzer=scripted, database_url=db_url, require_liveness="challenge")
    second = make_kit(base, analyzer=scripted, database_url=db_url, require_liveness="challenge")
    yield first, second
    second.services.close()
    first.services.close()


def test_a_nonce_from_one_server_is_used_once_on_any(
    two_servers: tuple[Kit, Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = two_servers
    nonce = challenge(first, monkeypatch, [BLINK])["nonce"]
    assert scan_with(second, burst(second, "ana_lima", BLINK), nonce)["status"] == "success"
    assert_refused(scan_with(first, burst(first, "ana_lima", BLINK), nonce), "nonce_used")
    assert_refused(scan_with(second, burst(second, "ana_lima", BLINK), nonce), "nonce_used")


def test_two_servers_racing_for_one_nonce_mark_once(
    two_servers: tuple[Kit, Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = two_servers
    for round_ in range(5):
        nonce = challenge(first, monkeypatch, [BLINK])["nonce"]
        answers = race(first, second, nonce, round_ * 100)
        assert sorted(answers) == ["nonce_used", "success"], answers


# --- display names ------------------------------------------------------------------------------


def test_marks_carry_the_display_name(kit: Kit) -> None:
    assert (
        kit.client.patch(
            "/students/ana_lima", json={"display_name": "Ana Lima"}, headers={"X-API-KEY": API_KEY}
        ).status_code
        == 200
    )
    body = kit.recognize(kit.probe("ana_lima")).get_json()
    assert body["name"] == "ana_lima"  # the original's keys, unchanged
    assert body["marks"][0]["name"] == "ana_lima"
    assert body["marks"][0]["display_name"] == "Ana Lima"
    assert Recognition.from_json(body).marks[0].display_name == "Ana Lima"
    other = kit.recognize(kit.probe("ben_ito")).get_json()
    assert other["marks"][0]["display_name"] == "ben_ito"
    # an older server's answer, read by the client: the name stands in
    assert MarkResult.from_json({"name": "x", "attendance": None}).display_name == "x"


# --- the setting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        ("0", "off"),
        ("", "off"),
        ("off", "off"),
        ("1", "blink"),
        ("blink", "blink"),
        ("Blink", "blink"),
        ("challenge", "challenge"),
        (" CHALLENGE ", "challenge"),
    ],
)
def test_the_liveness_setting(raw: str, mode: str) -> None:
    settings = load_settings({"ATTENDANCE_REQUIRE_LIVENESS": raw}, env_file=None)
    assert settings.require_liveness == mode


def test_a_wrong_liveness_setting_is_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"ATTENDANCE_REQUIRE_LIVENESS": "smile"}, env_file=None)
    assert str(caught.value) == (
        "ATTENDANCE_REQUIRE_LIVENESS: expected 0, 1 (blink), blink or challenge, got 'smile'"
    )
    with pytest.raises(ConfigError, match=r"^ATTENDANCE_CHALLENGE_SECONDS: expected a number"):
        load_settings({"ATTENDANCE_CHALLENGE_SECONDS": "1"}, env_file=None)
    assert load_settings({}, env_file=None).challenge_seconds == 20.0


def test_older_code_passing_a_bool_still_means_blink_or_off(tmp_path: Path) -> None:
    assert make_settings(tmp_path, require_liveness=True).require_liveness == "blink"
    assert make_settings(tmp_path, require_liveness=False).require_liveness == "off"
    with pytest.raises(ConfigError):
        make_settings(tmp_path, require_liveness="sometimes")


# --- the rules, on scripted faces ---------------------------------------------------------------


def faces_with(yaws: Sequence[float | None]) -> list[Face | None]:
    return [None if y is None else Face(BOX, ear=0.3, yaw=y) for y in yaws]


def test_turns_need_a_movement_past_the_threshold() -> None:
    assert [e.action for e in rules.turns(faces_with([0.0] * 5 + TURN_YAWS))] == [TURN_LEFT]
    assert [e.action for e in rules.turns(faces_with([-y for y in TURN_YAWS]))] == [TURN_RIGHT]
    # a one-frame jump of the landmarks (motion blur) is no turn
    assert rules.turns(faces_with([0.04, 0.05, 0.33, 0.05, 0.04, 0.26, 0.02])) == []
    # a head turned from the start (a photo) is no turn, however far
    assert rules.turns(faces_with([0.45] * 20)) == []
    # a small turn (frontal talking) is none either
    assert rules.turns(faces_with([0.0, 0.1, 0.2, 0.22, 0.2, 0.1])) == []
    # out, back, out again: two turns; out and only half back: one
    again = TURN_YAWS + TURN_YAWS
    assert [e.frame for e in rules.turns(faces_with(again))] == [3, 13]
    half = [0.0, 0.2, 0.4, 0.4, 0.2, 0.2, 0.4, 0.4]
    assert len(rules.turns(faces_with(half))) == 1
    # frames without the face are skipped, not a reason to lose the turn
    assert len(rules.turns(faces_with([0.0, None, 0.1, None, 0.3, 0.35, None, 0.3]))) == 1


def test_actions_are_checked_in_order() -> None:
    def seen(*pairs: tuple[int, str]) -> list[rules.Event]:
        return [rules.Event(frame, action) for frame, action in pairs]

    assert rules.check_actions(seen((5, BLINK)), [BLINK]) is None
    assert rules.check_actions(seen((5, BLINK), (9, BLINK)), [BLINK_TWICE]) is None
    assert rules.check_actions(seen((5, BLINK)), [BLINK_TWICE]) == "action_missing:blink_twice"
    events = seen((2, BLINK), (10, TURN_LEFT), (20, BLINK))
    assert rules.check_actions(events, [TURN_LEFT, BLINK]) is None  # people blink anyway
    assert rules.check_actions(events, [BLINK, TURN_LEFT]) is None
    events = seen((2, BLINK), (10, TURN_LEFT))
    assert rules.check_actions(events, [TURN_LEFT, BLINK]) == "actions_out_of_order"
    assert rules.check_actions(events, [TURN_RIGHT, BLINK]) == "action_missing:turn_right"
    assert rules.check_actions([], [BLINK, TURN_LEFT]) == "action_missing:blink"


def test_draw_actions_draws_from_the_challenges() -> None:
    assert rules.draw_actions(lambda options: options[4]) == (TURN_LEFT, TURN_LEFT)
    assert {rules.draw_actions() for _ in range(1000)} == set(rules.CHALLENGES)
    lengths = Counter(len(actions) for actions in rules.CHALLENGES)
    assert lengths == {1: 4, 2: 6, 3: 8}
    assert (TURN_LEFT, TURN_RIGHT, TURN_LEFT) in rules.CHALLENGES
    assert (TURN_RIGHT, BLINK) in rules.CHALLENGES
    # measured and left out: blinks first or in the middle, blink_twice with another action
    assert (BLINK, TURN_LEFT) not in rules.CHALLENGES
    assert (TURN_LEFT, BLINK_TWICE) not in rules.CHALLENGES


def _decision(*faces: tuple[Box, np.ndarray | None, str | None]) -> FrameDecision:
    made = tuple(Face(box, descriptor, ear=0.3, yaw=0.0) for box, descriptor, _ in faces)
    results = tuple(FaceResult(box, name, 0.2, 0.3) for box, _, name in faces)
    return FrameDecision(Frame(640, 480, made), results)


def test_the_face_is_followed_by_overlap_then_name_then_descriptor() -> None:
    ana = identity(1)
    moved = Box(400, 300, 560, 460)
    decisions = [
        _decision((BOX, near(ana, 0.2, 0), "ana")),
        _decision((moved, near(ana, 0.2, 1), "ana")),  # jumped: found by name
        _decision((BOX, near(ana, 0.2, 2), None)),  # jumped back, unnamed: by descriptor
        _decision(),  # lost
        _decision((BOX, near(ana, 0.2, 3), None)),  # by overlap with the last box found
    ]
    target = decisions[0].results[0]
    track = rules.follow(decisions, 0, target)
    assert [f is not None for f in track.faces] == [True, True, True, False, True]
    assert not rules.face_changed(decisions, track, target)
    # followed backward from the frame answered for too
    track = rules.follow(decisions, 4, decisions[4].results[0])
    assert [f is not None for f in track.faces] == [True, True, True, False, True]


def test_one_faces_frames_are_not_a_change_two_faces_are() -> None:
    ana, bob = identity(1), identity(2)
    same = [_decision((BOX, near(ana, 0.25, i), "ana")) for i in range(20)]
    target = same[0].results[0]
    assert not rules.face_changed(same, rules.follow(same, 0, target), target)
    spliced = same[:10] + [_decision((BOX, near(bob, 0.25, i), None)) for i in range(10)]
    assert rules.face_changed(spliced, rules.follow(spliced, 0, target), target)
    # three frames of another face at either end are enough
    for frames in (same[:17] + spliced[17:], spliced[17:] + same[3:]):
        target = frames[5].results[0]
        assert rules.face_changed(frames, rules.follow(frames, 5, target), target)


def test_the_answers_are_as_the_openapi_document_describes(
    live: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    import schemathesis

    from smart_attendance.web.openapi import document

    schema = schemathesis.openapi.from_dict(document())
    answer = live.get("/liveness/challenge?camera=door-2")
    schema["/liveness/challenge"]["GET"].validate_response(answer)
    for _ in range(31):
        answer = live.get("/liveness/challenge?camera=door-3")
    schema["/liveness/challenge"]["GET"].validate_response(answer)
    assert answer.status_code == 429  # the 31st in a minute
    nonce = challenge(live, monkeypatch, [BLINK])["nonce"]
    for frames, sent in ((burst(live, "ana_lima"), nonce), (burst(live, "ana_lima"), nonce)):
        answer = live.recognize(*frames, camera="door", fps="25", nonce=sent)
        schema["/recognize"]["POST"].validate_response(answer)
    nonce = challenge(live, monkeypatch, [BLINK])["nonce"]
    live.clock.advance(seconds=1.5)
    answer = live.recognize(*burst(live, "ana_lima", BLINK), camera="door", fps="25", nonce=nonce)
    assert answer.get_json()["marks"][0]["display_name"] == "ana_lima"
    schema["/recognize"]["POST"].validate_response(answer)
