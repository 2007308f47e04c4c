"""The students registry's routes: list, add, change, photos. Every route needs the
``X-API-KEY`` header (checked by ``create_app``); errors are the JSON of ``web.ERROR_STATUS``.

* ``GET /students``                  every student of the registry
* ``POST /students``                 JSON ``{"name", "display_name"?, "external_id"?, "classes"?}``
* ``PATCH /students/<name>``         JSON with any of ``name`` (renames), ``display_name``,
                                     ``external_id``, ``classes``, ``active``
* ``POST /students/<name>/photos``   multipart ``image`` (one or more): each photo enrolled or
                                     refused with the reason and its checks; recognised right
                                     after (409 while the student's consent is not given)
* ``PUT /students/<name>/consent``   JSON ``{"state": given|refused|withdrawn, "by", "document"}``
* ``DELETE /students/<name>``        erase the student and every record of them
* ``GET /students/<name>/export``    a zip of everything held on the student

The field checks (``clean_*``) are shared with the dashboard's Enrol page.
"""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from datetime import date
from typing import Any

from flask import Blueprint, jsonify, request

from ..app import Services
from ..attendance.export import ExportFile
from ..db.store import StudentRow
from ..errors import BadRequestError
from ..people.names import look_alike_warning, look_alikes
from . import _attachment, _day

MAX_DISPLAY_NAME = 255
MAX_EXTERNAL_ID = 64
MAX_CLASSES = 100
FIELDS = frozenset({"name", "display_name", "external_id", "classes"})
CREATE_FIELDS = FIELDS | {"joined"}
CHANGE_FIELDS = FIELDS | {"active", "joined"}
CONSENT_FIELDS = frozenset({"state", "by", "document"})
API_ACTOR = "api"  # the master key (API_SECRET_KEY)


def _body(allowed: frozenset[str]) -> dict[str, Any]:
    body = request.get_json(silent=True) if request.is_json else None
    if not isinstance(body, dict):
        raise BadRequestError("send a JSON object (Content-Type: application/json)")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequestError(
            f"unknown field {unknown[0][:40]!r} (fields: {', '.join(sorted(allowed))})"
        )
    return body


def clean_text(value: Any, field: str, limit: int) -> str:
    """A short text field, stripped: no control characters, at most ``limit`` characters."""
    if not isinstance(value, str):
        raise BadRequestError(f"{field} must be a text")
    text = value.strip()
    if len(text) > limit:
        raise BadRequestError(f"{field} is longer than {limit} characters")
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in text):
        raise BadRequestError(f"{field} contains control characters")
    return text


