"""The timetable: classes, their rosters and periods, and closures (``ATTENDANCE_TIMETABLE``).

A TOML file (docs/timetable.md)::

    [[class]]
    name = "math-7b"
    teachers = ["teacher@school.org"]        # the class's report goes to them
    students = ["ana_lima", "ben_ito"]       # names; "*" = every active student
      [[class.period]]
      days = ["mon", "tue", "wed", "thu", "fri"]
      start = "08:30"
      end = "09:25"
      late_after_minutes = 10                # default ATTENDANCE_LATE_AFTER_MINUTES
      opens_minutes_before = 20              # sightings this early count (default 15)

    [[closure]]                              # holidays: no period, nobody absent
    from = "2026-12-21"
    to = "2027-01-03"
    reason = "winter break"

``load_timetable`` validates every value and raises ``ConfigError`` naming the file, the line
and the key (``timetable.toml:7: class[1].period[1].start: expected HH:MM``). Without a
timetable, ``default_timetable`` is the original's rule: one class ``default`` whose one daily
period runs from midnight to midnight and turns Late at ``ATTENDANCE_CLASS_START`` plus the
grace minutes, every day, for every student.

Times are wall-clock times of the school's zone, compared as such: a period at 08:30 is at
08:30 on the day clocks change too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import tomllib

from ..config import Settings
from ..db.store import TimetableRow
from ..errors import ConfigError
from ..models import STATUS_LATE, STATUS_PRESENT

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_CLASS = "default"
DEFAULT_OPENS_MINUTES_BEFORE = 15
DAY_MINUTES = 24 * 60
EVERYONE = "*"


def minutes_text(minutes: int) -> str:
    """``HH:MM`` for minutes after midnight (``24:00`` for the end of the day)."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class Period:
    """One period of a class: on ``days`` (0 = Monday) from ``start`` to ``end`` (minutes after
    midnight, local wall time); a first sighting after ``late_from`` is Late."""

    days: frozenset[int]
    start: int
    end: int
    late_from: int  # minutes after midnight
    opens_before: int = DEFAULT_OPENS_MINUTES_BEFORE
    # when the class begins for whom is expected (minutes after midnight); None: ``start``.
    # The default all-day period begins at ATTENDANCE_CLASS_START.
    begins_at: int | None = None

    @property
    def begins(self) -> int:
        """When the period begins, for who is expected in it (``expected.py``)."""
        return self.start if self.begins_at is None else self.begins_at

    @property
    def label(self) -> str:
        """The period's name in marks, URLs and commands: its start, ``HH:MM``."""
        return minutes_text(self.start)

    @property
    def late_after_minutes(self) -> int:
        return self.late_from - self.start

    def is_on(self, day: date) -> bool:
        return day.weekday() in self.days

    def counts_at(self, local: datetime) -> bool:
        """Whether a sighting at ``local`` (the period's day) counts for this period."""
        seconds = _seconds(local)
        return (self.start - self.opens_before) * 60 <= seconds < self.end * 60

    def has_ended(self, day: date, local_now: datetime) -> bool:
        if local_now.date() != day:
            return local_now.date() > day
        return _seconds(local_now) >= self.end * 60

    def punctuality(self, local: datetime) -> str:
        """Present or Late for a first sighting at ``local``."""
        return STATUS_LATE if _seconds(local) > self.late_from * 60 else STATUS_PRESENT


def _seconds(local: datetime) -> float:
    return local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6


@dataclass(frozen=True)
class SchoolClass:
    name: str
    teachers: tuple[str, ...]
    students: tuple[str, ...]  # (EVERYONE,) for every active student
    periods: tuple[Period, ...]

    @property
    def everyone(self) -> bool:
        return EVERYONE in self.students

    def roster(self, active: Iterable[str]) -> list[str]:
        """The class's students among the ``active`` ones, sorted."""
        active = list(active)
        if self.everyone:
            return sorted(active, key=_name_key)
        present = set(active)
        return sorted((s for s in self.students if s in present), key=_name_key)

    def holds(self, student: str, extra: Iterable[str] = ()) -> bool:
        """Whether ``student`` is in this class: its roster names them (or is everyone), or
        ``extra`` (the classes the registry gives them beside the rosters) names the class.
        The one test of class membership: marking, the register, badges and pages use it."""
        return self.everyone or student in self.students or self.name in extra


def _name_key(name: str) -> tuple[str, str]:
    return (name.casefold(), name)


