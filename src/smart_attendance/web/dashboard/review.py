"""Review (``/review``): what the cameras could not decide, for a person to decide.

* **Uncertain faces**: a face the rule left unknown although a student was near (close to the
  threshold or the margin), with its photo, the candidate, distance and margin, time and
  camera: "Confirm: this is <candidate>" marks the student as the camera would have at that
  time; "Reject" marks nobody. A teacher sees those whose candidate is one of their students;
  admin and office see all. Confirming never changes the threshold, the margin nor the gallery.
* **Intruder photos** (admin and office only), by day and camera: "This is…" a chosen student
  (marked as at the photo's time), "Dismiss", "Delete" (the photo and its row).

``?date=YYYY-MM-DD`` shows one day (default today), decided items included; ``?open=1`` the
open items of the 7 days up to that day. Photos: ``GET /review/intruders/<id>/photo`` and
``GET /review/uncertain/<id>/photo`` (same checks, ``Cache-Control: no-store``, files under the
data folder only). Decisions: ``POST /review/intruders/<id>`` (``action`` identify, dismiss or
delete; ``student``) and ``POST /review/uncertain/<id>`` (``action`` confirm or reject).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, request

from ...app import Services
from ...attendance.review import ReviewService
from ...db.review import OPEN, IntruderRow, UncertainRow
from ...errors import BadRequestError
from ...models import MarkResult
from .common import access, act, back_to, parse_day, render, require, shown

OPEN_DAYS = 7  # ?open=1: the open items of this many days
# The formats an intruder photo keeps (the frame's own) and the crops of uncertain faces (JPEG).
PHOTO_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
}


@dataclass(frozen=True)
class Group:
    """Intruder photos of one day and camera."""

    day: date
    camera: str
    rows: tuple[IntruderRow, ...]


def intruder_groups(rows: Sequence[IntruderRow]) -> list[Group]:
    """By day (latest first), then camera, each in time order."""
    ordered = sorted(rows, key=lambda r: (-r.day.toordinal(), r.camera, r.seen_at, r.id))
    return [
        Group(day, camera, tuple(items))
        for (day, camera), items in groupby(ordered, key=lambda r: (r.day, r.camera))
    ]


def uncertain_days(rows: Sequence[UncertainRow]) -> list[tuple[date, list[UncertainRow]]]:
    ordered = sorted(rows, key=lambda r: (-r.day.toordinal(), r.seen_at, r.id))
    return [(day, list(items)) for day, items in groupby(ordered, key=lambda r: r.day)]


def marked(marks: Sequence[MarkResult]) -> str:
    """``Present in 5A at 09:00`` for each class period marked, ``already`` when it was."""
    parts = []
    for mark in marks:
        where = f" in {mark.class_name} at {mark.period}" if mark.class_name else ""
        already = "" if mark.new else " (already marked)"
        parts.append(f"{mark.attendance}{where}{already}")
    return "; ".join(parts)


def why(row: UncertainRow, threshold: float, margin: float) -> str:
    """Why the rule left the face unknown, in words."""
    if row.distance > threshold:
        return "just farther than the threshold"
    if row.margin is not None and row.margin < margin:
        return "another student almost as near"
    return "close to the threshold or the margin"


def register(routes: Blueprint, services: Services) -> None:
    queue: ReviewService = services.review

    def visible_uncertain(rows: Sequence[UncertainRow]) -> list[UncertainRow]:
        user = access()
        return [r for r in rows if user.may_see_student(r.candidate)]

    @routes.get("/review")
    def review() -> Any:
        user = access()
        today = services.attendance.today()
        day = parse_day(request.args.get("date")) or today
        only_open = request.args.get("open") == "1"
        first = day - timedelta(days=OPEN_DAYS - 1) if only_open else day
        state = OPEN if only_open else None
        uncertain = visible_uncertain(queue.uncertain_faces(first, day, state))
        intruders = queue.intruders(first, day, state) if user.may_review_intruders else []
        week = today - timedelta(days=OPEN_DAYS - 1)
        open_count = len(visible_uncertain(queue.uncertain_faces(week, today, OPEN)))
        if user.may_review_intruders:
            open_count += len(queue.intruders(week, today, OPEN))
        here = request.full_path.rstrip("?")  # forms come back to this very view
        return render(
            "review.html",
            "Review",
            day=day,
            today=today,
            first=first,
            only_open=only_open,
            open_days=OPEN_DAYS,
            open_count=open_count,
            uncertain=uncertain_days(uncertain),
            uncertain_open=sum(r.state == OPEN for r in uncertain),
            intruders=intruder_groups(intruders),
            intruders_open=sum(r.state == OPEN for r in intruders),
            may_review_intruders=user.may_review_intruders,
            # the "This is…" list: by the name a person reads
            students=sorted(queue.students(), key=lambda n: (shown(n).casefold(), n))
            if user.may_review_intruders
            else [],
            here=here,
            threshold=services.settings.match_threshold,
            margin=services.settings.match_margin,
            why=why,
        )

    def photo_answer(path: str) -> Response:
        data = queue.photo_bytes(path)
        kind = PHOTO_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")
        return Response(data, mimetype=kind, headers={"Cache-Control": "no-store"})

    def intruder_row(row_id: int) -> IntruderRow:
        require(access().may_review_intruders, "intruder photos")
        return queue.intruder(row_id)

    def uncertain_row(row_id: int) -> UncertainRow:
        row = queue.uncertain(row_id)
        require(access().may_see_student(row.candidate), "this uncertain face")
        return row

    @routes.get("/review/intruders/<int:row_id>/photo")
    def review_intruder_photo(row_id: int) -> Any:
        return photo_answer(intruder_row(row_id).path)

    @routes.get("/review/uncertain/<int:row_id>/photo")
    def review_uncertain_photo(row_id: int) -> Any:
        return photo_answer(uncertain_row(row_id).path)

    @routes.post("/review/intruders/<int:row_id>")
    def review_intruder(row_id: int) -> Any:
        row = intruder_row(row_id)
        by = access().by
        action = request.form.get("action", "")

        def run() -> str:
            when = f"{row.seen_at:%H:%M} on {row.day} (camera {row.camera})"
            if action == "identify":
                student = request.form.get("student", "")
                marks = queue.identify_intruder(row.id, student, by)
                services.audit.record(by, "review", student.strip(), f"intruder photo {row.id}")
                return f"Photo of {when}: {shown(student.strip())} marked {marked(marks)}."
            if action == "dismiss":
                queue.dismiss_intruder(row.id, by)
                services.audit.record(by, "review", "", f"intruder photo {row.id} dismissed")
                return f"Photo of {when} dismissed."
            if action == "delete":
                queue.delete_intruder(row.id, by)
                services.audit.record(by, "review", "", f"intruder photo {row.id} deleted")
                return f"Photo of {when} deleted."
            raise BadRequestError("action must be identify, dismiss or delete")

        return act(run, back_to("dashboard.review", date=row.day.isoformat()))

    @routes.post("/review/uncertain/<int:row_id>")
    def review_uncertain(row_id: int) -> Any:
        row = uncertain_row(row_id)
        by = access().by
        action = request.form.get("action", "")

        def run() -> str:
            when = f"{row.seen_at:%H:%M} on {row.day} (camera {row.camera})"
            if action == "confirm":
                marks = queue.confirm(row.id, by)
                services.audit.record(by, "review", row.candidate, f"uncertain face {row.id}")
                return f"Confirmed: {shown(row.candidate)} at {when}, marked {marked(marks)}."
            if action == "reject":
                queue.reject(row.id, by)
                services.audit.record(
                    by, "review", row.candidate, f"uncertain face {row.id} rejected"
                )
                who = shown(row.candidate)
                return f"Rejected: the face at {when} is not {who}; nobody marked."
            raise BadRequestError("action must be confirm or reject")

        return act(run, back_to("dashboard.review", date=row.day.isoformat()))
