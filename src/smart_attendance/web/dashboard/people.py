"""The Student page and the Class page, over a range of days (``?from=&to=``, by default the
term so far: from the first day on record, or the last 60 days on an empty register, to today).

* ``GET /student/<name>``: the photos enrolled, the student's classes, a calendar of the range
  (one status per day, in a word and a colour), statistics, and the history of corrections;
* ``GET /student/<name>/photos/<filename>``: one photo of the student's dataset folder (never
  cached by the browser, never a file outside that folder);
* ``GET /class/<name>``: the students under the alert threshold, a chart of attendance per
  day, and the roster with photos and attendance per student.

A teacher opens their own classes and the students of those only (403 otherwise), and sees the
periods of their classes only on a student's page; admin and office see everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, request

from ...app import Services
from ...attendance import calendar
from ...attendance.register import Entry, stats_row
from ...attendance.register import days as each_day
from ...attendance.timetable import DAYS, Period, minutes_text
from ...db.store import StudentRow
from ...errors import BadRequestError, NotFoundError
from ...models import (
    STATUS_ABSENT,
    STATUS_EXCUSED,
    STATUS_LATE,
    STATUS_PRESENT,
    Correction,
    StudentStats,
)
from ...people.enrolment import photo_files
from .charts import daily_columns
from .common import access, parse_day, render, require, shown

TERM_FALLBACK_DAYS = 60
PHOTO_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# A day's status on the calendar: its CSS class (colour) and its short visible code; the
# word itself is always on the page too (the legend, and hidden text for screen readers).
DAY_CSS = {
    STATUS_PRESENT: "present",
    STATUS_LATE: "late",
    STATUS_ABSENT: "absent",
    STATUS_EXCUSED: "excused",
    calendar.NOT_YET: "pending",
    calendar.NO_CLASS: "none",
}
DAY_CODE = {
    STATUS_PRESENT: "P",
    STATUS_LATE: "L",
    STATUS_ABSENT: "A",
    STATUS_EXCUSED: "E",
    calendar.NOT_YET: "?",
    calendar.NO_CLASS: "",
}
DAY_MEANING = {
    STATUS_PRESENT: "present in every period",
    STATUS_LATE: "late in at least one period",
    STATUS_ABSENT: "absent (not excused) in at least one period",
    STATUS_EXCUSED: "excused in at least one period, present in the others",
    calendar.NOT_YET: "periods still running, not seen yet",
    calendar.NO_CLASS: "no class period",
}


# --- pure helpers --------------------------------------------------------------------------------


def term_range(
    first_on_record: date | None,
    today: date,
    raw_from: str | None,
    raw_to: str | None,
    max_days: int = 400,
) -> tuple[date, date]:
    """The range of the query string; by default the term so far: from the first day on
    record (or ``TERM_FALLBACK_DAYS`` back when there is none) to today."""
    last = parse_day(raw_to, "to") or today
    first = parse_day(raw_from, "from")
    if first is None:
        if first_on_record is not None and first_on_record <= last:
            first = max(first_on_record, last - timedelta(days=max_days - 1))
        else:
            first = last - timedelta(days=TERM_FALLBACK_DAYS - 1)
    if last < first:
        raise BadRequestError("'to' is before 'from'")
    if (last - first).days + 1 > max_days:
        raise BadRequestError(
            f"a range is at most {max_days} days (ATTENDANCE_MAX_RANGE_DAYS); ask for a shorter one"
        )
    return first, last


@dataclass(frozen=True)
class Month:
    """One month of the calendar: weeks of seven days, Monday first (None: another month)."""

    first: date
    weeks: tuple[tuple[date | None, ...], ...]

    @property
    def title(self) -> str:
        return self.first.strftime("%B %Y")


def months(first: date, last: date) -> list[Month]:
    """The months from ``first``'s to ``last``'s, each as its weeks."""
    out = []
    start = first.replace(day=1)
    while start <= last:
        following = (start + timedelta(days=32)).replace(day=1)
        day = start - timedelta(days=start.weekday())
        weeks = []
        while day < following:
            weeks.append(
                tuple(
                    d if d.month == start.month else None
                    for d in (day + timedelta(days=i) for i in range(7))
                )
            )
            day += timedelta(days=7)
        out.append(Month(start, tuple(weeks)))
        start = following
    return out


def local_time(at_utc: datetime, services: Services) -> str:
    """A stored UTC time as the school's wall time."""
    stamp = at_utc.replace(tzinfo=timezone.utc).astimezone(services.settings.zone)
    return stamp.strftime("%Y-%m-%d %H:%M")


def period_text(period: Period) -> str:
    """``mon, tue 08:30–09:25``."""
    on = ", ".join(DAYS[d] for d in sorted(period.days))
    return f"{on} {minutes_text(period.start)}–{minutes_text(period.end)}"


