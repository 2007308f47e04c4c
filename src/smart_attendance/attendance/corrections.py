"""Corrections, and one day of the register as ``GET /attendance`` shows it.

A correction never overwrites anything: each is a row of its own (who, when, old -> new, why),
the latest correction of a class period is the student's status there, and the day's view
lists an entry's corrections as its ``history``. A correction sets Present, Late, Absent or
Excused (Excused needs a reason): a teacher excuses an absence, marks Present or Late by hand a
student the camera missed, or takes a wrong mark back to Absent.

``correct`` checks the class period against the register (a period of the class on that day,
and a student expected in it; or a period already on record, even one the timetable no longer
has), records the row and its audit entry in one transaction (both or neither) and rewrites the
day's CSV file and the statistics file. Correcting a status to what it already is (same reason
too) records nothing, so a client may resend a correction safely.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timezone

from ..db.audit import AuditRow
from ..errors import BadRequestError
from ..models import STATUS_ABSENT, STATUS_EXCUSED, STATUS_PRESENT, STATUSES, UNDO, Correction
from .expected import in_class
from .files import CsvFiles
from .marks import AttendanceService
from .register import Entry
from .timetable import DAYS, Closure, minutes_text

REASON_LIMIT = 512
SlotKey = tuple[str, str, str]  # class, period, student


def parse_status(raw: object) -> str:
    """A status word, any case (``excused``), as the register writes it (``Excused``)."""
    text = "" if raw is None else str(raw).strip()
    for status in STATUSES:
        if text.casefold() == status.casefold():
            return status
    choices = ", ".join(STATUSES)
    if not text:
        raise BadRequestError(f"status is required (one of {choices})")
    raise BadRequestError(f"unknown status {text[:40]!r} (use one of {choices})")


def parse_period(raw: str) -> str:
    """A period named by its start, ``8:30`` or ``08:30``, as ``08:30``."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", raw.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise BadRequestError(f"period must be the period's start as HH:MM, got {raw[:20]!r}")
    return f"{int(match[1]):02d}:{match[2]}"


def entry_json(entry: Entry, history: Sequence[Correction]) -> dict[str, object]:
    """One student in one period: name, status, time and source of the mark; a corrected
    entry also has its ``reason`` and every correction, oldest first, as ``history``."""
    body = entry.to_json()
    if history:
        body["reason"] = entry.reason
        body["history"] = [fix.to_json() for fix in history]
    return body


@dataclass(frozen=True)
class Corrected:
    """The answer to a correction: the entry as it is now, with its history."""

    entry: Entry
    history: tuple[Correction, ...]
    changed: bool  # False: the status and reason were already these; nothing was recorded

    def to_json(self) -> dict[str, object]:
        return {
            "status": "success",
            "changed": self.changed,
            "date": self.entry.day.isoformat(),
            "class": self.entry.class_name,
            "period": self.entry.period,
            "student": entry_json(self.entry, self.history),
        }


def _clean_reason(new_status: str, reason: str) -> str:
    reason = " ".join((reason or "").split())  # one line: newlines and tabs become spaces
    if any(unicodedata.category(char) == "Cc" for char in reason):
        raise BadRequestError("the reason has control characters")
    if new_status == STATUS_EXCUSED and not reason:
        raise BadRequestError("an excused absence needs a reason")
    if len(reason) > REASON_LIMIT:
        raise BadRequestError(f"the reason is longer than {REASON_LIMIT} characters")
    return reason


def correct(
    attendance: AttendanceService,
    files: CsvFiles,
    *,
    name: str,
    day: date,
    status: str,
    reason: str = "",
    by: str,
    class_name: str | None = None,
    period: str | None = None,
) -> Corrected:
    """Record a correction of ``name``'s status in one class period (``class_name`` may be
    left out when the timetable has one class or the student is in one class only,
    ``period`` when the class has one period that day). Raises ``BadRequestError`` naming what
    is wrong."""
    new_status = parse_status(status)
    reason = _clean_reason(new_status, reason)
    entry = find_entry(attendance, name, day, class_name, period)
    history = _history(attendance, entry)
    if entry.status == new_status and entry.reason == reason:
        return Corrected(entry, history, changed=False)
    return _record(attendance, files, entry, new_status, reason, by)


