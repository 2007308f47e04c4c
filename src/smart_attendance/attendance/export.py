"""Exports of the register: a CSV file, or an Excel workbook of two sheets.

* ``Register`` (the CSV file, and the workbook's first sheet): one row per student per class
  period, ``Date, Class, Period, Student, Display name, External ID, Status, Time, Source,
  Reason, Arrived late``. Student is the dataset folder's name (what the API and the commands
  take); Display name is the registry's display name, else the folder's name again. Status is
  empty while a period runs and the student has not been seen; Time is when
  the camera saw them; Source is ``camera:ID`` for a camera's mark, the corrector (``api``,
  ``cli:USER``) for a corrected entry; Arrived late is when the server received the scan
  (local ``YYYY-MM-DD HH:MM:SS``) for a mark that reached it long after it was seen
  (``punctuality.ARRIVED_LATE_AFTER``: a queued scan sent late, or a capture time set back),
  empty otherwise.
* ``Days`` (the workbook's second sheet): one row per student, ``Student, Display name,
  External ID`` then one column per day (``YYYY-MM-DD``) from the first day of the range on
  which a student was expected (the days before the register began are left out) to the last.
  A cell holds the day's statuses in period order, one letter each, separated by spaces: ``P``
  Present, ``L`` Late, ``A`` Absent, ``E`` Excused, ``?`` not decided yet (the period runs);
  empty when the student was expected in no period that day (a weekend, a closure, before
  they joined).

The CSV file starts with a UTF-8 byte-order mark (``BOM``), so that Excel on Windows reads
its accents ("Zoë Martín") right; the original project's files in ``logs/`` have none.
Every cell is text, and one a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``,
tab, CR, LF first) starts with ``'`` (``files.safe_cell``). The builders are pure: they take
the register's entries and the registry's rows, nothing else; ``build`` gathers both.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ..db.store import StudentRow
from ..errors import BadRequestError, MissingExtraError
from ..models import STATUS_ABSENT, STATUS_EXCUSED, STATUS_LATE, STATUS_PRESENT
from .files import BOM, render, render_rows, safe_cell
from .marks import AttendanceService
from .register import Entry, days

FORMATS = ("csv", "xlsx")
REGISTER_HEADER = (
    "Date",
    "Class",
    "Period",
    "Student",
    "Display name",
    "External ID",
    "Status",
    "Time",
    "Source",
    "Reason",
    "Arrived late",
)
DAYS_HEADER = ("Student", "Display name", "External ID")
LETTERS = {STATUS_PRESENT: "P", STATUS_LATE: "L", STATUS_ABSENT: "A", STATUS_EXCUSED: "E"}
UNDECIDED = "?"
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _people(students: Iterable[StudentRow]) -> dict[str, tuple[str, str]]:
    """Folder name -> (the name to show, the external id)."""
    return {s.name: (s.display_name or s.name, s.external_id or "") for s in students}


def _person(people: dict[str, tuple[str, str]], name: str) -> tuple[str, str]:
    return people.get(name, (name, ""))


def _order(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(
        entries,
        key=lambda e: (e.day, e.period, e.class_name, e.student.casefold(), e.student),
    )


def register_rows(
    entries: Iterable[Entry], students: Iterable[StudentRow], ordered: bool = False
) -> list[list[str]]:
    """One row per student per class period (raw text; the writers make it formula-safe);
    ``ordered``: the entries are in the file's order already."""
    return list(_rows(entries if ordered else _order(entries), _people(students)))


def _rows(entries: Iterable[Entry], people: dict[str, tuple[str, str]]) -> Iterator[list[str]]:
    return (
        [
            e.day.isoformat(),
            e.class_name,
            e.period,
            e.student,
            *_person(people, e.student),
            e.status or "",
            e.time or "",
            e.source,
            e.reason,
            e.received if e.arrived_late else "",
        ]
        for e in entries
    )