# --- what the pages show -------------------------------------------------------------------------


def student_classes(services: Services, row: StudentRow) -> list[str]:
    """The student's classes: the timetable's rosters naming them, and their extra classes."""
    return services.attendance.timetable.classes_of(row.name, row.classes)


def stats_for(services: Services, entries: list[Entry], names: set[str]) -> dict[str, StudentStats]:
    alert = services.settings.alert_below_pct
    rows = services.attendance.register.statistics_of(entries, alert)
    found = {s.name: s for s in rows if s.name in names}
    for name in names - set(found):
        found[name] = StudentStats(name, 0, 0, 0, 0).flagged(alert)
    return found


def closures(services: Services, first: date, last: date) -> dict[date, str]:
    """The closure days of the range, with their reason."""
    out = {}
    for day in each_day(first, last):
        closure = services.attendance.timetable_on(day).closure_on(day)
        if closure is not None:
            out[day] = closure.reason or "closed"
    return out


def register(routes: Blueprint, services: Services) -> None:
    def chosen_range() -> tuple[date, date]:
        return term_range(
            services.store.first_day(),
            services.attendance.today(),
            request.args.get("from"),
            request.args.get("to"),
            services.settings.max_range_days,
        )

    @routes.get("/student/<name>")
    def student_page(name: str) -> Any:
        user = access()
        require(user.may_see_student(name), f"the page of student {name}")
        row = services.enrolment.student(name)
        first, last = chosen_range()
        entries = [  # this student's periods only: what the range costs for one student
            e
            for e in services.attendance.register.entries(first, last, None, name)
            if user.may_see_class(e.class_name)
        ]
        days = calendar.student_days(entries, first, last)
        fixes: list[Correction] = [
            fix
            for fix in services.store.corrections_between(first, last, None, name)
            if user.may_see_class(fix.class_name)
        ]
        skipped = {}
        report = services.enrolment.report
        for item in report.skipped if report else ():
            folder, _, file = item.path.partition("/")
            if folder == name and file:
                skipped[file] = item.reason
        classes = student_classes(services, row)
        services.audit.record(f"user:{user.name}", "view", name, "student page")
        return render(
            "student.html",
            row.display_name or name,
            student=row,
            first=first,
            last=last,
            today=services.attendance.today(),
            classes=classes,
            photos=photo_files(services.settings.dataset_dir, name),
            consent=services.consent.history(name) if user.may_enrol else [],
            consent_required=services.settings.require_consent,
            skipped=skipped,
            enrolled=services.enrolment.photo_counts().get(name, 0),
            months=months(first, last),
            days=days,
            tally=calendar.tally(list(days.values())),
            closures=closures(services, first, last),
            stats=stats_for(services, entries, {name})[name],
            alert=services.settings.alert_below_pct,
            corrections=list(reversed(fixes)),
            local_time=lambda at: local_time(at, services),
            partial=not user.every_class,
            weekdays=WEEKDAYS,
            statuses=calendar.DAY_STATUSES,
            day_css=DAY_CSS,
            day_code=DAY_CODE,
            day_meaning=DAY_MEANING,
        )

    @routes.get("/student/<name>/photos/<filename>")
    def student_photo(name: str, filename: str) -> Any:
        require(access().may_see_student(name), f"the photos of student {name}")
        data = services.enrolment.photo(name, filename)
        kind = PHOTO_TYPES.get(Path(filename).suffix.lower(), "application/octet-stream")
        return Response(data, mimetype=kind, headers={"Cache-Control": "no-store"})

    @routes.get("/class/<name>")
    def class_page(name: str) -> Any:
        user = access()
        require(user.may_see_class(name), f"class {name}")
        school_class = services.attendance.timetable.school_class(name)
        if school_class is None:
            raise NotFoundError(f"no class named {name[:64]!r} in the timetable")
        first, last = chosen_range()
        counted = services.attendance.tallies.counts(first, last, (name,))
        roster = {
            s.name
            for s in services.store.students()
            if s.active and school_class.holds(s.name, s.classes)
        } | set(counted.students)
        alert = services.settings.alert_below_pct
        rows = [
            stats_row(n, counted.students.get(n, [0, 0, 0, 0]), alert)
            for n in sorted(roster, key=lambda n: (shown(n).casefold(), n))
        ]
        daily = counted.daily()
        return render(
            "class.html",
            f"Class {name}",
            class_name=name,
            school_class=school_class,
            first=first,
            last=last,
            rows=rows,
            below=[s for s in rows if s.below_threshold],
            photos=services.enrolment.photo_counts(),
            daily=[(day, counts, calendar.attendance_pct(counts)) for day, counts in daily],
            chart=daily_columns(daily, threshold_pct=alert) if daily else None,
            alert=alert,
            students={s.name: s for s in services.store.students()},
            periods=[period_text(p) for p in school_class.periods],
        )
