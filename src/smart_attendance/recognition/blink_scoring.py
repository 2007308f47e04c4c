"""Scoring a blink detector against annotated clips (``attendance blinks --eval``).

The annotations are ``BLINKS.tsv`` of ``../shared/faces/video`` (its README): one row per eye
event with 0-based frame ranges: ``blink`` (the events to find), ``squint`` and ``gaze``
(narrowed eyes, not blinks), ``wink`` and ``turn`` (neither), and a note starting with
``unsure`` for an event whose label is a judgement call. A detection within ``TOLERANCE``
frames of a blink's range finds it (each blink found once); one near an unsure event counts
neither way; any other detection is a false one.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TOLERANCE = 3  # frames: the annotations' edges are accurate to about one frame


@dataclass(frozen=True)
class EyeEvent:
    start: int
    end: int
    kind: str  # blink | squint | gaze | wink | turn
    unsure: bool = False

    def near(self, frame: int, tolerance: int = TOLERANCE) -> bool:
        return self.start - tolerance <= frame <= self.end + tolerance


@dataclass
class ClipScore:
    clip: str
    blinks: int = 0  # certain blinks annotated
    found: int = 0
    false: list[int] = field(default_factory=list)  # frames of false detections
    missed: list[tuple[int, int]] = field(default_factory=list)
    ignored: int = 0  # detections near an unsure event

    def as_dict(self) -> dict[str, object]:
        return {
            "clip": self.clip,
            "blinks": self.blinks,
            "found": self.found,
            "false": self.false,
            "missed": [list(m) for m in self.missed],
            "ignored": self.ignored,
        }


def read_annotations(path: Path) -> dict[str, list[EyeEvent]]:
    """The events of every clip named in a ``BLINKS.tsv`` file."""
    events: dict[str, list[EyeEvent]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            events.setdefault(row["clip"], []).append(
                EyeEvent(
                    int(row["start_frame"]),
                    int(row["end_frame"]),
                    row["event"].strip(),
                    (row.get("note") or "").strip().startswith("unsure"),
                )
            )
    return events


def score_clip(clip: str, detected: Iterable[int], events: Sequence[EyeEvent]) -> ClipScore:
    """Match the frames where blinks were detected against a clip's annotated events."""
    blinks = [e for e in events if e.kind == "blink" and not e.unsure]
    unsure = [e for e in events if e.unsure]
    score = ClipScore(clip, blinks=len(blinks))
    hit: set[int] = set()
    for frame in detected:
        match = next((i for i, e in enumerate(blinks) if e.near(frame) and i not in hit), None)
        if match is None:
            match = next((i for i, e in enumerate(blinks) if e.near(frame)), None)
            if match is not None:  # a second detection of a blink already found
                score.false.append(frame)
                continue
        if match is not None:
            hit.add(match)
        elif any(e.near(frame) for e in unsure):
            score.ignored += 1
        else:
            score.false.append(frame)
    score.found = len(hit)
    score.missed = [(e.start, e.end) for i, e in enumerate(blinks) if i not in hit]
    return score


def totals(scores: Sequence[ClipScore]) -> tuple[float, float]:
    """Recall and precision over all clips."""
    found = sum(s.found for s in scores)
    blinks = sum(s.blinks for s in scores)
    false = sum(len(s.false) for s in scores)
    recall = found / blinks if blinks else 1.0
    precision = found / (found + false) if found + false else 1.0
    return recall, precision
