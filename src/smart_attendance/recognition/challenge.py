"""The liveness challenge (``ATTENDANCE_REQUIRE_LIVENESS=challenge``) as pure functions over a
burst's decisions: is it the same face throughout, and does that face perform the actions the
server drew, in order?

* ``draw_actions``: one or two random actions (``secrets``): one of blink, blink twice, turn
  left, turn right; or a turn and a blink in either order (never two turns, nor two kinds of
  blink: every pair is quick to perform and to tell apart).
* ``follow``: the recognised face from frame to frame of the burst, from the frame answered for
  both ways: by box overlap with the previous frame's box, else by its name, else by a
  descriptor close to its own.
* ``face_changed``: whether the burst changes face: a frame of the track named as another
  student; the burst's descriptors before some frame far, on average, from those after it
  (a burst spliced from two people); or, where the face was lost, another face of its size in
  its place.
* ``turns``: head turns, from ``Face.yaw`` (``engine.dlib_engine.yaw_ratio``, positive towards
  the image's right). ``turn_left`` is the student's *own* left: facing the camera, their nose
  moves to the image's right (positive yaw) in the camera's unmirrored image, the one the
  client sends (a preview shown to the student may be mirrored; the frames must not be).
  A turn is the yaw, smoothed over three frames (median), reaching ``TURN_YAW`` (about 25
  degrees) at least ``TURN_CHANGE`` past the least turned frame before it: a head that is
  already turned (a photo of a turned face) makes no turn. On ../shared/faces/video the
  annotated turn to the subject's left (talking_head_d3.mp4, 251-284, about 25-35 degrees)
  reaches +0.39 smoothed (+0.41 raw); the clips of people talking to the camera stay within
  -0.23..+0.24 smoothed (single frames jump to +0.33 in motion blur: the median drops them).
* ``events``: blinks (``liveness.blinks_in_faces``) and turns, by frame.
* ``check_actions``: the actions found in order (``action_missing:ACTION``,
  ``actions_out_of_order``); ``verify``: all of it for one face.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..models import BLINK, BLINK_TWICE, TURN_LEFT, TURN_RIGHT, Box, Face, FaceResult
from .decisions import FrameDecision
from .liveness import blinks_in_faces

# Every challenge that may be drawn: one action, or a turn and a blink in either order.
CHALLENGES: tuple[tuple[str, ...], ...] = (
    (BLINK,),
    (BLINK_TWICE,),
    (TURN_LEFT,),
    (TURN_RIGHT,),
    (TURN_LEFT, BLINK),
    (TURN_RIGHT, BLINK),
    (BLINK, TURN_LEFT),
    (BLINK, TURN_RIGHT),
)
# What each action is made of, in order.
STEPS: dict[str, tuple[str, ...]] = {
    BLINK: (BLINK,),
    BLINK_TWICE: (BLINK, BLINK),
    TURN_LEFT: (TURN_LEFT,),
    TURN_RIGHT: (TURN_RIGHT,),
}

FACE_CHANGED = "face_changed"
OUT_OF_ORDER = "actions_out_of_order"
MISSING = "action_missing:"  # + the action

# Following the face: boxes of one face in consecutive frames overlap at least this much.
TRACK_IOU = 0.3
# One face: a frame's descriptor this close to the face's own re-finds it after losing it.
SAME_FACE_DISTANCE = 0.47
# Spliced bursts: the mean descriptor of the frames before a split and of those after it,
# each side at least MIN_SIDE frames. Measured on ../shared/faces/video in windows of 50 frames:
# one person's two sides are at most 0.44 apart (talking_head_d3.mp4: frowns, looking down,
# turning), two people's at least 0.50 (but for one pair of look-alikes that dlib's descriptors
# hardly tell apart, 0.44, who would be confused by the matcher itself).
FACE_CHANGE_DISTANCE = 0.47
MIN_SIDE = 3
# A face of at least this fraction of the followed face's area, where that face was lost, has
# taken its place.
REPLACED_AREA = 0.5
# Head turns (yaw ratio, 0 facing the camera): reached, and turned by at least so much.
TURN_YAW = 0.28
TURN_CHANGE = 0.20
TURN_REARM = 0.15  # after a turn, the yaw comes back under this before another one counts


def draw_actions(
    choice: Callable[[Sequence[tuple[str, ...]]], tuple[str, ...]] | None = None,
) -> tuple[str, ...]:
    """A random challenge from ``CHALLENGES`` (``secrets.choice`` unless told)."""
    return (choice or secrets.choice)(CHALLENGES)


@dataclass(frozen=True)
class Event:
    """An action seen at a frame of the burst: ``blink`` (the frame where the eyes were most
    closed), ``turn_left`` or ``turn_right`` (the frame where the turn was reached)."""

    frame: int
    action: str


@dataclass(frozen=True)
class Track:
    """One face followed through a burst: its ``Face`` and ``FaceResult`` in each frame, None
    where it was not found."""

    faces: tuple[Face | None, ...]
    results: tuple[FaceResult | None, ...]


def _area(face: Face | FaceResult) -> int:
    return face.box.width * face.box.height


def follow(decisions: Sequence[FrameDecision], best: int, target: FaceResult) -> Track:
    """``target`` (a face of frame ``best``) in every frame of the burst, from ``best`` forward
    and backward: the face of the next frame whose box overlaps the last one found (at least
    ``TRACK_IOU``, the largest overlap); else the face named as ``target``; else a face whose
    descriptor is within ``SAME_FACE_DISTANCE`` of the target's."""
    n = len(decisions)
    faces: list[Face | None] = [None] * n
    results: list[FaceResult | None] = [None] * n
    start = decisions[best]
    pairs = list(zip(start.frame.faces, start.results, strict=True))
    mine = [p for p in pairs if p[1] is target] or [p for p in pairs if p[1] == target]
    if not mine:
        return Track(tuple(faces), tuple(results))
    faces[best], results[best] = mine[0]
    own = None if mine[0][0].descriptor is None else np.asarray(mine[0][0].descriptor)
    for order in (range(best + 1, n), range(best - 1, -1, -1)):
        reference = target.box
        for i in order:
            found = _find(decisions[i], reference, target.name, own)
            if found is not None:
                faces[i], results[i] = found
                reference = found[1].box
    return Track(tuple(faces), tuple(results))


