"""Blink detection from the eye aspect ratio (EAR) of dlib's 68 face landmarks.

The EAR (``engine.dlib_engine.eye_aspect_ratio``, both eyes averaged) of each frame is divided
by the person's *open level*: the 80th percentile of their open-eye EAR over the last two
seconds, so the rule adapts to each face, to glasses and to narrow eyes. A blink is a short
run of *closed* frames (at most ``CLOSED_RATIO`` of the open level) that

* lasts at most ``MAX_CLOSED_S``: eyes that stay shut or narrow are no blink;
* follows open eyes: some frame of the ``BEFORE_S`` before the run is at least
  ``OPEN_BEFORE`` of the open level (a blink out of a wink or a squint does not count);
* is followed by open eyes: some frame of the ``AFTER_S`` after the run is back to at least
  ``REOPEN`` of the open level (a squint after the blink is enough: a half-open eye is not
  closed).

The values are raw, frame by frame: blinks of one or two frames are common (a third of the
annotated ones) and smoothing would fill them in. The thresholds come from the annotated clips
of ``../shared/faces/video`` (``attendance blinks --eval``; docs/liveness.md gives the figures
and what they cost): a smile squint or a downward gaze narrows the eyes to 55-65% of their
open level, a blink closes them below 50%.

A still photo moved in front of the camera keeps a constant EAR and never blinks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..models import Face

CLOSED_RATIO = 0.53
OPEN_BEFORE = 0.70
REOPEN = 0.60
MAX_CLOSED_S = 0.45
BEFORE_S = 0.25
AFTER_S = 0.30
BASELINE_S = 2.0
MIN_BASELINE = 5  # frames of open eyes before the first decision


@dataclass(frozen=True)
class Blink:
    frame: int  # the frame where the eyes were most closed
    t: float  # seconds from the start
    start: int  # the first closed frame
    end: int  # the last closed frame
    depth: float  # EAR at the bottom divided by the open level

    def as_dict(self) -> dict[str, float | int]:
        return {
            "frame": self.frame,
            "t": round(self.t, 3),
            "start": self.start,
            "end": self.end,
            "depth": round(self.depth, 3),
        }


@dataclass
class _Run:
    """Consecutive closed frames."""

    start: int
    low: float
    low_at: int
    after_open: bool  # open eyes in the BEFORE_S before it
    end: int = -1


class BlinkDetector:
    """Streaming detector for one face track. Feed ``update(ear)`` once per frame (None when
    no face was found: the track restarts); it returns a ``Blink`` when one has completed
    (when the eyes have reopened, a frame or a few after the closure)."""

    def __init__(self, fps: float) -> None:
        self.fps = fps if fps and fps > 0 else 25.0
        self.max_closed = max(1, round(MAX_CLOSED_S * self.fps))
        self.before = max(2, round(BEFORE_S * self.fps))
        self.after = max(2, round(AFTER_S * self.fps))
        self._baseline: deque[float] = deque(maxlen=max(MIN_BASELINE, round(BASELINE_S * self.fps)))
        self._frame = -1
        self.reset()

    def reset(self) -> None:
        """Forget the face (a new person, or the face was lost); the frame count goes on."""
        self._baseline.clear()
        self._recent: deque[float] = deque(maxlen=self.before)
        self._run: _Run | None = None
        self._pending: list[_Run] = []  # closures waiting for the eyes to reopen

    @property
    def open_level(self) -> float | None:
        """The person's open-eye EAR (None until enough frames were seen)."""
        if len(self._baseline) < MIN_BASELINE:
            return None
        return float(np.percentile(np.asarray(self._baseline), 80))

    def openness(self, ear: float) -> float | None:
        """``ear`` as a share of the open level (1 = as open as usual)."""
        level = self.open_level
        return ear / level if level else None

    def update(self, ear: float | None) -> Blink | None:
        self._frame += 1
        if ear is None:
            self.reset()
            return None
        ratio = self.openness(ear)
        if ratio is None:
            self._baseline.append(ear)
            return None
        if ratio > CLOSED_RATIO:
            self._baseline.append(ear)
        self._follow_run(ratio)
        self._recent.append(ratio)
        return self._reopened(ratio)

    def _reopened(self, ratio: float) -> Blink | None:
        """A pending closure whose eyes open again at this frame is a blink."""
        self._pending = [run for run in self._pending if self._frame <= run.end + self.after]
        if not self._pending or ratio < REOPEN:
            return None
        run = self._pending.pop(0)
        self._pending.clear()
        return Blink(run.low_at, run.low_at / self.fps, run.start, run.end, run.low)

    def _follow_run(self, ratio: float) -> None:
        run = self._run
        if ratio <= CLOSED_RATIO:
            if run is None:
                after_open = bool(self._recent) and max(self._recent) >= OPEN_BEFORE
                self._run = _Run(self._frame, ratio, self._frame, after_open)
            elif ratio < run.low:
                run.low, run.low_at = ratio, self._frame
            return
        if run is not None:  # the run ended at the previous frame
            run.end = self._frame - 1
            if run.after_open and run.end - run.start + 1 <= self.max_closed:
                self._pending.append(run)
            self._run = None


def detect_blinks(ears: Iterable[float | None], fps: float) -> Iterator[Blink]:
    detector = BlinkDetector(fps)
    for ear in ears:
        blink = detector.update(ear)
        if blink:
            yield blink


def blinks_in(ears: Sequence[float | None], fps: float) -> list[Blink]:
    return list(detect_blinks(ears, fps))


def blinks_in_faces(faces: Sequence[Face | None], fps: float) -> list[Blink]:
    """The blinks of one face followed through a burst: ``faces`` holds that face in each
    frame, in time order (None where it was not found)."""
    return blinks_in([None if face is None else face.ear for face in faces], fps)
