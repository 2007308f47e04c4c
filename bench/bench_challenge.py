"""The liveness challenge on real faces: how often a real person doing what is asked passes, and
how often a burst without it, a still photo, a spliced burst, or an attack passes anyway.

Windows are cut from the annotated clips of ../shared/faces/video (BLINKS.tsv; ``unsure`` events
count neither way: a window that overlaps one is left out) and checked with the server's own
verification (``recognition.challenge.verify`` on the decisions ``RecognitionService.look``
makes in challenge mode: every frame JPEG-encoded as a camera sends it, detected, aligned and
described by the real engine, matched against a gallery of the clips' people enrolled from
frames of their clip), with the time since the challenge as a camera would have it (the
burst's length, less the 0.6 s it keeps from before the prompt, plus a reaction and the
upload):

* ``blink``: a window around each annotated blink (0.6 s before, 0.4 s after);
* ``blink_twice``: around two annotated blinks less than 1.5 s apart;
* ``turn_left``: the annotated turn to the subject's left (talking_head_d3.mp4, 251-284) from
  frames where she faces the camera with her eyes open (190-200: just before it she looks down
  with her lids over her eyes), at 30 and 15 frames a second; ``turn_right``: the same windows
  mirrored (a mirror image turns the other way; the clips have no annotated turn to the right).

Challenges of two and three actions: no clip has one person doing them, so they are composed
from the recorded action segments above (each person's eye ratio scaled to one open level;
``turn_right`` is the turn with its yaw negated), at a human pace: each segment keeps 0.4-1.2 s
of its own frames before its action (the reaction to the prompt) and 0.3-0.5 s after, then
the camera's rules (at most 120 frames kept, every other one dropped beyond; at most 60 sent,
evenly spaced). These are checked with the rules that follow the face
(``challenge.check_burst``), every challenge that can be drawn, 10 compositions each.

False passes: every 45-frame window (1.5-1.8 s) of the clips without the action (hard cases
included: squints, gazes, smiles, talking), a still photo moved and re-lit (every challenge),
and windows spliced from two people (the first half of one clip's, the second of another's).

Attacks:

* the universal clip: blink, blink, turn left, blink, turn right, blink, composed as above,
  against every challenge (before: it passed all eight);
* a burst composed from recorded action segments in the drawn order but off the time windows:
  cut tight (the next action 0.1-0.25 s after the one before), cut loose (7-8 s between two
  actions), started on the action (no neutral lead), and a whole burst sent 0.2 s after its
  challenge was issued (recorded before);
* drawing until an easy challenge: a camera key asking ``GET /liveness/challenge`` 100 times in
  a row for a plain ``blink`` (a real app on a SQLite file, 100 keys).

The work is checked: the gallery must hold each clip's person and the photo's, and every face
named in a clip (or in the still photo's frames) must be given that clip's person (or the
photo's): a wrong name stops the benchmark. Detection at the server's default 320 px.

``--cache FILE`` keeps the engine's analysis of the clips (pickled) for the next run;
``--no-engine`` runs the draws alone.

    .venv/bin/python bench/bench_challenge.py
"""

from __future__ import annotations

import argparse
import csv
import itertools
import pickle
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from common import FACES, ROOT, WrongAnswer, machine, require, run, table
from smart_attendance.models import (
    BLINK,
    BLINK_TWICE,
    TURN_LEFT,
    TURN_RIGHT,
    DetectParams,
    Face,
    Frame,
)
from smart_attendance.recognition import challenge
from smart_attendance.recognition.decisions import (
    FrameDecision,
    best_frame,
    decide_frame,
    unknown_reason,
)
from smart_attendance.recognition.matcher import Gallery, Matcher

VIDEO = FACES / "video"
JPEG_QUALITY = 88  # as the camera client sends its frames
LEAD_S, TAIL_S = 0.6, 0.4  # around an annotated blink (the camera keeps 0.6 s before)
PAIR_GAP_S = 1.5
WINDOW = 45  # frames of a window without the action
STEP = 15
MAX_BURST = 60  # the server's limit (attendance/scan.py)
KEEP = 2 * MAX_BURST  # the camera keeps at most this many frames (client/challenge.py)
CAMERA_LEAD_S = 0.6  # frames the camera keeps from before the prompt (client --pre-s)
TURN = ("talking_head_d3.mp4", 251, 284)  # head turned to the subject's left
TURN_STARTS, TURN_ENDS = (190, 195, 200), (290, 300)  # facing the camera, eyes open
TURN_BACK = 288  # facing the camera again after the turn
TURN_REACHED = 253  # where the turn reaches TURN_YAW (smoothed)
TURN_LIDS_UP = 256  # until here she looks down with her lids lowered (BLINKS.tsv)
COMPOSE_FPS = 30.0
COMPOSITIONS = 10  # per challenge
UNIVERSAL = (BLINK, BLINK, TURN_LEFT, BLINK, TURN_RIGHT, BLINK)