def undo(
    attendance: AttendanceService,
    files: CsvFiles,
    *,
    name: str,
    day: date,
    by: str,
    class_name: str | None = None,
    period: str | None = None,
) -> Corrected:
    """Take back the correction in force of one student in one class period: the status is
    again what it was before it (an earlier correction, or the camera's mark). Recorded as a
    row of its own (status ``Undone``), so the history keeps both."""
    entry = find_entry(attendance, name, day, class_name, period)
    if not entry.corrected:
        raise BadRequestError(f"{entry.student} has no correction to undo in that period")
    return _record(attendance, files, entry, UNDO, "", by)


def _record(
    attendance: AttendanceService,
    files: CsvFiles,
    entry: Entry,
    new_status: str,
    reason: str,
    by: str,
) -> Corrected:
    """Record the correction of ``entry`` to ``new_status`` (``UNDO`` takes back the one in
    force) and its audit entry (signed ``by``) in one transaction, rewrite the day's files and
    answer the entry as it is now."""
    at = attendance.clock().astimezone(timezone.utc).replace(tzinfo=None)
    status = "undone" if new_status == UNDO else new_status
    attendance.store.record_correction(
        Correction(
            entry.student,
            entry.day,
            entry.class_name,
            entry.period,
            entry.status,
            new_status,
            reason,
            by,
            at,
        ),
        AuditRow(
            at,
            by,
            "correct",
            entry.student,
            f"{status}: {entry.class_name} {entry.period} on {entry.day.isoformat()}",
        ),
    )
    attendance.forget()
    files.update(entry.day)
    now = find_entry(attendance, entry.student, entry.day, entry.class_name, entry.period)
    return Corrected(now, _history(attendance, now), changed=True)


# --- several class periods in one step ------------------------------------------------------

BULK_MAX_DAYS = 92  # a student excused for a term at most in one step
UNSEEN = (None, STATUS_ABSENT)  # the entries a bulk correction changes: no mark, no excuse


@dataclass(frozen=True)
class BulkCorrected:
    """The answer to a bulk correction: the entries it changed, and how many it left alone
    (already Present, Late or with that status)."""

    changed: tuple[Entry, ...]
    kept: int

    def to_json(self) -> dict[str, object]:
        return {
            "status": "success",
            "changed": len(self.changed),
            "kept": self.kept,
            "entries": [
                {
                    "date": e.day.isoformat(),
                    "class": e.class_name,
                    "period": e.period,
                    "name": e.student,
                    "status": e.status,
                }
                for e in self.changed
            ],
        }


def _record_many(
    attendance: AttendanceService,
    files: CsvFiles,
    entries: Sequence[Entry],
    new_status: str,
    reason: str,
    by: str,
    subject: str,
) -> BulkCorrected:
    """Correct each of ``entries`` that has no mark and not ``new_status`` yet, with one audit
    entry (on ``subject``, signed ``by``), in one transaction; the day files are rewritten
    once per day."""
    todo = [e for e in entries if e.status in UNSEEN and e.status != new_status]
    at = attendance.clock().astimezone(timezone.utc).replace(tzinfo=None)
    span = ""
    if todo:
        span = todo[0].day.isoformat()
        if todo[-1].day != todo[0].day:
            span += f" to {todo[-1].day.isoformat()}"
    attendance.store.record_corrections(
        [
            Correction(
                e.student, e.day, e.class_name, e.period, e.status, new_status, reason, by, at
            )
            for e in todo
        ],
        AuditRow(at, by, "correct", subject, f"{new_status}: {len(todo)} class periods, {span}"),
    )
    attendance.forget()
    for day in sorted({e.day for e in todo}):
        files.update(day)
    changed = tuple(
        Entry(
            e.day,
            e.class_name,
            e.period,
            e.period_end,
            e.student,
            new_status,
            e.time,
            by,
            reason,
            corrected=True,
        )
        for e in todo
    )
    return BulkCorrected(changed, len(entries) - len(todo))


