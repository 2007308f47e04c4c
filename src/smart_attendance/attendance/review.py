"""``ReviewService``: the review queue, where a person decides what the rule could not.

* **Uncertain faces**: a scan's best frame had a face the rule left unknown although a student
  was near (close to the threshold or the margin: ``FaceResult.candidate``). ``record`` keeps a
  crop of the face (JPEG, mode 0600, under ``DATA_DIR/review/YYYY-MM-DD/``) and a row of the
  ``uncertain`` table: at most one per candidate and camera within ``REPEAT_WINDOW``, while the
  crops stay under ``ATTENDANCE_REVIEW_MAX_MB``. Saving never fails the scan: a failure (or a
  full cap) is one line of the log (never image bytes nor descriptors).
* **Intruder photos** (saved by ``IntruderService``): "this is <student>", dismiss, delete.

Confirming an uncertain face, or naming the student of an intruder photo, marks the student as
a camera would have at the time of the photo (the class period open then, Present or Late),
signed ``review:USER``. A decision never changes the threshold, the margin nor the gallery:
the rule stays what ``attendance eval`` measured. A decision is recorded with who took it and
when; only ``delete`` removes anything (the photo and its row).
"""

from __future__ import annotations

import io
import logging
import threading
import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

from PIL import Image

from ..config import Settings
from ..db.review import OPEN, IntruderRow, UncertainRow
from ..db.store import Store
from ..engine import imaging
from ..errors import BadRequestError, ConfigError, ConflictError, NotFoundError
from ..models import Box, Clock, FaceResult, MarkResult
from ..people.service import EnrolmentService
from .files import CsvFiles, DiskCap, file_safe, write_private
from .marks import AttendanceService

log = logging.getLogger(__name__)

REPEAT_WINDOW = timedelta(minutes=10)  # one entry per candidate and camera within this
CROP_MARGIN = 0.4  # around the face box, as a share of its width and height, on each side
CROP_MAX_SIDE = 480  # pixels; larger crops are scaled down
JPEG_QUALITY = 90

Row = TypeVar("Row", IntruderRow, UncertainRow)

IDENTIFIED, DISMISSED = "identified", "dismissed"  # intruder photos
CONFIRMED, REJECTED = "confirmed", "rejected"  # uncertain faces


def crop_box(box: Box, width: int, height: int, margin: float = CROP_MARGIN) -> Box:
    """``box`` grown by ``margin`` of its size on each side, clamped to the image."""
    dx, dy = round(box.width * margin), round(box.height * margin)
    return Box(
        max(0, box.left - dx),
        max(0, box.top - dy),
        min(width, box.right + dx),
        min(height, box.bottom + dy),
    )


def face_jpeg(frame: bytes, box: Box, max_pixels: int) -> bytes:
    """The face of ``frame`` in ``box`` with some margin, as a JPEG (``ImageError`` when the
    frame cannot be decoded, ``ValueError`` when the box lies outside it)."""
    pixels = imaging.decode(frame, max_pixels)
    height, width = pixels.shape[:2]
    area = crop_box(box, width, height)
    if area.width <= 0 or area.height <= 0:
        raise ValueError("the face box lies outside the frame")
    image = Image.fromarray(pixels[area.top : area.bottom, area.left : area.right])
    image.thumbnail((CROP_MAX_SIDE, CROP_MAX_SIDE))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


