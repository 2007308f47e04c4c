"""Today (``/``): per class and period, who is Present, Late, not yet seen, Absent or Excused,
refreshed while the page is open (``/today/board``, every few seconds, by ``static/app.js``);
marking by hand, excusing with a reason and undoing are one form each
(``POST /today/correct``, ``POST /today/undo``), recorded as corrections signed by the user.

``?date=YYYY-MM-DD`` shows another day, ``?class=NAME`` one class. A teacher sees and corrects
their own classes only."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Blueprint, render_template, request, url_for

from ...app import Services
from ...attendance import corrections
from ...attendance.register import Entry
from ...errors import BadRequestError
from ...models import Correction
from .charts import PENDING, stacked_bar
from .common import access, act, back_to, parse_day, render, require, shown

# A school's whole day (every class, every period) on one board: each student one by one up
# to this many rows; past it, each class's periods in counts, and a link to the class's board
# (1,000 students x 6 periods would be 6,000 rows of buttons: seconds to render, unreadable).
BOARD_ROWS = 600


@dataclass(frozen=True)
class Row:
    entry: Entry
    history: tuple[Correction, ...]

    @property
    def status(self) -> str:
        return self.entry.status or PENDING

    @property
    def css(self) -> str:
        return (self.entry.status or "pending").lower()

    @property
    def anchor(self) -> str:
        key = f"{self.entry.class_name}|{self.entry.period}|{self.entry.student}"
        return "e-" + hashlib.sha256(key.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Period:
    start: str
    end: str
    rows: tuple[Row, ...]

    @property
    def counts(self) -> Counter[str]:
        return Counter(row.status for row in self.rows)


def _rows(students: Sequence[tuple[Entry, tuple[Correction, ...]]]) -> tuple[Row, ...]:
    """A period's rows by the name a person reads (``shown``), casefolded."""
    rows = (Row(e, h) for e, h in students)
    return tuple(sorted(rows, key=lambda r: (shown(r.entry.student).casefold(), r.entry.student)))


def board(services: Services, day: date, class_name: str | None) -> dict[str, Any]:
    """The day's classes and periods that the signed-in user may see."""
    user = access()
    if class_name is not None:
        require(user.may_see_class(class_name), f"class {class_name}")
    view = corrections.day_view(services.attendance, day, class_name)
    classes = [
        (name, [Period(p.start, p.end, _rows(p.students)) for p in periods])
        for name, periods in view.classes
        if user.may_see_class(name)
    ]
    rows = sum(len(p.rows) for _name, periods in classes for p in periods)
    return {
        "access": user,
        "summary": class_name is None and rows > BOARD_ROWS,
        "day": day,
        "today": services.attendance.today(),
        "class_name": class_name,
        "classes": classes,
        "closure": view.closure,
        "stacked_bar": stacked_bar,
        "statuses": ("Present", "Late", "Absent"),
    }


def register(routes: Blueprint, services: Services) -> None:
    def chosen() -> tuple[date, str | None]:
        day = parse_day(request.args.get("date")) or services.attendance.today()
        return day, request.args.get("class") or None

    @routes.get("/")
    def today() -> Any:
        day, class_name = chosen()
        context = board(services, day, class_name)
        names = access().visible_classes([c.name for c in services.attendance.timetable.classes])
        query: dict[str, Any] = {"date": day.isoformat(), "class": class_name or ""}
        live = url_for("dashboard.today_board", **query)
        context.pop("access")
        return render(
            "today.html",
            "Today" if day == context["today"] else f"Attendance {day}",
            class_names=names,
            live=live,
            **context,
        )

    @routes.get("/today/board")
    def today_board() -> Any:
        day, class_name = chosen()
        return render_template("_board.html", **board(services, day, class_name))

    def slot() -> dict[str, Any]:
        form = request.form
        class_name = form.get("class") or None
        if class_name is not None:
            require(access().may_see_class(class_name), f"class {class_name}")
        else:
            require(access().every_class, "a class that is not yours")
        return {
            "name": form.get("name", ""),
            "day": parse_day(form.get("date")) or services.attendance.today(),
            "class_name": class_name,
            "period": form.get("period") or None,
        }

    @routes.post("/today/correct")
    def today_correct() -> Any:
        fields = slot()

        def run() -> str:
            done = corrections.correct(
                services.attendance,
                services.files,
                status=request.form.get("status", ""),
                reason=request.form.get("reason", ""),
                by=access().by,
                **fields,
            )
            entry = done.entry
            if not done.changed:
                return f"{shown(entry.student)} was already {entry.status}."
            who = shown(entry.student)
            return f"{who}: {entry.status} in {entry.class_name} at {entry.period}."

        return act(run, back_to("dashboard.today"))

    @routes.post("/today/period")
    def today_period() -> Any:
        """Everyone not marked in one class period set to one status (default Present)."""
        fields = slot()
        class_name = fields["class_name"]

        def run() -> str:
            if class_name is None:
                raise BadRequestError("class is required")
            done = corrections.correct_period(
                services.attendance,
                services.files,
                class_name=class_name,
                day=fields["day"],
                period=fields["period"],
                status=request.form.get("status") or "Present",
                reason=request.form.get("reason", ""),
                by=access().by,
            )
            if not done.changed:
                return f"Nobody to change in {class_name} at {fields['period']}."
            status = done.changed[0].status
            return f"{len(done.changed)} students of {class_name}: {status}."

        return act(run, back_to("dashboard.today"))

    @routes.post("/student/<name>/excuse")
    def student_excuse(name: str) -> Any:
        """A student's unmarked periods over one or more days excused, with one reason."""
        require(access().may_see_student(name), f"student {name}")

        def run() -> str:
            first = parse_day(request.form.get("from")) or services.attendance.today()
            last = parse_day(request.form.get("to")) or first
            done = corrections.correct_days(
                services.attendance,
                services.files,
                name=name,
                first=first,
                last=last,
                reason=request.form.get("reason", ""),
                by=access().by,
            )
            if not done.changed:
                return f"Nothing to excuse for {name}: every period was marked or excused."
            return f"{name}: {len(done.changed)} class periods excused."

        return act(run, url_for("dashboard.student_page", name=name))

    @routes.post("/today/undo")
    def today_undo() -> Any:
        fields = slot()

        def run() -> str:
            done = corrections.undo(services.attendance, services.files, by=access().by, **fields)
            status = done.entry.status or PENDING.lower()
            return f"Undone: {shown(done.entry.student)} is {status} again."

        return act(run, back_to("dashboard.today"))
