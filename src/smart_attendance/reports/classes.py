"""The daily reports with a timetable: one per class, for its teachers, and the whole school's,
for ``TEACHER_EMAIL``.

Both are read from the register (``Register.entries``: every rostered student in every class
period of the day with their current status: Present, Late, Absent once the period has ended,
Excused, or not seen yet while it runs) and the day's corrections (``Store.corrections_between``:
who changed what, and why). ``RegisterReport`` holds one of them; ``render_text`` and
``render_html`` write it; ``build_message`` makes the email.

* A class's report: its periods of the day, each student's status in each (a grid on the phone:
  one row per student, one column per period), absent and excused students with their periods
  and reasons, the marks that arrived late (received long after they were seen), the day's
  corrections of the class, a chart of the class's last two weeks, its
  students' statistics so far, and the class's register of the day as a CSV file.
* The whole school's: a line per class period (present, late, absent, excused), absent and
  excused students with their classes and periods, the marks that arrived late, every
  correction of the day, the chart,
  every student's statistics, the intruder photos, and the day file, the statistics file and
  the day's register as CSV files. On a closure day it says the school is closed.

Counts are per student and period: a student absent from two periods is two absences. Students
are named by their display name (``names``), else their folder's name; the register CSV has
both (``Name``, ``Display name``). Every name, reason and other student-controlled text is
escaped in HTML and neutralised in CSV.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

from ..attendance import files as csvfiles
from ..attendance.register import Entry
from ..config import Settings
from ..models import (
    STATUS_ABSENT,
    STATUS_EXCUSED,
    STATUS_LATE,
    STATUS_PRESENT,
    Correction,
    Mark,
    StudentStats,
)
from .content import (
    CSS,
    HISTORY_DAYS,
    LATE_ARRIVALS,
    as_stored,
    assemble,
    bar_chart,
    chart_card,
    correction_text,
    corrections_html,
    intruders_card,
    late_arrival,
    late_arrivals_html,
    new_cid,
    thumbnails,
)

PENDING = "not seen yet"  # a period still running, the student not seen so far
REGISTER_HEADER = (
    "Class",
    "Period",
    "End",
    "Name",
    "Display name",
    "Status",
    "Time",
    "Source",
    "Reason",
)
_CSS_CLASS = {
    STATUS_PRESENT: "present",
    STATUS_LATE: "late",
    STATUS_ABSENT: "absent",
    STATUS_EXCUSED: "excused",
}


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


@dataclass(frozen=True)
class PeriodDay:
    """One class period of the day and its students (in roster order)."""

    class_name: str
    start: str
    end: str
    entries: tuple[Entry, ...]

    @property
    def label(self) -> str:
        return f"{self.start}-{self.end}"

    @property
    def counts(self) -> Counter[str]:
        return Counter(e.status or PENDING for e in self.entries)


@dataclass
class RegisterReport:
    """A day of the register, for one class (``class_name``) or the whole school (None)."""

    day: date
    title: str  # the class's name, or the school's (ATTENDANCE_CLASS_NAME)
    class_name: str | None
    entries: list[Entry]
    corrections: list[Correction]
    stats: list[StudentStats]
    zone: ZoneInfo
    closure: str | None = None  # the reason, on a day the school is closed
    history: dict[date, Counter[str]] = field(default_factory=dict)  # status counts per day
    intruders: list[dict[str, Any]] = field(default_factory=list)
    open_photo: Callable[[bytes], bytes] = as_stored  # intruder photos are sealed at rest
    day_rows: list[Mark] = field(default_factory=list)  # the logs/ day file (whole school)
    names: Mapping[str, str] = field(default_factory=dict)  # folder name -> display name

    def shown(self, name: str) -> str:
        """The name a person reads: the student's display name, else ``name``."""
        return self.names.get(name) or name

    @property
    def school(self) -> bool:
        return self.class_name is None

    @property
    def scope(self) -> str:
        return "school" if self.school else "class"

    @property
    def periods(self) -> list[PeriodDay]:
        groups: dict[tuple[str, str], list[Entry]] = {}
        for entry in self.entries:
            groups.setdefault((entry.class_name, entry.period), []).append(entry)
        out = [
            PeriodDay(cls, start, rows[0].period_end, tuple(rows))
            for (cls, start), rows in groups.items()
        ]
        return sorted(out, key=lambda p: (p.start, p.class_name))

    @property
    def counts(self) -> Counter[str]:
        return Counter(e.status or PENDING for e in self.entries)

    @property
    def students(self) -> list[str]:
        """The day's students, by the name a person reads."""
        return sorted(
            {e.student for e in self.entries}, key=lambda n: (self.shown(n).casefold(), n)
        )

    @property
    def classes(self) -> list[str]:
        return sorted({e.class_name for e in self.entries})

    def place(self, entry: Entry) -> str:
        """Where an entry is: its period, with its class in the school's report."""
        return f"{entry.class_name} {entry.period}" if self.school else entry.period

    def by_student(self, status: str) -> list[tuple[str, list[Entry]]]:
        """The students with ``status`` in at least one period, with those periods."""
        found: dict[str, list[Entry]] = {}
        for entry in sorted(self.entries, key=lambda e: (e.period, e.class_name)):
            if entry.status == status:
                found.setdefault(entry.student, []).append(entry)
        return sorted(found.items(), key=lambda item: (self.shown(item[0]).casefold(), item[0]))

    def listing(self, status: str) -> str:
        """``Cleo Park (08:30, 09:30), dev_rao (08:30: doctor's note)``."""
        parts = []
        for name, entries in self.by_student(status):
            places = ", ".join(
                f"{self.place(e)}: {e.reason}"
                if status == STATUS_EXCUSED and e.reason
                else self.place(e)
                for e in entries
            )
            parts.append(f"{self.shown(name)} ({places})")
        return ", ".join(parts)

    @property
    def late_arrivals(self) -> list[str]:
        """The marks of the day that arrived late, as ``content.late_arrival`` writes them."""
        return [
            late_arrival(
                self.shown(e.student), e.time or "", e.received_at, self.day, self.place(e)
            )
            for e in sorted(self.entries, key=lambda e: (e.time or "", e.class_name, e.student))
            if e.arrived_late and e.received_at is not None
        ]

    @property
    def summary(self) -> str:
        """``5/6 present, 1 late, 1 absent, 0 excused`` (per student and period)."""
        c = self.counts
        seen = c[STATUS_PRESENT] + c[STATUS_LATE]
        return (
            f"{seen}/{len(self.entries)} present, {c[STATUS_LATE]} late, "
            f"{c[STATUS_ABSENT]} absent, {c[STATUS_EXCUSED]} excused"
        )

    @property
    def subject(self) -> str:
        head = f"{self.title}: attendance {self.day.isoformat()}"
        if self.closure is not None and not self.entries:
            return f"{head} (closed: {self.closure})" if self.closure else f"{head} (closed)"
        if not self.entries:
            return f"{head} (no class periods)"
        scope = _plural(len(self.periods), "period")
        if self.school:
            scope = f"{_plural(len(self.classes), 'class', 'classes')}, {scope}"
        return f"{head} ({scope}: {self.summary})"