def _candidates() -> list[tuple[str, ...]]:
    """Every combination of up to three actions without the same one twice in a row nor two
    blink actions in a row (three blinks either way): 40."""
    out = []
    for n in range(1, 4):
        for actions in itertools.product((BLINK, BLINK_TWICE, TURN_LEFT, TURN_RIGHT), repeat=n):
            pairs = list(itertools.pairwise(actions))
            if any(a == b or {a, b} <= {BLINK, BLINK_TWICE} for a, b in pairs):
                continue
            out.append(actions)
    return out


LEFT_OUT = [a for a in _candidates() if a not in challenge.CHALLENGES]
STEP_KIND = {BLINK: BLINK, BLINK_TWICE: BLINK, TURN_LEFT: TURN_LEFT, TURN_RIGHT: TURN_LEFT}
DRAWS = 100  # GET /liveness/challenge in a row, per attacker
ATTACKERS = 100


@dataclass(frozen=True)
class Event:
    clip: str
    start: int
    end: int
    kind: str
    unsure: bool


@dataclass
class Clip:
    name: str
    fps: float
    decisions: list[FrameDecision]


def read_events() -> list[Event]:
    with open(require(VIDEO / "BLINKS.tsv"), newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [
        Event(
            r["clip"],
            int(r["start_frame"]),
            int(r["end_frame"]),
            r["event"],
            "unsure" in (r.get("note") or ""),
        )
        for r in rows
    ]


def read_frames(path: Path, mirror: bool = False) -> tuple[float, list[bytes]]:
    """The clip's frames as JPEGs (mirrored left to right if asked), and its frame rate."""
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if mirror:
            image = np.ascontiguousarray(image[:, ::-1])
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        frames.append(data.tobytes())
    capture.release()
    return fps, frames


def still_photo(photo: Path, count: int = 45) -> list[bytes]:
    """A photo held to the camera: moved, scaled and re-lit a little from frame to frame."""
    image = cv2.resize(cv2.imread(str(photo)), (400, 400))
    frames = []
    for i in range(count):
        angle, scale = 2.0 * np.sin(i / 7), 1.0 + 0.03 * np.sin(i / 5)
        matrix = cv2.getRotationMatrix2D((200, 200), angle, scale)
        matrix[:, 2] += (40 + 6 * np.sin(i / 4), 40 + 4 * np.cos(i / 6))
        canvas = cv2.warpAffine(image, matrix, (480, 480), borderValue=(90, 90, 90))
        canvas = cv2.convertScaleAbs(canvas, alpha=1.0 + 0.05 * np.sin(i / 5), beta=0)
        frames.append(cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1])
    return [f.tobytes() for f in frames]


def elapsed_for(frames: int, fps: float, reaction_s: float = 0.8, upload_s: float = 0.2) -> float:
    """The time from a challenge's issue to a burst's arrival, for a camera that kept
    ``CAMERA_LEAD_S`` from before the prompt and a person who began ``reaction_s`` after it."""
    return (frames - 1) / fps - CAMERA_LEAD_S + reaction_s + upload_s


def outcome(
    decisions: Sequence[FrameDecision],
    fps: float,
    actions: Sequence[str],
    elapsed_s: float | None = None,
) -> str:
    """What the server answers a burst of ``decisions`` for the challenge ``actions``: "pass",
    or the reason (``RecognitionService.look`` in challenge mode: any recognised face that
    passes is marked, else the largest one's reason)."""
    if elapsed_s is None:
        elapsed_s = elapsed_for(len(decisions), fps)
    best = best_frame(decisions)
    chosen = decisions[best]
    known = sorted(chosen.known, key=lambda r: -(r.box.width * r.box.height))
    if not known:
        return "unknown:" + unknown_reason(chosen)
    reasons = [challenge.verify(decisions, best, face, actions, fps, elapsed_s) for face in known]
    return "pass" if any(r is None for r in reasons) else str(reasons[0])


