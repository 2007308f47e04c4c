"""``EnrolmentService``: the gallery the server recognises, whether it is ready, and the students
registry (add, change, rename, photos added and removed through the API or the dashboard).

Enrolment runs once at start (in the background while the server answers ``starting``), again on
``attendance enroll`` and after every change made through the API; the matcher is swapped in one
assignment, so a request sees the old gallery or the new one, never half of one. The enrolments
of one process take turns.

Processes share the gallery through the database: an enrolment that changed the photos adds one
to ``gallery_version`` (the ``meta`` table), and a server's ``GalleryWatcher`` re-runs the
incremental enrolment when the version is not the one it last saw (``refresh``), so a photo
enrolled by ``attendance enroll`` or by another server is recognised without a restart.

Photos sent through the API are checked (type and size from the header), analysed at once and
checked in words a person understands (``enrolment.inspect_frame``: one face found, big enough,
sharp, facing the camera), and written into the dataset folder only when every check passes,
as ``dataset/<name>/upload-<sha256[:12]>.<ext>``: the folder stays the one source of photos,
and the original project's layout keeps working. Removing a photo deletes its file from the
student's folder (nothing else: names are checked, links are not followed out of the folder)
and re-enrols, so the face is no longer recognised from it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy.exc import IntegrityError

from ..config import Settings
from ..db.store import Store, StudentRow
from ..engine import imaging
from ..errors import (
    AttendanceError,
    BadRequestError,
    ConfigError,
    ConflictError,
    ImageError,
    NotFoundError,
    NotReadyError,
)
from ..models import ENROL_PARAMS, Analyzer, Clock, Sealer
from ..recognition.matcher import Gallery, Matcher
from .enrolment import (
    PHOTO_SUFFIXES,
    Check,
    EnrolmentReport,
    check_photo_name,
    check_student_name,
    enroll,
    enrolled_students,
    inspect_photos,
    photo_files,
    photo_path,
    pipeline_key,
    read_photo,
    student_folder,
)

log = logging.getLogger(__name__)

GALLERY_VERSION = "gallery_version"  # the meta key every server polls
UPLOAD_PREFIX = "upload-"
THUMBNAIL_SIDE = 320  # px, the long side of a photo's thumbnail


@dataclass(frozen=True)
class PhotoResult:
    """What became of one uploaded photo: enrolled, or refused and why; and each check."""

    file: str  # the name the client gave the file
    enrolled: bool
    # no_face | many_faces | too_small | blurry | turned_away | unreadable | error
    reason: str | None = None
    detail: str = ""
    path: str | None = None  # in the dataset folder, for an enrolled photo
    checks: tuple[Check, ...] = ()  # none for a file that is not a readable photo

    @property
    def filename(self) -> str | None:
        """The enrolled photo's file name in the student's folder."""
        return self.path.rsplit("/", 1)[-1] if self.path else None

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "file": self.file,
            "status": "enrolled" if self.enrolled else "refused",
        }
        if self.enrolled:
            body["path"] = self.path
        else:
            body["reason"] = self.reason
            body["detail"] = self.detail
        body["checks"] = [check.to_json() for check in self.checks]
        return body


@dataclass(frozen=True)
class StudentPhoto:
    """A photo file of a student's folder and what enrolment made of it: ``enrolled``,
    ``skipped`` (with the reason) or ``pending`` (not enrolled yet)."""

    filename: str
    status: str
    reason: str = ""
    kept: bool = True  # False: the file was deleted after enrolment (descriptor only)

    @property
    def enrolled(self) -> bool:
        return self.status == "enrolled"


def photo_counts(gallery: Gallery) -> dict[str, int]:
    """Enrolled descriptors per student of a gallery."""
    counts = np.bincount(gallery.labels, minlength=len(gallery.names))
    return {name: int(counts[i]) for i, name in enumerate(gallery.names)}


class EnrolmentService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        analyzer: Analyzer | None,
        clock: Clock,
        sealer: Sealer,
    ) -> None:
        self.settings = settings
        self.store = store
        self.analyzer = analyzer
        self.clock = clock
        self.sealer = sealer
        self.matcher = Matcher(Gallery.empty(), settings.match_threshold, settings.match_margin)
        self.report: EnrolmentReport | None = None
        self.error: str | None = None
        self.ready = threading.Event()
        self.version: int | None = None  # the gallery_version this gallery is up to date with
        self._lock = threading.RLock()  # one enrolment (or change of the dataset) at a time

    # --- the gallery ----------------------------------------------------------------------------

    def enroll(
        self,
        on_total: Callable[[int], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> EnrolmentReport:
        """(Re)build the gallery from the dataset folder; the server is ready afterwards. Any
        failure is kept in ``error`` (``GET /health`` answers it, 503) and logged, then
        raised: the server never stays "starting" without saying why."""
        with self._lock:
            return self._enroll(on_total, on_progress, keep_error=True)

    def _enroll(
        self,
        on_total: Callable[[int], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        keep_error: bool = False,
    ) -> EnrolmentReport:
        if self.analyzer is None:
            raise NotReadyError("this command does not recognise faces")
        before = self.store.meta_number(GALLERY_VERSION)
        try:
            gallery, report = enroll(
                self.settings.dataset_dir,
                self.store,
                self.analyzer,
                sealer=self.sealer,
                allowed=self.consent_rule(),
                on_total=on_total,
                on_progress=on_progress,
            )
        except Exception as exc:
            if keep_error:
                self.error = f"enrolment failed: {_failure(exc)}"
                log.error("%s", self.error, exc_info=not isinstance(exc, AttendanceError))
            raise
        # Every student folder is a student of the registry, expected in the class periods
        # that start after it was first seen.
        self.ensure_students(set(gallery.names) | set(enrolled_students(self.settings.dataset_dir)))
        self.matcher = Matcher(gallery, self.settings.match_threshold, self.settings.match_margin)
        self.report = report
        self.error = None
        self.ready.set()
        self.version = before
        if report.updated:  # tell the other processes (servers) to refresh theirs
            after = self.store.bump_meta(GALLERY_VERSION)
            if after == before + 1:  # nobody else changed it meanwhile
                self.version = after
        return report

    def refresh(self) -> bool:
        """Re-enrol (incrementally) if another process changed the gallery since this one was
        built; True if it did. A failure keeps the current gallery and raises."""
        if not self.ready.is_set() or self.analyzer is None:
            return False  # the first enrolment, still running, will see every change
        if self.store.meta_number(GALLERY_VERSION) == self.version:
            return False
        with self._lock:
            if self.store.meta_number(GALLERY_VERSION) == self.version:
                return False  # another thread refreshed meanwhile
            report = self._enroll()
        log.info("gallery refreshed after a change elsewhere: %s", report.summary())
        return True

    def consent_rule(self) -> Callable[[str], bool] | None:
        """Who may be enrolled now: students whose consent is given (ATTENDANCE_REQUIRE_CONSENT),
        or everyone (None)."""
        if not self.settings.require_consent:
            return None
        states = self.store.consent_states()
        return lambda name: states.get(name) == "given"

    def changed_elsewhere(self) -> None:
        """Something that decides who is enrolled changed (consent, erasure): re-enrol here
        when this process recognises faces, and tell every other server through the gallery
        version either way."""
        with self._lock:
            if self.analyzer is not None and self.ready.is_set():
                self._enroll()
            self.store.bump_meta(GALLERY_VERSION)

    def forget_photos(self, name: str, remove_folder: bool = False, reenrol: bool = True) -> int:
        """Delete the photo files of ``name`` from the dataset folder (with ``remove_folder``
        the whole folder), their photo rows and descriptors, and re-enrol (unless the caller
        does it once for many); how many files were deleted. Links are removed themselves,
        never what they point to."""
        with self._lock:
            deleted = 0
            folder = student_folder(self.settings.dataset_dir, name)
            entry = self.settings.dataset_dir / name
            if remove_folder and entry.is_symlink():
                entry.unlink()
            elif folder is not None:
                for item in sorted(folder.iterdir()):
                    if not remove_folder and item.name not in photo_files(
                        self.settings.dataset_dir, name
                    ):
                        continue
                    try:
                        if item.is_dir() and not item.is_symlink():
                            shutil.rmtree(item)
                        else:
                            item.unlink()
                        deleted += 1
                    except OSError as exc:
                        raise _folder_error(exc, "delete a photo") from None
                if remove_folder:
                    try:
                        folder.rmdir()
                    except OSError as exc:
                        raise _folder_error(exc, "remove a folder") from None
            self.store.forget_photos(name)
            if reenrol:
                self.changed_elsewhere()
        log.info("the photos of one student were deleted (%d file(s))", deleted)
        return deleted

    def prune_descriptors(self, dry_run: bool = False) -> int:
        """Drop (or count) the cached descriptors no photo uses. Only once this process's
        gallery is built, and never during one of its enrolments: an enrolment caches its
        descriptors before it writes the photo rows that use them."""
        with self._lock:
            if not self.ready.is_set():
                return 0
            return self.store.orphan_faces() if dry_run else self.store.prune_face_cache()

    def drop_enrolled_photos(self, dry_run: bool = False) -> int:
        """Descriptor-only storage (ATTENDANCE_ENROLMENT_PHOTOS=delete): delete the file of
        every photo whose descriptor is computed, keeping the descriptor; how many."""
        rows = [row for row in self.store.photo_rows().values() if row.kept]
        faces = self.store.cached_faces(pipeline_key(ENROL_PARAMS), [r.sha256 for r in rows])
        done = [r for r in rows if (f := faces.get(r.sha256)) is not None and f.status == "ok"]
        if dry_run or not done:
            return len(done)
        with self._lock:
            gone = []
            for row in done:
                path = self.settings.dataset_dir / row.path
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    log.warning("an enrolled photo could not be deleted: %s", exc.strerror)
                    continue
                gone.append(row)
            self.store.sync_photos([replace(row, kept=False) for row in gone], [])
        return len(gone)

    def current(self) -> Matcher:
        """The matcher to use for a request; ``NotReadyError`` while enrolling."""
        if not self.ready.is_set():
            raise NotReadyError("the server is still enrolling the dataset; try again shortly")
        return self.matcher

    def enrolled(self) -> list[str]:
        """Students with at least one enrolled descriptor."""
        return list(self.matcher.gallery.names)

    def names(self) -> list[str]:
        """Enrolled students; before (or without) enrolment, the dataset's folder names."""
        return list(self.matcher.gallery.names) or enrolled_students(self.settings.dataset_dir)

    def photo_counts(self) -> dict[str, int]:
        """Enrolled photos (descriptors) per student in the current gallery."""
        return photo_counts(self.matcher.gallery)

    # --- the registry ---------------------------------------------------------------------------

    def students(self) -> list[StudentRow]:
        return self.store.students()

    def student(self, name: str) -> StudentRow:
        row = self.store.student(name)
        if row is None:
            raise NotFoundError(f"no student named {name!r}")
        return row

    def today(self) -> date:
        return self.clock().astimezone(self.settings.zone).date()

    def _utc_now(self) -> datetime:
        return self.clock().astimezone(timezone.utc).replace(tzinfo=None)

    def ensure_students(self, names: Iterable[str]) -> list[str]:
        """Add the students of ``names`` not in the registry yet, joined now; the names added."""
        return self.store.ensure_students(names, self.today(), self._utc_now())

    def add_student(
        self,
        name: str,
        display_name: str = "",
        external_id: str | None = None,
        classes: Sequence[str] = (),
        joined: date | None = None,
    ) -> StudentRow:
        """A new student of the registry and their dataset folder. They joined now (expected
        in the class periods that start from now on), or from the start of ``joined`` when
        a join day is given."""
        _check_name(name)
        if joined is None:
            day, at = self.today(), self._utc_now()
        else:
            day, at = joined, None
        row = StudentRow(name, display_name, external_id, True, day, tuple(classes), joined_at=at)
        with self._lock:
            if self.store.student(name) is not None:
                raise ConflictError(f"a student named {name!r} already exists")
            folder = self.settings.dataset_dir / name
            created = not folder.exists()
            _make_folder(folder)
            if not self.store.add_student(row):
                if created:
                    _remove_empty(folder)
                raise ConflictError(f"a student named {name!r} already exists")
        log.info("student %s added", name)
        return row

    def update_student(
        self, name: str, row: StudentRow, joined_changed: bool = False
    ) -> StudentRow:
        """Store the registry fields of ``row`` for ``name`` (not the day they joined). A new
        name renames the dataset folder too, and their marks, corrections and sightings follow
        (history is kept); the gallery is rebuilt at once."""
        renamed = row.name != name
        if renamed:
            _check_name(row.name)
        with self._lock:
            current = self.student(name)
            if not joined_changed:
                row = replace(row, joined_on=current.joined_on, joined_at=current.joined_at)
            if not renamed:
                self.store.update_student(name, row)
                return row
            self._require_ready()
            if self.store.student(row.name) is not None:
                raise ConflictError(f"a student named {row.name!r} already exists")
            old, new = self.settings.dataset_dir / name, self.settings.dataset_dir / row.name
            if new.exists() or new.is_symlink():
                raise ConflictError(f"the dataset already has a folder named {row.name!r}")
            moved = old.is_dir()
            if moved:
                _rename_folder(old, new)
            try:
                self.store.update_student(name, row)
            except IntegrityError:
                if moved:
                    _rename_folder(new, old)
                raise ConflictError(f"a student named {row.name!r} already exists") from None
            except AttendanceError:
                if moved:
                    _rename_folder(new, old)
                raise
            log.info("student %s renamed %s", name, row.name)
            self._enroll()
        return row

    def add_photos(self, name: str, uploads: Sequence[tuple[str, bytes]]) -> list[PhotoResult]:
        """Check, analyse and keep the usable photos of ``name`` (``(file name, bytes)`` each);
        the gallery is updated before this returns."""
        self._require_ready()
        if self.analyzer is None:
            raise NotReadyError("this command does not recognise faces")
        self.require_consent(self.student(name))
        results: list[PhotoResult | None] = [None] * len(uploads)
        usable: dict[str, tuple[bytes, str]] = {}  # digest -> (bytes, file suffix)
        digests: list[str | None] = [None] * len(uploads)
        for i, (file, data) in enumerate(uploads):
            try:
                info = imaging.probe(data, self.settings.max_image_pixels)
            except ImageError as exc:
                results[i] = PhotoResult(file, False, "unreadable", str(exc))
                continue
            if info.suffix not in PHOTO_SUFFIXES:
                results[i] = PhotoResult(
                    file,
                    False,
                    "unreadable",
                    f"{info.format} photos are not kept in the dataset (send JPEG or PNG)",
                )
                continue
            digest = hashlib.sha256(data).hexdigest()
            digests[i] = digest
            usable[digest] = (data, info.suffix)
        photos = {digest: data for digest, (data, _) in usable.items()}
        inspections = inspect_photos(self.analyzer, self.store, photos, ENROL_PARAMS)
        with self._lock:
            self.student(name)  # not renamed meanwhile
            folder = self.settings.dataset_dir / name
            _make_folder(folder)
            written = False
            for i, key in enumerate(digests):
                if key is None:
                    continue
                found = inspections[key]
                file = uploads[i][0]
                if not found.usable:
                    results[i] = PhotoResult(
                        file, False, found.status, found.detail, checks=found.checks
                    )
                    continue
                data, suffix = usable[key]
                target = folder / f"{UPLOAD_PREFIX}{key[:12]}{suffix}"
                if not target.exists():
                    _write_file(target, self.sealer.seal(data))
                    written = True
                results[i] = PhotoResult(
                    file, True, path=f"{name}/{target.name}", checks=found.checks
                )
            if written:
                self._enroll()
            # A refused photo is not kept: neither is its descriptor.
            refused = {key for key in digests if key and not inspections[key].usable}
            self.store.forget_faces(refused)
        kept = sum(1 for r in results if r is not None and r.enrolled)
        log.info("%d of %d photo(s) of %s enrolled", kept, len(uploads), name)
        return [r for r in results if r is not None]

    def require_consent(self, student: StudentRow) -> None:
        """``ConflictError`` when photos of ``student`` may not be processed (no consent)."""
        if self.settings.require_consent and student.consent != "given":
            state = (
                "no recorded consent" if student.consent == "none" else f"consent {student.consent}"
            )
            raise ConflictError(
                f"{student.name} has {state}: photos are not processed until consent is given "
                "(attendance consent give, or the student's page)"
            )

    def remove_photo(self, name: str, filename: str) -> int:
        """Delete the photo ``filename`` from the dataset folder of ``name`` and re-enrol, so
        the face is no longer recognised from it; the photos of ``name`` still enrolled."""
        self._require_ready()
        if self.analyzer is None:
            raise NotReadyError("this command does not recognise faces")
        problem = check_photo_name(filename)
        if problem:
            raise BadRequestError(f"bad photo name: {problem}")
        with self._lock:
            self.student(name)
            folder = student_folder(self.settings.dataset_dir, name)
            entry = None if folder is None else folder / filename
            row = self.store.photo_rows().get(f"{name}/{filename}")
            if row is not None and not row.kept:  # descriptor only: forget the descriptor
                self.store.sync_photos([], [row.path])
                self.store.forget_faces({row.sha256})
                self._enroll()
                return self.photo_counts().get(name, 0)
            # A link is removed itself (never what it points to); anything else must be a file.
            if entry is None or not (entry.is_symlink() or entry.is_file()):
                raise NotFoundError(f"{name} has no photo named {filename[:80]!r}")
            try:
                entry.unlink()
            except FileNotFoundError:
                raise NotFoundError(f"{name} has no photo named {filename[:80]!r}") from None
            except OSError as exc:
                raise _folder_error(exc, "remove a photo") from None
            self._enroll()
        log.info("one photo of %s removed", name)
        return self.photo_counts().get(name, 0)

    def photos(self, name: str) -> list[StudentPhoto]:
        """The photo files of student ``name`` and what the last enrolment (of any server,
        from the database) made of each."""
        student = self.student(name)
        files = photo_files(self.settings.dataset_dir, name)
        rows = self.store.photo_rows()
        gone = sorted(
            row.path.split("/", 1)[1]
            for row in rows.values()
            if row.student == name and not row.kept and row.path.split("/", 1)[1] not in files
        )
        known = {f: rows[f"{name}/{f}"].sha256 for f in files + gone if f"{name}/{f}" in rows}
        faces = self.store.cached_faces(pipeline_key(ENROL_PARAMS), known.values())
        out = []
        waiting = self.settings.require_consent and student.consent != "given"
        for file in files + gone:
            face = faces.get(known.get(file, ""))
            kept = file not in gone
            if waiting:
                out.append(StudentPhoto(file, "pending", "awaiting consent", kept))
            elif face is None:
                out.append(StudentPhoto(file, "pending", "", kept))
            elif face.status == "ok":
                detail = "" if kept else "photo deleted after enrolment (descriptor only)"
                out.append(StudentPhoto(file, "enrolled", detail, kept))
            else:
                out.append(StudentPhoto(file, "skipped", face.detail or face.status, kept))
        return out

    def photo(self, name: str, filename: str) -> bytes:
        """The plain bytes of one photo of ``name`` (sealed at rest)."""
        self.student(name)
        path = photo_path(self.settings.dataset_dir, name, filename)
        if path is None:
            raise NotFoundError(f"{name} has no photo named {filename[:80]!r}")
        try:
            return read_photo(path, self.sealer)
        except OSError:
            raise NotFoundError(f"{name} has no photo named {filename[:80]!r}") from None

    def thumbnail(self, name: str, filename: str, side: int = THUMBNAIL_SIDE) -> bytes:
        """A small JPEG of one photo of ``name`` (upright, at most ``side`` px, no metadata)."""
        data = self.photo(name, filename)
        image = Image.fromarray(imaging.decode(data, self.settings.max_image_pixels))
        image.thumbnail((side, side))
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=85)
        return out.getvalue()

    def _require_ready(self) -> None:
        if not self.ready.is_set():
            raise NotReadyError("the server is still enrolling the dataset; try again shortly")


def _failure(exc: Exception) -> str:
    """One line on an enrolment's failure, for ``/health``: the message of our errors; for
    others their kind and, for a file, the reason without the path (it may name a student)."""
    if isinstance(exc, AttendanceError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({type(exc).__name__}; the server's log has the file)"
    return f"{type(exc).__name__} (the server's log has the details)"


def _check_name(name: str) -> None:
    problem = check_student_name(name)
    if problem:
        raise BadRequestError(f"bad student name: {problem.replace('folder name', 'the name')}")


def _folder_error(exc: OSError, what: str) -> AttendanceError:
    if exc.errno == errno.ENAMETOOLONG:
        return BadRequestError("bad student name: too long for a folder name")
    return ConfigError(f"cannot {what} in the dataset folder: {exc.strerror or exc}")


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise _folder_error(exc, "create a folder") from None


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def _rename_folder(old: Path, new: Path) -> None:
    try:
        os.rename(old, new)
    except OSError as exc:
        raise _folder_error(exc, "rename a folder") from None


def _write_file(target: Path, data: bytes) -> None:
    """Write a photo whole or not at all (a hidden temporary file is never enrolled), readable
    by the server's user only (0600)."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise _folder_error(exc, "write a photo") from None
