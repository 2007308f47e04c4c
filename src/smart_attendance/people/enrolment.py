"""Enrolment: ``dataset/<student>/*.jpg`` to a gallery of descriptors, incrementally.

Each photo's descriptor is cached in the database keyed by the SHA-256 of the file's content
(and the detection pipeline), and each path's size and modification time are remembered, so a
restart reads no unchanged file: 10,000 enrolled photos are ready in about a second. Added,
changed and removed photos are picked up on every run. A photo that cannot be used (no face,
several faces, a face too small to trust, unreadable) is reported with its path and reason.

Photos sent through the API (``EnrolmentService.add_photos``) are analysed by the same code
(``check_photos``: the cache, then ``analyse`` and ``frame_status``) before they are written
into the folder, so an upload and a copied file are judged alike.

Folder names are identities but untrusted text: names with control characters, leading dots or
path tricks are refused, and links that leave the dataset folder are not followed.
"""

from __future__ import annotations

import hashlib
import logging
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..db.store import CachedFace, PhotoRow, Store
from ..engine.model_files import model_fingerprint
from ..errors import ImageError
from ..models import ENROL_PARAMS, Analyzer, DetectParams, Frame
from ..recognition.matcher import Gallery

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
MAX_NAME_LENGTH = 100


@dataclass(frozen=True)
class Skipped:
    """A photo (or folder) that was not enrolled, and why, in plain words."""

    path: str
    reason: str


@dataclass
class EnrolmentReport:
    students: int = 0
    photos: int = 0
    encoded: int = 0
    cached: int = 0
    removed: int = 0
    updated: int = 0  # photo rows written or forgotten in the database (0: nothing changed)
    seconds: float = 0.0
    skipped: list[Skipped] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.students} students, {self.photos} photos enrolled, "
            f"{len(self.skipped)} skipped ({self.encoded} analysed, {self.cached} from cache, "
            f"{self.removed} removed) in {self.seconds:.1f} s"
        )


def check_student_name(name: str) -> str | None:
    """Why a folder name cannot be a student's name, or None if it can."""
    if not name or name != name.strip():
        return "folder name is empty or has leading/trailing spaces"
    if name.startswith("."):
        return "hidden folder"
    if len(name) > MAX_NAME_LENGTH:
        return f"folder name longer than {MAX_NAME_LENGTH} characters"
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in name):
        return "folder name contains control characters"
    if "/" in name or "\\" in name or name in {".", ".."}:
        return "folder name contains a path separator"
    return None


@dataclass(frozen=True)
class DatasetEntry:
    rel_path: str
    student: str
    path: Path
    size: int
    mtime_ns: int


def scan_dataset(root: Path) -> tuple[list[DatasetEntry], list[Skipped]]:
    """List the usable photo files under ``root`` and what was passed over."""
    entries: list[DatasetEntry] = []
    skipped: list[Skipped] = []
    if not root.is_dir():
        return entries, skipped
    real_root = root.resolve()
    for folder in sorted(root.iterdir(), key=lambda p: p.name):
        if not folder.is_dir():
            continue
        problem = check_student_name(folder.name)
        if problem:
            if not folder.name.startswith("."):
                skipped.append(Skipped(folder.name + "/", problem))
            continue
        if folder.is_symlink() and not _inside(folder, real_root):
            skipped.append(Skipped(folder.name + "/", "link to a folder outside the dataset"))
            continue
        for photo in sorted(folder.iterdir(), key=lambda p: p.name):
            rel = f"{folder.name}/{photo.name}"
            if photo.name.startswith(".") or photo.suffix.lower() not in PHOTO_SUFFIXES:
                continue
            if photo.is_symlink() and not _inside(photo, real_root):
                skipped.append(Skipped(rel, "link to a file outside the dataset"))
                continue
            try:
                stat = photo.stat()
            except OSError as exc:
                skipped.append(Skipped(rel, f"cannot read the file ({exc.strerror})"))
                continue
            if not photo.is_file():
                continue
            entries.append(DatasetEntry(rel, folder.name, photo, stat.st_size, stat.st_mtime_ns))
    return entries, skipped


def _inside(path: Path, real_root: Path) -> bool:
    try:
        path.resolve().relative_to(real_root)
    except (ValueError, OSError):
        return False
    return True


def frame_status(frame: Frame, min_face_px: int) -> CachedFace:
    """Whether an enrolment photo is usable: exactly one face, large enough."""
    if not frame.faces:
        return CachedFace("no_face", "no face found", None)
    if len(frame.faces) > 1:
        return CachedFace("many_faces", f"{len(frame.faces)} faces found, need exactly one", None)
    face = frame.faces[0]
    if face.descriptor is None:
        return CachedFace(
            "too_small",
            f"face is {face.box.width} px wide, too small to trust (minimum {min_face_px} px)",
            None,
        )
    return CachedFace("ok", "", np.asarray(face.descriptor, np.float32))


def photo_status(result: Frame | Exception, min_face_px: int) -> CachedFace:
    """The enrolment status of one analysed photo (or of the error analysing it)."""
    if isinstance(result, ImageError):
        return CachedFace("unreadable", str(result), None)
    if isinstance(result, Exception):
        log.warning("enrolment of one photo failed: %s", type(result).__name__)
        return CachedFace("error", "could not be processed", None)
    return frame_status(result, min_face_px)