class Results:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Counter[str]] = {}

    def add(self, group: str, what: str, answer: str) -> None:
        self.rows.setdefault((group, what), Counter())[answer] += 1

    def totals(self, group: str) -> tuple[int, int]:
        counts = [c for (g, _), c in self.rows.items() if g == group]
        return sum(sum(c.values()) for c in counts), sum(c["pass"] for c in counts)

    def table(self, group: str) -> str:
        rows = []
        for (g, what), counts in self.rows.items():
            if g != group:
                continue
            total, passed = sum(counts.values()), counts["pass"]
            refused = ", ".join(f"{k} {v}" for k, v in counts.most_common(4) if k != "pass")
            rate = f"{100 * passed / total:.0f}%" if total else "-"
            rows.append((what, total, passed, rate, refused or "-"))
        total, passed = self.totals(group)
        rows.append(("**all**", total, passed, f"{100 * passed / max(1, total):.1f}%", ""))
        return table(("challenge / windows", "bursts", "passed", "rate", "refused as"), rows)


def window(clip: Clip, first: int, last: int) -> tuple[list[FrameDecision], float]:
    """Frames ``first``..``last`` of a clip, every other one dropped while over 60 frames (as
    the camera client fits a burst to the server's limit), and the frame rate sent."""
    decisions = clip.decisions[max(0, first) : last + 1]
    fps = clip.fps
    while len(decisions) > MAX_BURST:
        decisions, fps = decisions[::2], fps / 2
    return decisions, fps


