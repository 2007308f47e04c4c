"""The client's side of the server's liveness challenge, and fitting a burst to the server.

``GET /liveness/challenge?camera=ID`` (camera key in X-API-KEY) answers the server's liveness
mode: ``{"mode": "challenge", "nonce", "actions", "prompts", "expires_in", "expires_at"}``, or
``{"mode": "blink"}`` / ``{"mode": "off"}``; a 404 is an older server, which knows blinks
only. The client shows each action, follows the student's progress on its own frames (blinks
from the eye aspect ratio with ``BlinkDetector``, turns from ``yaw_ratio``), and sends the
frames it recorded as one burst with the nonce to ``POST /recognize`` before the nonce expires.

Directions: ``turn_left`` is the *student's* left. Facing the camera, their left is the
image's right, and ``engine.dlib_engine.yaw_ratio`` grows towards the image's right, so
``turn_left`` is a yaw ratio of at least ``TURN_YAW_RATIO``, ``turn_right`` at most minus it
(in the camera's own frames; the preview's mirroring changes nothing here), each turned from
further back by ``TURN_CHANGE_RATIO``.

``Recording`` keeps a challenge's frames with bounded memory (every other frame dropped when it
holds too many), and ``fit_burst`` picks evenly spaced frames of a burst so that it stays
within the server's limits: ``MAX_BURST_FRAMES`` frames, a pixel budget
(``ATTENDANCE_MAX_REQUEST_PIXELS``, default 100 million) and a body size under
``ATTENDANCE_MAX_UPLOAD_MB`` (default 10 MB); the frame rate sent is the one of the frames
kept.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import requests

from ..recognition.challenge import DOUBLE_BLINK_S, NEUTRAL_S
from ..recognition.challenge import NEUTRAL_YAW as SERVER_NEUTRAL_YAW
from ..recognition.challenge import TURN_CHANGE as SERVER_TURN_CHANGE
from ..recognition.challenge import TURN_YAW as SERVER_TURN_YAW
from ..recognition.liveness import Blink

log = logging.getLogger(__name__)

# How far the head must turn for a turn action: a yaw ratio (0 facing the camera, 1 with the
# nose level with an outer eye corner) of at least TURN_YAW_RATIO towards the side asked, and
# at least TURN_CHANGE_RATIO more than the least yaw since the step began. The server's
# thresholds (recognition/challenge.py, calibrated on the development clips) plus a margin:
# the client moves to the next step only once the server, which smooths the yaw over three
# frames, will see the turn too.
TURN_YAW_RATIO = SERVER_TURN_YAW + 0.05
TURN_CHANGE_RATIO = SERVER_TURN_CHANGE + 0.03
# A turn starts where the head was last within this fraction of the threshold (for trimming).
TURN_CALM_FRACTION = 0.5
# The server wants a neutral start (the head facing the camera, eyes open): the burst starts
# at the last such frame before the first action (within the recording), NEUTRAL_S before it;
# a margin under the server's yaw limit, and eyes at least this open (share of the open level).
NEUTRAL_YAW = SERVER_NEUTRAL_YAW - 0.05
NEUTRAL_OPEN = 0.8
NEUTRAL_FRAMES_KEPT = 300  # frames remembered before the first action (the recording keeps 3 s)
MAX_BURST_FRAMES = 60  # the server's limit (attendance/scan.py MAX_BURST)
MAX_BURST_PIXELS = 100_000_000  # the server's default ATTENDANCE_MAX_REQUEST_PIXELS
MAX_BURST_BYTES = 8_000_000  # under the server's default ATTENDANCE_MAX_UPLOAD_MB (10)
JPEG_QUALITY = 88
SEND_MARGIN_S = 3.0  # the burst is queued this long before the nonce expires, at the latest
TAIL_S = 0.3  # frames kept after the last action (the eyes reopening, the head still)
UNKNOWN_ACTION_S = 3.0  # an action this client cannot follow: recorded for this long
ACTIONS = frozenset({"blink", "blink_twice", "turn_left", "turn_right"})

CHALLENGE = "challenge"
BLINK = "blink"
OFF = "off"
# Asking failed: no connection, a wrong key or URL, or an answer that is not the server's.
OFFLINE = "offline"
DENIED = "denied"
ERROR = "error"


@dataclass(frozen=True)
class Challenge:
    nonce: str
    actions: tuple[str, ...]
    prompts: tuple[str, ...]
    expires_in_s: float

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Challenge | None:
        nonce, actions = body.get("nonce"), body.get("actions")
        if not isinstance(nonce, str) or not nonce or not isinstance(actions, list) or not actions:
            return None
        prompts = body.get("prompts")
        texts = [str(p) for p in prompts] if isinstance(prompts, list) else []
        texts += [""] * (len(actions) - len(texts))
        try:
            expires = float(body.get("expires_in") or 20.0)
        except (TypeError, ValueError):
            expires = 20.0
        return cls(nonce, tuple(str(a) for a in actions), tuple(texts[: len(actions)]), expires)


@dataclass(frozen=True)
class Asked:
    """What ``GET /liveness/challenge`` told: the server's mode, its challenge, or why not."""

    mode: str  # challenge | blink | off | offline | denied | error
    challenge: Challenge | None = None
    detail: str = ""