def correct_days(
    attendance: AttendanceService,
    files: CsvFiles,
    *,
    name: str,
    first: date,
    last: date,
    reason: str,
    by: str,
    status: str = STATUS_EXCUSED,
) -> BulkCorrected:
    """Set ``status`` (default Excused) for one student in every class period they are
    expected in from ``first`` to ``last`` (days ahead included: a planned absence) that has
    no mark: periods where they were seen keep their Present or Late."""
    new_status = parse_status(status)
    reason = _clean_reason(new_status, reason)
    if last < first:
        raise BadRequestError("to is before from")
    if (last - first).days >= BULK_MAX_DAYS:
        raise BadRequestError(f"at most {BULK_MAX_DAYS} days in one step")
    student = attendance.store.student((name or "").strip())
    if student is None:
        raise BadRequestError(f"unknown student {name[:80]!r}")
    entries = [e for e in attendance.register.entries(first, last) if e.student == student.name]
    if not entries:
        raise BadRequestError(
            f"{student.name} is expected in no class period from {first.isoformat()} "
            f"to {last.isoformat()}"
        )
    return _record_many(attendance, files, entries, new_status, reason, by, student.name)


def correct_period(
    attendance: AttendanceService,
    files: CsvFiles,
    *,
    class_name: str,
    day: date,
    period: str | None,
    reason: str,
    by: str,
    status: str = STATUS_PRESENT,
) -> BulkCorrected:
    """Set ``status`` (default Present) for every student of one class period who has no
    mark (a camera that was down, a class taught outside): those seen keep their mark."""
    new_status = parse_status(status)
    reason = _clean_reason(new_status, reason)
    attendance.check_class(class_name)
    entries = attendance.register.entries(day, day, class_name)
    periods = sorted({e.period for e in entries})
    if period is None:
        if len(periods) != 1:
            closure = attendance.timetable_on(day).closure_on(day)
            raise BadRequestError(
                f"period is required ({_periods_of(class_name, day, periods, closure)})"
            )
        period = periods[0]
    else:
        period = parse_period(period)
    chosen = [e for e in entries if e.period == period]
    if not chosen:
        closure = attendance.timetable_on(day).closure_on(day)
        raise BadRequestError(
            f"{class_name} has no period at {period} on {day.isoformat()} "
            f"({_periods_of(class_name, day, periods, closure)})"
        )
    return _record_many(attendance, files, chosen, new_status, reason, by, f"class:{class_name}")


def history_of(
    attendance: AttendanceService, name: str, day: date, class_name: str, period: str
) -> tuple[Correction, ...]:
    """Every correction of one student in one class period, oldest first."""
    return tuple(
        fix
        for fix in attendance.store.corrections_between(day, day, class_name, name)
        if fix.period == period
    )


def _history(attendance: AttendanceService, entry: Entry) -> tuple[Correction, ...]:
    return history_of(attendance, entry.student, entry.day, entry.class_name, entry.period)


def find_entry(
    attendance: AttendanceService,
    name: str,
    day: date,
    class_name: str | None = None,
    period: str | None = None,
) -> Entry:
    """The register's entry for one student in one class period, or a ``BadRequestError``
    saying why there is none (unknown class, no such period that day, a closure day, an
    unknown student, one who is not on the roster or had not joined yet)."""
    name = (name or "").strip()
    if not name:
        raise BadRequestError("name is required")
    if class_name is None:
        class_name = _class_of(attendance, name, day)
    entries = attendance.register.entries(day, day, class_name)
    if not entries:
        attendance.check_class(class_name)
    slots = attendance.day_slots(day, class_name)
    periods = sorted({e.period for e in entries} | {s.period.label for s in slots})
    closure = attendance.timetable_on(day).closure_on(day)
    if period is None:
        if len(periods) != 1:
            raise BadRequestError(
                f"period is required ({_periods_of(class_name, day, periods, closure)})"
            )
        period = periods[0]
    else:
        period = parse_period(period)
    for entry in entries:
        if entry.period == period and entry.student == name:
            return entry
    student = attendance.store.student(name)
    if student is None:
        raise BadRequestError(f"unknown student {name[:80]!r}")
    if period not in periods:
        raise BadRequestError(
            f"{class_name} has no period at {period} on {day.isoformat()} "
            f"({_periods_of(class_name, day, periods, closure)})"
        )
    if not student.active:
        raise BadRequestError(f"{name} has left (inactive in the registry)")
    if student.joined_on > day:
        raise BadRequestError(
            f"{name} joined on {student.joined_on.isoformat()}, after {day.isoformat()}"
        )
    slot = next((s for s in slots if s.period.label == period), None)
    if slot is not None and in_class(student, slot):
        # In the class but not expected: the period started before they joined. Staff may
        # still record what happened (a student who was there before being added).
        return Entry(day, class_name, period, minutes_text(slot.period.end), name, None)
    raise BadRequestError(f"{name} is not on the roster of {class_name}")


