"""A queue of scans on disk: nothing is lost when the server is down or the client restarts,
and nothing is deleted that the server did not take.

The queue folder (``--queue-dir``) holds::

    <capture time>_<event id>/      a queued scan: its JPEG frames, then scan.json, written last
        scan.json                   event id, capture time, camera, fps, frame count (, badge,
                                    the challenge's nonce)
        retry.json                  after a failed try: attempts, next_attempt_at, last_error
    rejected/<same name>/           scans the server refused, each with reason.json
    quarantine/<same name>/         entries that cannot be read (metadata missing or cut short,
                                    a frame missing), each with reason.json
    .tmp-*, .del-*                  being written / being deleted (gone after a restart)

A scan is written under a temporary name and renamed (its ``scan.json`` written last and
flushed to disk first), so a queued scan is always complete; it is deleted only after the
server has answered it. Entry names come from the capture time and a random event id, never
from the camera id (``door:1`` is a fine camera id and a bad file name). An entry whose
metadata is missing, unparseable or cut short (a power cut, a full disk, a hand edit) is moved
to ``quarantine/`` with the reason, at start and on every pass, instead of staying forever. The
event id makes a resend harmless: the server never marks twice for one event. A badge read at
the door (``put_badge``) is a scan with its token instead of frames (``POST /checkin``).

The folder holds faces, so it is capped (``prune``, at start and at most every
``PRUNE_EVERY_S`` after a new scan or a scan set aside): entries older than ``max_age_s``
(queued scans from when they were queued, ``rejected/`` and ``quarantine/`` from when they were
set aside, by their files' times: the door machine's clock, not the capture time a test or a
wrong clock gave) are deleted; past ``max_bytes`` in all, the oldest of ``rejected/`` and
``quarantine/`` go first, then the oldest queued scans. Each deletion is logged with its count.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REJECTED = "rejected"
QUARANTINE = "quarantine"
META = "scan.json"
RETRY = "retry.json"
REASON = "reason.json"
PRUNE_EVERY_S = 60.0  # the caps are checked at most this often (and at start)
DEFAULT_MAX_BYTES = 500 * 1024 * 1024  # ATTENDANCE_CLIENT_QUEUE_MAX_MB
DEFAULT_MAX_AGE_S = 7 * 86400.0  # ATTENDANCE_CLIENT_QUEUE_MAX_DAYS


@dataclass(frozen=True)
class Scan:
    folder: Path
    event_id: str
    captured_at: str
    camera: str
    fps: float
    badge: str | None = None  # a badge's token: a check-in, without frames
    nonce: str | None = None  # the server's liveness challenge this burst answers

    def frames(self) -> list[bytes]:
        return [p.read_bytes() for p in sorted(self.folder.glob("*.jpg"))]


@dataclass(frozen=True)
class Retry:
    """A scan's failed tries (``retry.json``); ``next_attempt_at`` in seconds since the epoch."""

    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str = ""


@dataclass(frozen=True)
class Broken:
    """A queued entry that can never be sent as it is: why."""

    reason: str


VANISHED = None  # the entry was moved or deleted while being read (by this client or by hand)


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, timezone.utc).isoformat(timespec="seconds")


def _write_atomic(path: Path, data: bytes, durable: bool = False) -> None:
    """``path`` holds either its old content or ``data``, never a part of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` survive a power cut (where the system allows it)."""
    with contextlib.suppress(OSError):  # not on every system (Windows)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name-2``, ``name-3``... when taken."""
    target, n = folder / name, 1
    while target.exists():
        n += 1
        target = folder / f"{name}-{n}"
    return target


def _size(folder: Path) -> int:
    """The bytes of the files of an entry (0 when it has gone meanwhile)."""
    total = 0
    with contextlib.suppress(OSError):
        for path in folder.iterdir():
            with contextlib.suppress(OSError):
                total += path.lstat().st_size
    return total


def _mtime(path: Path, folder: Path) -> float:
    """When ``path`` was written (an entry's scan.json: queued; its reason.json: set aside),
    else when its ``folder`` last changed; 0 when both have gone."""
    for candidate in (path, folder):
        with contextlib.suppress(OSError):
            return candidate.stat().st_mtime
    return 0.0


