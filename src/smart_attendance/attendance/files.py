"""The original project's CSV files, kept up to date from the database (``CsvFiles``).

``logs/attendance_YYYY-MM-DD.csv`` (``Name,Time,Status``; Time is empty for a status set by
hand for a student the cameras never saw, e.g. excused) and ``logs/student_statistics.csv``.
Names are the dataset folders' names, as in the original: these files are read by programs.
The files are derived from the database, which is the record: a file that cannot be written
is logged, never a lost mark. A file is written to a temporary name, flushed to disk (fsync)
and renamed, and the folder is flushed too, so a reader never sees half a file and a power
cut never leaves an empty one; every cell a spreadsheet would run as a formula is neutralised.

A day file is computed from the database and written under a lock on the folder
(``logs/.csv.lock``, ``flock``), taken by every thread and every process that writes there:
the last writer read the database after every mark written before it, so two servers on one
data folder never leave a file without the other's mark. A mark recorded just before the
process died (kill -9, power cut) is in the database but maybe not in its day file:
``CsvFiles.sync`` at start rewrites every day file that is missing or differs from the
database, among the days changed since the previous start (``logs/.synced`` keeps how far that
was: the last mark's and correction's ids, and their times, so a deleted row whose id came back
is noticed: then every day is checked) and the days whose file is missing.

Everything under the data folder is private to the server's user (``private_data_folder``):
0600 files, 0700 folders, biometric data included (the database, intruder photos, crops).
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import date, datetime, time, timezone
from pathlib import Path
from time import monotonic

from ..errors import AttendanceError
from ..models import Mark, StudentStats
from .marks import AttendanceService

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the threads of one process only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

DAY_HEADER = ("Name", "Time", "Status")
STATS_HEADER = (
    "Student Name",
    "Total Days Present",
    "Days On Time",
    "Days Late",
    "Attendance Percentage",
    "Late Percentage",
)
BOM = "\ufeff"  # first in the register's CSV files (not these): Excel then reads UTF-8
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
LOCK_FILE = ".csv.lock"  # in logs/: every writer of the CSV files holds it (flock)
SYNCED_FILE = ".synced"  # in logs/: the last mark and correction the day files were checked to
PRIVATE_UMASK = 0o077  # files 0600, folders 0700


def safe_cell(value: object) -> str:
    """Text a spreadsheet shows as-is: a leading = + - @ or control character gets a quote."""
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def render(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(header)
    return buffer.getvalue() + render_rows(rows)


def render_rows(rows: Iterable[Sequence[object]]) -> str:
    """CSV lines of ``rows``, every cell formula-safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return buffer.getvalue()


def seen_time(mark: Mark) -> str:
    """``HH:MM:SS`` when the student was seen; empty for a status set by hand for a student
    never seen (excused, or marked present by hand)."""
    return mark.seen_at.strftime("%H:%M:%S") if mark.timed else ""


def day_csv(marks: Iterable[Mark]) -> str:
    return render(DAY_HEADER, ((m.name, seen_time(m), m.status) for m in marks))


def statistics_csv(stats: Iterable[StudentStats]) -> str:
    return render(
        STATS_HEADER,
        (
            (s.name, s.days_present, s.days_on_time, s.days_late, s.attendance_pct, s.late_pct)
            for s in stats
        ),
    )


def day_csv_path(logs_dir: Path, day: date) -> Path:
    return logs_dir / f"attendance_{day.isoformat()}.csv"


