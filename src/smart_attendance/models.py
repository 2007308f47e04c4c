"""Value objects passed between the modules, the ``Analyzer`` interface and the clock.

Everything here is plain data (frozen dataclasses) that every layer may import. The answers of
the HTTP API (``Recognition``, ``Health``, ``ReportSent``) carry their wire format beside them:
``to_json`` is what the server sends and ``from_json`` what the camera client reads back, one
piece of code for both ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from typing import Any, Protocol, TypeVar

import numpy as np

STATUS_PRESENT = "Present"
STATUS_LATE = "Late"

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware. Injected everywhere time matters."""


def system_clock() -> datetime:
    return datetime.now(timezone.utc)


# Bump when detection or alignment changes in a way that changes descriptors: cached
# descriptors are keyed by it and recomputed.
PIPELINE_VERSION = 6


@dataclass(frozen=True)
class DetectParams:
    """How to look for faces and describe them.

    ``max_side`` 0 means the full image; ``upsample`` is dlib's. ``mirror`` averages each
    descriptor with the one of the mirrored face (steadier, twice the network time).
    """

    max_side: int = 320
    upsample: int = 0
    min_face_px: int = 60
    # Photos smaller than this (long side) are scaled up (at most 2x) before detection, so
    # small enrolment photos (150-250 px) still have faces the 80 px HOG window can find.
    min_side: int = 0
    mirror: bool = False

    def key(self) -> str:
        flags = "-mirror" if self.mirror else ""
        return (
            f"v{PIPELINE_VERSION}-s{self.max_side}-u{self.upsample}-m{self.min_face_px}"
            f"-n{self.min_side}{flags}"
        )


# Enrolment photos: large phone photos scaled to 1024 px, small crops up to 640 px; mirrored.
ENROL_PARAMS = DetectParams(max_side=640, upsample=0, min_face_px=60, min_side=640, mirror=True)


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

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Box:
        return cls(int(body["left"]), int(body["top"]), int(body["right"]), int(body["bottom"]))

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
    ``skipped``: a frame of a burst whose faces were aligned but not described.

    Measured on faces large enough to align (None otherwise), for the enrolment's checks:
    ``sharpness``, the variance of the Laplacian of the aligned chip's centre (higher is
    sharper); ``yaw``, how far the head is turned: the nose tip's offset from the midpoint of
    the outer eye corners over half their distance (0 facing the camera, 1 the nose tip level
    with an eye corner; positive towards the image's right)."""

    box: Box
    descriptor: np.ndarray | None = field(default=None, compare=False, repr=False)
    chip: np.ndarray | None = field(default=None, compare=False, repr=False)
    ear: float | None = None  # eye aspect ratio, for blink checks on bursts
    skipped: bool = False
    sharpness: float | None = None
    yaw: float | None = None


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
    """One face of a recognised frame, as the API reports it. ``candidate``: for a face left
    unknown although a student was near (close to the threshold or the margin), that student,
    for a person to review; it is never part of the API's answer (``as_dict``)."""

    box: Box
    name: str | None
    distance: float | None
    margin: float | None
    reason: str | None = None
    candidate: str | None = None

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

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> FaceResult:
        return cls(
            Box.from_json(body["box"]),
            body.get("name"),
            body.get("distance"),
            body.get("margin"),
            body.get("reason"),
        )

    def anonymous(self) -> FaceResult:
        """The same face without its name nor its candidate (a scan refused for liveness
        names nobody)."""
        return FaceResult(self.box, None, self.distance, self.margin, self.reason)


STATUS_ABSENT = "Absent"
STATUS_EXCUSED = "Excused"
STATUSES = (STATUS_PRESENT, STATUS_LATE, STATUS_ABSENT, STATUS_EXCUSED)
UNDO = "Undone"  # a correction that takes back the one in force before it (never a status)
# The days a request may name (a report's, a register's): days near date.min or date.max
# would overflow the day arithmetic of reports (their 30-day history) and ranges.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2999, 12, 31)


@dataclass(frozen=True)
class Mark:
    """A student's first sighting in one class period of one local day (or a mark set by
    hand). Without a timetable the class is ``default`` and its one period ``00:00``-``24:00``.
    The period's end and the Late rule are kept with the mark, so a timetable change never
    rewrites history."""

    name: str
    day: date
    seen_at: datetime
    status: str
    camera: str
    class_name: str = "default"
    period: str = "00:00"
    period_end: str = "24:00"
    late_after: str = ""
    source: str = ""
    key_name: str = ""  # the camera key that made the mark ("": the master key, or by hand)
    received_at: datetime | None = None  # UTC, when the server got the scan (None: not kept)
    timed: bool = True  # False: a status set by hand for a student never seen (no time)


@dataclass(frozen=True)
class Correction:
    """One change of a student's status in one class period: who, when, old -> new, why."""

    name: str
    day: date
    class_name: str
    period: str
    old_status: str | None
    new_status: str
    reason: str
    by: str
    at: datetime  # UTC

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "date": self.day.isoformat(),
            "class": self.class_name,
            "period": self.period,
            "old_status": self.old_status,
            "status": self.new_status,
            "reason": self.reason,
            "by": self.by,
            "at": self.at.isoformat(timespec="seconds") + "Z",
        }