def _meta(folder: Path) -> dict[str, Any] | Broken | None:
    """The entry's scan.json; what is wrong with it; or None when the entry has gone."""
    try:
        raw = (folder / META).read_bytes()
    except FileNotFoundError:
        return Broken(f"{META} is missing") if folder.is_dir() else VANISHED
    except OSError as exc:
        return Broken(f"{META} cannot be read ({exc.strerror})")
    if not raw.strip():
        return Broken(f"{META} is empty")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except ValueError:
        return Broken(f"{META} is not valid JSON (cut short?)")
    if not isinstance(meta, dict):
        return Broken(f"{META} is not a JSON object")
    for key in ("event_id", "captured_at", "camera"):
        if not isinstance(meta.get(key), str) or not meta[key]:
            return Broken(f"{META} has no {key}")
    try:
        datetime.fromisoformat(meta["captured_at"])
    except ValueError:
        return Broken(f"{META} has a capture time that is not a time")
    fps = meta.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, int | float):
        return Broken(f"{META} has no fps")
    badge = meta.get("badge")
    if badge is not None and (not isinstance(badge, str) or not badge):
        return Broken(f"{META} has a badge that is not a text")
    nonce = meta.get("nonce")
    if nonce is not None and (not isinstance(nonce, str) or not nonce):
        return Broken(f"{META} has a nonce that is not a text")
    return meta


