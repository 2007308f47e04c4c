"""Enrolment: ``dataset/<student>/*.jpg`` to a gallery of descriptors, incrementally.

Each photo's descriptor is cached in the database keyed by the SHA-256 of the file's content
(and the detection pipeline), and each path's size and modification time are remembered, so a
restart reads no unchanged file: 10,000 enrolled photos are ready in about a second. Added,
changed and removed photos are picked up on every run. A photo that cannot be used (no face,
several faces, a face too small to trust, unreadable) is reported with its path and reason.

Photos sent through the API or the dashboard (``EnrolmentService.add_photos``) are analysed
by the same code before they are written into the folder, and pass every check of
``inspect_frame``, in words a person understands: one face found, big enough (the folder's
rule, ``frame_status``), then sharp and facing the camera. The last two judge new photos only:
a photo copied into the folder by hand is enrolled by the folder's rule, as before, so a
dataset that enrols today keeps enrolling.

Both thresholds were measured on the 447 photos of ../shared/faces that the folder's rule
enrols, with the real analyzer: none of them is refused.

* **sharp**: the variance of the Laplacian of the centre of the aligned 150 px face chip (the
  face as the descriptor network sees it, whatever the photo's size) is at least
  ``MIN_SHARPNESS`` (10). Those photos measure 14 to 2,850 (median 105; the softest are 250 px
  news photos). Blurred copies (Gaussian, radius 3 % of the face's width) of a third of them:
  76 % refused as blurry, 14 % no longer show a face, 10 % pass.
* **facing the camera**: ``|yaw|`` (``models.Face.yaw``: the nose tip's offset from the
  midpoint of the outer eye corners, over half their distance: 1 puts the nose tip level with
  an eye's outer corner) is at most ``MAX_YAW`` (1.0). Those photos: median 0.10, 99th
  percentile 0.74, most turned 1.22 (a head turned about 45 degrees: the one photo of those
  447 a new upload would refuse); a head turned about 30 degrees measures about 0.5. Most
  faces turned further are not found at all (dlib's detector is a frontal one): the check
  catches the few it still finds.

Folder names are identities but untrusted text: names with control characters, leading dots or
path tricks are refused, and links that leave the dataset folder are not followed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_IMODE, S_ISLNK

import numpy as np
from sqlalchemy.exc import IntegrityError

from ..db.store import CachedFace, PhotoRow, Store
from ..engine.model_files import model_fingerprint
from ..errors import ImageError
from ..models import ENROL_PARAMS, Analyzer, DetectParams, Face, Frame, Sealer
from ..recognition.matcher import Gallery

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
MAX_NAME_LENGTH = 100
MAX_PHOTO_NAME = 255

# The checks of a new photo (``inspect_frame``); the module's docstring has the figures.
MIN_SHARPNESS = 10.0  # Laplacian variance of the chip's centre; lower refuses more photos
MAX_YAW = 1.0  # |yaw|: the nose tip level with an eye's outer corner (about 45 degrees)
ONE_FACE, BIG_ENOUGH, SHARP, FACING = "one_face", "big_enough", "sharp", "facing"
CHECK_LABELS = {
    ONE_FACE: "one face found",
    BIG_ENOUGH: "big enough",
    SHARP: "sharp",
    FACING: "facing the camera",
}
BLURRY, TURNED_AWAY = "blurry", "turned_away"
REFUSALS = {
    BLURRY: "blurry: hold still, with the face in focus and in good light",
    TURNED_AWAY: "turned away: face the camera",
}


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
    awaiting: list[str] = field(default_factory=list)  # folders of students without consent
    sealed: int = 0  # plain photos of the dataset encrypted in place by this run

    def summary(self) -> str:
        waiting = f", {len(self.awaiting)} awaiting consent" if self.awaiting else ""
        return (
            f"{self.students} students, {self.photos} photos enrolled, "
            f"{len(self.skipped)} skipped{waiting} ({self.encoded} analysed, "
            f"{self.cached} from cache, {self.removed} removed) in {self.seconds:.1f} s"
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
    """List the usable photo files under ``root`` and what was passed over: a student folder
    that cannot be read (permissions, I/O error) is skipped with the reason, never the end of
    the enrolment. The dataset folder itself that cannot be read is an ``OSError``."""
    entries: list[DatasetEntry] = []
    skipped: list[Skipped] = []
    if not root.is_dir():
        return entries, skipped
    real_root = root.resolve()
    for folder in sorted(root.iterdir(), key=lambda p: p.name):
        try:
            is_folder = folder.is_dir()
        except OSError as exc:  # pragma: no cover - is_dir() answers False for most errors
            skipped.append(Skipped(folder.name + "/", f"cannot read the folder ({exc.strerror})"))
            continue
        if not is_folder:
            continue
        problem = check_student_name(folder.name)
        if problem:
            if not folder.name.startswith("."):
                skipped.append(Skipped(folder.name + "/", problem))
            continue
        if folder.is_symlink() and not _inside(folder, real_root):
            skipped.append(Skipped(folder.name + "/", "link to a folder outside the dataset"))
            continue
        try:
            photos = sorted(folder.iterdir(), key=lambda p: p.name)
        except OSError as exc:
            skipped.append(Skipped(folder.name + "/", f"cannot read the folder ({exc.strerror})"))
            log.warning("a student folder of the dataset cannot be read: %s", exc.strerror)
            continue
        for photo in photos:
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


def make_private(root: Path, entries: Iterable[DatasetEntry]) -> int:
    """The dataset folder, its student folders and their photos made private to the server's
    user (folders 0700, files 0600), like the data folder: photos awaiting consent are plain
    faces, not yet encrypted. Links are left alone, never followed; a mode that cannot be
    changed (a folder another user owns) is counted and logged once. How many were changed."""
    listed = list(entries)
    paths = [root.resolve(), *sorted({entry.path.parent for entry in listed})]
    paths += [entry.path for entry in listed]
    changed = failed = 0
    for path in paths:
        try:
            mode = path.lstat().st_mode
            if S_ISLNK(mode) or not S_IMODE(mode) & 0o077:
                continue
            path.chmod(S_IMODE(mode) & 0o700)
        except OSError:
            failed += 1
            continue
        changed += 1
    if changed:
        log.info("made %d file(s) and folder(s) of the dataset private to this user", changed)
    if failed:
        log.warning(
            "%d file(s) or folder(s) of the dataset could not be made private to this user "
            "(owned by another user?): run the server as their owner, or chmod go-rwx them",
            failed,
        )
    return changed


def _inside(path: Path, real_root: Path) -> bool:
    try:
        path.resolve().relative_to(real_root)
    except (ValueError, OSError):
        return False
    return True


def check_photo_name(filename: str) -> str | None:
    """Why ``filename`` cannot name a photo in a student's folder (a plain file name, not
    hidden, no separator nor control character, a photo's suffix), or None if it can."""
    if not filename or len(filename) > MAX_PHOTO_NAME:
        return "a photo's file name is 1 to 255 characters"
    if "/" in filename or "\\" in filename or filename.startswith("."):
        return "a photo's file name has no path separator and does not start with a dot"
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in filename):
        return "a photo's file name has no control characters"
    if Path(filename).suffix.lower() not in PHOTO_SUFFIXES:
        return "a photo's file name ends in .jpg, .jpeg or .png"
    return None


