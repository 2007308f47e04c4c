"""Blink detection from the eye aspect ratio (EAR) of dlib's 68 face landmarks.

The EAR (``engine.dlib_engine.eye_aspect_ratio``, both eyes averaged) is lightly smoothed
(1-2-1 over three frames). A blink is a *fast* dip and recovery:

* the eyes must be open before it: the level just before the dip is at least
  ``OPEN_RATIO`` of the person's open-eye baseline (the 80th percentile of the last two
  seconds), so the baseline adapts to each person, glasses and narrow eyes included;
* the EAR falls to at most ``DROP_RATIO`` of that pre-dip level within ``MAX_FALL_S``: a smile
  squint or a gaze shift narrows the eyes slowly and not as far;
* it comes back at least half-way within ``MAX_CLOSED_S``: eyes that stay narrow (a squint, a
  head turned away) are not a blink.

A still photo moved in front of the camera keeps a constant EAR and never blinks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..models import Face

DROP_RATIO = 0.70
OPEN_RATIO = 0.75
MAX_FALL_S = 0.17
MAX_CLOSED_S = 0.45
BASELINE_S = 2.0


@dataclass(frozen=True)
class Blink:
    frame: int  # the frame where the eyes were most closed
    t: float  # seconds from the start
    start: int
    end: int
    depth: float  # EAR at the bottom divided by the pre-dip level

    def as_dict(self) -> dict[str, float | int]:
        return {
            "frame": self.frame,
            "t": round(self.t, 3),
            "start": self.start,
            "end": self.end,
            "depth": round(self.depth, 3),
        }


class BlinkDetector:
    """Streaming detector for one face track. Feed ``update(ear)`` once per frame (None when
    no face was found: the track restarts); it returns a ``Blink`` when one has completed."""

    def __init__(self, fps: float) -> None:
        self.fps = fps if fps and fps > 0 else 25.0
        self.max_fall = max(1, round(MAX_FALL_S * self.fps))
        self.max_closed = max(2, round(MAX_CLOSED_S * self.fps))
        self._baseline: deque[float] = deque(maxlen=max(5, round(BASELINE_S * self.fps)))
        self.reset()

    def reset(self) -> None:
        self._raw: deque[float] = deque(maxlen=3)
        self._recent: deque[tuple[int, float]] = deque(maxlen=self.max_fall + 1)
        self._baseline.clear()
        self._dip: dict[str, float | int] | None = None
        self._frame = -1

    def update(self, ear: float | None) -> Blink | None:
        self._frame += 1
        if ear is None:
            frame = self._frame
            self.reset()
            self._frame = frame
            return None
        self._raw.append(ear)
        if len(self._raw) < 3:
            return None
        a, b, c = self._raw
        smooth = (a + 2 * b + c) / 4.0
        index = self._frame - 1  # the smoothed value belongs to the middle frame
        result = self._step(index, smooth)
        self._recent.append((index, smooth))
        return result

    def _open_level(self) -> float | None:
        if len(self._baseline) < max(3, self.max_fall):
            return None
        return float(np.percentile(np.asarray(self._baseline), 80))

    def _step(self, index: int, value: float) -> Blink | None:
        dip = self._dip
        if dip is None:
            open_level = self._open_level()
            if open_level is not None and self._recent:
                before = max(v for _, v in self._recent)
                if before >= OPEN_RATIO * open_level and value <= DROP_RATIO * before:
                    start = min(i for i, v in self._recent if v == before)
                    self._dip = {"start": start, "before": before, "low": value, "low_at": index}
                    return None
            self._baseline.append(value)
            return None
        if value < dip["low"]:
            dip["low"], dip["low_at"] = value, index
        halfway = dip["low"] + 0.5 * (dip["before"] - dip["low"])
        if value >= halfway:
            self._dip = None
            self._recent.clear()
            blink = Blink(
                int(dip["low_at"]),
                int(dip["low_at"]) / self.fps,
                int(dip["start"]),
                index,
                float(dip["low"]) / float(dip["before"]),
            )
            return blink
        if index - int(dip["start"]) > self.max_closed:  # eyes stay shut or narrow: no blink
            self._dip = None
            self._recent.clear()
        return None


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
