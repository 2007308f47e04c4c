"""The original project's CSV files, kept up to date from the database (``CsvFiles``).

``logs/attendance_YYYY-MM-DD.csv`` (``Name,Time,Status``) and ``logs/student_statistics.csv``.
Files are written to a temporary name and renamed, so a reader never sees half a file, and
every cell that a spreadsheet would run as a formula is neutralised. The database is the
record: a file that cannot be written is logged, never a lost mark.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from pathlib import Path

from ..errors import AttendanceError
from ..models import Mark, StudentStats
from .marks import AttendanceService

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
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def safe_cell(value: object) -> str:
    """Text a spreadsheet shows as-is: a leading = + - @ or control character gets a quote."""
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def render(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return buffer.getvalue()


def day_csv(marks: Iterable[Mark]) -> str:
    return render(DAY_HEADER, ((m.name, m.seen_at.strftime("%H:%M:%S"), m.status) for m in marks))


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


class CsvFiles:
    """Writes the CSV files of ``logs_dir`` from the register: a day's file lists every mark
    and correction of the day (the current status), the statistics file every student."""

    def __init__(self, logs_dir: Path, attendance: AttendanceService) -> None:
        self.logs_dir = logs_dir
        self.attendance = attendance
        self._lock = threading.Lock()

    def day_rows(self, day: date) -> list[Mark]:
        """The day's marks and corrections, as the day file lists them (in time order)."""
        rows = []
        for entry in self.attendance.register.entries(day, day):
            if entry.status is None or not (entry.time or entry.corrected):
                continue
            seen = datetime.combine(day, time.fromisoformat(entry.time or "00:00:00"))
            rows.append(Mark(entry.student, day, seen, entry.status, "", entry.class_name))
        return sorted(rows, key=lambda m: (m.seen_at, m.class_name, m.name))

    def update(self, day: date | None = None, stats: list[StudentStats] | None = None) -> None:
        """Rewrite the statistics file and, with ``day``, that day's file; statistics already
        at hand are passed in. A failure is logged: the database keeps every mark regardless."""
        logs = self.logs_dir
        try:
            with self._lock:
                if day is not None:
                    write_atomic(day_csv_path(logs, day), day_csv(self.day_rows(day)))
                if stats is None:
                    stats = self.attendance.statistics()
                write_atomic(statistics_csv_path(logs), statistics_csv(stats))
        except (OSError, AttendanceError) as exc:
            log.error("could not update the CSV files in %s: %s", logs, exc)