class Outbox:
    """The queue folder ``root``. ``clock``: seconds since the epoch (for back-off times and
    the times written in reason files); ``wall``: the clock the files' times are on (for the
    caps); ``max_bytes``, ``max_age_s``: the caps."""

    def __init__(
        self,
        root: Path,
        clock: Callable[[], float] = time.time,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.clock = clock
        self.wall = wall
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.pruned = 0  # entries deleted by the caps in this process
        self._pruned_at: float | None = None
        self.root.mkdir(parents=True, exist_ok=True)
        self.quarantined = 0  # entries moved to quarantine/ by this process
        self._lock = threading.Lock()
        # A queued entry never changes once renamed into place: read once, not on every pass.
        self._scans: dict[str, Scan] = {}
        self._retries: dict[str, Retry] = {}
        for stale in [*self.root.glob(".tmp-*"), *self.root.glob(".del-*")]:
            # a crash while writing (never complete, never queued) or while deleting (answered)
            shutil.rmtree(stale, ignore_errors=True)
        self.pending()  # quarantines what cannot be read
        self.prune()

    @property
    def rejected_dir(self) -> Path:
        return self.root / REJECTED

    @property
    def quarantine_dir(self) -> Path:
        return self.root / QUARANTINE

    # --- writing ----------------------------------------------------------------------------

    def put(
        self,
        frames: list[bytes],
        camera: str,
        fps: float,
        captured_at: datetime | None = None,
        badge: str | None = None,
        nonce: str | None = None,
    ) -> Scan:
        stamp = (captured_at or datetime.fromtimestamp(self.clock(), timezone.utc)).astimezone(
            timezone.utc
        )
        event_id = uuid.uuid4().hex
        name = f"{stamp:%Y%m%dT%H%M%S%f}_{event_id}"  # never the camera id: see the docstring
        tmp = self.root / f".tmp-{name}"
        final = self.root / name
        meta: dict[str, Any] = {
            "event_id": event_id,
            "captured_at": stamp.isoformat(),
            "camera": camera,
            "fps": float(fps),
            "frames": len(frames),
        }
        if badge is not None:
            meta["badge"] = badge
        if nonce is not None:
            meta["nonce"] = nonce
        tmp.mkdir()
        try:
            for i, frame in enumerate(frames):
                (tmp / f"{i:03d}.jpg").write_bytes(frame)
            # The metadata last, on disk before the rename: a renamed entry is complete.
            _write_atomic(tmp / META, json.dumps(meta).encode("utf-8"), durable=True)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(self.root)
        self.prune(soon=True)
        return Scan(final, event_id, meta["captured_at"], camera, float(fps), badge, nonce)

    def put_badge(self, token: str, camera: str, captured_at: datetime | None = None) -> Scan:
        """Queue a badge's check-in (its token, no frames)."""
        return self.put([], camera, 0.0, captured_at, badge=token)

    # --- reading ----------------------------------------------------------------------------

    def _entries(self) -> list[Path]:
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        return [
            self.root / name
            for name in names
            if not name.startswith(".")
            and name not in (REJECTED, QUARANTINE)
            and (self.root / name).is_dir()
        ]

    @staticmethod
    def _load(folder: Path) -> Scan | Broken | None:
        """The queued scan in ``folder``; what is wrong with it; or None when it has gone."""
        meta = _meta(folder)
        if not isinstance(meta, dict):
            return meta
        badge = meta.get("badge")
        frames = sorted(folder.glob("*.jpg"))
        expected = meta.get("frames")  # written since the frame count is kept; older: absent
        if expected is not None and expected != len(frames):
            return Broken(f"{len(frames)} frame(s) on disk, {expected} in {META}")
        if badge is None and not frames:
            return Broken("a scan without frames")
        try:
            if any(p.stat().st_size == 0 for p in frames):
                return Broken("an empty frame file")
        except FileNotFoundError:
            return VANISHED if not folder.is_dir() else Broken("a frame file vanished")
        return Scan(
            folder,
            meta["event_id"],
            meta["captured_at"],
            meta["camera"],
            float(meta["fps"]),
            badge,
            meta.get("nonce"),
        )

    def pending(self) -> list[Scan]:
        """The queued scans, oldest capture first (those in back-off too); an entry that
        cannot be read is moved to ``quarantine/`` on the way."""
        scans = []
        with self._lock:
            entries = self._entries()
            names = {folder.name for folder in entries}
            for cache in (self._scans, self._retries):
                for name in [name for name in cache if name not in names]:
                    del cache[name]
            for folder in entries:
                known = self._scans.get(folder.name)
                if known is not None:
                    scans.append(known)
                    continue
                scan = self._load(folder)
                if isinstance(scan, Broken):
                    self._quarantine(folder, scan.reason)
                if not isinstance(scan, Scan):
                    continue
                self._scans[folder.name] = scan
                scans.append(scan)
        return scans

    def _forget(self, folder: Path) -> None:
        self._scans.pop(folder.name, None)
        self._retries.pop(folder.name, None)

    def retry(self, scan: Scan) -> Retry:
        """The scan's failed tries so far (none when its retry.json is missing or unreadable)."""
        known = self._retries.get(scan.folder.name)
        if known is not None:
            return known
        try:
            data = json.loads((scan.folder / RETRY).read_text(encoding="utf-8"))
            retry = Retry(
                int(data["attempts"]),
                datetime.fromisoformat(data["next_attempt_at"]).timestamp(),
                str(data.get("last_error") or ""),
            )
        except (OSError, ValueError, KeyError, TypeError):
            retry = Retry()
        self._retries[scan.folder.name] = retry
        return retry

    def next_due(self, now: float | None = None) -> tuple[Scan | None, float | None]:
        """The oldest queued scan whose back-off is over, and (when there is none) the
        seconds until the next one is due (None: the queue is empty)."""
        now = self.clock() if now is None else now
        soonest: float | None = None
        for scan in self.pending():
            at = self.retry(scan).next_attempt_at
            if at <= now:
                return scan, None
            soonest = at if soonest is None else min(soonest, at)
        return None, None if soonest is None else soonest - now

    def __len__(self) -> int:
        """Queued entries (a cheap count: the HUD asks every frame)."""
        return len(self._entries())

    def rejected(self) -> list[Path]:
        """The refused scans kept aside, oldest first."""
        folder = self.rejected_dir
        return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def quarantine(self) -> list[Path]:
        folder = self.quarantine_dir
        return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    # --- the server's answers -------------------------------------------------------------------

    def set_retry(self, scan: Scan, retry: Retry) -> None:
        data = {
            "attempts": retry.attempts,
            "next_attempt_at": _iso(retry.next_attempt_at),
            "last_error": retry.last_error,
        }
        with self._lock, contextlib.suppress(FileNotFoundError):  # answered or moved meanwhile
            _write_atomic(scan.folder / RETRY, json.dumps(data).encode("utf-8"))
            self._retries[scan.folder.name] = retry

    def done(self, scan: Scan) -> None:
        """The server answered: delete the scan (renamed first: never seen half-deleted)."""
        with self._lock:
            self._forget(scan.folder)
            gone = self.root / f".del-{scan.folder.name}"
            try:
                scan.folder.rename(gone)
            except FileNotFoundError:
                return
        shutil.rmtree(gone, ignore_errors=True)

    def reject(self, scan: Scan, reason: dict[str, Any]) -> Path:
        """The server refused the scan: keep it in ``rejected/`` with ``reason.json`` (what the
        server said, when); where it is now. Moving its folder back into the queue resends it."""
        reason = {**reason, "rejected_at": _iso(self.clock())}
        with self._lock:
            self._forget(scan.folder)
            if not scan.folder.is_dir():
                return scan.folder
            _write_atomic(scan.folder / REASON, json.dumps(reason, indent=2).encode("utf-8"))
            (scan.folder / RETRY).unlink(missing_ok=True)
            self.rejected_dir.mkdir(exist_ok=True)
            target = _free_name(self.rejected_dir, scan.folder.name)
            scan.folder.rename(target)
        self.prune(soon=True)
        return target

    def set_aside(self, scan: Scan, reason: str) -> None:
        """Move a scan that cannot be sent to ``quarantine/`` (unless it is gone already)."""
        with self._lock:
            if scan.folder.is_dir():
                self._quarantine(scan.folder, reason)

    def _quarantine(self, folder: Path, reason: str) -> None:
        """Move an unreadable entry aside with ``reason.json`` (the lock held)."""
        self._forget(folder)
        self.quarantine_dir.mkdir(exist_ok=True)
        target = _free_name(self.quarantine_dir, folder.name)
        try:
            folder.rename(target)
        except FileNotFoundError:
            return  # gone meanwhile
        except OSError as exc:
            log.error("cannot move the broken queue entry %s aside: %s", folder.name, exc)
            return
        self.quarantined += 1
        note = {"reason": reason, "quarantined_at": _iso(self.clock())}
        with contextlib.suppress(OSError):
            _write_atomic(target / REASON, json.dumps(note, indent=2).encode("utf-8"))
        log.warning("queue entry %s cannot be sent (%s); moved to %s", folder.name, reason, target)

    # --- the caps ---------------------------------------------------------------------------

    def prune(self, soon: bool = False) -> int:
        """Delete what is past the caps (see the module's docstring); with ``soon``, only if
        the last check is ``PRUNE_EVERY_S`` old. How many entries were deleted."""
        now = self.wall()
        if soon and self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY_S:
            return 0
        self._pruned_at = now
        aside = [  # (set aside at, folder, size), rejected/ and quarantine/
            (_mtime(folder / REASON, folder), folder, _size(folder))
            for folder in self.rejected() + self.quarantine()
        ]
        queued = [  # (queued at, folder, size)
            (_mtime(folder / META, folder), folder, _size(folder)) for folder in self._entries()
        ]
        too_old = now - self.max_age_s
        doomed = [f for at, f, _ in aside if at < too_old]
        doomed += [f for at, f, _ in queued if at < too_old]
        total = sum(size for at, _, size in aside + queued if at >= too_old)
        for _at, folder, size in sorted(e for e in aside if e[0] >= too_old) + sorted(
            e for e in queued if e[0] >= too_old
        ):
            if total <= self.max_bytes:
                break
            doomed.append(folder)
            total -= size
        if not doomed:
            return 0
        counts = {"queued": 0, REJECTED: 0, QUARANTINE: 0}
        for folder in doomed:
            kind = folder.parent.name if folder.parent != self.root else "queued"
            if self._delete(folder):
                counts[kind] += 1
        deleted = sum(counts.values())
        self.pruned += deleted
        log.warning(
            "the queue folder's caps (%g MB, %g days) deleted %d queued scan(s), %d rejected and "
            "%d quarantined, oldest first (ATTENDANCE_CLIENT_QUEUE_MAX_MB, "
            "ATTENDANCE_CLIENT_QUEUE_MAX_DAYS)",
            self.max_bytes / 1024 / 1024,
            self.max_age_s / 86400,
            counts["queued"],
            counts[REJECTED],
            counts[QUARANTINE],
        )
        return deleted

    def _delete(self, folder: Path) -> bool:
        """Delete an entry (renamed first: never seen half-deleted); False if it had gone."""
        with self._lock:
            self._forget(folder)
            gone = self.root / f".del-{folder.parent.name}-{folder.name}"
            try:
                folder.rename(gone)
            except OSError:
                return False
        shutil.rmtree(gone, ignore_errors=True)
        return True

    def wait_empty(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.pending():
                return True
            time.sleep(0.2)
        return not self.pending()