@dataclass(frozen=True)
class Closure:
    first: date
    last: date
    reason: str

    def covers(self, day: date) -> bool:
        return self.first <= day <= self.last


@dataclass(frozen=True)
class Slot:
    """One class period on one day."""

    school_class: SchoolClass
    period: Period
    day: date

    @property
    def class_name(self) -> str:
        return self.school_class.name


@dataclass(frozen=True)
class Timetable:
    classes: tuple[SchoolClass, ...]
    closures: tuple[Closure, ...] = ()
    source: str = ""  # the file it was read from; "" for the default
    is_default: bool = field(default=False)
    text: str = ""  # the file's TOML, or "HH:MM+grace" for the default: what history keeps
    default_late: int = 15  # ATTENDANCE_LATE_AFTER_MINUTES when it was read

    @property
    def digest(self) -> str:
        kind = "default" if self.is_default else "file"
        blob = f"{kind}\n{self.default_late}\n{self.text}".encode()
        return hashlib.sha256(blob).hexdigest()

    def as_row(self, effective_from: date, effective_at: datetime | None = None) -> TimetableRow:
        kind = "default" if self.is_default else "file"
        return TimetableRow(
            effective_from,
            self.digest,
            kind,
            self.source,
            self.text,
            self.default_late,
            effective_at,
        )

    def closure_on(self, day: date) -> Closure | None:
        return next((c for c in self.closures if c.covers(day)), None)

    def slots_on(self, day: date, class_name: str | None = None) -> list[Slot]:
        """Every class period on ``day`` (none on a closure day), in time order."""
        if self.closure_on(day):
            return []
        slots = [
            Slot(cls, period, day)
            for cls in self.classes
            if class_name is None or cls.name == class_name
            for period in cls.periods
            if period.is_on(day)
        ]
        return sorted(slots, key=lambda s: (s.period.start, s.class_name))

    def slots_for(self, student: str, local: datetime, extra: Iterable[str] = ()) -> list[Slot]:
        """The periods a sighting of ``student`` (in the ``extra`` classes beside the rosters)
        at ``local`` counts for."""
        return [
            slot
            for slot in self.slots_on(local.date())
            if slot.school_class.holds(student, extra) and slot.period.counts_at(local)
        ]

    def school_class(self, name: str) -> SchoolClass | None:
        return next((c for c in self.classes if c.name == name), None)

    def period(self, class_name: str, label: str) -> Period | None:
        cls = self.school_class(class_name)
        if cls is None:
            return None
        return next((p for p in cls.periods if p.label == label), None)

    def classes_of(self, student: str, extra: Iterable[str] = ()) -> list[str]:
        """The student's classes: those whose roster names them, then the ``extra`` classes
        the registry gives them (those the timetable has), in that order."""
        listed = [c.name for c in self.classes if c.holds(student)]
        return listed + [c for c in extra if c not in listed and self.school_class(c)]


def default_timetable(settings: Settings) -> Timetable:
    """The original's rule: one class, one period all day, Late after class start + grace."""
    late_from = settings.class_start.hour * 60 + settings.class_start.minute
    period = Period(
        days=frozenset(range(7)),
        start=0,
        end=DAY_MINUTES,
        late_from=late_from + settings.late_after_minutes,
        opens_before=0,
        begins_at=late_from,
    )
    recipients = tuple(settings.recipients)
    return Timetable(
        (SchoolClass(DEFAULT_CLASS, recipients, (EVERYONE,), (period,)),),
        is_default=True,
        text=f"{settings.class_start:%H:%M}+{settings.late_after_minutes}",
        default_late=settings.late_after_minutes,
    )


def from_row(row: TimetableRow, settings: Settings) -> Timetable:
    """A timetable as it was recorded when it came into force."""
    if row.kind == "default":
        start, _, grace = row.text.partition("+")
        hours, minutes = (int(x) for x in start.split(":"))
        then = replace(settings, class_start=time(hours, minutes), late_after_minutes=int(grace))
        return default_timetable(then)
    return parse_timetable(row.text, Path(row.source or "timetable.toml"), row.default_late)


def timetable_for(settings: Settings) -> Timetable:
    """The configured timetable, or the default one."""
    if settings.timetable is None:
        return default_timetable(settings)
    return load_timetable(settings.timetable, settings.late_after_minutes)


# --- reading and checking the file ------------------------------------------------------------