def statistics_csv_path(logs_dir: Path) -> Path:
    return logs_dir / "student_statistics.csv"


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` whole (a private temporary file, flushed to disk, renamed
    over it; then the folder flushed, so the rename survives a power cut)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk; nothing where folders cannot be
    opened (Windows)."""
    if not hasattr(os, "O_DIRECTORY"):  # pragma: no cover - not on Linux
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_data_folder(data_dir: Path, *, existing: bool = False) -> int:
    """Make the data folder private to this user: new files 0600 and folders 0700 from now on
    (the process's umask), the folder itself 0700 (created if missing); with ``existing``,
    every file and folder already under it too (links are left alone, never followed). How
    many modes were changed; a mode that cannot be changed is logged."""
    os.umask(PRIVATE_UMASK)
    data_dir.mkdir(parents=True, exist_ok=True)
    changed = _make_private(data_dir.resolve())  # the folder a link points to, if one
    if existing:
        for root, folders, files in os.walk(data_dir):
            for name in folders + files:
                changed += _make_private(Path(root) / name)
    if changed:
        log.info("made %d file(s) and folder(s) under %s private to this user", changed, data_dir)
    return changed


def _make_private(path: Path) -> int:
    try:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode) or not stat.S_IMODE(mode) & 0o077:
            return 0
        path.chmod(stat.S_IMODE(mode) & 0o700)
    except OSError as exc:
        log.warning("could not make %s private: %s", path, exc.strerror)
        return 0
    return 1


def file_safe(text: str) -> str:
    """``text`` (a camera id) as a part of a file name on any common file system: characters
    other than letters, digits, '.', '_' and '-' (such as ':') become '-'."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:64] or "-"


def write_private(path: Path, data: bytes) -> None:
    """A new file readable by this user only (0600), whole or not at all (photos under the
    data folder: intruders, the review queue's crops)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


DISK_RECOUNT_S = 300.0  # a capped folder is counted again this often (deletions, purges)


class DiskCap:
    """The files under ``root`` against ``max_bytes`` (intruder photos, the review queue's
    crops): counted once, kept up to date as files are added, counted again every
    ``DISK_RECOUNT_S`` (a purge or a person deletes files meanwhile)."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.used: int | None = None  # bytes, when last counted
        self.counted_at = 0.0
        self._lock = threading.Lock()

    def room_for(self, size: int) -> bool:
        """Whether ``size`` more bytes keep the folder under the cap."""
        with self._lock:
            if self.used is None or monotonic() - self.counted_at >= DISK_RECOUNT_S:
                self.used = folder_bytes(self.root)
                self.counted_at = monotonic()
            return self.used + size <= self.max_bytes

    def added(self, size: int) -> None:
        with self._lock:
            if self.used is not None:
                self.used += size

    def recount(self) -> None:
        """Count the folder again at the next question (after deleting files)."""
        with self._lock:
            self.used = None


def folder_bytes(root: Path) -> int:
    """The size of the files under ``root`` in all (0 when it does not exist)."""
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):  # deleted meanwhile
                total += os.stat(os.path.join(folder, name), follow_symlinks=False).st_size
    return total


class CsvFiles:
    """Writes the CSV files of ``logs_dir`` from the register: a day's file lists every mark
    and correction of the day (the current status), the statistics file every student.

    With ``delay_s`` (ATTENDANCE_CSV_WRITE_SECONDS) the files are written by a thread of
    their own, off the request path: ``update`` only notes the day, and the writer writes
    every day noted (and the statistics once) at most every ``delay_s`` seconds, and what is
    left at ``close``. A crash in between loses nothing: the database is the record, and
    ``sync`` at the next start writes every day changed since the last sync."""

    def __init__(self, logs_dir: Path, attendance: AttendanceService, delay_s: float = 0) -> None:
        self.logs_dir = logs_dir
        self.attendance = attendance
        self.delay_s = delay_s
        self._lock = threading.Lock()
        self._pending: set[date] = set()
        self._dirty = False
        self._closing = False
        self._wake = threading.Condition()
        self._writer: threading.Thread | None = None

    def day_rows(self, day: date) -> list[Mark]:
        """The day's marks and corrections, as the day file lists them (in time order); a
        mark keeps when its scan reached the server (UTC, for the reports)."""
        rows = []
        for entry in self.attendance.register.entries(day, day):
            if entry.status is None or not (entry.time or entry.corrected):
                continue
            seen = datetime.combine(day, time.fromisoformat(entry.time or "00:00:00"))
            received = (
                entry.received_at.astimezone(timezone.utc).replace(tzinfo=None)
                if entry.received_at is not None
                else None
            )
            mark = Mark(entry.student, day, seen, entry.status, "", entry.class_name)
            rows.append(replace(mark, received_at=received, timed=entry.time is not None))
        return sorted(rows, key=lambda m: (m.seen_at, m.class_name, m.name))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the CSV files' lock: this process's threads, and every process writing to
        ``logs_dir`` (``flock`` on ``logs/.csv.lock``; threads only where there is no flock)."""
        with self._lock:
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.logs_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    def update(self, day: date | None = None, stats: list[StudentStats] | None = None) -> None:
        """The statistics file and, with ``day``, that day's file are to be rewritten: now
        (``delay_s`` 0), else by the writer thread within ``delay_s`` seconds."""
        if self.delay_s <= 0:
            self.write(day, stats)
            return
        with self._wake:
            if day is not None:
                self._pending.add(day)
            self._dirty = True
            if self._writer is None and not self._closing:
                self._writer = threading.Thread(target=self._run, name="csv-writer", daemon=True)
                self._writer.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._dirty and not self._closing:
                    self._wake.wait()
                if not self._dirty:
                    return  # closing, nothing left
                # let the changes of the next moments join these (until closing)
                deadline = monotonic() + self.delay_s
                while not self._closing and (left := deadline - monotonic()) > 0:
                    self._wake.wait(left)
            self.flush()

    def flush(self) -> None:
        """Write every pending change now (in the calling thread)."""
        with self._wake:
            days, dirty = sorted(self._pending), self._dirty
            self._pending, self._dirty = set(), False
        if not dirty:
            return
        for day in days[:-1]:
            self.write(day, with_stats=False)  # the statistics once, with the last day
        self.write(days[-1] if days else None)

    def close(self) -> None:
        """Stop the writer thread after it wrote what is pending (the server's shutdown)."""
        with self._wake:
            self._closing = True
            self._wake.notify()
            writer = self._writer
        if writer is not None:
            writer.join(timeout=60)
        self.flush()

    def write(
        self,
        day: date | None = None,
        stats: list[StudentStats] | None = None,
        *,
        with_stats: bool = True,
    ) -> None:
        """Rewrite the statistics file (``with_stats``) and, with ``day``, that day's file,
        read from the database under the lock, now; statistics already at hand are passed
        in. A failure is logged: the database keeps every mark
        regardless."""
        logs = self.logs_dir
        try:
            with self.locked():
                if day is not None:
                    write_atomic(day_csv_path(logs, day), day_csv(self.day_rows(day)))
                if not with_stats:
                    return
                if stats is None:
                    stats = self.attendance.statistics()
                write_atomic(statistics_csv_path(logs), statistics_csv(stats))
        except (OSError, AttendanceError) as exc:
            log.error("could not update the CSV files in %s: %s", logs, exc)

    def sync(self, with_stats: bool = True) -> list[date]:
        """Bring the day files up to date with the database (``attendance serve`` does it at
        start): each day with a mark or a correction whose file is missing, and each day
        changed since the previous sync (every day at the first), is computed again and
        written when its file differs; the statistics file too (``with_stats``; the server
        writes it in the background once the tallies are warm). The days whose file was
        written, oldest first."""
        store = self.attendance.store
        logs = self.logs_dir
        last = store.change_ids()
        stamps = store.change_stamps(*last)
        since = self._synced(last)
        on_record = store.days_changed()
        check = {day for day in on_record if not day_csv_path(logs, day).is_file()}
        check |= on_record if since is None else store.days_changed(*since)
        written = []
        try:
            for day in sorted(check):
                with self.locked():
                    path = day_csv_path(logs, day)
                    text = day_csv(self.day_rows(day))
                    if _read(path) != text:
                        write_atomic(path, text)
                        written.append(day)
            with self.locked():
                if with_stats:
                    stats = statistics_csv(self.attendance.statistics())
                    write_atomic(statistics_csv_path(logs), stats)
                done = f"marks={last[0]} mark={stamps[0] or '-'} corrections={last[1]} "
                write_atomic(logs / SYNCED_FILE, done + f"correction={stamps[1] or '-'}\n")
        except OSError as exc:  # the next start tries again: nothing was marked as done
            log.error("could not bring the CSV files in %s up to date: %s", logs, exc)
        if written:
            log.warning(
                "%d day file(s) in %s differed from the database and were written again: %s",
                len(written),
                logs,
                ", ".join(day.isoformat() for day in written[:10])
                + (" ..." if len(written) > 10 else ""),
            )
        return written

    def _synced(self, last: tuple[int, int]) -> tuple[int, int] | None:
        """The ids of the last mark and correction the day files were checked against, when
        the database still holds those rows as they were (``last``: its highest ids now);
        None: check every day."""
        text = _read(self.logs_dir / SYNCED_FILE)
        try:
            fields = dict(part.split("=", 1) for part in (text or "").split())
            done = int(fields["marks"]), int(fields["corrections"])
            stamps = fields["mark"], fields["correction"]
        except (KeyError, ValueError):
            return None
        if done[0] > last[0] or done[1] > last[1]:  # rows deleted (or another database)
            return None
        now = self.attendance.store.change_stamps(*done)
        if (now[0] or "-", now[1] or "-") != stamps:  # a row deleted and its id used again
            return None
        return done


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
