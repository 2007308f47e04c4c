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

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from ..db.store import StudentRow
from ..errors import BadRequestError, MissingExtraError
from ..models import STATUS_ABSENT, STATUS_EXCUSED, STATUS_LATE, STATUS_PRESENT
from .files import BOM, render, safe_cell
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


def register_rows(entries: Iterable[Entry], students: Iterable[StudentRow]) -> list[list[str]]:
    """One row per student per class period (raw text; the writers make it formula-safe)."""
    people = _people(students)
    return [
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
        for e in _order(entries)
    ]


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
    try:
        from openpyxl import Workbook
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
        from openpyxl.utils import get_column_letter
    except ImportError:
        raise MissingExtraError(
            "the xlsx export needs openpyxl: pip install 'smart-attendance[server]'"
        ) from None
    book = Workbook()
    sheets = [
        ("Register", list(REGISTER_HEADER), register_rows(entries, students)),
        ("Days", *day_rows(entries, students, first, last)),
    ]
    for index, (title, header, rows) in enumerate(sheets):
        sheet = book.active if index == 0 else book.create_sheet()
        assert sheet is not None
        sheet.title = title
        sheet.append([safe_cell(cell) for cell in header])
        for row in rows:  # control characters a workbook cannot hold are dropped
            sheet.append(
                [safe_cell(ILLEGAL_CHARACTERS_RE.sub("", cell)) if cell else None for cell in row]
            )
        sheet.freeze_panes = "A2"
        for column, cell in enumerate(header, start=1):
            widest = max([len(cell), *(len(row[column - 1]) for row in rows)])
            sheet.column_dimensions[get_column_letter(column)].width = min(40, widest + 2)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class ExportFile:
    name: str  # a file name to offer: attendance_FROM_TO[_CLASS].csv
    content_type: str
    data: bytes
    rows: int  # rows of the register (one per student per class period)


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
    class or every class, as ``fmt`` (``csv`` or ``xlsx``)."""
    fmt = parse_format(fmt)
    attendance.check_class(class_name)
    first, last = attendance.span(first, last)
    entries = attendance.register.entries(first, last, class_name)
    students = attendance.store.students()
    if fmt == "csv":
        data = register_csv(entries, students).encode("utf-8")
    else:
        data = register_xlsx(entries, students, first, last)
    return ExportFile(
        file_name(first, last, class_name, fmt), CONTENT_TYPES[fmt], data, len(entries)
    )


def build_classes(
    attendance: AttendanceService,
    first: date | None,
    last: date | None,
    class_names: Sequence[str],
    fmt: str,
) -> ExportFile:
    """The register of a range for several classes (a teacher's on the dashboard), as ``fmt``:
    the rows of ``class_names`` only; the file is named after the class when there is one."""
    fmt = parse_format(fmt)
    for class_name in class_names:
        attendance.check_class(class_name)
    first, last = attendance.span(first, last)
    wanted = set(class_names)
    entries = [e for e in attendance.register.entries(first, last) if e.class_name in wanted]
    students = attendance.store.students()
    if fmt == "csv":
        data = register_csv(entries, students).encode("utf-8")
    else:
        data = register_xlsx(entries, students, first, last)
    named = class_names[0] if len(class_names) == 1 else None
    return ExportFile(file_name(first, last, named, fmt), CONTENT_TYPES[fmt], data, len(entries))