class ReviewService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        attendance: AttendanceService,
        files: CsvFiles,
        enrolment: EnrolmentService,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.attendance = attendance
        self.files = files
        self.enrolment = enrolment
        self._lock = threading.Lock()
        self.disk = DiskCap(self.folder, settings.review_max_mb * 1024 * 1024)

    @property
    def folder(self) -> Path:
        """Where the crops of uncertain faces are kept (one folder per day)."""
        return self.settings.data_dir / "review"

    def _now_utc(self) -> datetime:
        return self.clock().astimezone(timezone.utc).replace(tzinfo=None)

    # --- recording uncertain faces (called by ScanService) ----------------------------------

    def record(
        self, camera: str, seen_at: datetime, frame: bytes, faces: Sequence[FaceResult]
    ) -> list[int]:
        """Queue the uncertain ``faces`` of ``frame`` seen at ``camera`` at ``seen_at`` (local
        time); the ids of the new rows. Never raises: a failure is logged in one line."""
        recorded = []
        for face in faces:
            if not face.candidate or face.distance is None:
                continue
            try:
                row_id = self._record_one(camera, seen_at, frame, face)
            except Exception as exc:  # the scan goes on: the review queue is a convenience
                log.warning(
                    "uncertain face at camera %s not queued for review: %s: %s",
                    camera,
                    type(exc).__name__,
                    str(exc).splitlines()[0][:160] if str(exc) else "",
                )
                continue
            if row_id is not None:
                recorded.append(row_id)
        return recorded

    def _record_one(
        self, camera: str, seen_at: datetime, frame: bytes, face: FaceResult
    ) -> int | None:
        candidate = face.candidate
        assert candidate is not None and face.distance is not None
        local = seen_at.astimezone(self.settings.zone).replace(tzinfo=None)
        with self._lock:
            if self._recently_queued(candidate, camera, local):
                return None
            sealed = self.enrolment.sealer.seal(
                face_jpeg(frame, face.box, self.settings.max_image_pixels)
            )
            if not self.disk.room_for(len(sealed)):
                log.warning(
                    "uncertain face at camera %s not queued for review: the crops use "
                    "ATTENDANCE_REVIEW_MAX_MB=%d already",
                    camera,
                    self.settings.review_max_mb,
                )
                return None
            folder = self.folder / local.date().isoformat()
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = (
                folder / f"uncertain_{local:%H%M%S}_{file_safe(camera)}_{uuid.uuid4().hex[:8]}.jpg"
            )
            write_private(path, sealed)
            self.disk.added(len(sealed))
            try:
                row_id = self.store.record_uncertain(
                    local, camera, candidate, face.distance, face.margin, str(path)
                )
            except BaseException:
                path.unlink(missing_ok=True)
                raise
        log.info("uncertain face queued for review from camera %s (%s)", camera, path.name)
        return row_id

    def _recently_queued(self, candidate: str, camera: str, local: datetime) -> bool:
        """An entry for this candidate and camera within ``REPEAT_WINDOW`` of ``local``."""
        first, last = (local - REPEAT_WINDOW).date(), (local + REPEAT_WINDOW).date()
        return any(
            row.candidate == candidate
            and row.camera == camera
            and abs(row.seen_at - local) < REPEAT_WINDOW
            for row in self.store.uncertain_rows(first, last)
        )

    # --- the queue --------------------------------------------------------------------------

    def intruders(self, first: date, last: date, state: str | None = None) -> list[IntruderRow]:
        return self.store.intruder_rows(first, last, state)

    def uncertain_faces(
        self, first: date, last: date, state: str | None = None
    ) -> list[UncertainRow]:
        return self.store.uncertain_rows(first, last, state)

    def intruder(self, row_id: int) -> IntruderRow:
        row = self.store.intruder_row(row_id)
        if row is None:
            raise NotFoundError(f"no intruder photo #{row_id}")
        return row

    def uncertain(self, row_id: int) -> UncertainRow:
        row = self.store.uncertain_row(row_id)
        if row is None:
            raise NotFoundError(f"no uncertain face #{row_id}")
        return row

    def students(self) -> list[str]:
        """Who a photo may be: enrolled students and the registry's, except those who left."""
        rows = self.enrolment.students()
        left = {row.name for row in rows if not row.active}
        names = set(self.enrolment.names()) | {row.name for row in rows if row.active}
        return sorted(names - left)

    def photo_bytes(self, path: str) -> bytes:
        """The plain bytes of a row's photo (sealed at rest), only from under the data folder."""
        file = self.photo(path)
        try:
            return self.enrolment.sealer.open(file.read_bytes())
        except OSError:
            raise NotFoundError("the photo file cannot be read") from None

    def photo(self, path: str) -> Path:
        """The photo file of a row, only when it is a file under the data folder."""
        root = self.settings.data_dir.resolve()
        try:
            resolved = Path(path).resolve()
        except (OSError, RuntimeError):
            raise NotFoundError("the photo file is missing") from None
        if not resolved.is_relative_to(root) or not resolved.is_file():
            raise NotFoundError("the photo file is missing")
        return resolved

    # --- decisions --------------------------------------------------------------------------

    def identify_intruder(self, row_id: int, student: str, by: str) -> list[MarkResult]:
        """The intruder photo was ``student``: marked as at the photo's time and camera."""
        row = self._open(self.intruder(row_id), "intruder photo")
        student = (student or "").strip()
        if not student:
            raise BadRequestError("choose the student in the photo")
        if student not in self.students():
            raise BadRequestError(f"unknown student {student[:64]!r}")
        if not self.store.decide_intruder(row.id, IDENTIFIED, student, by, self._now_utc()):
            raise self._taken(self.intruder(row_id), "intruder photo")
        try:
            marks = self._mark(student, row.seen_at, row.camera, by)
        except Exception:
            self.store.decide_intruder(row.id, OPEN, None, None, None)  # still to decide
            raise
        log.info("intruder photo #%d identified as %s by %s", row.id, student, by)
        return marks

    def dismiss_intruder(self, row_id: int, by: str) -> IntruderRow:
        row = self._open(self.intruder(row_id), "intruder photo")
        if not self.store.decide_intruder(row.id, DISMISSED, None, by, self._now_utc()):
            raise self._taken(self.intruder(row_id), "intruder photo")
        log.info("intruder photo #%d dismissed by %s", row.id, by)
        return row

    def delete_intruder(self, row_id: int, by: str) -> IntruderRow:
        """Remove the photo file (when under the data folder) and its row."""
        row = self.intruder(row_id)
        root = self.settings.data_dir.resolve()
        path = Path(row.path).resolve()
        if not row.path:
            pass  # an event kept without a photo (ATTENDANCE_INTRUDER_PHOTOS=off)
        elif path.is_relative_to(root):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot remove the photo in the data folder: {exc.strerror or exc}"
                ) from None
        else:
            log.warning("intruder photo #%d is outside the data folder: file kept", row.id)
        self.store.delete_intruder(row.id)
        log.info("intruder photo #%d deleted by %s", row.id, by)
        return row

    def confirm(self, row_id: int, by: str) -> list[MarkResult]:
        """The uncertain face was its candidate: marked as at the sighting's time and camera."""
        row = self._open(self.uncertain(row_id), "uncertain face")
        if not self.store.decide_uncertain(row.id, CONFIRMED, by, self._now_utc()):
            raise self._taken(self.uncertain(row_id), "uncertain face")
        try:
            marks = self._mark(row.candidate, row.seen_at, row.camera, by)
        except Exception:
            self.store.decide_uncertain(row.id, OPEN, None, None)  # still to decide
            raise
        log.info("uncertain face #%d confirmed as %s by %s", row.id, row.candidate, by)
        return marks

    def reject(self, row_id: int, by: str) -> UncertainRow:
        row = self._open(self.uncertain(row_id), "uncertain face")
        if not self.store.decide_uncertain(row.id, REJECTED, by, self._now_utc()):
            raise self._taken(self.uncertain(row_id), "uncertain face")
        log.info("uncertain face #%d rejected by %s", row.id, by)
        return row

    @staticmethod
    def _taken(row: Row, what: str) -> ConflictError:
        """A reviewer (on this server or another) decided the row between our read and our
        write: the decision is theirs, ours is refused."""
        who = f" by {row.decided_by}" if row.decided_by else ""
        return ConflictError(f"this {what} was just {row.state}{who}")

    @staticmethod
    def _open(row: Row, what: str) -> Row:
        if row.state != OPEN:
            who = f" by {row.decided_by}" if row.decided_by else ""
            raise ConflictError(f"this {what} was already {row.state}{who}")
        return row

    def _mark(self, student: str, seen_at: datetime, camera: str, by: str) -> list[MarkResult]:
        """Mark ``student`` in the class periods open at ``seen_at`` (local wall time), as a
        camera mark signed ``review:USER``; ``BadRequestError`` when no period was open."""
        local = seen_at.replace(tzinfo=self.settings.zone)
        source = "review:" + by.removeprefix("user:")
        if not self.attendance.slots(student, local):  # checked first: no sighting recorded
            raise BadRequestError(
                f"{student} had no class period open at {local:%H:%M} on {local.date()}: "
                "nothing was marked"
            )
        marks = self.attendance.mark([student], local, camera, None, source=source)
        done = [m for m in marks if m.attendance is not None]
        if not done:
            raise BadRequestError(
                f"{student} had no class period open at {local:%H:%M} on {local.date()}: "
                "nothing was marked"
            )
        if any(m.new for m in done):
            self.files.update(local.date())
        return done
