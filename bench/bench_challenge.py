"""The liveness challenge on real faces: how often a real person doing the action passes, and
how often a burst without it, a still photo or a spliced burst passes anyway.

Windows are cut from the annotated clips of ../shared/faces/video (BLINKS.tsv; ``unsure`` events
count neither way: a window that overlaps one is left out) and checked with the server's own
verification (``recognition.challenge.verify`` on the decisions ``RecognitionService.look``
makes in challenge mode: every frame JPEG-encoded as a camera sends it, detected, aligned and
described by the real engine, matched against a gallery of the clips' people enrolled from
frames of their clip):

* ``blink``: a window around each annotated blink (0.5 s before, 0.4 s after);
* ``blink_twice``: around two annotated blinks less than 1.5 s apart;
* ``turn_left``: the annotated turn to the subject's left (talking_head_d3.mp4, 251-284) with
  the frontal frames before it, cut at several starts and ends, at 30 and 15 frames a second;
  ``turn_right``: the same windows mirrored (a mirror image turns the other way; the clips have
  no annotated turn to the right);
* ``turn + blink`` in both orders: d3's turn window joined to d3's one blink (a cut in time,
  the same person), subsampled to stay within 60 frames.

False passes: every 45-frame window (1.5-1.8 s) of the clips without the action (hard cases
included: squints, gazes, smiles, talking), a still photo moved and re-lit (every challenge),
and windows spliced from two people (the first half of one clip's, the second of another's).

The work is checked: the gallery must hold each clip's person and the photo's, and every face
named in a clip (or in the still photo's frames) must be given that clip's person (or the
photo's): a wrong name stops the benchmark. Detection at the server's default 320 px.

    .venv/bin/python bench/bench_challenge.py
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common import FACES, ROOT, WrongAnswer, machine, require, run, table
from smart_attendance.engine.local import InProcessAnalyzer
from smart_attendance.models import (
    BLINK,
    BLINK_TWICE,
    TURN_LEFT,
    TURN_RIGHT,
    DetectParams,
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
LEAD_S, TAIL_S = 0.5, 0.4  # around an annotated blink
PAIR_GAP_S = 1.5
WINDOW = 45  # frames of a window without the action
STEP = 15
MAX_BURST = 60  # the server's limit (attendance/scan.py)
TURN = ("talking_head_d3.mp4", 251, 284)  # head turned to the subject's left


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


def outcome(decisions: Sequence[FrameDecision], fps: float, actions: Sequence[str]) -> str:
    """What the server answers a burst of ``decisions`` for the challenge ``actions``: "pass",
    or the reason (``RecognitionService.look`` in challenge mode: any recognised face that
    passes is marked, else the largest one's reason)."""
    best = best_frame(decisions)
    chosen = decisions[best]
    known = sorted(chosen.known, key=lambda r: -(r.box.width * r.box.height))
    if not known:
        return "unknown:" + unknown_reason(chosen)
    reasons = [challenge.verify(decisions, best, face, actions, fps) for face in known]
    return "pass" if any(r is None for r in reasons) else str(reasons[0])


class Results:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Counter[str]] = {}

    def add(self, group: str, what: str, answer: str) -> None:
        self.rows.setdefault((group, what), Counter())[answer] += 1

    def table(self, group: str) -> str:
        rows = []
        for (g, what), counts in self.rows.items():
            if g != group:
                continue
            total, passed = sum(counts.values()), counts["pass"]
            refused = ", ".join(f"{k} {v}" for k, v in counts.most_common() if k != "pass")
            rate = f"{100 * passed / total:.0f}%" if total else "-"
            rows.append((what, total, passed, rate, refused or "-"))
        return table(("challenge / windows", "bursts", "passed", "rate", "refused as"), rows)


def window(clip: Clip, first: int, last: int) -> tuple[list[FrameDecision], float]:
    """Frames ``first``..``last`` of a clip, every other one dropped while over 60 frames (as
    the camera client fits a burst to the server's limit), and the frame rate sent."""
    decisions = clip.decisions[max(0, first) : last + 1]
    fps = clip.fps
    while len(decisions) > MAX_BURST:
        decisions, fps = decisions[::2], fps / 2
    return decisions, fps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    started = time.perf_counter()
    events = read_events()
    analyzer = InProcessAnalyzer(40_000_000, "onnx", ROOT / "tests" / ".cache" / "models")
    params = DetectParams()  # the server's for live frames (ATTENDANCE_DETECT_* defaults)

    def analyse(frames: Sequence[bytes]) -> list[Frame]:
        out: list[Frame] = []
        for at in range(0, len(frames), 30):
            out += analyzer.analyze(frames[at : at + 30], params, describe=None)
        return out

    clips_found = sorted(p.name for p in VIDEO.glob("talking_head_*.mp4"))
    analysed: dict[str, tuple[float, list[Frame]]] = {}
    for name in clips_found:
        fps, frames = read_frames(VIDEO / name)
        analysed[name] = (fps, analyse(frames))
        print(f"analysed {name}: {len(frames)} frames", file=sys.stderr)
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
            if overlaps_unsure(name, first, last):
                continue
            ds, fps = window(clip, first, last)
            results.add("real", f"blink: {name}", outcome(ds, fps, [BLINK]))
        for a, b in itertools.pairwise(blinks):
            if (b.end - a.start) / clip.fps > PAIR_GAP_S:
                continue
            first, last = a.start - lead, b.end + tail
            if overlaps_unsure(name, first, last):
                continue
            ds, fps = window(clip, first, last)
            results.add("real", f"blink_twice: {name}", outcome(ds, fps, [BLINK_TWICE]))
    turn_windows = [(start, end) for start in (226, 231, 236) for end in (290, 300)]
    for label, action, source in (
        ("turn_left: d3 251-284", TURN_LEFT, TURN[0]),
        ("turn_right: d3 251-284 mirrored", TURN_RIGHT, "mirrored " + TURN[0]),
    ):
        clip = clips[source]
        for first, last in turn_windows:
            ds, fps = window(clip, first, last)
            results.add("real", label, outcome(ds, fps, [action]))
            results.add("real", label, outcome(ds[::2], fps / 2, [action]))  # a 15 fps camera
        # joined to d3's one blink (47-52, 0.5 s before, 0.4 s after), in both orders
        blink = clip.decisions[47 - 15 : 52 + 12 + 1]
        for first, last in turn_windows:
            turn = clip.decisions[first : last + 1]
            for order, ds in (((BLINK, action), blink + turn), ((action, BLINK), turn + blink)):
                burst, fps = list(ds), clip.fps
                while len(burst) > MAX_BURST:
                    burst, fps = burst[::2], fps / 2
                what = f"{' + '.join(order)}: d3{' mirrored' if 'mirrored' in source else ''}"
                results.add("real", what, outcome(burst, fps, list(order)))

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

    print(
        "Liveness challenge on ../shared/faces/video (detection at 320 px; every named face "
        "checked)"
    )
    print(f"Machine: {machine()}\n")
    print("A real person doing the action (pass rate):\n")
    print(results.table("real"))
    print("\nWithout the action, or not one live person (false passes):\n")
    print(results.table("false"))
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    run(main)