def _find(
    decision: FrameDecision, reference: Box, name: str | None, own: np.ndarray | None
) -> tuple[Face, FaceResult] | None:
    pairs = list(zip(decision.frame.faces, decision.results, strict=True))
    if not pairs:
        return None
    face, result = max(pairs, key=lambda p: p[1].box.iou(reference))
    if result.box.iou(reference) >= TRACK_IOU:
        return face, result
    if name:
        for face, result in pairs:
            if result.name == name:
                return face, result
    if own is not None:
        near = [
            (float(np.linalg.norm(np.asarray(face.descriptor) - own)), face, result)
            for face, result in pairs
            if face.descriptor is not None
        ]
        near = [item for item in near if item[0] <= SAME_FACE_DISTANCE]
        if near:
            _, face, result = min(near, key=lambda item: item[0])
            return face, result
    return None


def face_changed(decisions: Sequence[FrameDecision], track: Track, target: FaceResult) -> bool:
    """Whether the burst changes face (see the module's docstring)."""
    if target.name and any(
        r is not None and r.name is not None and r.name != target.name for r in track.results
    ):
        return True
    vectors = [np.asarray(f.descriptor) for f in track.faces if f and f.descriptor is not None]
    if _split_distance(vectors) > FACE_CHANGE_DISTANCE:
        return True
    size = _area(target)
    for decision, found in zip(decisions, track.results, strict=True):
        if found is None and any(
            r.reason is None and _area(r) >= REPLACED_AREA * size for r in decision.results
        ):
            return True
    return False