def clean_name(value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequestError("name must be a text (the student's dataset folder name)")
    return value  # checked as a folder name by the service


def clean_external_id(value: Any) -> str | None:
    if value is None:
        return None
    return clean_text(value, "external_id", MAX_EXTERNAL_ID) or None


def clean_display_name(value: Any) -> str:
    return clean_text(value, "display_name", MAX_DISPLAY_NAME)


def clean_classes(services: Services, value: Any) -> tuple[str, ...]:
    """A list of classes of the timetable (400 for another name), without repeats."""
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise BadRequestError("classes must be a list of class names")
    if len(value) > MAX_CLASSES:
        raise BadRequestError(f"at most {MAX_CLASSES} classes")
    for name in value:
        services.attendance.check_class(name)  # a class of the timetable, else 400
    return tuple(dict.fromkeys(value))


def clean_joined(value: Any) -> date | None:
    """The day a new student joined (``YYYY-MM-DD``), or None: joined now."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequestError("joined must be a date as YYYY-MM-DD")
    return _day(value, "joined")


def _student_json(row: StudentRow, services: Services, photos: dict[str, int]) -> dict[str, Any]:
    return {
        "name": row.name,
        "display_name": row.display_name,
        "external_id": row.external_id,
        "classes": services.attendance.timetable.classes_of(row.name, row.classes),
        "photos": photos.get(row.name, 0),
        "active": row.active,
        "joined": row.joined_on.isoformat(),
        "consent": row.consent,
    }


def blueprint(services: Services) -> Blueprint:
    routes = Blueprint("students", __name__)
    enrolment = services.enrolment

    def answer(row: StudentRow) -> dict[str, Any]:
        return {
            "status": "success",
            "student": _student_json(row, services, enrolment.photo_counts()),
        }

    @routes.get("/students")
    def list_students() -> Any:
        photos = enrolment.photo_counts()
        rows = enrolment.students()
        return jsonify(
            {"status": "success", "students": [_student_json(r, services, photos) for r in rows]}
        )

    @routes.post("/students")
    def add_student() -> Any:
        body = _body(CREATE_FIELDS)
        if "name" not in body:
            raise BadRequestError("name is required (the student's dataset folder name)")
        row = enrolment.add_student(
            clean_name(body["name"]),
            clean_display_name(body.get("display_name", "")),
            clean_external_id(body.get("external_id")),
            clean_classes(services, body.get("classes", [])),
            clean_joined(body.get("joined")),
        )
        services.files.update()
        alike = look_alikes(row, enrolment.students())
        warnings = [look_alike_warning(row.name, alike)] if alike else []
        return jsonify({**answer(row), "warnings": warnings}), 201

    @routes.patch("/students/<name>")
    def change_student(name: str) -> Any:
        body = _body(CHANGE_FIELDS)
        row = enrolment.student(name)
        if "name" in body:
            row = replace(row, name=clean_name(body["name"]))
        if "display_name" in body:
            row = replace(row, display_name=clean_display_name(body["display_name"]))
        if "external_id" in body:
            row = replace(row, external_id=clean_external_id(body["external_id"]))
        if "classes" in body:
            row = replace(row, classes=clean_classes(services, body["classes"]))
        if "active" in body:
            if not isinstance(body["active"], bool):
                raise BadRequestError("active must be true or false")
            row = replace(row, active=body["active"])
        joined = clean_joined(body.get("joined"))
        if joined is not None:  # expected from the start of that day (a correction of it)
            row = replace(row, joined_on=joined, joined_at=None)
        row = enrolment.update_student(name, row, joined_changed=joined is not None)
        services.attendance.forget()  # the timetables read before the change
        services.files.update(services.attendance.today() if row.name != name else None)
        return jsonify(answer(row))

    @routes.post("/students/<name>/photos")
    def add_photos(name: str) -> Any:
        uploads = request.files.getlist("image")
        if not uploads:
            names = sorted(request.files.keys())
            hint = f" (got file fields: {', '.join(names)[:100]})" if names else ""
            raise BadRequestError("send the photos as multipart field 'image'" + hint)
        photos = [((upload.filename or "")[:255], upload.read()) for upload in uploads]
        results = enrolment.add_photos(name, photos)
        services.files.update()
        kept = sum(1 for r in results if r.enrolled)
        services.audit.record(API_ACTOR, "photos", name, f"{kept} of {len(results)} added")
        return jsonify(
            {
                "status": "success",
                "student": name,
                "enrolled": sum(1 for r in results if r.enrolled),
                "refused": sum(1 for r in results if not r.enrolled),
                "photos": [r.to_json() for r in results],
            }
        ), 201

    @routes.put("/students/<name>/consent")
    def set_consent(name: str) -> Any:
        body = _body(CONSENT_FIELDS)
        fields = {key: body.get(key, "") for key in CONSENT_FIELDS}
        if not all(isinstance(value, str) for value in fields.values()):
            raise BadRequestError("state, by and document must be texts")
        services.consent.record(
            [name], fields["state"], fields["by"], fields["document"], API_ACTOR
        )
        return jsonify(answer(enrolment.student(name)))

    @routes.delete("/students/<name>")
    def erase_student(name: str) -> Any:
        report = services.erasure.erase(name, API_ACTOR)
        return jsonify(
            {
                "status": "success",
                "erased": report.opaque_id,
                "photos": report.photos,
                "records": report.records,
                "files": report.files,
                "csv_lines": report.csv_lines,
            }
        )

    @routes.get("/students/<name>/export")
    def export_student(name: str) -> Any:
        data = services.access.export(name, API_ACTOR)
        return _attachment(ExportFile.whole(f"student-{name}.zip", "application/zip", data))

    return routes