def student_folder(root: Path, name: str) -> Path | None:
    """The dataset folder of student ``name`` when it exists right inside ``root`` (after
    following a link), else None; never a folder elsewhere."""
    if check_student_name(name):
        return None
    folder = root / name
    try:
        real_root = root.resolve(strict=True)
        if folder.resolve(strict=True).parent != real_root or not folder.is_dir():
            return None
    except (OSError, RuntimeError):
        return None
    return folder


def photo_path(root: Path, name: str, filename: str) -> Path | None:
    """The photo ``filename`` of student ``name``: a file right inside their dataset folder
    (after following any link), else None."""
    folder = student_folder(root, name)
    if folder is None or check_photo_name(filename):
        return None
    try:
        real = (folder / filename).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if real.parent != folder.resolve() or not real.is_file():
        return None
    return real


def photo_files(root: Path, name: str) -> list[str]:
    """The photo files of a student's dataset folder, by name."""
    folder = student_folder(root, name)
    if folder is None:
        return []
    try:
        names = sorted(p.name for p in folder.iterdir())
    except OSError:
        return []
    return [n for n in names if photo_path(root, name, n) is not None]


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


@dataclass(frozen=True)
class Check:
    """One check of a new photo. ``passed`` None: not checked (an earlier check failed, or
    the analyzer did not measure it)."""

    name: str  # one_face | big_enough | sharp | facing
    passed: bool | None
    detail: str = ""

    @property
    def label(self) -> str:
        return CHECK_LABELS[self.name]

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "label": self.label,
            "passed": self.passed,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Inspection:
    """A new photo's checks and verdict: ``status`` "ok", or why it is refused (``no_face``,
    ``many_faces``, ``too_small``, ``blurry``, ``turned_away``, ``unreadable``, ``error``)
    with ``detail`` in words. ``face`` is the folder's rule, cached like enrolment's."""

    face: CachedFace
    checks: tuple[Check, ...]
    status: str
    detail: str

    @property
    def usable(self) -> bool:
        return self.status == "ok"