Progress = Callable[[int], None]


def pipeline_key(params: DetectParams = ENROL_PARAMS) -> str:
    return f"{model_fingerprint()}-{params.key()}"


def analyse(
    analyzer: Analyzer,
    store: Store,
    jobs: Iterable[tuple[str, bytes]],
    params: DetectParams = ENROL_PARAMS,
    on_progress: Progress | None = None,
) -> dict[str, CachedFace]:
    """Analyse photos (keyed by the SHA-256 of their bytes) and cache each one's status."""
    pipeline = pipeline_key(params)
    fresh: dict[str, CachedFace] = {}
    unsaved: dict[str, CachedFace] = {}
    for digest, result in analyzer.analyze_many(jobs, params):
        fresh[digest] = unsaved[digest] = photo_status(result, params.min_face_px)
        if len(unsaved) >= 200:  # a long enrolment keeps its progress if it is interrupted
            store.cache_faces(pipeline, unsaved)
            unsaved = {}
        if on_progress:
            on_progress(1)
    store.cache_faces(pipeline, unsaved)
    return fresh


def check_photos(
    analyzer: Analyzer, store: Store, photos: dict[str, bytes], params: DetectParams = ENROL_PARAMS
) -> dict[str, CachedFace]:
    """The enrolment status of each photo (keyed by SHA-256): from the cache when it was seen
    before, else analysed now (and cached, so enrolling the file later reads no face again)."""
    known = store.cached_faces(pipeline_key(params), photos)
    todo = [(digest, data) for digest, data in photos.items() if digest not in known]
    known.update(analyse(analyzer, store, todo, params))
    return known


def enroll(
    root: Path,
    store: Store,
    analyzer: Analyzer,
    *,
    params: DetectParams = ENROL_PARAMS,
    on_total: Callable[[int], None] | None = None,
    on_progress: Progress | None = None,
) -> tuple[Gallery, EnrolmentReport]:
    """Bring the gallery up to date with the dataset folder; return it and a report."""
    started = time.monotonic()
    report = EnrolmentReport()
    entries, report.skipped = scan_dataset(root)
    known = store.photo_rows()
    pipeline = pipeline_key(params)

    rows: list[PhotoRow] = []
    changed: list[PhotoRow] = []
    to_hash: list[DatasetEntry] = []
    for entry in entries:
        old = known.get(entry.rel_path)
        if (
            old
            and old.size == entry.size
            and old.mtime_ns == entry.mtime_ns
            and old.student == entry.student
        ):
            rows.append(old)
        else:
            to_hash.append(entry)

    cache = store.cached_faces(pipeline, [row.sha256 for row in rows])
    pending: list[tuple[DatasetEntry, str]] = []
    unreadable: set[str] = set()
    for entry in to_hash:
        try:
            data = entry.path.read_bytes()
        except OSError as exc:
            report.skipped.append(Skipped(entry.rel_path, f"cannot read the file ({exc.strerror})"))
            unreadable.add(entry.rel_path)
            continue
        digest = hashlib.sha256(data).hexdigest()
        row = PhotoRow(entry.rel_path, entry.student, entry.size, entry.mtime_ns, digest)
        rows.append(row)
        changed.append(row)
        pending.append((entry, digest))
    cache.update(store.cached_faces(pipeline, [digest for _, digest in pending]))
    work = [(entry, digest) for entry, digest in pending if digest not in cache]
    unique_work: dict[str, DatasetEntry] = {}
    for entry, digest in work:
        unique_work.setdefault(digest, entry)

    if on_total:
        on_total(len(unique_work))

    def jobs() -> Iterator[tuple[str, bytes]]:
        for digest, entry in unique_work.items():
            try:
                yield digest, entry.path.read_bytes()
            except OSError:
                yield digest, b""

    fresh = analyse(analyzer, store, jobs(), params, on_progress)
    cache.update(fresh)
    report.encoded = len(fresh)

    current_paths = {row.path for row in rows}
    removed = [path for path in known if path not in current_paths]
    listed = {entry.rel_path for entry in entries}
    report.removed = sum(1 for path in known if path not in listed)
    report.updated = len(changed) + len(removed)
    if report.updated:
        store.sync_photos(changed, removed)

    pairs: list[tuple[str, np.ndarray]] = []
    for row in sorted(rows, key=lambda r: r.path):
        cached = cache.get(row.sha256)
        if cached is None:
            continue
        if cached.status == "ok" and cached.descriptor is not None:
            pairs.append((row.student, cached.descriptor))
        else:
            report.skipped.append(Skipped(row.path, cached.detail or cached.status))
    report.cached = sum(1 for row in rows if row.sha256 not in fresh)
    gallery = Gallery.from_pairs(pairs)
    report.students = gallery.student_count
    report.photos = len(pairs)
    report.skipped.sort(key=lambda s: s.path)
    report.seconds = time.monotonic() - started
    log.info("enrolment: %s", report.summary())
    return gallery, report


def enrolled_students(root: Path) -> list[str]:
    """Student folder names present in the dataset (valid names only)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not check_student_name(p.name))