def collect_history(entries: Sequence[Entry]) -> dict[date, Counter[str]]:
    history: dict[date, Counter[str]] = {}
    for entry in entries:
        if entry.status is not None:
            history.setdefault(entry.day, Counter())[entry.status] += 1
    return history


# --- text ----------------------------------------------------------------------------------------


def _entry_note(entry: Entry) -> str:
    if entry.corrected:
        why = f": {entry.reason}" if entry.reason else ""
        return f"  (corrected by {entry.source}{why})"
    return ""


def render_text(report: RegisterReport) -> str:
    c = report.counts
    lines = [f"{report.title}: attendance report for {report.day:%A %d %B %Y}", ""]
    if report.closure is not None:
        lines += [
            f"The school is closed today{': ' + report.closure if report.closure else ''}.",
            "",
        ]
    if not report.entries:
        lines += ["No class period today: nobody was expected.", ""]
    else:
        scope = _plural(len(report.periods), "period")
        if report.school:
            scope = f"{_plural(len(report.classes), 'class', 'classes')}, {scope}"
        pending = f", {PENDING} {c[PENDING]}" if c[PENDING] else ""
        lines += [
            f"{scope}, {_plural(len(report.students), 'student')}: present "
            f"{c[STATUS_PRESENT] + c[STATUS_LATE]} of {len(report.entries)} (on time "
            f"{c[STATUS_PRESENT]}, late {c[STATUS_LATE]}), absent {c[STATUS_ABSENT]}, "
            f"excused {c[STATUS_EXCUSED]}{pending} (counted per student and period).",
            "",
        ]
    if report.school and report.entries:
        lines.append("Class periods today:")
        width = max(len(p.class_name) for p in report.periods)
        for period in report.periods:
            lines.append(f"  {period.label}  {period.class_name:{width}}  {_period_counts(period)}")
        lines.append("")
    elif report.entries:
        for period in report.periods:
            lines.append(f"{period.label}: {_period_counts(period)}")
            for entry in period.entries:
                seen = entry.time or "        "
                status = entry.status or PENDING
                who = report.shown(entry.student)
                lines.append(f"  {seen}  {status:7}  {who}{_entry_note(entry)}")
            lines.append("")
    for status, label in ((STATUS_ABSENT, "Absent"), (STATUS_EXCUSED, "Excused")):
        listing = report.listing(status)
        if listing:
            lines += [f"{label}: {listing}", ""]
    if report.late_arrivals:
        lines.append(f"Arrived late ({LATE_ARRIVALS}):")
        lines += [f"  {text}" for text in report.late_arrivals]
        lines.append("")
    if report.corrections:
        lines.append("Corrections today:")
        lines += [
            f"  {correction_text(fix, report.zone, report.scope, report.shown)}"
            for fix in report.corrections
        ]
        lines.append("")
    if report.stats:
        lines.append("Statistics so far (periods present of expected, late, absent, excused):")
        for s in report.stats:
            alert = "  (below the alert threshold)" if s.below_threshold else ""
            lines.append(
                f"  {report.shown(s.name)}: {s.days_present}/{s.total_days} present "
                f"({s.attendance_pct:.1f}%), {s.days_late} late, {s.absent} absent, "
                f"{s.excused} excused{alert}"
            )
        lines.append("")
    if report.intruders:
        lines.append(
            "Intruder photos: "
            + ", ".join(f"{i['seen_at']:%H:%M:%S} ({i['camera']})" for i in report.intruders)
        )
        lines.append("")
    lines.append(_attached(report) + ".")
    return "\n".join(lines) + "\n"


