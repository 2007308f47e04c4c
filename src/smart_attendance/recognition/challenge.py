"""The liveness challenge (``ATTENDANCE_REQUIRE_LIVENESS=challenge``) as pure functions over a
burst's decisions: is it the same face throughout, and does that face perform the actions the
server drew, those and no others, in order, at a human pace after the prompt?

* ``draw_actions``: a random challenge (``secrets``) from ``CHALLENGES``: one action among
  blink, blink twice, turn left and turn right; two or three turns, each either way; or a turn
  then a blink (the combinations real people pass, measured). Look up, look down and open the
  mouth were measured on the annotated clips and are not offered (docs/liveness.md: the
  landmarks do not tell them from talking).
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
* ``check_actions``: the movements seen are the challenge's and no others, in order: a turn
  that was not asked for, or more than ``EXTRA_BLINKS`` blink more than asked (people blink
  on their own), fails (``action_not_asked:ACTION``), as do ``action_missing:ACTION`` and
  ``actions_out_of_order``.
* ``check_start``: the burst starts neutral: the face found, facing the camera, eyes open
  (``no_neutral_start``).
* ``check_timing``: each action in a window after the one before it (``MIN_GAP_S`` ..
  ``MAX_GAP_S``: a person reads the next prompt before acting on it; the two blinks of
  ``blink_twice`` within ``DOUBLE_BLINK_S``), the first one after a neutral lead and, given the
  time since the challenge was issued, not before the prompt could be read
  (``action_too_soon:ACTION``, ``action_too_late:ACTION``); and the claimed frame rate
  consistent with that time: a burst cannot last longer than its challenge has existed
  (``fps_inconsistent``), nor be sent under ``MIN_FPS`` (``fps_too_low``: blinks, asked for
  or not, would fall between the frames).
* ``verify``: all of it for one face.
"""

from __future__ import annotations

import itertools
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..models import BLINK, BLINK_TWICE, TURN_LEFT, TURN_RIGHT, Box, Face, FaceResult
from .decisions import FrameDecision
from .liveness import OPEN_BEFORE, blinks_in_faces

# What each action is made of, in order.
STEPS: dict[str, tuple[str, ...]] = {
    BLINK: (BLINK,),
    BLINK_TWICE: (BLINK, BLINK),
    TURN_LEFT: (TURN_LEFT,),
    TURN_RIGHT: (TURN_RIGHT,),
}
KINDS = (BLINK, BLINK_TWICE, TURN_LEFT, TURN_RIGHT)  # the actions a challenge draws from
TURNS = (TURN_LEFT, TURN_RIGHT)
MAX_ACTIONS = 3

# Every challenge that may be drawn (18): one action; two or three turns, each either way; or a
# turn then a blink. Measured and left out (bench/bench_challenge.py, docs/liveness.md): a
# blink first or in the middle of several actions, blink_twice with another action, a blink
# after two turns. A burst of several actions lasts 3-6 s and the camera sends at most 60
# frames, 7.5-15 a second, where blinks of one or two frames (a third of the annotated ones)
# fall between the frames: real people passed those challenges 0-75% of the time.
CHALLENGES: tuple[tuple[str, ...], ...] = (
    tuple((action,) for action in KINDS)
    + tuple(
        turns for n in range(2, MAX_ACTIONS + 1) for turns in itertools.product(TURNS, repeat=n)
    )
    + tuple((turn, BLINK) for turn in TURNS)
)

