"""The door screen: its layout, its words, the challenge's prompts and arrows, and the client's
side of the challenge (following actions, fitting a burst to the server's limits, asking).

In process, without dlib: frames are drawn arrays, the server is a transport answering
``GET /liveness/challenge`` as the contract says.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import pytest
import requests
from requests.adapters import HTTPAdapter

from conftest import TURN_THEN_BLINK, json_response
from smart_attendance.client import challenge as ch
from smart_attendance.client import hud, words
from smart_attendance.models import Box, MarkResult, Recognition
from smart_attendance.recognition.liveness import Blink

SIZES = [(640, 480), (1280, 720), (320, 240), (800, 600)]


# --- layout ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("w", "h"), SIZES)
def test_cards_and_bars_never_cover_the_corner_brackets(w: int, h: int) -> None:
    lay = hud.layout(w, h)
    for arm in lay.brackets():
        for name, rect in (("card", lay.card), ("status", lay.status), ("guide", lay.guidance)):
            assert not rect.overlaps(arm), (name, rect, arm)
    assert not lay.card.overlaps(lay.status) and not lay.card.overlaps(lay.guidance)
    assert lay.card.x2 - lay.card.x1 > 0.5 * w  # wide enough for a name


@pytest.mark.parametrize(("w", "h"), [(640, 480), (1280, 720)])
def test_the_card_leaves_the_brackets_drawn(w: int, h: int) -> None:
    frame = np.full((h, w, 3), 90, np.uint8)
    state = hud.HudState(t=1.0, result={"title": "x" * 80, "detail": "y" * 90, "kind": "late"})
    state.result_until = 2.0
    plain = hud.draw(frame, hud.HudState(t=1.0))
    with_card = hud.draw(frame, state)
    lay = hud.layout(w, h)
    for arm in lay.brackets():
        region = (slice(max(0, arm.y1), arm.y2), slice(max(0, arm.x1), arm.x2))
        assert np.array_equal(plain[region], with_card[region])
    # The long title is cut to fit inside the card: nothing drawn right of it.
    right = with_card[lay.card.y1 : lay.card.y2, lay.card.x2 + 2 : lay.scan.x2 - lay.arm - 2]
    assert np.array_equal(
        right, plain[lay.card.y1 : lay.card.y2, lay.card.x2 + 2 : lay.scan.x2 - lay.arm - 2]
    )


def _guidance_bar(out: np.ndarray) -> np.ndarray:
    lay = hud.layout(out.shape[1], out.shape[0])
    return out[lay.guidance.y1 : lay.guidance.y2]


def test_blink_to_scan_is_not_shown_while_a_result_card_is_up() -> None:
    frame = np.full((480, 640, 3), 128, np.uint8)
    state = hud.HudState(t=1.0, guidance=words.say("blink_to_scan"))
    shown = _guidance_bar(hud.draw(frame, state))
    assert not np.array_equal(shown, frame[: shown.shape[0]])  # drawn without a card
    state.result = {"title": "Greg Hall", "detail": "Present", "kind": "present"}
    state.result_until = 4.0
    assert np.array_equal(_guidance_bar(hud.draw(frame, state)), _guidance_bar(frame))
    state.t = 4.5  # the card's time is over: guidance again
    assert not np.array_equal(_guidance_bar(hud.draw(frame, state)), _guidance_bar(frame))


def test_text_is_large_enough_at_640x480() -> None:
    lay = hud.layout(640, 480)
    assert lay.unit == 1.0
    frame = np.zeros((480, 640, 3), np.uint8)
    out = hud.draw(frame, hud.HudState(t=0, guidance="Come closer"))
    rows = np.where((_guidance_bar(out) > 200).all(axis=-1).any(axis=1))[0]
    assert rows.max() - rows.min() >= 16  # capital letters at least 16 px high


# --- words ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "title", "detail"),
    [
        (Recognition("unknown", reason="unknown_face"), "Not recognised", "Ask your teacher"),
        (
            Recognition("unknown", reason="no_face"),
            "No face seen",
            "Look at the camera and try again",
        ),
        (
            Recognition("unknown", reason="face_too_small"),
            "Too far away",
            "Come closer and try again",
        ),
        (Recognition("unknown", reason="something_new"), "Not recognised", "Ask your teacher"),
        (
            Recognition("liveness_failed", reason="no blink seen in the burst"),
            "Please blink",
            "No blink was seen: try again",
        ),
        (
            Recognition("liveness_failed", reason="nonce_expired"),
            "Too slow",
            "Try again, a little faster",
        ),
        (
            Recognition("liveness_failed", reason="nonce_used"),
            "Try again",
            "That check was used already",
        ),
        (
            Recognition("liveness_failed", reason="nonce_missing"),
            "Try again",
            "The check did not start",
        ),
        (
            Recognition("liveness_failed", reason="nonce_unknown"),
            "Try again",
            "The check was not recognised",
        ),
        (
            Recognition("liveness_failed", reason="face_changed"),
            "One person only",
            "Stay alone in front of the camera",
        ),
        (
            Recognition("liveness_failed", reason="action_missing:turn_left"),
            "Try again",
            "Your head did not turn to your left",
        ),
        (
            Recognition("liveness_failed", reason="action_missing:blink_twice"),
            "Try again",
            "Two blinks were not seen",
        ),
        (
            Recognition("liveness_failed", reason="actions_out_of_order"),
            "Try again",
            "Do the steps in the order shown",
        ),
        (
            Recognition("refused", reason="captured_at_out_of_window"),
            "Refused",
            "too old, or the clock is wrong",
        ),
        (
            Recognition("badge_revoked", reason="forbidden"),
            "Badge refused",
            "not allowed for this camera",
        ),
    ],
)
def test_cards_speak_plain_words(answer: Recognition, title: str, detail: str) -> None:
    card = hud.result_card(answer)
    assert (card["title"], card["detail"]) == (title, detail)
    assert "_" not in card["title"] + card["detail"]


def test_students_are_shown_by_their_display_name() -> None:
    answer = Recognition("success", marks=(MarkResult("greg_hall", "Late", True, "09:05:00"),))
    assert hud.result_card(answer)["title"] == "Greg Hall"  # the folder name, readable
    named = hud.result_card(answer, {"greg_hall": "Gregory Hall-Smith"})
    assert named == {"title": "Gregory Hall-Smith", "detail": "Late", "kind": "late"}
    again = Recognition("success", marks=(MarkResult("ana_lima", "Present", False, "08:50:00"),))
    assert hud.result_card(again)["detail"] == "Present (already marked)"


@dataclass(frozen=True)
class MarkWithDisplayName:  # a MarkResult that carries the server's display name
    name: str
    attendance: str | None
    new: bool
    display_name: str


def test_a_display_name_on_the_mark_itself_is_used() -> None:
    mark: Any = MarkWithDisplayName("li_na", "Present", True, "Li Na")
    assert hud.result_card(Recognition("success", marks=(mark,)))["title"] == "Li Na"


@pytest.mark.parametrize(
    ("folder", "shown"),
    [
        ("greg_hall", "Greg Hall"),
        ("anne-marie_o'neil", "Anne-marie O'neil"),
        ("zoë", "Zoë"),
        ("x", "X"),
    ],
)
def test_folder_names_made_readable(folder: str, shown: str) -> None:
    assert words.display_name(folder) == shown


def test_the_uploader_learns_display_names_from_answers() -> None:
    from smart_attendance.client.uploader import Uploader

    uploader = Uploader.__new__(Uploader)
    uploader.display_names = {}
    uploader._learn_names(
        {
            "status": "success",
            "name": "greg_hall",
            "display_name": "Greg Hall",
            "marks": [{"name": "ana_lima", "display_name": "Ana Lima"}, {"name": "x"}],
        }
    )
    assert uploader.display_names == {"ana_lima": "Ana Lima", "greg_hall": "Greg Hall"}


# --- the challenge on screen ----------------------------------------------------------------------


def _cyan_columns(out: np.ndarray, box: Box) -> tuple[int, int]:
    """Cyan arrow pixels left and right of the face, at its height."""
    band = out[box.top : box.bottom]
    cyan = (np.abs(band.astype(int) - hud.CYAN).sum(axis=-1) < 40).sum(axis=0)
    return int(cyan[: box.left - 2].sum()), int(cyan[box.right + 30 :].sum())


@pytest.mark.parametrize("mirror", [False, True])
def test_the_arrow_points_the_way_the_student_turns(mirror: bool) -> None:
    frame = np.full((480, 640, 3), 100, np.uint8)
    box = Box(260, 120, 380, 260)
    for action, side in (("turn_left", "left"), ("turn_right", "right")):
        prompt = hud.Prompt(action, words.action_words(action), 1, 2, 10, 17)
        out = hud.draw(frame, hud.HudState(t=0, box=box, prompt=prompt, mirror=mirror))
        left, right = _cyan_columns(out, box)
        assert (left > 200 and right < 20) if side == "left" else (right > 200 and left < 20)
        assert hud.arrow_direction(action) == (-1 if side == "left" else 1)


def test_the_preview_is_mirrored_but_not_its_text() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, :320] = 200  # the camera sees something bright on its left
    plain = hud.draw(frame, hud.HudState(t=0, guidance=""))
    mirrored = hud.draw(frame, hud.HudState(t=0, guidance="", mirror=True))
    mid = slice(200, 260)
    assert plain[mid, 100:200].mean() > 150 and plain[mid, 440:540].mean() < 50
    assert mirrored[mid, 100:200].mean() < 50 and mirrored[mid, 440:540].mean() > 150
    # Text reads the same way in both (on a plain frame, which a flip leaves as it is).
    even = np.full((480, 640, 3), 90, np.uint8)
    state = hud.HudState(t=0, result={"title": "Greg Hall", "detail": "Present"}, result_until=1)
    assert np.array_equal(hud.draw(even, state), hud.draw(even, replace(state, mirror=True)))


def test_a_challenge_prompt_replaces_blink_to_scan() -> None:
    frame = np.full((480, 640, 3), 100, np.uint8)
    prompt = hud.Prompt("blink", "Blink", 2, 2, 3, 17)
    state = hud.HudState(t=0, guidance=words.say("blink_to_scan"), prompt=prompt)
    out = hud.draw(frame, state)
    assert np.array_equal(_guidance_bar(out), _guidance_bar(frame))  # no "Blink to scan"
    card = hud.layout(640, 480).card
    assert (
        np.abs(out[card.y1 : card.y2, card.x1 : card.x2].astype(int) - hud.CYAN).sum(-1) < 40
    ).any()
    state.guidance = words.say("closer")  # a problem is still said
    assert not np.array_equal(_guidance_bar(hud.draw(frame, state)), _guidance_bar(frame))


# --- following the actions ------------------------------------------------------------------------


def _blink(at: int) -> Blink:
    return Blink(at, at / 25, at - 2, at + 2, 0.4)


def _follower(*actions: str) -> ch.Follower:
    return ch.Follower(ch.Challenge("n", actions, ("",) * len(actions), 20.0), 25.0, 0.0, 17.0)


def test_a_turn_to_the_students_left_is_towards_the_images_right() -> None:
    follow = _follower("turn_left", "blink")
    assert not follow.update(10, 0.4, None, -0.6)  # turned to their right: not this action
    assert follow.step == 0
    assert not follow.update(11, 0.44, None, 0.05)
    assert not follow.update(12, 0.48, None, ch.TURN_YAW_RATIO + 0.01)
    assert follow.step == 1 and follow.first_start == 11  # the turn began where it was calm
    assert not follow.update(13, 0.52, _blink(13), 0.0) or follow.done
    assert follow.done and follow.done_t == 0.52


def test_blink_twice_needs_two_blinks_and_turn_right_a_negative_yaw() -> None:
    follow = _follower("blink_twice", "turn_right")
    assert not follow.update(5, 0.2, _blink(5), 0.0)
    assert follow.step == 0
    assert not follow.update(15, 0.6, _blink(15), 0.0)
    assert follow.step == 1 and follow.first_start == 3
    assert not follow.update(16, 0.64, None, ch.TURN_YAW_RATIO + 0.2)
    assert follow.update(17, 0.68, None, -ch.TURN_YAW_RATIO)


def test_an_action_unknown_here_is_recorded_for_a_while() -> None:
    follow = _follower("smile")
    assert not follow.update(1, 0.1, None, 0.0)
    assert follow.update(90, ch.UNKNOWN_ACTION_S + 0.1, None, 0.0)


# --- the burst within the server's limits ---------------------------------------------------------


def _frames(n: int, w: int = 64, h: int = 48) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_a_long_burst_is_subsampled_evenly_to_60_frames() -> None:
    jpegs, fps, step = ch.fit_burst(_frames(150), 30.0)
    assert len(jpegs) <= ch.MAX_BURST_FRAMES and step == 3 and fps == 10.0
    assert len(jpegs) == 50
    assert ch.fit_burst(_frames(40), 25.0)[1:] == (25.0, 1)


def test_a_burst_keeps_within_the_pixel_and_byte_budgets() -> None:
    frames = _frames(40)
    jpegs, fps, step = ch.fit_burst(frames, 20.0, max_pixels=64 * 48 * 10)
    assert len(jpegs) <= 10 and fps == 20.0 / step
    one = len(cv2.imencode(".jpg", frames[0])[1].tobytes())
    jpegs, _, _ = ch.fit_burst(frames, 20.0, max_bytes=one * 12)
    assert sum(map(len, jpegs)) <= one * 12 * 1.1 and len(jpegs) <= 14


def test_a_recording_rolls_until_the_first_action_then_halves_its_rate() -> None:
    rec = ch.Recording(roll=10, keep=20)
    for i in range(30):
        rec.add((i, np.zeros((2, 2, 3), np.uint8), None))
    assert [i for i, _, _ in rec.items] == list(range(20, 30))
    rec.fix_front(22)
    for i in range(30, 60):
        rec.add((i, np.zeros((2, 2, 3), np.uint8), None))
    kept = [i for i, _, _ in rec.items]
    assert rec.stride == 2 and len(kept) <= 20 and kept[0] >= 22
    assert all(b - a == 2 for a, b in itertools.pairwise(kept))


# --- asking the server ------------------------------------------------------------------------


class Answers(HTTPAdapter):
    """Answers GET /liveness/challenge with ``status`` and ``body``; ``down``: no connection."""

    def __init__(self, status: int = 200, body: Any = None, down: bool = False) -> None:
        super().__init__()
        self.status, self.body, self.down = status, body, down
        self.seen: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        self.seen.append(request)
        if self.down:
            raise requests.ConnectionError("refused", request=request)
        return json_response(request, self.status, self.body)


def _ask(adapter: Answers) -> ch.Asked:
    session = requests.Session()
    session.mount("http://", adapter)
    return ch.ask(session, "http://attendance.test/", "the-key", "door 1")


CHALLENGE = TURN_THEN_BLINK


def test_asking_for_a_challenge() -> None:
    adapter = Answers(200, CHALLENGE)
    asked = _ask(adapter)
    assert asked == ch.Asked(
        "challenge",
        ch.Challenge(
            "n-0123", ("turn_left", "blink"), ("Turn your head to your left", "Blink"), 20.0
        ),
    )
    [request] = adapter.seen
    assert request.url == "http://attendance.test/liveness/challenge?camera=door+1"
    assert request.headers["X-API-KEY"] == "the-key"


@pytest.mark.parametrize(
    ("adapter", "mode"),
    [
        (Answers(200, {"mode": "blink"}), "blink"),
        (Answers(200, {"mode": "off"}), "off"),
        (Answers(404, {"status": "not_found"}), "blink"),  # a server from before challenges
        (Answers(401, {"status": "denied"}), "denied"),
        (Answers(503, {"status": "starting"}), "error"),
        (Answers(200, {"mode": "challenge", "actions": ["blink"]}), "error"),  # no nonce
        (Answers(down=True), "offline"),
    ],
)
def test_what_the_server_may_answer(adapter: Answers, mode: str) -> None:
    asked = _ask(adapter)
    assert asked.mode == mode and asked.challenge is None