def _period_counts(period: PeriodDay) -> str:
    c = period.counts
    text = (
        f"present {c[STATUS_PRESENT] + c[STATUS_LATE]}/{len(period.entries)}, "
        f"late {c[STATUS_LATE]}, absent {c[STATUS_ABSENT]}, excused {c[STATUS_EXCUSED]}"
    )
    return text + (f", {PENDING} {c[PENDING]}" if c[PENDING] else "")


def _attached(report: RegisterReport) -> str:
    if report.school:
        return (
            "The day's attendance, the statistics and the day's register are attached as CSV files"
        )
    return "The class's register of the day is attached as a CSV file"


# --- HTML ----------------------------------------------------------------------------------------


def render_html(
    report: RegisterReport, chart_cid: str | None, thumbs: list[tuple[str, str]]
) -> str:
    e = html.escape
    c = report.counts
    tiles = [
        ("students", len(report.students)),
        ("periods", len(report.periods)),
        ("present", c[STATUS_PRESENT] + c[STATUS_LATE]),
        ("late", c[STATUS_LATE]),
        ("absent", c[STATUS_ABSENT]),
        ("excused", c[STATUS_EXCUSED]),
    ]
    if c[PENDING]:
        tiles.append((PENDING, c[PENDING]))
    if report.school:
        tiles.append(("intruders", len(report.intruders)))
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{e(report.subject)}</title><style>{CSS}</style></head><body><div class='wrap'>",
        f"<div class='card'><h1>{e(report.title)}</h1>",
        f"<div class='muted'>Attendance report for {report.day:%A %d %B %Y}</div></div>",
    ]
    if report.closure is not None:
        why = f": {e(report.closure)}" if report.closure else ""
        parts.append(f"<div class='card'><p><b>The school is closed today</b>{why}.</p></div>")
    parts += [
        "<div class='card'><div class='counts'>",
        *[f"<div class='count'><b>{n}</b>{label}</div>" for label, n in tiles],
        "</div><div class='muted'>Counted per student and period.</div></div>",
        "<div class='card'><h2>Today</h2>",
    ]
    if not report.entries:
        parts.append("<p>No class period today: nobody was expected.</p>")
    elif report.school:
        parts.append(_school_table(report))
    else:
        parts.append(_class_grid(report))
    for status, label in ((STATUS_ABSENT, "Absent"), (STATUS_EXCUSED, "Excused")):
        listed = report.by_student(status)
        if listed:
            parts.append(f"<p><b>{label} ({len(listed)}):</b> {e(report.listing(status))}</p>")
    if report.late_arrivals:
        parts.append(late_arrivals_html(report.late_arrivals))
    if report.corrections:
        parts.append(corrections_html(report.corrections, report.zone, report.scope, report.shown))
    parts.append("</div>")
    parts += chart_card(chart_cid)
    if report.stats:
        parts.append(
            "<div class='card'><h2>Statistics so far</h2><table><tr><th>Name</th>"
            "<th>Present</th><th>Late</th><th>Absent</th><th>Excused</th><th>Attendance</th></tr>"
        )
        for s in report.stats:
            css = " class='absent'" if s.below_threshold else ""
            parts.append(
                f"<tr><td>{e(report.shown(s.name))}</td><td>{s.days_present}/{s.total_days}</td>"
                f"<td>{s.days_late}</td><td>{s.absent}</td><td>{s.excused}</td>"
                f"<td{css}>{s.attendance_pct:.1f}%</td></tr>"
            )
        parts.append("</table><div class='muted'>Periods, since the first day on record.</div>")
        parts.append("</div>")
    parts += intruders_card(report.intruders, thumbs)
    parts.append(
        f"<div class='muted'>{_attached(report)}. Sent by Smart Attendance.</div></div>"
        "</body></html>"
    )
    return "\n".join(parts)