@dataclass(frozen=True)
class MarkOutcome:
    mark: Mark
    new: bool


@dataclass(frozen=True)
class StudentStats:
    """Per-student statistics over the class periods a student was expected in (with no
    timetable: one period a day). ``days_*`` keep the original project's names."""

    name: str
    days_present: int  # present or late
    days_on_time: int
    days_late: int
    total_days: int  # expected periods
    excused: int = 0
    absent: int = 0  # unexcused
    below_threshold: bool = False

    @property
    def attendance_pct(self) -> float:
        return round(100.0 * self.days_present / self.total_days, 2) if self.total_days else 0.0

    @property
    def late_pct(self) -> float:
        return round(100.0 * self.days_late / self.days_present, 2) if self.days_present else 0.0

    def flagged(self, alert_below_pct: float) -> StudentStats:
        """This row, flagged when its attendance is under ``alert_below_pct``."""
        below = self.total_days > 0 and self.attendance_pct < alert_below_pct
        return replace(self, below_threshold=below)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "days_present": self.days_present,
            "days_on_time": self.days_on_time,
            "days_late": self.days_late,
            "total_days": self.total_days,
            "attendance_pct": self.attendance_pct,
            "late_pct": self.late_pct,
            "excused": self.excused,
            "absent": self.absent,
            "below_threshold": self.below_threshold,
        }


# --- answers of the API -------------------------------------------------------------------------


@dataclass(frozen=True)
class MarkResult:
    """One student marked (or found already marked) in one class period by a scan. A student
    seen outside every period has ``attendance`` None (a sighting, not a mark) and ``reason``
    says why: one of ``NOT_MARKED``.
    ``display_name``: the name to greet them with (the registry's display name, else
    ``name``)."""

    name: str
    attendance: str | None  # Present | Late | None
    new: bool
    time: str  # local HH:MM:SS of the (first) mark
    class_name: str | None = None
    period: str | None = None
    display_name: str = ""
    reason: str | None = None  # attendance None: why (NOT_MARKED)

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "name": self.name,
            "display_name": self.display_name or self.name,
            "attendance": self.attendance,
            "new": self.new,
            "time": self.time,
        }
        if self.class_name is not None:
            body["class"] = self.class_name
            body["period"] = self.period
        if self.attendance is None and self.reason:
            body["reason"] = self.reason
        return body

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> MarkResult:
        attendance = body.get("attendance")
        return cls(
            str(body["name"]),
            None if attendance is None else str(attendance),
            bool(body.get("new")),
            str(body.get("time", "")),
            body.get("class"),
            body.get("period"),
            str(body.get("display_name") or body["name"]),
            None if body.get("reason") is None else str(body["reason"]),
        )