# --- composing bursts from recorded action segments --------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One recorded action: the followed face in each frame, its frame rate, and the frames
    (from the segment's start) where its action is seen."""

    faces: tuple[Face | None, ...]
    fps: float
    at: tuple[int, ...]


def face_track(clip: Clip) -> list[Face | None]:
    """The largest recognised face of every frame (these clips have one person), its eye ratio
    scaled to an open level of 0.3 (one person's eyes, whoever's segment it is)."""
    faces: list[Face | None] = []
    for d in clip.decisions:
        found = [f for f in d.frame.faces if f.ear is not None]
        faces.append(max(found, key=lambda f: f.box.width * f.box.height) if found else None)
    ears = [f.ear for f in faces if f is not None and f.ear is not None]
    level = float(np.percentile(ears, 80)) if ears else 0.3
    return [None if f is None else replace(f, ear=(f.ear or 0.0) * 0.3 / level) for f in faces]


def resample(faces: Sequence[Face | None], fps: float, to_fps: float) -> list[Face | None]:
    """A segment at another frame rate (the nearest frame of each new instant)."""
    count = int(len(faces) * to_fps / fps)
    return [faces[min(len(faces) - 1, round(i * fps / to_fps))] for i in range(count)]


def camera_fit(faces: Sequence[Face | None], fps: float) -> tuple[list[Face | None], float]:
    """What the camera sends of a recording: at most ``KEEP`` frames kept (every other one
    dropped beyond), then at most ``MAX_BURST`` evenly spaced (client/challenge.py)."""
    kept, rate = list(faces), fps
    while len(kept) > KEEP:
        kept, rate = kept[::2], rate / 2
    step = max(1, -(-len(kept) // MAX_BURST))
    return kept[::step], rate / step


class Composer:
    """Bursts of recorded action segments, at a human pace or off it."""

    def __init__(self, clips: dict[str, Clip], events: list[Event], seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.tracks = {name: face_track(clip) for name, clip in clips.items()}
        self.fps = {name: clip.fps for name, clip in clips.items()}
        sure = [e for e in events if not e.unsure]
        unsure = [e for e in events if e.unsure]

        def clean(clip: str, first: int, last: int) -> bool:
            return first >= 0 and not any(
                e.clip == clip and e.start <= last and e.end >= first for e in unsure
            )

        blinks = [e for e in sure if e.kind == "blink" and e.clip in clips and e.clip != TURN[0]]
        self.blinks = [e for e in blinks if clean(e.clip, e.start - 40, e.end + 20)]
        self.pairs = [
            (a, b)
            for a, b in itertools.pairwise(blinks)
            if a.clip == b.clip
            and (b.end - a.start) / self.fps[a.clip] <= PAIR_GAP_S
            and clean(a.clip, a.start - 40, b.end + 20)
        ]

    def _cut(self, clip: str, first: int, last: int, at: Sequence[int], sign: float) -> Segment:
        faces = self.tracks[clip][first : last + 1]
        if clip == TURN[0]:  # her lids lowered before the turn, taken as open (see above)
            faces = [
                f if f is None or i >= TURN_LIDS_UP else replace(f, ear=max(f.ear or 0.0, 0.3))
                for i, f in enumerate(faces, start=first)
            ]
        if sign < 0:
            faces = [None if f is None else replace(f, yaw=-(f.yaw or 0.0)) for f in faces]
        fps = self.fps[clip]
        scale = COMPOSE_FPS / fps
        return Segment(
            tuple(resample(faces, fps, COMPOSE_FPS)),
            COMPOSE_FPS,
            tuple(round((a - first) * scale) for a in at),
        )

    def segment(self, action: str, lead_s: float, tail_s: float, whole: bool = True) -> Segment:
        """One recorded ``action`` with ``lead_s`` of its own frames before it (the reaction
        to the prompt) and ``tail_s`` after it (a turn: after the head is back, or with
        ``whole`` False, after the frame where it is reached)."""
        rng = self.rng
        if action in (TURN_LEFT, TURN_RIGHT):
            fps = self.fps[TURN[0]]
            first = TURN[1] - round(lead_s * fps)
            last = (TURN_BACK if whole else TURN_REACHED) + round(tail_s * fps)
            sign = 1.0 if action == TURN_LEFT else -1.0
            return self._cut(TURN[0], first, last, (TURN[1],), sign)
        if action == BLINK_TWICE:
            a, b = rng.choice(self.pairs)
            fps = self.fps[a.clip]
            first, last = a.start - round(lead_s * fps), b.end + round(tail_s * fps)
            return self._cut(a.clip, first, last, (a.start, b.start), 1.0)
        e = rng.choice(self.blinks)
        fps = self.fps[e.clip]
        first, last = e.start - round(lead_s * fps), e.end + round(tail_s * fps)
        return self._cut(e.clip, max(0, first), last, (e.start,), 1.0)

    def compose(
        self,
        actions: Sequence[str],
        lead: tuple[float, float] = (0.4, 1.2),
        tail: tuple[float, float] = (0.3, 0.5),
        first_lead_s: float | None = None,
        whole: bool = True,
        pause_s: float = 0.0,
    ) -> list[Face | None]:
        """The segments of ``actions`` one after the other: each with a reaction of ``lead``
        seconds before its action and ``tail`` after (drawn at random), the first with
        ``first_lead_s`` (the camera's 0.6 s) when given; ``pause_s`` of a frozen frame (the
        segment's first) before each action but the first."""
        faces: list[Face | None] = []
        for n, action in enumerate(actions):
            lead_s = self.rng.uniform(*lead)
            if n == 0 and first_lead_s is not None:
                lead_s = first_lead_s
            part = self.segment(action, lead_s, self.rng.uniform(*tail), whole).faces
            if n and pause_s:
                faces += [part[0]] * round(pause_s * COMPOSE_FPS)
            faces += part
        return faces


def check(
    faces: Sequence[Face | None], actions: Sequence[str], elapsed: float | None = None
) -> str:
    """The rules on a composed burst as the camera sends it ("pass" or the reason)."""
    sent, fps = camera_fit(faces, COMPOSE_FPS)
    if elapsed is None:
        elapsed = elapsed_for(len(sent), fps)
    if not challenge.fps_consistent(len(sent), fps, elapsed):
        return challenge.FPS_INCONSISTENT
    return challenge.check_burst(sent, actions, fps, elapsed) or "pass"


# --- the engine's analysis of the clips ---------------------------------------------------------


def analyse_clips(cache: Path | None) -> tuple[dict[str, Clip], list[FrameDecision]]:
    """Every clip (and d3 mirrored) and the still photo, analysed by the real engine and
    decided against the gallery (from ``cache`` when it holds them)."""
    from smart_attendance.engine.local import InProcessAnalyzer

    if cache is not None and cache.exists():
        with cache.open("rb") as handle:
            stored = pickle.load(handle)  # noqa: S301 (the file this bench wrote)
        return stored["clips"], stored["still"]
    analyzer = InProcessAnalyzer(40_000_000, "onnx", ROOT / "tests" / ".cache" / "models")
    params = DetectParams()  # the server's for live frames (ATTENDANCE_DETECT_* defaults)

    def analyse(frames: Sequence[bytes]) -> list[Frame]:
        out: list[Frame] = []
        for at in range(0, len(frames), 30):
            out += analyzer.analyze(frames[at : at + 30], params, describe=None)
        return out

    analysed: dict[str, tuple[float, list[Frame]]] = {}
    for path in sorted(VIDEO.glob("talking_head_*.mp4")):
        fps, frames = read_frames(path)
        analysed[path.name] = (fps, analyse(frames))
        print(f"analysed {path.name}: {len(frames)} frames", file=sys.stderr)
    fps, frames = read_frames(VIDEO / TURN[0], mirror=True)
    analysed["mirrored " + TURN[0]] = (fps, analyse(frames))
    photo_dir = require(FACES / "lfw" / "george_w_bush")
    still = analyse(still_photo(photo_dir / "1.jpg"))
    # The gallery: each clip's person from 6 frames spread over their clip (the mirrored clip
    # is the same person), and the photo's person from three other photos.
    pairs = []
    for name, (_, found) in analysed.items():
        person = name.removeprefix("mirrored ")
        for frame in found[:: max(1, len(found) // 6)][:6]:
            if frame.faces and frame.faces[0].descriptor is not None:
                pairs.append((person, np.asarray(frame.faces[0].descriptor)))
    for n in (2, 3, 4):
        for _, frame in analyzer.analyze_many([(n, (photo_dir / f"{n}.jpg").read_bytes())], params):
            if isinstance(frame, Frame) and frame.faces and frame.faces[0].descriptor is not None:
                pairs.append(("george_w_bush", np.asarray(frame.faces[0].descriptor)))
    matcher = Matcher(Gallery.from_pairs(pairs))
    mirrored = analyzer.describe_mirrored
    clips = {
        name: Clip(name, fps, [decide_frame(f, matcher, mirrored) for f in found])
        for name, (fps, found) in analysed.items()
    }
    still_decisions = [decide_frame(f, matcher, mirrored) for f in still]
    people = {name.removeprefix("mirrored ") for name in clips} | {"george_w_bush"}
    if set(matcher.gallery.names) != people:
        raise WrongAnswer(f"the gallery holds {matcher.gallery.names}, expected {sorted(people)}")
    for person, decided in [
        *((name.removeprefix("mirrored "), clip.decisions) for name, clip in clips.items()),
        ("george_w_bush", still_decisions),
    ]:
        named = {r.name for d in decided for r in d.known} - {person}
        if named:
            raise WrongAnswer(f"frames of {person} named {sorted(named)}")
    if cache is not None:
        with cache.open("wb") as handle:
            pickle.dump({"clips": clips, "still": still_decisions}, handle)
    return clips, still_decisions


# --- drawing until an easy challenge -----------------------------------------------------------


class NoFaces:
    """An analyzer for a server that only hands out challenges (it is never asked to look)."""

    describe_mirrored = None

    def close(self) -> None:
        pass


def draws_until_easy() -> list[tuple[object, ...]]:
    """``ATTACKERS`` camera keys, each asking ``GET /liveness/challenge`` ``DRAWS`` times in a
    row, hoping for a plain ``blink`` (a real app on a SQLite file, no faces needed)."""
    from smart_attendance.app import build_services
    from smart_attendance.config import load_settings
    from smart_attendance.web import create_app

    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        (base / "dataset").mkdir()
        settings = load_settings(
            {
                "API_SECRET_KEY": "bench-key-0123456789abcdef",
                "ATTENDANCE_SESSION_SECRET": "s" * 40,
                "ATTENDANCE_DATASET_DIR": str(base / "dataset"),
                "ATTENDANCE_DATA_DIR": str(base / "data"),
                "ATTENDANCE_REQUIRE_LIVENESS": "challenge",
            },
            env_file=None,
        )
        services = build_services(settings, analyzer=NoFaces())  # type: ignore[arg-type]
        try:
            client = create_app(services).test_client()
            answered = refused = different = easy_first = easy_later = 0
            started = time.perf_counter()
            for n in range(ATTACKERS):
                key = services.keys.add(f"door-{n}").key
                seen: list[tuple[str, ...]] = []
                for _ in range(DRAWS):
                    response = client.get("/liveness/challenge", headers={"X-API-KEY": key})
                    if response.status_code == 429:
                        refused += 1
                        continue
                    answered += 1
                    seen.append(tuple(response.get_json()["actions"]))
                different += len(set(seen)) - 1
                easy_first += seen[0] == (BLINK,)
                easy_later += seen[0] != (BLINK,) and (BLINK,) in seen
            seconds = time.perf_counter() - started
        finally:
            services.close()
    asks = ATTACKERS * DRAWS
    return [
        ("asks", asks, f"{seconds:.1f} s"),
        ("answered 200", answered, f"{answered / ATTACKERS:.0f} per attacker"),
        ("refused 429 (30 a minute)", refused, ""),
        ("a different challenge after the first", different, "0: asking again keeps the actions"),
        (
            "`blink` drawn first (the luck of one draw)",
            easy_first,
            f"{100 * easy_first / ATTACKERS:.1f}% (1 in {len(challenge.CHALLENGES)} expected)",
        ),
        ("`blink` reached by asking again", easy_later, "the attack"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cache", type=Path, help="keep the clips' analysis in this file")
    parser.add_argument("--no-engine", action="store_true", help="the draws only")
    options = parser.parse_args()
    started = time.perf_counter()
    print(
        "Liveness challenge on ../shared/faces/video (detection at 320 px; every named face "
        "checked)"
    )
    print(f"Machine: {machine()}\n")
    if not options.no_engine:
        real_faces(options.cache)
    print("\nDrawing until an easy challenge (a real app, SQLite):\n")
    print(table(("what", "count", "note"), draws_until_easy()))
    print(f"\n{time.perf_counter() - started:.0f} s")


def real_faces(cache: Path | None) -> None:
    events = read_events()
    clips, still_decisions = analyse_clips(cache)
    clips_found = sorted(n for n in clips if not n.startswith("mirrored "))
    results = Results()

    def overlaps_unsure(clip: str, first: int, last: int) -> bool:
        return any(
            e.unsure and e.clip == clip and e.start <= last and e.end >= first for e in events
        )

    # --- real people doing the action ---------------------------------------------------------
    for name in clips_found:
        clip = clips[name]
        lead, tail = round(LEAD_S * clip.fps), round(TAIL_S * clip.fps)
        blinks = [e for e in events if e.clip == name and e.kind == "blink" and not e.unsure]
        for e in blinks:
            first, last = e.start - lead, e.end + tail
            if first < 0 or overlaps_unsure(name, first, last):
                continue
            ds, fps = window(clip, first, last)
            results.add("real", f"blink: {name}", outcome(ds, fps, [BLINK]))
        for a, b in itertools.pairwise(blinks):
            if (b.end - a.start) / clip.fps > PAIR_GAP_S:
                continue
            first, last = a.start - lead, b.end + tail
            if first < 0 or overlaps_unsure(name, first, last):
                continue
            ds, fps = window(clip, first, last)
            results.add("real", f"blink_twice: {name}", outcome(ds, fps, [BLINK_TWICE]))
    for label, action, source in (
        ("turn_left: d3 251-284", TURN_LEFT, TURN[0]),
        ("turn_right: d3 251-284 mirrored", TURN_RIGHT, "mirrored " + TURN[0]),
    ):
        clip = clips[source]
        for first, last in itertools.product(TURN_STARTS, TURN_ENDS):
            ds, fps = window(clip, first, last)
            results.add("real", label, outcome(ds, fps, [action]))
            results.add("real", label, outcome(ds[::2], fps / 2, [action]))  # a 15 fps camera
        # where the old windows started: looking down, lids over the eyes
        for first in (226, 231, 236):
            ds, fps = window(clip, first, 290)
            results.add(
                "aside", f"{action} from frame {first} (looking down)", outcome(ds, fps, [action])
            )

    composer = Composer(clips, events)
    fps_seen: dict[str, list[float]] = {}
    for actions in challenge.CHALLENGES:
        what = f"composed, {len(actions)} action{'s' if len(actions) > 1 else ''}"
        for _ in range(COMPOSITIONS):
            faces = composer.compose(actions, first_lead_s=CAMERA_LEAD_S)
            fps_seen.setdefault(what, []).append(camera_fit(faces, COMPOSE_FPS)[1])
            results.add("real", what, check(faces, actions))
    # measured and not offered: the other combinations of up to three actions
    for actions in LEFT_OUT:
        shape = " + ".join("blink" if STEP_KIND[a] == BLINK else "turn" for a in actions)
        what = shape.replace("blink", "blink_twice") if actions == (BLINK_TWICE,) else shape
        for _ in range(COMPOSITIONS):
            faces = composer.compose(actions, first_lead_s=CAMERA_LEAD_S)
            results.add(
                "left out",
                f"{shape} ({'/'.join(sorted(set(actions) & {BLINK, BLINK_TWICE}))})",
                check(faces, actions),
            )

    # --- false passes -----------------------------------------------------------------------------
    for name in clips_found:
        clip = clips[name]
        mine = [e for e in events if e.clip == name]
        for first in range(0, len(clip.decisions) - WINDOW + 1, STEP):
            last = first + WINDOW - 1
            inside = [e for e in mine if e.start <= last and e.end >= first]
            if any(e.unsure for e in inside):
                continue
            ds = clip.decisions[first : last + 1]
            kinds = Counter(e.kind for e in inside)
            if not kinds["blink"]:
                results.add(
                    "false", "blink, no blink in the window", outcome(ds, clip.fps, [BLINK])
                )
            if kinds["blink"] == 1:
                results.add(
                    "false",
                    "blink_twice, one blink in the window",
                    outcome(ds, clip.fps, [BLINK_TWICE]),
                )
            if not kinds["turn"]:
                for action in (TURN_LEFT, TURN_RIGHT):
                    results.add(
                        "false", f"{action}, no turn in the window", outcome(ds, clip.fps, [action])
                    )
    for actions in challenge.CHALLENGES:
        results.add(
            "false",
            "every challenge, still photo moved and re-lit",
            outcome(still_decisions, 25.0, list(actions)),
        )
    # spliced: half of a blink window of one person, half of another's (both enrolled, and
    # each half looks like a live person)
    halves = []
    for name in clips_found:
        clip = clips[name]
        for e in [e for e in events if e.clip == name and e.kind == "blink" and not e.unsure][:3]:
            first = max(0, e.start - 20)
            halves.append((name, clip.decisions[first : first + 40], clip.fps))
    for a_name, a, a_fps in halves:
        for b_name, b, _ in halves:
            if a_name == b_name:
                continue
            burst = a[:20] + b[20:]
            results.add("false", "blink, spliced from two people", outcome(burst, a_fps, [BLINK]))

    # --- attacks ----------------------------------------------------------------------------------
    for pace, lead, tail in (
        ("natural pace", (0.4, 1.2), (0.3, 0.5)),
        ("tight", (0.3, 0.4), (0.2, 0.3)),
    ):
        for _ in range(COMPOSITIONS):
            clip_faces = composer.compose(
                UNIVERSAL, lead=lead, tail=tail, first_lead_s=CAMERA_LEAD_S
            )
            for actions in challenge.CHALLENGES:
                what = f"the universal clip ({pace}), every challenge"
                results.add("attack", what, check(clip_faces, actions))
    for actions in challenge.CHALLENGES:
        for _ in range(COMPOSITIONS):
            if len(actions) > 1:
                tight = composer.compose(
                    actions,
                    lead=(0.03, 0.07),
                    tail=(0.0, 0.05),
                    first_lead_s=CAMERA_LEAD_S,
                    whole=False,
                )
                what = "composed, cut tight (each action cut where it is seen)"
                results.add("attack", what, check(tight, actions))
                loose = composer.compose(actions, first_lead_s=CAMERA_LEAD_S, pause_s=6.5)
                what = "composed, held still 6.5 s between actions"
                results.add("attack", what, check(loose, actions))
            early = composer.compose(actions, first_lead_s=0.05)
            what = "composed, started on the action (no neutral lead)"
            results.add("attack", what, check(early, actions))
            ready = composer.compose(actions, first_lead_s=CAMERA_LEAD_S)
            what = "composed, sent 0.2 s after its challenge (recorded before)"
            results.add("attack", what, check(ready, actions, elapsed=0.2))

    print("A real person doing what is asked (pass rate):\n")
    print(results.table("real"))
    for what, rates in fps_seen.items():
        print(f"{what}: sent at {min(rates):.1f}-{max(rates):.1f} frames a second")
    print("\nMeasured and not offered (composed the same way):\n")
    print(results.table("left out"))
    print("\nThe turn windows where the clip looks down (not counted above):\n")
    print(results.table("aside"))
    print("\nWithout the action, or not one live person (false passes):\n")
    print(results.table("false"))
    print("\nAttacks (passes):\n")
    print(results.table("attack"))


if __name__ == "__main__":
    run(main)