def _school_table(report: RegisterReport) -> str:
    e = html.escape
    rows = [
        "<table><tr><th>Period</th><th>Class</th><th>Present</th><th>Late</th>"
        "<th>Absent</th><th>Excused</th></tr>"
    ]
    for period in report.periods:
        c = period.counts
        pending = f" <small>{c[PENDING]} {PENDING}</small>" if c[PENDING] else ""
        rows.append(
            f"<tr><td>{e(period.label)}</td><td>{e(period.class_name)}</td>"
            f"<td>{c[STATUS_PRESENT] + c[STATUS_LATE]}/{len(period.entries)}{pending}</td>"
            f"<td>{c[STATUS_LATE]}</td><td>{c[STATUS_ABSENT]}</td><td>{c[STATUS_EXCUSED]}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _class_grid(report: RegisterReport) -> str:
    """One row per student, one column per period: the status, with the time seen below."""
    e = html.escape
    periods = report.periods
    cells = {(p.start, entry.student): entry for p in periods for entry in p.entries}
    rows = ["<table><tr><th>Name</th>"]
    rows += [f"<th>{e(p.start)}<small>to {e(p.end)}</small></th>" for p in periods]
    rows.append("</tr>")
    for student in report.students:
        row = [f"<tr><td>{e(report.shown(student))}</td>"]
        for period in periods:
            entry = cells.get((period.start, student))
            row.append(_cell(entry))
        row.append("</tr>")
        rows.append("".join(row))
    rows.append("</table>")
    if any(entry.corrected for entry in report.entries):
        rows.append("<div class='muted'>* corrected (see the corrections below)</div>")
    return "\n".join(rows)


def _cell(entry: Entry | None) -> str:
    if entry is None:
        return "<td></td>"
    e = html.escape
    if entry.status is None:
        return f"<td class='pending'>{PENDING}</td>"
    mark = "*" if entry.corrected else ""
    time = f"<small>{e(entry.time[:5])}</small>" if entry.time else ""
    if entry.status == STATUS_EXCUSED and entry.reason:
        time = f"<small>{e(entry.reason)}</small>"
    css = _CSS_CLASS.get(entry.status, "")
    return f"<td class='{css}'>{e(entry.status)}{mark}{time}</td>"


# --- the email -----------------------------------------------------------------------------------


def register_csv(entries: Sequence[Entry], names: Mapping[str, str] | None = None) -> str:
    """Every entry: class, period, end, name (the folder's), display name (``names``, else
    the folder's name), status, time seen, source, reason; a byte-order mark first, as the
    register's exports (Excel on Windows then reads accents right)."""
    shown = names or {}
    return csvfiles.BOM + csvfiles.render(
        REGISTER_HEADER,
        (
            (
                e.class_name,
                e.period,
                e.period_end,
                e.student,
                shown.get(e.student) or e.student,
                e.status or "",
                e.time or "",
                e.source,
                e.reason,
            )
            for e in entries
        ),
    )


def chart_png(report: RegisterReport) -> bytes:
    """Stacked bars per day over the last two weeks: on time, late, excused, absent (per
    student and period)."""
    days = [report.day - timedelta(days=i) for i in range(HISTORY_DAYS - 1, -1, -1)]
    bars = [
        (label, colour, [report.history.get(d, Counter())[status] for d in days])
        for status, label, colour in (
            (STATUS_PRESENT, "on time", "#2e7d32"),
            (STATUS_LATE, "late", "#f9a825"),
            (STATUS_EXCUSED, "excused", "#90a4ae"),
            (STATUS_ABSENT, "absent", "#c62828"),
        )
    ]
    return bar_chart(days, bars, "student periods")


def build_message(
    report: RegisterReport, settings: Settings, to: Sequence[str], sent_at: datetime
) -> EmailMessage:
    chart_cid = new_cid()
    thumbs = thumbnails(report.intruders, report.open_photo) if report.school else []
    day = report.day.isoformat()
    if report.school:
        attachments = [
            (f"attendance_{day}.csv", csvfiles.day_csv(report.day_rows)),
            ("student_statistics.csv", csvfiles.statistics_csv(report.stats)),
            (f"register_{day}.csv", register_csv(report.entries, report.names)),
        ]
    else:
        name = f"register_{report.class_name}_{day}.csv"
        attachments = [(name, register_csv(report.entries, report.names))]
    return assemble(
        subject=report.subject,
        to=to,
        settings=settings,
        sent_at=sent_at,
        text=render_text(report),
        html=render_html(report, chart_cid, [(cid, caption) for cid, caption, _ in thumbs]),
        chart=(chart_cid, chart_png(report)),
        thumbs=thumbs,
        attachments=attachments,
    )