# Why a recognised student was not marked (``MarkResult.reason``, ``reason`` of /recognize):
NO_PERIOD_NOW = "no_period_now"  # none of their classes has a period open at that moment
CLOSURE_DAY = "closure_day"  # a closure day of the timetable: no period at all
NOT_IN_A_CLASS = "not_in_a_class"  # no class roster names them and no class was given them
STUDENT_LEFT = "student_left"  # inactive in the registry: seen, never marked
NOT_MARKED = (NO_PERIOD_NOW, CLOSURE_DAY, NOT_IN_A_CLASS, STUDENT_LEFT)


RECOGNISED = "success"
UNKNOWN = "unknown"
LIVENESS_FAILED = "liveness_failed"

# --- the liveness challenge (ATTENDANCE_REQUIRE_LIVENESS=challenge) -----------------------------

BLINK = "blink"
BLINK_TWICE = "blink_twice"
TURN_LEFT = "turn_left"  # the student's own left (the image's right, camera not mirrored)
TURN_RIGHT = "turn_right"
ACTIONS = (BLINK, BLINK_TWICE, TURN_LEFT, TURN_RIGHT)
PROMPTS = {
    BLINK: "Blink",
    BLINK_TWICE: "Blink twice",
    TURN_LEFT: "Turn your head to your left",
    TURN_RIGHT: "Turn your head to your right",
}
# Why a scan's nonce was refused (``liveness_failed`` answers, nobody marked); the burst's own
# reasons are ``recognition.challenge``'s (face_changed, action_missing:ACTION, ...).
NONCE_MISSING = "nonce_missing"
NONCE_UNKNOWN = "nonce_unknown"  # never issued, issued to another camera, or long purged
NONCE_EXPIRED = "nonce_expired"
NONCE_USED = "nonce_used"
NONCE_REPLACED = "nonce_replaced"  # a newer challenge was issued to the camera since


@dataclass(frozen=True)
class LivenessChallenge:
    """The answer to ``GET /liveness/challenge``: in ``challenge`` mode a one-use ``nonce``
    and the ``actions`` to perform in order, valid until ``expires_at`` (UTC); in the other
    modes (``blink``, ``off``) the mode alone."""

    mode: str  # off | blink | challenge
    nonce: str = field(default="", repr=False)
    actions: tuple[str, ...] = ()
    expires_in: float = 0.0  # seconds, from the answer
    expires_at: datetime | None = None  # UTC

    @property
    def prompts(self) -> tuple[str, ...]:
        """The actions in plain words, for the camera's screen."""
        return tuple(PROMPTS.get(action, action) for action in self.actions)

    def to_json(self) -> dict[str, object]:
        if self.mode != "challenge":
            return {"mode": self.mode}
        expires_at = self.expires_at or datetime(1970, 1, 1, tzinfo=timezone.utc)
        return {
            "mode": self.mode,
            "nonce": self.nonce,
            "actions": list(self.actions),
            "prompts": list(self.prompts),
            "expires_in": round(self.expires_in, 3),
            "expires_at": expires_at.astimezone(timezone.utc).isoformat(timespec="seconds"),
        }

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> LivenessChallenge:
        mode = str(body.get("mode") or "off")
        if mode != "challenge":
            return cls(mode)
        raw_at = body.get("expires_at")
        return cls(
            mode,
            str(body.get("nonce") or ""),
            tuple(str(a) for a in body.get("actions") or ()),
            float(body.get("expires_in") or 0.0),
            datetime.fromisoformat(str(raw_at)) if raw_at else None,
        )