def day_rows(
    entries: Iterable[Entry], students: Iterable[StudentRow], first: date, last: date
) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of the ``Days`` sheet (one row per student in the entries):
    one column per day from the first day of the range with an entry to ``last``."""
    people = _people(students)
    ordered = _order(entries)
    start = max(first, min((e.day for e in ordered), default=first))
    span = list(days(start, last))
    cells: dict[str, dict[date, list[str]]] = {}
    for e in ordered:
        letter = LETTERS.get(e.status or "", UNDECIDED)
        cells.setdefault(e.student, {}).setdefault(e.day, []).append(letter)
    header = [*DAYS_HEADER, *(d.isoformat() for d in span)]
    rows = [
        [name, *_person(people, name), *(" ".join(cells[name].get(d, [])) for d in span)]
        for name in sorted(cells, key=lambda n: (n.casefold(), n))
    ]
    return header, rows


def register_csv(entries: Iterable[Entry], students: Iterable[StudentRow]) -> str:
    """The CSV file's text, byte-order mark first."""
    return BOM + render(REGISTER_HEADER, register_rows(entries, students))


def register_xlsx(
    entries: Sequence[Entry], students: Sequence[StudentRow], first: date, last: date
) -> bytes:
    """The workbook: the ``Register`` sheet and the ``Days`` sheet."""
    return b"".join(_xlsx_stream([_order(entries)], students, first, last, Counted()))


# Column widths of the sheets (the workbook is written row by row: widths are set first).
REGISTER_WIDTHS = (12, 14, 8, 24, 24, 12, 10, 10, 18, 30, 21)
DAYS_WIDTHS = (24, 24, 12)
DAY_WIDTH = 11


def _xlsx_stream(
    chunks: Iterable[list[Entry]],
    students: Sequence[StudentRow],
    first: date,
    last: date,
    counted: Counted,
) -> Iterator[bytes]:
    """The workbook written row by row (openpyxl's write-only mode) into a temporary file,
    then read out in pieces: memory holds a chunk of entries and the ``Days`` letters (one
    short text per student and day), never the whole register."""
    try:
        from openpyxl import Workbook
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
        from openpyxl.utils import get_column_letter
    except ImportError:
        raise MissingExtraError(
            "the xlsx export needs openpyxl: pip install 'smart-attendance[server]'"
        ) from None

    def cells(row: Sequence[str]) -> list[str]:  # what a workbook cannot hold: dropped
        # "" rather than None: an empty cell is still written, so every row has every column
        return [safe_cell(ILLEGAL_CHARACTERS_RE.sub("", cell)) if cell else "" for cell in row]

    def sheet_of(book: Any, title: str, header: Sequence[str], widths: Sequence[int]) -> Any:
        sheet = book.create_sheet(title)
        sheet.freeze_panes = "A2"
        for column, width in enumerate(widths, start=1):
            sheet.column_dimensions[get_column_letter(column)].width = width
        sheet.append([safe_cell(cell) for cell in header])
        return sheet

    people = _people(students)
    book = Workbook(write_only=True)
    register = sheet_of(book, "Register", REGISTER_HEADER, REGISTER_WIDTHS)
    letters: dict[str, dict[date, list[str]]] = {}
    start: date | None = None
    for chunk in chunks:
        for row in _rows(chunk, people):
            register.append(cells(row))
        counted.rows += len(chunk)
        for e in chunk:
            start = e.day if start is None else min(start, e.day)
            letter = LETTERS.get(e.status or "", UNDECIDED)
            letters.setdefault(e.student, {}).setdefault(e.day, []).append(letter)
    span = list(days(max(first, start or first), last))
    header = [*DAYS_HEADER, *(d.isoformat() for d in span)]
    widths = [*DAYS_WIDTHS, *([DAY_WIDTH] * len(span))]
    days_sheet = sheet_of(book, "Days", header, widths)
    for name in sorted(letters, key=lambda n: (n.casefold(), n)):
        mine = letters[name]
        days_sheet.append(
            cells([name, *_person(people, name), *(" ".join(mine.get(d, [])) for d in span)])
        )
    with tempfile.TemporaryFile() as handle:
        book.save(handle)
        handle.seek(0)
        while piece := handle.read(1 << 16):
            yield piece