FACE_CHANGED = "face_changed"
OUT_OF_ORDER = "actions_out_of_order"
MISSING = "action_missing:"  # + the action
NOT_ASKED = "action_not_asked:"  # + the movement seen but not asked for (blink, turn_left...)
TOO_SOON = "action_too_soon:"  # + the action
TOO_LATE = "action_too_late:"  # + the action
NO_NEUTRAL_START = "no_neutral_start"
FPS_INCONSISTENT = "fps_inconsistent"
FPS_TOO_LOW = "fps_too_low"

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
# Movements not asked for: people blink on their own, so one blink more than asked is allowed
# (about one blink in three seconds at rest); any other movement not asked for fails.
EXTRA_BLINKS = 1
# A neutral start: over the burst's first NEUTRAL_S, the face is found, faces the camera (the
# smoothed yaw within NEUTRAL_YAW: people talking to the camera stay within 0.2 in 97-100% of
# their frames, a turn reaches TURN_YAW) and has its eyes open in some frame (at least
# OPEN_BEFORE of the burst's open level, as before a blink).
NEUTRAL_S = 0.3
NEUTRAL_YAW = 0.20
# Time windows, between the frames where actions are seen (a blink's most closed frame, the
# frame where a turn reaches TURN_YAW): the first at least NEUTRAL_S into the burst, each next
# one MIN_GAP_S to MAX_GAP_S after the one before (the client shows the next prompt once it
# has seen an action: reading it and acting takes a person a few tenths of a second at
# least), the two blinks of blink_twice at most DOUBLE_BLINK_S apart.
MIN_GAP_S = 0.3
MAX_GAP_S = 6.0
DOUBLE_BLINK_S = 1.5
# With the time since the challenge was issued: the first action is at least MIN_REACTION_S
# after it (counting back from the burst's last frame, received at once), and the burst, at
# its claimed frame rate, lasts at most FPS_TOLERANCE times that time plus LEAD_ALLOWANCE_S
# (the camera sends 0.6 s of frames from before the prompt; its frame rate is measured).
MIN_REACTION_S = 0.3
LEAD_ALLOWANCE_S = 1.0
FPS_TOLERANCE = 1.25
# Below this frame rate blinks fall between the frames, and so do movements not asked for (a
# clip of six actions sent at 3.75 frames a second looks like its two turns alone). The camera
# sends a challenge of three turns at 7.5 frames a second.
MIN_FPS = 7.0


def draw_actions(
    choice: Callable[[Sequence[tuple[str, ...]]], tuple[str, ...]] | None = None,
) -> tuple[str, ...]:
    """A random challenge from ``CHALLENGES``, each as likely (``secrets.choice`` unless
    told): a given one 1 time in 18."""
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


def _steps(actions: Sequence[str]) -> list[str]:
    return [step for action in actions for step in STEPS.get(action, (action,))]


def matches(seen: Sequence[Event], actions: Sequence[str]) -> tuple[str | None, list[list[Event]]]:
    """The ways the movements ``seen`` are the steps of ``actions`` (each a list of the events
    taken for the steps, in order; at most ``EXTRA_BLINKS`` blinks left over), or why there is
    none: ``action_missing:ACTION`` (the first action with too few of its movements anywhere
    in the burst), ``action_not_asked:MOVEMENT`` (a turn not asked for, or too many blinks) or
    ``actions_out_of_order``."""
    steps = _steps(actions)
    need, have = Counter(steps), Counter(e.action for e in seen)
    for action in actions:
        if any(have[step] < need[step] for step in STEPS.get(action, (action,))):
            return MISSING + action, []
    for kind in sorted(have):
        if have[kind] - need[kind] > (EXTRA_BLINKS if kind == BLINK else 0):
            return NOT_ASKED + kind, []
    blinks = [i for i, e in enumerate(seen) if e.action == BLINK]
    found = []
    for dropped in itertools.combinations(blinks, have[BLINK] - need[BLINK]):
        kept = [e for i, e in enumerate(seen) if i not in dropped]
        if [e.action for e in kept] == steps:
            found.append(kept)
    return (None, found) if found else (OUT_OF_ORDER, [])


def check_actions(seen: Sequence[Event], actions: Sequence[str]) -> str | None:
    """None when ``seen`` is the ``actions``' movements in order, and no others but at most
    ``EXTRA_BLINKS`` blink; else why not (``matches``)."""
    return matches(seen, actions)[0]


