"""AttendanceService: the composition root that wires encoder, gallery, matcher, store and clock.

The web app and the CLI call this and nothing below it. ``recognize`` takes the raw bytes of
one or more frames and returns the API's answer; every mark goes through the store's unique
constraint, so it is safe under concurrent requests and several server processes.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import numpy as np

from . import csvfiles, imaging
from .config import Settings
from .encoder import DetectParams, EncoderPool
from .errors import AttendanceError, NotReadyError
from .gallery import EnrolmentReport, enroll, enrolled_students
from .liveness import BlinkDetector
from .matcher import Gallery, Matcher
from .models import (
    STATUS_LATE,
    STATUS_PRESENT,
    Face,
    FaceResult,
    Frame,
    Mark,
    MarkOutcome,
    Match,
    StudentStats,
)
from .store import Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
CAMERA_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
EVENT_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def system_clock() -> datetime:
    return datetime.now(timezone.utc)


class BadRequestError(AttendanceError):
    """A request field has a bad value (camera id, event id)."""


def check_camera(camera: str | None) -> str:
    camera = (camera or "default").strip() or "default"
    if not CAMERA_RE.match(camera):
        raise BadRequestError("camera id must be 1-64 letters, digits, '.', '_', ':' or '-'")
    return camera


def check_event_id(event_id: str | None) -> str | None:
    if event_id is None or event_id == "":
        return None
    if not EVENT_RE.match(event_id):
        raise BadRequestError("event id must be 1-100 letters, digits, '.', '_', ':' or '-'")
    return event_id


@dataclass
class _Analysed:
    frame: Frame
    results: list[FaceResult]


MAX_BURST = 60


def check_fps(fps: float | None) -> float:
    if fps is None:
        return 25.0
    if not 1 <= fps <= 240:
        raise BadRequestError("fps must be a number from 1 to 240")
    return float(fps)


def punctuality(local_now: datetime, settings: Settings) -> str:
    """Present or Late for a first sighting at ``local_now`` (aware, in the class's zone)."""
    start = datetime.combine(local_now.date(), settings.class_start, tzinfo=local_now.tzinfo)
    late_after = start + timedelta(minutes=settings.late_after_minutes)
    return STATUS_LATE if local_now > late_after else STATUS_PRESENT


class AttendanceService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        pool: EncoderPool | None,
        clock: Clock = system_clock,
    ) -> None:
        self.settings = settings
        self.store = store
        self._pool = pool
        self.clock = clock
        self.params = DetectParams(
            max_side=settings.detect_max_side,
            upsample=settings.detect_upsample,
            min_face_px=settings.min_face_px,
        )
        self.matcher = Matcher(Gallery.empty(), settings.match_threshold, settings.match_margin)
        self.enrolment: EnrolmentReport | None = None
        self.enrolment_error: str | None = None
        self.ready = threading.Event()
        self._streaks: dict[str, int] = {}
        self._streak_lock = threading.Lock()
        self._files_lock = threading.Lock()
        self._marks_lock = threading.Lock()
        self._marked: dict[tuple[str, date], Mark] = {}

    @property
    def pool(self) -> EncoderPool:
        if self._pool is None:
            raise NotReadyError("this command does not recognise faces")
        return self._pool

    # --- time -------------------------------------------------------------------------------

    def local_now(self) -> datetime:
        return self.clock().astimezone(self.settings.zone)

    def today(self) -> date:
        return self.local_now().date()

    # --- enrolment --------------------------------------------------------------------------

    def enroll(
        self,
        on_total: Callable[[int], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> EnrolmentReport:
        """(Re)build the gallery from the dataset folder; the server is ready afterwards."""
        try:
            gallery, report = enroll(
                self.settings.dataset_dir,
                self.store,
                self.pool,
                on_total=on_total,
                on_progress=on_progress,
            )
        except AttendanceError as exc:
            self.enrolment_error = str(exc)
            raise
        self.matcher = Matcher(gallery, self.settings.match_threshold, self.settings.match_margin)
        self.enrolment = report
        self.enrolment_error = None
        self.ready.set()
        self._write_files()
        return report

    # --- recognition ------------------------------------------------------------------------

    def recognize(
        self,
        frames: Sequence[bytes],
        camera: str | None = None,
        event_id: str | None = None,
        fps: float | None = None,
        captured_at: str | None = None,
    ) -> dict[str, Any]:
        """Recognise every face in the frames, mark known students, watch for intruders.

        Several frames are a burst in time order (``fps`` frames a second, default 25); with
        ``require_liveness`` only students whose face blinks in the burst are marked.
        """
        camera = check_camera(camera)
        event_id = check_event_id(event_id)
        fps = check_fps(fps)
        seen_at = self._seen_at(captured_at)
        if not frames:
            raise BadRequestError("send at least one image")
        if len(frames) > MAX_BURST:
            raise BadRequestError(f"a burst has at most {MAX_BURST} frames")
        if not self.ready.is_set():
            raise NotReadyError("the server is still enrolling the dataset; try again shortly")
        matcher = self.matcher
        # The workers check each image's type and size from its header before decoding it;
        # a refused image raises its ImageError here.
        found = self.pool.analyze(frames, self.params, describe=self.settings.burst_describe)
        analysed = [self._decide(frame, matcher) for frame in found]
        best_index = self._best_frame(analysed)
        chosen = analysed[best_index]
        faces = [result.as_dict() for result in chosen.results]
        known = [r for r in chosen.results if r.name]
        if not known:
            reason = self._unknown_reason(chosen)
            if reason == "unknown_face":
                self._count_unknown(camera, frames[best_index])
            return {"status": "unknown", "reason": reason, "faces": faces}
        self._reset_streak(camera)
        known.sort(key=lambda r: -(r.box.width * r.box.height))
        if self.settings.require_liveness:
            known = [r for r in known if self._blinked(analysed, r, fps)]
            if not known:
                reason = (
                    "send a burst of frames around a blink"
                    if len(frames) < 2
                    else "no blink seen in the burst"
                )
                anonymous = [{**face, "name": None} for face in faces]
                return {"status": "liveness_failed", "reason": reason, "faces": anonymous}
        local_now = seen_at
        status = punctuality(local_now, self.settings)
        marks = []
        seen: set[str] = set()
        for result in known:
            assert result.name is not None
            if result.name in seen:
                continue
            seen.add(result.name)
            mark = Mark(
                result.name, local_now.date(), local_now.replace(tzinfo=None), status, camera
            )
            mark_event = f"{event_id}/{len(seen)}" if event_id else None
            outcome = self._known_mark(mark.name, mark.day) or self.store.record_mark(
                mark, mark_event
            )
            self._remember_mark(outcome.mark)
            marks.append(
                {
                    "name": outcome.mark.name,
                    "attendance": outcome.mark.status,
                    "new": outcome.new,
                    "time": outcome.mark.seen_at.strftime("%H:%M:%S"),
                }
            )
            if outcome.new:
                log.info("marked %s %s (camera %s)", outcome.mark.name, outcome.mark.status, camera)
        if any(m["new"] for m in marks):
            self._write_files(local_now.date())
        first = marks[0]
        return {
            "status": "success",
            "name": first["name"],
            "attendance": first["attendance"],
            "new": first["new"],
            "time": first["time"],
            "marks": marks,
            "faces": faces,
        }

    def _seen_at(self, captured_at: str | None) -> datetime:
        """When the face was seen, in the class's zone: the client's capture time when it is
        trusted and plausible (not in the future, at most 7 days old), else now."""
        now = self.local_now()
        if not captured_at:
            return now
        try:
            stamp = datetime.fromisoformat(captured_at.replace("Z", "+00:00"))
        except ValueError:
            raise BadRequestError("captured_at must be an ISO 8601 time with its offset") from None
        if stamp.tzinfo is None:
            raise BadRequestError("captured_at needs a UTC offset, e.g. 2026-11-23T08:57:12Z")
        if not self.settings.trust_client_clock:
            return now
        if stamp > now + timedelta(seconds=60) or stamp < now - timedelta(days=7):
            log.warning("ignoring an implausible capture time from a client")
            return now
        return stamp.astimezone(self.settings.zone)

    def _known_mark(self, name: str, day: date) -> MarkOutcome | None:
        """Today's mark from memory: a student seen again skips the database entirely."""
        with self._marks_lock:
            mark = self._marked.get((name, day))
        return MarkOutcome(mark, False) if mark else None

    def _remember_mark(self, mark: Mark) -> None:
        with self._marks_lock:
            if len(self._marked) > 100_000:
                self._marked.clear()
            self._marked[(mark.name, mark.day)] = mark

    def _decide(self, frame: Frame, matcher: Matcher) -> _Analysed:
        usable = [face for face in frame.faces if face.descriptor is not None]
        matches: dict[int, Match] = {}
        if usable:
            vectors = np.stack([np.asarray(f.descriptor) for f in usable])
            first = matcher.match_many(vectors)
            second_look = [
                i
                for i, m in enumerate(first)
                if matcher.is_borderline(m) and usable[i].chip is not None
            ]
            if second_look:
                chips = [np.asarray(usable[i].chip) for i in second_look]
                mirrored = self.pool.describe_mirrored(chips)
                averaged = (vectors[second_look] + mirrored) / 2
                for i, match in zip(second_look, matcher.match_many(averaged), strict=True):
                    first[i] = match
            matches = {id(face): match for face, match in zip(usable, first, strict=True)}
        results = []
        for face in frame.faces:
            results.append(self._face_result(face, matches.get(id(face))))
        return _Analysed(frame, results)

    def _face_result(self, face: Face, match: Match | None) -> FaceResult:
        if face.skipped:
            return FaceResult(face.box, None, None, None, "frame not described")
        if face.descriptor is None or match is None:
            return FaceResult(face.box, None, None, None, "face too small")
        return FaceResult(face.box, match.name, match.distance, match.margin)

    @staticmethod
    def _blinked(analysed: list[_Analysed], target: FaceResult, fps: float) -> bool:
        """Whether the face recognised as ``target`` blinks over the burst."""
        detector = BlinkDetector(fps)
        reference = target.box
        for item in analysed:
            same = [r for r in item.results if r.name == target.name]
            face_result = (
                same[0]
                if same
                else max(item.results, key=lambda r: r.box.iou(reference), default=None)
            )
            ear = None
            if face_result is not None and (same or face_result.box.iou(reference) > 0.3):
                reference = face_result.box
                ear = next((f.ear for f in item.frame.faces if f.box == face_result.box), None)
            if detector.update(ear):
                return True
        return False

    @staticmethod
    def _best_frame(analysed: list[_Analysed]) -> int:
        """The frame to answer for: most known faces, then the closest match."""

        def score(item: tuple[int, _Analysed]) -> tuple[int, float]:
            _, a = item
            known = [r.distance for r in a.results if r.name and r.distance is not None]
            any_face = [r.distance for r in a.results if r.distance is not None]
            best = min(known or any_face or [9.0])
            return (-len(known), best)

        return min(enumerate(analysed), key=score)[0]

    @staticmethod
    def _unknown_reason(analysed: _Analysed) -> str:
        if not analysed.frame.faces:
            return "no_face"
        if all(r.reason == "face too small" for r in analysed.results):
            return "face_too_small"
        return "unknown_face"

    # --- intruders --------------------------------------------------------------------------

    def _reset_streak(self, camera: str) -> None:
        with self._streak_lock:
            self._streaks[camera] = 0

    def _count_unknown(self, camera: str, data: bytes) -> None:
        with self._streak_lock:
            count = self._streaks.get(camera, 0) + 1
            capture = count >= self.settings.intruder_threshold
            self._streaks[camera] = 0 if capture else count
        if capture:
            self._save_intruder(camera, data)

    def _save_intruder(self, camera: str, data: bytes) -> Path:
        local_now = self.local_now()
        info = imaging.probe(data, self.settings.max_image_pixels)
        folder = self.settings.intruders_dir / local_now.date().isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        name = f"intruder_{local_now:%H%M%S}_{camera}_{uuid.uuid4().hex[:8]}{info.suffix}"
        path = folder / name
        with open(path, "xb") as handle:
            handle.write(data)
        self.store.record_intruder(
            local_now.date(), local_now.replace(tzinfo=None), camera, str(path)
        )
        log.warning("intruder photo saved from camera %s: %s", camera, path.name)
        return path

    # --- statistics and files ----------------------------------------------------------------

    def enrolled_names(self) -> list[str]:
        return list(self.matcher.gallery.names)

    def statistics(self) -> list[StudentStats]:
        return self.store.statistics(enrolled=self.enrolled_names())

    def _write_files(
        self,
        day: date | None = None,
        marks: list[Mark] | None = None,
        stats: list[StudentStats] | None = None,
    ) -> None:
        """Rewrite the statistics CSV and, with ``day``, that day's CSV; data already at hand
        is passed in, the rest is read from the database. A failure is logged: the database
        keeps every mark regardless."""
        logs = self.settings.logs_dir
        try:
            with self._files_lock:
                if day is not None:
                    day_marks = self.store.marks_on(day) if marks is None else marks
                    csvfiles.write_atomic(
                        csvfiles.day_csv_path(logs, day), csvfiles.day_csv(day_marks)
                    )
                csvfiles.write_atomic(
                    csvfiles.statistics_csv_path(logs),
                    csvfiles.statistics_csv(self.statistics() if stats is None else stats),
                )
        except (OSError, AttendanceError) as exc:
            log.error("could not update the CSV files in %s: %s", logs, exc)

    # --- daily report -----------------------------------------------------------------------

    def report_message(self, day: date | None = None) -> tuple[date, EmailMessage]:
        """The day's report email (today by default), built from the database."""
        from .report import build_message, collect

        day = day or self.today()
        names = self.enrolled_names() or enrolled_students(self.settings.dataset_dir)
        report = collect(self.store, day, names, self.settings.class_name)
        if report.marks:  # the attached files and the ones in logs/ are the same
            self._write_files(day, report.marks, report.stats)
        return day, build_message(report, self.settings)

    def send_report(self, day: date | None = None, kind: str = "manual") -> dict[str, Any]:
        """Build and send the report now; every attempt is recorded with its outcome."""
        from . import mailer

        day, message = self.report_message(day)
        at = datetime.now(timezone.utc).replace(tzinfo=None)
        try:
            delivered = mailer.send(message, self.settings)
        except AttendanceError as exc:
            self.store.record_attempt(day, kind, at, "failed", self.settings.recipients, str(exc))
            log.error("%s report for %s not sent: %s", kind, day, exc)
            raise
        self.store.record_attempt(day, kind, at, "sent", delivered)
        log.info("%s report for %s sent to %d recipient(s)", kind, day, len(delivered))
        return {"status": "success", "date": day.isoformat(), "recipients": delivered}

    def health(self) -> dict[str, Any]:
        report = self.enrolment
        body: dict[str, Any] = {
            "status": "ok" if self.ready.is_set() else "starting",
            "students": report.students if report else 0,
            "photos": report.photos if report else 0,
            "skipped_photos": len(report.skipped) if report else 0,
            "workers": self.pool.workers,
            "embedder": self.pool.embedder,
        }
        if self.enrolment_error:
            body["status"] = "error"
            body["error"] = self.enrolment_error
        return body

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self.store.close()


def build_service(settings: Settings, clock: Clock = system_clock) -> AttendanceService:
    """Open the store and start the worker pool for ``settings``."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.db_url)
    store.create()
    pool = EncoderPool(
        settings.worker_count, settings.max_image_pixels, settings.embedder, settings.models_dir
    )
    return AttendanceService(settings, store, pool, clock)