def _split_distance(vectors: Sequence[np.ndarray]) -> float:
    """The largest distance between the mean descriptor of the frames before a split and that
    of the frames after it, each side at least ``MIN_SIDE`` frames (0.0 for a short burst)."""
    n = len(vectors)
    if n < 2 * MIN_SIDE:
        return 0.0
    stacked = np.stack(vectors).astype(np.float64)
    before = np.cumsum(stacked, axis=0)
    total = before[-1]
    best = 0.0
    for k in range(MIN_SIDE, n - MIN_SIDE + 1):
        head = before[k - 1] / k
        tail = (total - before[k - 1]) / (n - k)
        best = max(best, float(np.linalg.norm(head - tail)))
    return best


def _smoothed_yaw(faces: Sequence[Face | None]) -> list[float | None]:
    """Each frame's yaw as the median of it and its neighbours (a one-frame jump of the
    landmarks, in motion blur, is no turn); None where the face or its yaw is missing."""
    raw = [None if f is None else f.yaw for f in faces]
    out: list[float | None] = []
    for i, value in enumerate(raw):
        if value is None:
            out.append(None)
            continue
        around = [v for v in raw[max(0, i - 1) : i + 2] if v is not None]
        out.append(float(np.median(around)))
    return out


def turns(faces: Sequence[Face | None]) -> list[Event]:
    """The head turns of one face followed through a burst (``faces``: that face in each frame,
    None where it was not found): ``turn_left`` where the smoothed yaw reaches ``TURN_YAW``
    at least ``TURN_CHANGE`` above the lowest yaw before it (the student's left: the image's
    right), ``turn_right`` the same way below. After a turn, another one the same way counts
    once the head came back under ``TURN_REARM``."""
    found: list[Event] = []
    for action, sign in ((TURN_LEFT, 1.0), (TURN_RIGHT, -1.0)):
        least: float | None = None
        armed = True
        for i, value in enumerate(_smoothed_yaw(faces)):
            if value is None:
                continue
            toward = sign * value  # how far turned this way
            if not armed:
                if toward < TURN_REARM:
                    armed, least = True, toward
                continue
            if toward >= TURN_YAW and least is not None and toward - least >= TURN_CHANGE:
                found.append(Event(i, action))
                armed = False
                continue
            least = toward if least is None else min(least, toward)
    return sorted(found, key=lambda e: (e.frame, e.action))


def events(faces: Sequence[Face | None], fps: float) -> list[Event]:
    """Every blink and head turn of one face followed through a burst, by frame."""
    blinks = [Event(b.frame, BLINK) for b in blinks_in_faces(faces, fps)]
    return sorted(blinks + turns(faces), key=lambda e: (e.frame, e.action))


def check_actions(seen: Sequence[Event], actions: Sequence[str]) -> str | None:
    """None when ``seen`` has the ``actions`` in order (more may happen around them: people
    blink); else ``action_missing:ACTION`` (the first action with too few of its movements
    anywhere in the burst) or ``actions_out_of_order``."""
    needed = Counter(step for action in actions for step in STEPS.get(action, (action,)))
    have = Counter(e.action for e in seen)
    for action in actions:
        if any(have[step] < needed[step] for step in STEPS.get(action, (action,))):
            return MISSING + action
    after = -1
    for action in actions:
        for step in STEPS.get(action, (action,)):
            nxt = next((e for e in seen if e.action == step and e.frame > after), None)
            if nxt is None:
                return OUT_OF_ORDER
            after = nxt.frame
    return None


def verify(
    decisions: Sequence[FrameDecision],
    best: int,
    target: FaceResult,
    actions: Sequence[str],
    fps: float,
) -> str | None:
    """None when the face ``target`` (of frame ``best``) stays the same face through the burst
    and performs ``actions`` in order; else why not: ``face_changed``,
    ``action_missing:ACTION`` or ``actions_out_of_order``."""
    track = follow(decisions, best, target)
    if face_changed(decisions, track, target):
        return FACE_CHANGED
    return check_actions(events(track.faces, fps), actions)
