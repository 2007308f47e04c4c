"""The register's routes: the day's attendance, corrections, exports. Every route needs the
``X-API-KEY`` header (checked by ``create_app``); errors are the JSON of ``web.ERROR_STATUS``.

* ``GET /attendance?date=YYYY-MM-DD&class=NAME``  every rostered student in every period of
  the day (default today; every class without ``class``)
* ``POST /attendance/corrections``  JSON ``{"name", "class", "date", "period", "status",
  "reason"}``: a correction, recorded as a row of its own (source ``api``)
* ``POST /attendance/corrections/undo``  JSON ``{"name", "class", "date", "period"}``: takes
  back the correction in force (recorded as a row of its own, status ``Undone``)
* ``GET /export.csv`` / ``GET /export.xlsx`` ``?from=&to=&class=``: the register of a range
"""

from __future__ import annotations

from datetime import date
from typing import Any, TypedDict

from flask import Blueprint, Response, jsonify, request

from ..app import Services
from ..attendance import corrections, export
from ..errors import BadRequestError
from . import _attachment, _day, _range

API_SOURCE = "api"  # the ``by`` of a correction made through the API


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequestError(f"{key} must be a text")
    return value


class _Slot(TypedDict):
    """One student in one class period, as a correction or an undo names them."""

    name: str
    day: date
    class_name: str | None
    period: str | None


def _object(body: object, *fields: str) -> dict[str, Any]:
    """The request's JSON object, or a 400 naming the fields it takes."""
    if not isinstance(body, dict):
        names = ", ".join(f'"{field}"' for field in fields)
        raise BadRequestError(f"send a JSON object: {{{names}}}")
    return body


def _slot_of(body: object, *more: str) -> tuple[dict[str, Any], _Slot]:
    """The JSON object of a correction or an undo (``more``: its other fields, named in the
    error) and the class period it names; the date is required."""
    body = _object(body, "name", "class", "date", "period", *more)
    day = _day(_text(body, "date"), "date")
    if day is None:
        raise BadRequestError("date is required (YYYY-MM-DD)")
    slot = _Slot(
        name=_text(body, "name") or "",
        day=day,
        class_name=_text(body, "class"),
        period=_text(body, "period"),
    )
    return body, slot


def blueprint(services: Services) -> Blueprint:
    routes = Blueprint("register", __name__)

    @routes.get("/attendance")
    def attendance_day() -> Any:
        day = _day(request.args.get("date"), "date") or services.attendance.today()
        class_name = request.args.get("class") or None
        return jsonify(corrections.day_view(services.attendance, day, class_name).to_json())

    @routes.post("/attendance/corrections")
    def correct() -> Any:
        body, slot = _slot_of(request.get_json(silent=True), "status", "reason")
        result = corrections.correct(
            services.attendance,
            services.files,
            **slot,
            status=_text(body, "status") or "",
            reason=_text(body, "reason") or "",
            by=API_SOURCE,
        )
        return jsonify(result.to_json()), 201 if result.changed else 200

    @routes.post("/attendance/corrections/undo")
    def undo() -> Any:
        _body, slot = _slot_of(request.get_json(silent=True))
        result = corrections.undo(services.attendance, services.files, **slot, by=API_SOURCE)
        return jsonify(result.to_json()), 201

    @routes.post("/attendance/corrections/days")
    def correct_days() -> Any:
        body = _object(request.get_json(silent=True), "name", "from", "to", "status", "reason")
        first = _day(_text(body, "from"), "from")
        if first is None:
            raise BadRequestError("from is required (YYYY-MM-DD)")
        last = _day(_text(body, "to"), "to") or first
        result = corrections.correct_days(
            services.attendance,
            services.files,
            name=_text(body, "name") or "",
            first=first,
            last=last,
            reason=_text(body, "reason") or "",
            by=API_SOURCE,
            status=_text(body, "status") or "Excused",
        )
        return jsonify(result.to_json()), 201 if result.changed else 200

    @routes.post("/attendance/corrections/period")
    def correct_period() -> Any:
        body = _object(request.get_json(silent=True), "class", "date", "period", "status", "reason")
        day = _day(_text(body, "date"), "date")
        class_name = _text(body, "class")
        if day is None or class_name is None:
            raise BadRequestError("class and date are required")
        result = corrections.correct_period(
            services.attendance,
            services.files,
            class_name=class_name,
            day=day,
            period=_text(body, "period"),
            reason=_text(body, "reason") or "",
            by=API_SOURCE,
            status=_text(body, "status") or "Present",
        )
        return jsonify(result.to_json()), 201 if result.changed else 200

    def download(fmt: str) -> Response:
        first, last = _range(request.args.get("from"), request.args.get("to"))
        made = export.build(
            services.attendance, first, last, request.args.get("class") or None, fmt
        )
        services.audit.exported(API_SOURCE, made)
        return _attachment(made)

    @routes.get("/export.csv")
    def export_csv() -> Any:
        return download("csv")

    @routes.get("/export.xlsx")
    def export_xlsx() -> Any:
        return download("xlsx")

    return routes