def inspect_frame(frame: Frame, min_face_px: int) -> Inspection:
    """Every check of a new photo, in order: one face found, big enough, sharp, facing the
    camera. A check after a failed one of the first two is not made (the face is unknown or
    too small to measure)."""
    rule = frame_status(frame, min_face_px)
    checks: list[Check] = []
    face = frame.faces[0] if len(frame.faces) == 1 else None
    checks.append(Check(ONE_FACE, face is not None, "1 face" if face else rule.detail))
    if face is not None and face.descriptor is None:
        checks.append(Check(BIG_ENOUGH, False, rule.detail))
    elif face is not None:
        wide = f"face {face.box.width} px wide (at least {min_face_px} px)"
        checks.append(Check(BIG_ENOUGH, True, wide))
        checks += [_sharp(face), _facing(face)]
    made = {check.name for check in checks}
    checks += [Check(name, None) for name in CHECK_LABELS if name not in made]
    if rule.status != "ok":
        return Inspection(rule, tuple(checks), rule.status, rule.detail)
    failed = {check.name for check in checks if check.passed is False}
    status = BLURRY if SHARP in failed else TURNED_AWAY if FACING in failed else "ok"
    return Inspection(rule, tuple(checks), status, REFUSALS.get(status, ""))


def _sharp(face: Face) -> Check:
    if face.sharpness is None:
        return Check(SHARP, None, "not measured")
    detail = f"sharpness {face.sharpness:.0f} (at least {MIN_SHARPNESS:.0f})"
    return Check(SHARP, face.sharpness >= MIN_SHARPNESS, detail)


def _facing(face: Face) -> Check:
    if face.yaw is None:
        return Check(FACING, None, "not measured")
    detail = f"turned {abs(face.yaw):.2f} (at most {MAX_YAW:.2f})"
    return Check(FACING, abs(face.yaw) <= MAX_YAW, detail)


def inspect_result(result: Frame | Exception, min_face_px: int) -> Inspection:
    """The checks of one analysed photo (or of the error analysing it: no checks)."""
    if isinstance(result, Frame):
        return inspect_frame(result, min_face_px)
    face = photo_status(result, min_face_px)
    return Inspection(face, (), face.status, face.detail)


def inspect_photos(
    analyzer: Analyzer, store: Store, photos: dict[str, bytes], params: DetectParams = ENROL_PARAMS
) -> dict[str, Inspection]:
    """Analyse new photos (keyed by SHA-256) and check each one. Always analysed (the checks
    need the face's measures, which the cache does not keep); the folder's rule is cached, so
    enrolling a kept photo reads no face again."""
    found = {
        digest: inspect_result(result, params.min_face_px)
        for digest, result in analyzer.analyze_many(photos.items(), params)
    }
    try:
        store.cache_faces(pipeline_key(params), {d: found[d].face for d in found})
    except IntegrityError:  # the same photos, cached meanwhile by another request: same answer
        log.debug("face cache already written for %d photo(s)", len(found))
    return found


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