def check_timing(
    matched: Sequence[Event],
    actions: Sequence[str],
    fps: float,
    frames: int,
    elapsed_s: float | None = None,
) -> str | None:
    """None when every action of ``matched`` (the events taken for the steps of ``actions``,
    in a burst of ``frames`` frames at ``fps``) is inside its window: the first at least
    ``NEUTRAL_S`` into the burst and at most ``MAX_GAP_S``, and, given ``elapsed_s`` (the
    time from the challenge's issue to the burst's arrival), at least ``MIN_REACTION_S``
    after the issue; each next one ``MIN_GAP_S`` to ``MAX_GAP_S`` after the end of the one
    before; the blinks of ``blink_twice`` at most ``DOUBLE_BLINK_S`` apart. Else
    ``action_too_soon:ACTION`` or ``action_too_late:ACTION``."""
    at = 0
    before: float | None = None  # when the previous action ended (seconds into the burst)
    for action in actions:
        count = len(STEPS.get(action, (action,)))
        mine, at = matched[at : at + count], at + count
        start = mine[0].frame / fps
        if before is None:
            soon = start < NEUTRAL_S
            if elapsed_s is not None:  # how long after the issue, at the latest
                soon = soon or elapsed_s - (frames - 1 - mine[0].frame) / fps < MIN_REACTION_S
            late = start > MAX_GAP_S
        else:
            soon, late = start - before < MIN_GAP_S, start - before > MAX_GAP_S
        late = late or any(
            (b.frame - a.frame) / fps > DOUBLE_BLINK_S for a, b in itertools.pairwise(mine)
        )
        if soon:
            return TOO_SOON + action
        if late:
            return TOO_LATE + action
        before = mine[-1].frame / fps
    return None


def check_start(faces: Sequence[Face | None], fps: float) -> str | None:
    """None when the burst starts neutral: over its first ``NEUTRAL_S`` (at least 3 frames)
    the face is found, faces the camera (smoothed yaw within ``NEUTRAL_YAW``) and has its eyes
    open in some frame (``OPEN_BEFORE`` of its open level over the burst, the 80th percentile
    of its eye ratio); else ``no_neutral_start``."""
    first = max(3, round(NEUTRAL_S * fps))
    yaws = [y for y in _smoothed_yaw(faces)[:first] if y is not None]
    if not yaws or max(abs(y) for y in yaws) > NEUTRAL_YAW:
        return NO_NEUTRAL_START
    ears = [f.ear for f in faces if f is not None and f.ear is not None]
    opening = [f.ear for f in faces[:first] if f is not None and f.ear is not None]
    if ears and opening:
        level = float(np.percentile(np.asarray(ears), 80))
        if max(opening) < OPEN_BEFORE * level:
            return NO_NEUTRAL_START
    return None


def fps_consistent(frames: int, fps: float, elapsed_s: float | None) -> bool:
    """Whether a burst of ``frames`` at ``fps`` fits in the time since its challenge was
    issued (``elapsed_s``; True when unknown): at most ``FPS_TOLERANCE`` times it plus
    ``LEAD_ALLOWANCE_S``."""
    if elapsed_s is None:
        return True
    return (frames - 1) / fps <= FPS_TOLERANCE * max(0.0, elapsed_s) + LEAD_ALLOWANCE_S


def check_burst(
    faces: Sequence[Face | None],
    actions: Sequence[str],
    fps: float,
    elapsed_s: float | None = None,
) -> str | None:
    """None when one face followed through a burst (``faces``) at ``MIN_FPS`` or more starts
    neutral and performs ``actions`` and no others, in order, each in its time window; else why
    not."""
    if fps < MIN_FPS:
        return FPS_TOO_LOW
    why = check_start(faces, fps)
    if why:
        return why
    why, found = matches(events(faces, fps), actions)
    if why:
        return why
    timing = [check_timing(m, actions, fps, len(faces), elapsed_s) for m in found]
    return None if None in timing else timing[0]


def verify(
    decisions: Sequence[FrameDecision],
    best: int,
    target: FaceResult,
    actions: Sequence[str],
    fps: float,
    elapsed_s: float | None = None,
) -> str | None:
    """None when the face ``target`` (of frame ``best``) stays the same face through the burst,
    starts neutral and performs ``actions`` and no others, in order, each in its window; else
    why not: ``fps_inconsistent`` (given ``elapsed_s``, the time since the challenge was
    issued), ``face_changed``, ``fps_too_low``, ``no_neutral_start``, ``action_missing:ACTION``,
    ``action_not_asked:MOVEMENT``, ``actions_out_of_order``, ``action_too_soon:ACTION`` or
    ``action_too_late:ACTION``."""
    if not fps_consistent(len(decisions), fps, elapsed_s):
        return FPS_INCONSISTENT
    track = follow(decisions, best, target)
    if face_changed(decisions, track, target):
        return FACE_CHANGED
    return check_burst(track.faces, actions, fps, elapsed_s)