def ask(
    session: requests.Session, server: str, key: str, camera: str, timeout_s: float = 5.0
) -> Asked:
    """Ask the server for a challenge (or learn that it wants none)."""
    url = server.rstrip("/") + "/liveness/challenge"
    try:
        response = session.get(
            url, params={"camera": camera}, headers={"X-API-KEY": key}, timeout=timeout_s
        )
    except requests.RequestException as exc:
        return Asked(OFFLINE, detail=type(exc).__name__)
    code = response.status_code
    if code == 404:  # a server from before challenges: blinks only
        return Asked(BLINK, detail="no challenge route")
    if code == 401:
        return Asked(DENIED, detail="key refused")
    try:
        body = response.json()
    except ValueError:
        body = None
    if code != 200 or not isinstance(body, dict):
        return Asked(ERROR, detail=f"HTTP {code}")
    mode = body.get("mode")
    if mode == CHALLENGE:
        challenge = Challenge.from_json(body)
        return Asked(CHALLENGE, challenge) if challenge else Asked(ERROR, detail="bad challenge")
    if mode in (BLINK, OFF):
        return Asked(str(mode))
    return Asked(ERROR, detail=f"unknown mode {mode!r}")


class Asker:
    """Asks in a background thread, one question at a time, so the preview never waits."""

    def __init__(self, ask_now: Callable[[], Asked]) -> None:
        self._ask = ask_now
        self._answer: Asked | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.busy:
            return
        self._thread = threading.Thread(target=self._run, name="challenge", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            answer = self._ask()
        except Exception:  # a bug must not end asking for good
            log.exception("asking for a liveness challenge failed")
            answer = Asked(ERROR, detail="client error")
        with self._lock:
            self._answer = answer

    def take(self) -> Asked | None:
        """The answer that arrived since the last call, if any."""
        with self._lock:
            answer, self._answer = self._answer, None
        return answer

    def wait(self, timeout_s: float = 5.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)


@dataclass
class Follower:
    """A challenge's progress, frame by frame: which action the student is on, and where in
    the frames each action started (to trim the burst)."""

    challenge: Challenge
    fps: float
    started_t: float
    deadline_t: float  # queue the burst before this (scanner time)
    step: int = 0
    done_t: float | None = None
    first_start: int | None = None  # frame index where the first action began
    neutral: dict[int, bool] = field(default_factory=dict)  # before it: facing, eyes open
    _blinks: int = 0
    _step_t: float = 0.0
    _calm_index: int | None = None
    _least: float | None = None  # the least yaw towards the side asked, in this step
    _seen: list[int] = field(default_factory=list)  # the blinks' frames, in this step
    _first_blink_start: int = 0

    def burst_start(self, pre_frames: int) -> int | None:
        """Where the burst should start, once the first action has begun: ``pre_frames``
        before it, or earlier where the student last faced the camera with open eyes for
        ``NEUTRAL_S`` (the server's neutral start), if that is still in view."""
        if self.first_start is None:
            return None
        target = self.first_start - pre_frames
        span = max(3, round(NEUTRAL_S * self.fps))
        for start in range(target, min(self.neutral, default=target) - 1, -1):
            if all(self.neutral.get(i, False) for i in range(start, start + span)):
                return start
        return target

    def __post_init__(self) -> None:
        self._step_t = self.started_t

    @property
    def done(self) -> bool:
        return self.step >= len(self.challenge.actions)

    @property
    def action(self) -> str:
        actions = self.challenge.actions
        return actions[min(self.step, len(actions) - 1)]

    def update(
        self,
        index: int,
        t: float,
        blink: Blink | None,
        yaw: float | None,
        openness: float | None = None,
    ) -> bool:
        """Follow one frame (``openness``: the eyes' share of their open level); True once
        every action has been seen."""
        if self.done:
            return True
        action = self.action
        start: int | None = None
        if self.first_start is None:
            opened = openness is None or openness >= NEUTRAL_OPEN
            self.neutral[index] = yaw is not None and abs(yaw) <= NEUTRAL_YAW and opened
            if len(self.neutral) > NEUTRAL_FRAMES_KEPT:
                del self.neutral[min(self.neutral)]
        if action in ("blink", "blink_twice"):
            if blink is not None:
                if self._seen and (blink.frame - self._seen[-1]) / self.fps > DOUBLE_BLINK_S:
                    self._blinks, self._seen = 0, []  # too long after: a new first blink
                self._blinks += 1
                self._seen.append(blink.frame)
                if self._blinks >= (2 if action == "blink_twice" else 1):
                    start = blink.start if self._blinks == 1 else self._first_blink_start
                elif self._blinks == 1:
                    self._first_blink_start = blink.start
        elif action in ("turn_left", "turn_right"):
            if yaw is not None:
                toward = yaw if action == "turn_left" else -yaw
                if toward < TURN_CALM_FRACTION * TURN_YAW_RATIO:
                    self._calm_index = index
                self._least = toward if self._least is None else min(self._least, toward)
                if toward >= TURN_YAW_RATIO and toward - self._least >= TURN_CHANGE_RATIO:
                    start = self._calm_index if self._calm_index is not None else index
        elif t - self._step_t >= UNKNOWN_ACTION_S:
            start = index
        if start is None:
            return False
        if self.first_start is None:
            self.first_start = start
        self.step += 1
        self._blinks, self._seen, self._calm_index, self._least = 0, [], None, None
        self._step_t = t
        if self.done:
            self.done_t = t
        return self.done


class Recording:
    """A challenge's frames ``(index, frame, capture time)``: until the first action is seen,
    only the last ``roll`` frames; at most ``2 * MAX_BURST_FRAMES`` frames, every other one
    dropped (``stride`` doubled) when there would be more."""

    def __init__(self, roll: int, keep: int = 2 * MAX_BURST_FRAMES) -> None:
        self.roll = max(1, roll)
        self.keep = max(2, keep)
        self.items: list[tuple[int, np.ndarray, Any]] = []
        self.stride = 1
        self.base: int | None = None
        self.fixed = False

    def add(self, item: tuple[int, np.ndarray, Any]) -> None:
        index = item[0]
        if self.base is None:
            self.base = index
        if (index - self.base) % self.stride:
            return
        self.items.append(item)
        if not self.fixed:
            while self.items and index - self.items[0][0] >= self.roll:
                self.items.pop(0)
        if len(self.items) > self.keep:
            self.stride *= 2
            self.items = [i for i in self.items if (i[0] - self.base) % self.stride == 0]

    def fix_front(self, first: int) -> None:
        """Keep everything from frame ``first`` on (the first action began there)."""
        if not self.fixed:
            self.fixed = True
            self.items = [i for i in self.items if i[0] >= first]


def fit_burst(
    frames: Sequence[np.ndarray],
    fps: float,
    max_frames: int = MAX_BURST_FRAMES,
    max_pixels: int = MAX_BURST_PIXELS,
    max_bytes: int = MAX_BURST_BYTES,
) -> tuple[list[bytes], float, int]:
    """Evenly spaced frames of a burst, as JPEG, within the server's limits: at most
    ``max_frames`` frames, ``max_pixels`` pixels and ``max_bytes`` bytes in all; with the
    frame rate of the frames kept and the step between them."""
    if not frames:
        return [], fps, 1
    h, w = frames[0].shape[:2]
    cap = max(1, min(max_frames, max_pixels // max(1, h * w)))
    step = max(1, math.ceil(len(frames) / cap))
    encoded: dict[int, bytes] = {}
    while True:
        chosen = list(range(0, len(frames), step))
        for i in chosen:
            if i not in encoded:
                ok, data = cv2.imencode(".jpg", frames[i], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                encoded[i] = data.tobytes() if ok else b""
        jpegs = [encoded[i] for i in chosen if encoded[i]]
        if sum(map(len, jpegs)) <= max_bytes or len(chosen) <= 2:
            return jpegs, fps / step, step
        step += 1