@dataclass(frozen=True)
class Recognition:
    """The answer to a scan: ``success`` (someone marked), ``unknown`` (with a reason:
    ``no_face``, ``face_too_small``, ``unknown_face``) or ``liveness_failed``. Read back by
    the client, an error answer (``bad_request``, ``starting``, ...) has that status and its
    message as ``reason``."""

    status: str
    faces: tuple[FaceResult, ...] = ()
    marks: tuple[MarkResult, ...] = ()
    reason: str | None = None

    @property
    def first(self) -> MarkResult | None:
        """The mark the original API answers for: the largest recognised face."""
        return self.marks[0] if self.marks else None

    def to_json(self) -> dict[str, object]:
        """The original project's answer, extended with ``marks`` and ``faces``."""
        faces = [face.as_dict() for face in self.faces]
        first = self.first
        if self.status == RECOGNISED and first is not None:
            return {
                "status": self.status,
                "name": first.name,
                "attendance": first.attendance,
                "new": first.new,
                "time": first.time,
                **({"reason": first.reason} if first.attendance is None and first.reason else {}),
                "marks": [mark.to_json() for mark in self.marks],
                "faces": faces,
            }
        return {"status": self.status, "reason": self.reason, "faces": faces}

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Recognition:
        status = str(body.get("status") or "error")
        faces = tuple(FaceResult.from_json(f) for f in body.get("faces") or ())
        marks = tuple(MarkResult.from_json(m) for m in body.get("marks") or ())
        if status == RECOGNISED and not marks and body.get("name"):  # an original-style answer
            marks = (MarkResult.from_json(body),)
        reason = body.get("reason") or body.get("error")
        return cls(status, faces, marks, None if reason is None else str(reason))


@dataclass(frozen=True)
class Health:
    """Readiness for ``GET /health``: counts only, no personal data."""

    ready: bool
    students: int
    photos: int
    skipped_photos: int
    workers: int
    embedder: str
    error: str | None = None  # the enrolment's failure
    database_error: str | None = None  # the database cannot be reached (app.DatabaseCheck)

    @property
    def status(self) -> str:
        if self.database_error:
            return "database_unavailable"
        if self.error:
            return "error"
        return "ok" if self.ready else "starting"

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "status": self.status,
            "students": self.students,
            "photos": self.photos,
            "skipped_photos": self.skipped_photos,
            "workers": self.workers,
            "embedder": self.embedder,
        }
        if self.database_error or self.error:
            body["error"] = self.database_error or self.error
        return body


@dataclass(frozen=True)
class ReportSent:
    day: date
    recipients: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "status": "success",
            "date": self.day.isoformat(),
            "recipients": list(self.recipients),
        }


# --- encryption at rest ------------------------------------------------------------------------


class Sealer(Protocol):
    """Encrypts what is stored at rest (descriptors, photos): ``privacy.sealing.DataSealer``.
    ``open`` returns plain bytes as they are (a photo copied in by hand, not sealed yet) and
    raises ``DataKeyError`` for sealed bytes no configured key opens."""

    def seal(self, data: bytes) -> bytes: ...

    def open(self, data: bytes) -> bytes: ...

    def is_sealed(self, data: bytes) -> bool: ...


# --- the face engine's interface ----------------------------------------------------------------

Tag = TypeVar("Tag")


class Analyzer(Protocol):
    """What the services need from the face engine: decode images, find, align and describe
    faces. Implementations: ``engine.pool.WorkerPool`` (worker processes, the server),
    ``engine.local.InProcessAnalyzer`` (the calling process, for commands and tests on real
    faces) and, in the tests only, a scripted analyzer whose faces the test chooses."""

    @property
    def workers(self) -> int: ...

    @property
    def embedder(self) -> str: ...

    def analyze(
        self, images: Sequence[bytes], params: DetectParams, describe: int | None = None
    ) -> list[Frame]:
        """The frames of a burst, in order; only the best ``describe`` frames described
        (all when None), the others' faces ``skipped``. Raises the first image's error."""
        ...

    def analyze_many(
        self, items: Iterable[tuple[Tag, bytes]], params: DetectParams
    ) -> Iterator[tuple[Tag, Frame | Exception]]:
        """Many independent photos (enrolment, evaluation), each answered as it finishes."""
        ...

    def describe_mirrored(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """Descriptors ``(n, 128)`` of the mirror images of aligned face chips."""
        ...

    def warm_up(self) -> None: ...

    def close(self) -> None: ...