def seal_in_place(path: Path, plain: bytes, sealer: Sealer) -> os.stat_result | None:
    """Replace a plain photo of the dataset by its sealed bytes (mode 0600; a link is replaced
    itself, never what it points to); the new file's stat, or None when the folder cannot be
    written (the photo stays plain and is enrolled all the same)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.seal")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(sealer.seal(plain))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        return path.stat()
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        log.warning("a photo of the dataset could not be encrypted in place: %s", exc.strerror)
        return None


def read_photo(path: Path, sealer: Sealer) -> bytes:
    """A photo's plain bytes (sealed or not on disk)."""
    return sealer.open(path.read_bytes())


def enroll(
    root: Path,
    store: Store,
    analyzer: Analyzer,
    *,
    sealer: Sealer,
    allowed: Callable[[str], bool] | None = None,
    params: DetectParams = ENROL_PARAMS,
    on_total: Callable[[int], None] | None = None,
    on_progress: Progress | None = None,
) -> tuple[Gallery, EnrolmentReport]:
    """Bring the gallery up to date with the dataset folder; return it and a report.

    ``allowed(student)`` False (no consent recorded): the student's photos are not read at
    all, and any photo row or descriptor of theirs is forgotten. Plain photos read for the
    first time are sealed in place (``seal_in_place``); photos whose file was deleted after
    enrolment (``PhotoRow.kept`` False, descriptor-only storage) stay in the gallery."""
    started = time.monotonic()
    report = EnrolmentReport()
    entries, report.skipped = scan_dataset(root)
    if root.is_dir():
        make_private(root, entries)  # photos awaiting consent too: plain faces
    if allowed is not None:
        report.awaiting = sorted({e.student for e in entries if not allowed(e.student)})
        entries = [e for e in entries if allowed(e.student)]
    known = store.photo_rows()
    pipeline = pipeline_key(params)

    rows: list[PhotoRow] = []
    changed: list[PhotoRow] = []
    to_hash: list[DatasetEntry] = []
    listed = {entry.rel_path for entry in entries}
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
    for path, old in known.items():  # descriptor-only photos: no file, still enrolled
        if path not in listed and not old.kept and (allowed is None or allowed(old.student)):
            rows.append(old)

    cache = store.cached_faces(pipeline, [row.sha256 for row in rows])
    pending: list[tuple[DatasetEntry, str]] = []
    unreadable: set[str] = set()
    for entry in to_hash:
        try:
            data = entry.path.read_bytes()
            plain = sealer.open(data)
        except OSError as exc:
            report.skipped.append(Skipped(entry.rel_path, f"cannot read the file ({exc.strerror})"))
            unreadable.add(entry.rel_path)
            continue
        digest = hashlib.sha256(plain).hexdigest()
        size, mtime_ns = entry.size, entry.mtime_ns
        if not sealer.is_sealed(data):
            stat = seal_in_place(entry.path, plain, sealer)
            if stat is not None:
                size, mtime_ns = stat.st_size, stat.st_mtime_ns
                report.sealed += 1
        row = PhotoRow(entry.rel_path, entry.student, size, mtime_ns, digest)
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
                yield digest, read_photo(entry.path, sealer)
            except OSError:
                yield digest, b""

    fresh = analyse(analyzer, store, jobs(), params, on_progress)
    cache.update(fresh)
    report.encoded = len(fresh)

    current_paths = {row.path for row in rows}
    removed = [path for path in known if path not in current_paths]
    report.removed = len(removed)
    report.updated = len(changed) + len(removed)
    if report.updated:
        store.sync_photos(changed, removed)
        # The descriptors of photos that are gone (removed, or of a student without consent).
        store.forget_faces({known[path].sha256 for path in removed})

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