def _class_of(attendance: AttendanceService, name: str, day: date) -> str:
    """The class meant when none is named: the timetable's only class, else the only class
    the student is on the register of that day, else the only class they belong to (a roster,
    or a class given beside it); ``BadRequestError`` naming the choices when there are more."""
    timetable = attendance.timetable_on(day)
    if len(timetable.classes) == 1:
        return timetable.classes[0].name
    seen = {e.class_name for e in attendance.register.entries(day, day) if e.student == name}
    in_order = [c.name for c in timetable.classes]  # the file's order, then any other
    that_day = [c for c in in_order if c in seen] + sorted(seen - set(in_order))
    if len(that_day) == 1:
        return that_day[0]
    row = attendance.store.student(name)
    extra = [c for c in (row.classes if row else ()) if timetable.school_class(c)]
    member = list(dict.fromkeys(timetable.classes_of(name) + extra))
    if not that_day and len(member) == 1:
        return member[0]
    choices = that_day or member
    if choices:
        raise BadRequestError(f"class is required ({name[:80]}'s classes: {', '.join(choices)})")
    known = ", ".join(c.name for c in timetable.classes)
    raise BadRequestError(f"class is required (classes: {known})")


def _periods_of(class_name: str, day: date, periods: Sequence[str], closure: Closure | None) -> str:
    if closure is not None and not periods:
        why = f": {closure.reason}" if closure.reason else ""
        return f"{day.isoformat()} is a closure day{why}"
    weekday = DAYS[day.weekday()]
    if not periods:
        return f"{class_name} has no period on {weekday} {day.isoformat()}"
    return f"periods of {class_name} on {weekday} {day.isoformat()}: {', '.join(periods)}"


# --- one day of the register ----------------------------------------------------------------


@dataclass(frozen=True)
class PeriodView:
    start: str
    end: str
    students: tuple[tuple[Entry, tuple[Correction, ...]], ...]

    def to_json(self) -> dict[str, object]:
        return {
            "start": self.start,
            "end": self.end,
            "students": [entry_json(entry, history) for entry, history in self.students],
        }


@dataclass(frozen=True)
class DayView:
    """Every rostered student in every period of one day, class by class."""

    day: date
    classes: tuple[tuple[str, tuple[PeriodView, ...]], ...]
    closure: Closure | None = None

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"status": "success", "date": self.day.isoformat()}
        if self.closure is not None:
            body["closure"] = {
                "from": self.closure.first.isoformat(),
                "to": self.closure.last.isoformat(),
                "reason": self.closure.reason,
            }
        body["classes"] = [
            {"name": name, "periods": [p.to_json() for p in periods]}
            for name, periods in self.classes
        ]
        return body


def day_view(attendance: AttendanceService, day: date, class_name: str | None = None) -> DayView:
    """The register of ``day`` (one class, or every class): each period of the timetable with
    every student expected in it, and any period on record that the timetable no longer has.
    A closure day lists the classes without periods."""
    timetable = attendance.timetable
    entries = attendance.register.entries(day, day, class_name)
    if class_name is not None and not entries:
        attendance.check_class(class_name)
    fixes: dict[SlotKey, list[Correction]] = defaultdict(list)
    for fix in attendance.store.corrections_between(day, day, class_name):
        fixes[(fix.class_name, fix.period, fix.name)].append(fix)
    grid: dict[str, dict[str, tuple[str, list[Entry]]]] = {
        c.name: {} for c in timetable.classes if class_name in (None, c.name)
    }
    for slot in attendance.day_slots(day, class_name):
        grid[slot.class_name].setdefault(slot.period.label, (minutes_text(slot.period.end), []))
    for entry in entries:
        periods = grid.setdefault(entry.class_name, {})
        periods.setdefault(entry.period, (entry.period_end, []))[1].append(entry)
    classes = tuple(
        (
            name,
            tuple(
                PeriodView(
                    start,
                    end,
                    tuple(
                        (e, tuple(fixes.get((name, start, e.student), ())))
                        for e in _by_name(students)
                    ),
                )
                for start, (end, students) in sorted(periods.items())
            ),
        )
        for name, periods in grid.items()
    )
    return DayView(day, classes, attendance.timetable_on(day).closure_on(day))


def _by_name(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e.student.casefold(), e.student))
