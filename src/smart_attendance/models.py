"""Value objects passed between the modules (frozen dataclasses, no behaviour to speak of)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np

STATUS_PRESENT = "Present"
STATUS_LATE = "Late"


@dataclass(frozen=True)
class Box:
    """A face box in pixels of the original image: left/top inclusive, right/bottom exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def as_dict(self) -> dict[str, int]:
        return {"left": self.left, "top": self.top, "right": self.right, "bottom": self.bottom}

    def scaled(self, factor: float, height: int, width: int) -> Box:
        """This box in an image ``factor`` times larger (``height`` x ``width``), clamped."""
        return Box(
            max(0, round(self.left * factor)),
            max(0, round(self.top * factor)),
            min(width, round(self.right * factor)),
            min(height, round(self.bottom * factor)),
        )

    def iou(self, other: Box) -> float:
        """Intersection over union: 1.0 for the same box, 0.0 for boxes that do not touch."""
        left, top = max(self.left, other.left), max(self.top, other.top)
        right, bottom = min(self.right, other.right), min(self.bottom, other.bottom)
        inter = max(0, right - left) * max(0, bottom - top)
        union = self.width * self.height + other.width * other.height - inter
        return inter / union if union else 0.0


@dataclass(frozen=True)
class Face:
    """A detected face. ``descriptor`` is None when the face is too small to trust, or when
    ``skipped``: a frame of a burst whose faces were aligned but not described."""

    box: Box
    descriptor: np.ndarray | None = field(default=None, compare=False, repr=False)
    chip: np.ndarray | None = field(default=None, compare=False, repr=False)
    ear: float | None = None  # eye aspect ratio, for blink checks on bursts
    skipped: bool = False


@dataclass(frozen=True)
class Frame:
    """Every face found in one image."""

    width: int
    height: int
    faces: tuple[Face, ...]


@dataclass(frozen=True)
class Match:
    """The open-set decision for one descriptor. ``name`` is None for an unknown face."""

    name: str | None
    candidate: str | None
    distance: float | None
    margin: float | None


@dataclass(frozen=True)
class FaceResult:
    """One face of a recognised frame, as the API reports it."""

    box: Box
    name: str | None
    distance: float | None
    margin: float | None
    reason: str | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "box": self.box.as_dict(),
            "name": self.name,
            "distance": None if self.distance is None else round(self.distance, 4),
            "margin": None if self.margin is None else round(self.margin, 4),
        }
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Mark:
    """A student's attendance for one local day (the first sighting)."""

    name: str
    day: date
    seen_at: datetime
    status: str
    camera: str


@dataclass(frozen=True)
class MarkOutcome:
    mark: Mark
    new: bool


@dataclass(frozen=True)
class StudentStats:
    """Per-student statistics over the days on record."""

    name: str
    days_present: int
    days_on_time: int
    days_late: int
    total_days: int

    @property
    def attendance_pct(self) -> float:
        return round(100.0 * self.days_present / self.total_days, 2) if self.total_days else 0.0

    @property
    def late_pct(self) -> float:
        return round(100.0 * self.days_late / self.days_present, 2) if self.days_present else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "days_present": self.days_present,
            "days_on_time": self.days_on_time,
            "days_late": self.days_late,
            "total_days": self.total_days,
            "attendance_pct": self.attendance_pct,
            "late_pct": self.late_pct,
        }
