"""The original project's CSV files, kept up to date from the database.

``logs/attendance_YYYY-MM-DD.csv`` (``Name,Time,Status``) and ``logs/student_statistics.csv``.
Files are written to a temporary name and renamed, so a reader never sees half a file, and
every cell that a spreadsheet would run as a formula is neutralised.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

from .models import Mark, StudentStats

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