class _Locator:
    """Finds the line of a key in the TOML text, to name it in messages."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def line_of(self, path: Sequence[tuple[str, int]], key: str | None) -> int | None:
        """The line of ``key`` in the table reached by ``path`` (``[("class", 2), ("period",
        1)]`` = the first period of the second class), or of the table's header. A table
        written inline (``period = [{...}]``) is found by the line of its key in the table
        above it."""
        line = self._find(path, key)
        while line is None and path:
            path, key = path[:-1], path[-1][0]
            line = self._find(path, key)
        return line

    def _find(self, path: Sequence[tuple[str, int]], key: str | None) -> int | None:
        seen = {"class": 0, "period": 0, "closure": 0}
        here: list[tuple[str, int]] = []
        header_line = None
        for number, raw in enumerate(self.lines, start=1):
            line = raw.strip()
            header = re.match(r"^(\[\[?)\s*([A-Za-z0-9_.\s\"'-]+?)\s*\]", line)
            if header:
                parts = [p.strip("\"'") for p in re.sub(r"\s+", "", header.group(2)).split(".")]
                if header.group(1) == "[[" and parts == ["class"]:
                    seen["class"] += 1
                    seen["period"] = 0
                    here = [("class", seen["class"])]
                elif header.group(1) == "[[" and parts == ["class", "period"]:
                    seen["period"] += 1
                    here = [("class", seen["class"]), ("period", seen["period"])]
                elif header.group(1) == "[[" and parts == ["closure"]:
                    seen["closure"] += 1
                    here = [("closure", seen["closure"])]
                else:  # another table (``[school]``, ``[class.room]``): a key of its parent
                    parent = {
                        ("class",): [("class", seen["class"])],
                        ("class", "period"): [("class", seen["class"]), ("period", seen["period"])],
                        ("closure",): [("closure", seen["closure"])],
                    }.get(tuple(parts[:-1]), [] if len(parts) == 1 else [("?", 0)])
                    here = [("?", 0)]
                    if parent == list(path) and key == parts[-1]:
                        return number
                    continue
                if here == list(path):
                    header_line = number
                    if key is None:
                        return number
                continue
            quoted = rf"^[\"']?{re.escape(key)}[\"']?\s*=" if key else None
            if here == list(path) and quoted and re.match(quoted, line):
                return number
        return header_line


class _Checker:
    def __init__(self, path: Path, text: str, default_late: int) -> None:
        self.path = path
        self.locator = _Locator(text)
        self.default_late = default_late

    def fail(self, where: Sequence[tuple[str, int]], key: str | None, problem: str) -> ConfigError:
        line = self.locator.line_of(where, key)
        place = ".".join(f"{name}[{index}]" for name, index in where)
        if key:
            place = f"{place}.{key}" if place else key
        at = f"{self.path.name}:{line}" if line else self.path.name
        return ConfigError(f"timetable {at}: {place}: {problem}")

    def table(
        self, value: Any, where: Sequence[tuple[str, int]], allowed: set[str]
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, None, "expected a table")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(
                where, unknown[0], f"unknown key (expected one of {', '.join(sorted(allowed))})"
            )
        return value

    def string(self, table: dict[str, Any], where: Sequence[tuple[str, int]], key: str) -> str:
        if key not in table:
            raise self.fail(where, None, f"missing key {key!r}")
        value = table[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, key, f"expected a non-empty text, got {value!r}")
        return value.strip()

    def strings(
        self, table: dict[str, Any], where: Sequence[tuple[str, int]], key: str, required: bool
    ) -> tuple[str, ...]:
        if key not in table:
            if required:
                raise self.fail(where, None, f"missing key {key!r}")
            return ()
        value = table[key]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(where, key, "expected a list of texts")
        return tuple(v.strip() for v in value)

    def clock(self, table: dict[str, Any], where: Sequence[tuple[str, int]], key: str) -> int:
        if key not in table:
            raise self.fail(where, None, f"missing key {key!r}")
        value = table[key]
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", value) if isinstance(value, str) else None
        if not match:
            raise self.fail(where, key, f'expected a time as "HH:MM", got {value!r}')
        hours, minutes = int(match[1]), int(match[2])
        if minutes > 59 or hours > 24 or (hours == 24 and minutes):
            raise self.fail(where, key, f"no such time of day: {value!r}")
        return hours * 60 + minutes

    def minutes(
        self, table: dict[str, Any], where: Sequence[tuple[str, int]], key: str, default: int
    ) -> int:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= DAY_MINUTES:
            raise self.fail(
                where, key, f"expected whole minutes from 0 to {DAY_MINUTES}, got {value!r}"
            )
        return value

    def day(self, table: dict[str, Any], where: Sequence[tuple[str, int]], key: str) -> date:
        if key not in table:
            raise self.fail(where, None, f"missing key {key!r}")
        value = table[key]
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.fail(where, key, f'expected a date as "YYYY-MM-DD", got {value!r}')


def parse_timetable(text: str, path: Path, default_late_minutes: int) -> Timetable:
    """Check and build a timetable from TOML ``text`` (``path`` names it in messages)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_error(path, exc)) from None
    check = _Checker(path, text, default_late_minutes)
    top = check.table(data, [], {"class", "closure"})
    raw_classes = top.get("class", [])
    if not isinstance(raw_classes, list) or not raw_classes:
        raise ConfigError(f"timetable {path.name}: no [[class]] table: define at least one class")
    classes: list[SchoolClass] = []
    for c, raw in enumerate(raw_classes, start=1):
        where = [("class", c)]
        table = check.table(raw, where, {"name", "teachers", "students", "period"})
        name = check.string(table, where, "name")
        if any(existing.name == name for existing in classes):
            raise check.fail(where, "name", f"class {name!r} is defined twice")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise check.fail(
                where, "name", "use 1-64 letters, digits, '.', '_' or '-' (it appears in URLs)"
            )
        teachers = check.strings(table, where, "teachers", required=False)
        for teacher in teachers:
            if "@" not in teacher:
                raise check.fail(where, "teachers", f"not an email address: {teacher!r}")
        students = check.strings(table, where, "students", required=True)
        raw_periods = table.get("period", [])
        if not isinstance(raw_periods, list) or not raw_periods:
            raise check.fail(where, None, "no [[class.period]]: a class needs at least one period")
        periods: list[Period] = []
        for p, raw_period in enumerate(raw_periods, start=1):
            pw = [("class", c), ("period", p)]
            pt = check.table(
                raw_period,
                pw,
                {"days", "start", "end", "late_after_minutes", "opens_minutes_before"},
            )
            days = check.strings(pt, pw, "days", required=True)
            bad = [d for d in days if d.lower() not in DAYS]
            if bad:
                raise check.fail(pw, "days", f"unknown day {bad[0]!r} (use {', '.join(DAYS)})")
            start = check.clock(pt, pw, "start")
            end = check.clock(pt, pw, "end")
            if end <= start:
                raise check.fail(pw, "end", "a period must end after it starts")
            late = check.minutes(pt, pw, "late_after_minutes", default_late_minutes)
            opens = check.minutes(pt, pw, "opens_minutes_before", DEFAULT_OPENS_MINUTES_BEFORE)
            period = Period(
                frozenset(DAYS.index(d.lower()) for d in days), start, end, start + late, opens
            )
            for other in periods:
                if other.start == start and other.days & period.days:
                    raise check.fail(
                        pw, "start", f"another period of {name!r} starts at {period.label} too"
                    )
            periods.append(period)
        classes.append(SchoolClass(name, teachers, students, tuple(periods)))
    closures = []
    raw_closures = top.get("closure", [])
    if not isinstance(raw_closures, list):
        raise check.fail([], "closure", "expected [[closure]] tables")
    for n, raw in enumerate(raw_closures, start=1):
        where = [("closure", n)]
        table = check.table(raw, where, {"from", "to", "reason"})
        first = check.day(table, where, "from")
        last = check.day(table, where, "to") if "to" in table else first
        if last < first:
            raise check.fail(where, "to", "the closure ends before it starts")
        reason = str(table.get("reason", "")).strip()
        closures.append(Closure(first, last, reason))
    return Timetable(
        tuple(classes),
        tuple(closures),
        source=str(path),
        text=text,
        default_late=default_late_minutes,
    )


def _toml_error(path: Path, exc: tomllib.TOMLDecodeError) -> str:
    """``timetable NAME:LINE: not valid TOML: PROBLEM (column C)``: the line where the reader
    stopped, in front like every other message."""
    text = str(exc)
    where = re.search(r"\s*\(at line (\d+), column (\d+)\)$", text)
    if where:
        problem = text[: where.start()]
        return f"timetable {path.name}:{where[1]}: not valid TOML: {problem} (column {where[2]})"
    return f"timetable {path.name}: not valid TOML: {text}"


def load_timetable(path: Path, default_late_minutes: int) -> Timetable:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"ATTENDANCE_TIMETABLE: cannot read {path}: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"timetable {path.name}: not UTF-8 text") from None
    return parse_timetable(text, path, default_late_minutes)