def _csv_stream(
    chunks: Iterable[list[Entry]], students: Sequence[StudentRow], counted: Counted
) -> Iterator[bytes]:
    people = _people(students)
    yield (BOM + render(REGISTER_HEADER, ())).encode("utf-8")
    for chunk in chunks:
        counted.rows += len(chunk)
        yield render_rows(_rows(chunk, people)).encode("utf-8")


CHUNK_DAYS = 7  # days of the register read and written at a time (memory: a week)


def _register_chunks(
    attendance: AttendanceService, first: date, last: date, classes: Sequence[str] | None
) -> Iterator[list[Entry]]:
    """The register of the range, a few days at a time, each chunk in the file's order."""
    one = classes[0] if classes is not None and len(classes) == 1 else None
    day = first
    while day <= last:
        end = min(last, day + timedelta(days=CHUNK_DAYS - 1))
        entries = attendance.register.entries(day, end, one)
        if classes is not None:
            entries = [e for e in entries if e.class_name in classes]
        yield _order(entries)
        day = end + timedelta(days=1)


class Counted:
    """The rows an export has written so far (known once it was read to the end)."""

    rows = 0


@dataclass(frozen=True)
class ExportFile:
    """An export, produced as it is read (``chunks``): the server streams it, a command
    writes it to a file; ``rows`` is the register's rows once it was read whole."""

    name: str  # a file name to offer: attendance_FROM_TO[_CLASS].csv
    content_type: str
    chunks: Iterator[bytes]
    counted: Counted

    @property
    def rows(self) -> int:
        return self.counted.rows

    @classmethod
    def whole(cls, name: str, content_type: str, data: bytes) -> ExportFile:
        """A small file made whole in memory (a student's zip)."""
        return cls(name, content_type, iter((data,)), Counted())


def file_name(first: date, last: date, class_name: str | None, fmt: str) -> str:
    suffix = f"_{class_name}" if class_name else ""
    return f"attendance_{first.isoformat()}_{last.isoformat()}{suffix}.{fmt}"


def parse_format(raw: str | None) -> str:
    fmt = (raw or "").strip().lower().lstrip(".")
    if fmt not in FORMATS:
        raise BadRequestError(f"format must be one of {', '.join(FORMATS)}, got {raw!r}")
    return fmt


def build(
    attendance: AttendanceService,
    first: date | None,
    last: date | None,
    class_name: str | None,
    fmt: str,
) -> ExportFile:
    """The register of a range (default: from the first day on record to today), for one
    class or every class, as ``fmt`` (``csv`` or ``xlsx``), streamed."""
    attendance.check_class(class_name)
    return _build(attendance, first, last, None if class_name is None else [class_name], fmt)


def build_classes(
    attendance: AttendanceService,
    first: date | None,
    last: date | None,
    class_names: Sequence[str],
    fmt: str,
) -> ExportFile:
    """The register of a range for several classes (a teacher's on the dashboard), as ``fmt``:
    the rows of ``class_names`` only; the file is named after the class when there is one."""
    for class_name in class_names:
        attendance.check_class(class_name)
    return _build(attendance, first, last, list(class_names), fmt)


def _build(
    attendance: AttendanceService,
    first: date | None,
    last: date | None,
    classes: list[str] | None,
    fmt: str,
) -> ExportFile:
    fmt = parse_format(fmt)
    first, last = attendance.span(first, last)
    students = attendance.store.students()
    chunks = _register_chunks(attendance, first, last, classes)
    counted = Counted()
    if fmt == "csv":
        stream = _csv_stream(chunks, students, counted)
    else:
        stream = _xlsx_stream(chunks, students, first, last, counted)
    named = classes[0] if classes is not None and len(classes) == 1 else None
    return ExportFile(file_name(first, last, named, fmt), CONTENT_TYPES[fmt], stream, counted)
