"""Reports (``/reports``): for a range of days and one class or all the user may see, the
statistics per student (attendance, on time, late, excused, absent; under the alert threshold
flagged) with a chart of attendance per day, the register's exports and the daily email's
preview.

* ``GET /reports?from=&to=&class=&day=&email=``: the page (by default the last 30 days);
* ``GET /reports/export.csv`` / ``GET /reports/export.xlsx`` ``?from=&to=&class=``: the
  register of the range (``attendance.export``); a teacher gets their classes' rows only;
* ``GET /reports/preview?date=&class=``: the daily email's HTML as it would be sent, images
  inline: the school's (admin and office) without a class, the class's with one. Shown in a
  sandboxed ``<iframe>``; its own Content-Security-Policy allows the email's inline styles and
  ``data:`` images, no script, and framing by this site only.

A teacher sees, exports and previews their own classes only (403 for another class)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Blueprint, request, url_for
from werkzeug.wrappers import Response

from ...app import Services
from ...attendance import export
from ...attendance.calendar import NOT_YET
from ...attendance.register import stats_row
from ...attendance.tallies import RangeCounts
from ...models import STATUS_ABSENT, STATUS_EXCUSED, STATUS_LATE, STATUS_PRESENT, StudentStats
from .. import _attachment
from .charts import daily_columns
from .common import access, date_range, parse_day, render, require, shown

DEFAULT_DAYS = 30
PREVIEW_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"


@dataclass(frozen=True)
class Scope:
    """What a request covers: one class, or every class the user may see (``classes`` None:
    every class of the school, for admin and office)."""

    class_name: str | None
    classes: tuple[str, ...] | None

    @property
    def everything(self) -> bool:
        return self.class_name is None and self.classes is None

    @property
    def classes_counted(self) -> tuple[str, ...] | None:
        """The classes whose periods count (None: all)."""
        return (self.class_name,) if self.class_name is not None else self.classes


@dataclass(frozen=True)
class Totals:
    counts: Counter[str]

    @property
    def expected(self) -> int:
        return sum(
            self.counts[s] for s in (STATUS_PRESENT, STATUS_LATE, STATUS_EXCUSED, STATUS_ABSENT)
        )

    @property
    def attended(self) -> int:
        return self.counts[STATUS_PRESENT] + self.counts[STATUS_LATE]

    @property
    def pct(self) -> float:
        return round(100.0 * self.attended / self.expected, 1) if self.expected else 0.0


def scope_of(services: Services, class_name: str | None) -> Scope:
    """The scope the signed-in user asked for, checked: 403 for a class not theirs."""
    user = access()
    if class_name is not None:
        services.attendance.check_class(class_name)
        require(user.may_see_class(class_name), f"class {class_name}")
        return Scope(class_name, None)
    if user.every_class:
        return Scope(None, None)
    return Scope(None, tuple(user.visible_classes(class_names(services))))


def class_names(services: Services) -> list[str]:
    return [c.name for c in services.attendance.timetable.classes]


def statistics(services: Services, counted: RangeCounts, scope: Scope) -> list[StudentStats]:
    """Per-student statistics of the range's counts, by the name a person reads; every active
    student for the whole school, for one class (or a teacher's classes) only the students
    who were expected there."""
    found = dict(counted.students)
    if scope.everything:
        for row in services.store.students():
            if row.active:
                found.setdefault(row.name, [0, 0, 0, 0])
    alert = services.settings.alert_below_pct
    stats = [stats_row(name, counts, alert) for name, counts in found.items()]
    stats.sort(key=lambda s: (shown(s.name).casefold(), s.name))
    return stats


def per_day(counted: RangeCounts) -> list[tuple[date, Counter[str]]]:
    """The statuses counted per day (the days with one)."""
    out = []
    for day, counts in counted.daily():
        kept = Counter({s: n for s, n in counts.items() if s != NOT_YET and n})
        if kept:
            out.append((day, kept))
    return out


def register(routes: Blueprint, services: Services) -> None:
    attendance = services.attendance

    def chosen_class() -> str | None:
        return request.args.get("class") or None

    @routes.get("/reports")
    def reports() -> Any:
        user = access()
        first, last = date_range(DEFAULT_DAYS, attendance.today())
        scope = scope_of(services, chosen_class())
        counted = attendance.tallies.counts(first, last, scope.classes_counted)
        days = per_day(counted)
        totals = Totals(sum((counts for _, counts in days), Counter()))
        names = user.visible_classes(class_names(services))
        query: dict[str, Any] = {"from": first.isoformat(), "to": last.isoformat()}
        if scope.class_name:
            query["class"] = scope.class_name
        # the email to preview: the school's (admin, office) or one of the user's classes
        preview_day = parse_day(request.args.get("day"), "day") or min(last, attendance.today())
        emails: list[tuple[str, str]] = (
            [("", "The school's email")] if user.every_class else []
        ) + [(name, f"Class {name}") for name in names]
        wanted = request.args.get("email")
        if wanted is None:
            wanted = scope.class_name or ("" if user.every_class else (names[0] if names else ""))
        if wanted not in {value for value, _ in emails}:
            wanted = emails[0][0] if emails else None
        preview = None
        if wanted is not None:
            target: dict[str, Any] = {"date": preview_day.isoformat()}
            if wanted:
                target["class"] = wanted
            preview = url_for("dashboard.reports_preview", **target)
        return render(
            "reports.html",
            "Reports",
            first=first,
            last=last,
            class_name=scope.class_name,
            class_names=names,
            stats=statistics(services, counted, scope),
            threshold=services.settings.alert_below_pct,
            days=days,
            totals=totals,
            chart=daily_columns(days, threshold_pct=services.settings.alert_below_pct),
            csv_url=url_for("dashboard.reports_export_csv", **query),
            xlsx_url=url_for("dashboard.reports_export_xlsx", **query),
            preview=preview,
            preview_day=preview_day,
            emails=emails,
            email=wanted,
            statuses=(STATUS_PRESENT, STATUS_LATE, STATUS_EXCUSED, STATUS_ABSENT),
        )

    def download(fmt: str) -> Response:
        first, last = date_range(DEFAULT_DAYS, attendance.today())
        scope = scope_of(services, chosen_class())
        if scope.classes is None:
            made = export.build(attendance, first, last, scope.class_name, fmt)
        else:
            made = export.build_classes(attendance, first, last, scope.classes, fmt)
        services.audit.exported(access().by, made)
        return _attachment(made)  # no-store as every dashboard answer

    @routes.get("/reports/export.csv")
    def reports_export_csv() -> Any:
        return download("csv")

    @routes.get("/reports/export.xlsx")
    def reports_export_xlsx() -> Any:
        return download("xlsx")

    @routes.get("/reports/preview")
    def reports_preview() -> Any:
        from ...reports.content import inline_html

        day = parse_day(request.args.get("date")) or attendance.today()
        class_name = chosen_class()
        if class_name is None:
            require(access().every_class, "the school's email (choose one of your classes)")
            _day, message = services.reports.message(day)
            html = inline_html(message)
        else:
            scope_of(services, class_name)
            found = services.reports.class_message(day, class_name)
            html = inline_html(found) if found is not None else nothing_sent(day, class_name)
        return Response(
            html,
            content_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": PREVIEW_CSP, "X-Frame-Options": "SAMEORIGIN"},
        )


def nothing_sent(day: date, class_name: str) -> str:
    from markupsafe import escape

    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>No email</title>"
        "</head><body><p>"
        f"No email for class {escape(class_name)} on {day:%A %d %B %Y}: the class had no "
        "period on the register that day.</p></body></html>"
    )
