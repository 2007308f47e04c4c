"""Enrol (admin and office): students and their photos, added by upload or from the browser's
camera with each photo's checks shown (one face found, big enough, sharp, facing the camera)
and the reason when one is refused; removing a photo.

* ``GET /enrol``: the students (photos enrolled, a link to each) and the form adding one,
  ``POST /enrol/students`` (``name``: the dataset folder's name; ``display_name``;
  ``classes``: checkboxes of the timetable's classes);
* ``GET /enrol/<name>``: the student's photos, the upload form and the camera panel
  (``static/enrol.js``: ``getUserMedia``, a frame drawn on a canvas, sent as JPEG);
* ``GET /enrol/<name>/photos/<filename>``: a photo's thumbnail (a small JPEG without metadata,
  never cached, never a file outside the student's folder);
* ``POST /enrol/<name>/photos``: multipart ``photo`` (one or more), checked and kept when every
  check passes (``EnrolmentService.add_photos``); a fetch gets each photo's checks as JSON, a
  form comes back with one message per photo;
* ``POST /enrol/<name>/photos/<filename>/remove``: deletes that photo and re-enrols.

Teachers get 403 on every one of them.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, request, url_for

from ...app import Services
from ...db.store import StudentRow
from ...errors import AttendanceError, BadRequestError, ForbiddenError, NotFoundError
from ...people.names import look_alike_warning, look_alikes
from ...people.service import PhotoResult
from ..students import clean_classes, clean_display_name, clean_name
from .common import _json, access, act, render, require, shown, wants_json

PHOTO_FIELD = "photo"
ACCEPT = "image/jpeg,image/png"


def _status_of(exc: AttendanceError) -> int:
    from .. import ERROR_STATUS

    return next((code for kind, code, _ in ERROR_STATUS if isinstance(exc, kind)), 400)


def register(routes: Blueprint, services: Services) -> None:
    enrolment = services.enrolment

    def allowed() -> None:
        require(access().may_enrol, "enrolment")

    def class_names() -> list[str]:
        timetable = services.attendance.timetable
        return [] if timetable.is_default else [c.name for c in timetable.classes]

    def classes_of(row: StudentRow) -> list[str]:
        timetable = services.attendance.timetable
        return [] if timetable.is_default else timetable.classes_of(row.name, row.classes)

    def listing(status: int = 200, **context: Any) -> Any:
        context.setdefault("form", {"name": "", "display_name": "", "classes": []})
        return render(
            "enrol.html",
            "Enrol",
            status,
            # casefolded: "ben" between "Ana" and "Cleo", not after every capital (code points)
            students=sorted(enrolment.students(), key=lambda s: (s.name.casefold(), s.name)),
            counts=enrolment.photo_counts(),
            class_names=class_names(),
            classes_of=classes_of,
            consent_required=services.settings.require_consent,
            **context,
        )

    @routes.get("/enrol")
    def enrol() -> Any:
        allowed()
        return listing()

    @routes.post("/enrol/students")
    def enrol_add_student() -> Any:
        allowed()
        form = {
            "name": request.form.get("name", "").strip(),
            "display_name": request.form.get("display_name", ""),
            "classes": request.form.getlist("classes"),
        }
        try:
            if not form["name"]:
                raise BadRequestError("a name is needed: the student's dataset folder name")
            row = enrolment.add_student(
                clean_name(form["name"]),
                clean_display_name(form["display_name"]),
                None,
                clean_classes(services, form["classes"]),
            )
        except AttendanceError as exc:
            if wants_json():
                return _json({"status": "error", "error": str(exc)}, _status_of(exc))
            return listing(_status_of(exc), form=form, error=str(exc))
        services.files.update()
        target = url_for("dashboard.enrol_student", name=row.name)
        alike = look_alikes(row, enrolment.students())
        warnings = [look_alike_warning(row.name, alike)] if alike else []
        if wants_json():
            answer = {"status": "success", "student": row.name, "url": target}
            return _json({**answer, "warnings": warnings}, 201)
        flash(f"{row.display_name or row.name} added. Now add their photos.", "success")
        for warning in warnings:
            flash(f"Note: {warning}.", "warning")
        return redirect(target, code=303)

    @routes.get("/enrol/<name>")
    def enrol_student(name: str) -> Any:
        allowed()
        row = enrolment.student(name)
        return render(
            "enrol_student.html",
            f"Enrol {row.display_name or row.name}",
            student=row,
            photos=enrolment.photos(name),
            enrolled=enrolment.photo_counts().get(name, 0),
            classes=classes_of(row),
            accept=ACCEPT,
            field=PHOTO_FIELD,
            consent_required=services.settings.require_consent,
        )

    @routes.get("/enrol/<name>/photos/<filename>")
    def enrol_photo(name: str, filename: str) -> Any:
        allowed()
        response = Response(enrolment.thumbnail(name, filename), mimetype="image/jpeg")
        response.headers["Cache-Control"] = "no-store"
        return response

    def photo_json(name: str, result: PhotoResult) -> dict[str, Any]:
        body = result.to_json()
        if result.enrolled and result.filename:
            body["filename"] = result.filename
            body["thumbnail"] = url_for(
                "dashboard.enrol_photo", name=name, filename=result.filename
            )
            body["remove"] = url_for(
                "dashboard.enrol_remove_photo", name=name, filename=result.filename
            )
        return body

    @routes.post("/enrol/<name>/photos")
    def enrol_add_photos(name: str) -> Any:
        allowed()
        back = url_for("dashboard.enrol_student", name=name)
        uploads = [
            ((upload.filename or "photo")[:255], upload.read())
            for upload in request.files.getlist(PHOTO_FIELD)
        ]
        uploads = [(file, data) for file, data in uploads if data]  # no file chosen: empty
        try:
            if not uploads:
                raise BadRequestError("choose one or more photos (JPEG or PNG) first")
            results = enrolment.add_photos(name, uploads)
        except (ForbiddenError, NotFoundError):
            raise
        except AttendanceError as exc:
            if wants_json():
                raise
            flash(str(exc), "error")
            return redirect(back, code=303)
        services.files.update()
        enrolled = sum(1 for r in results if r.enrolled)
        services.audit.record(access().by, "photos", name, f"{enrolled} of {len(results)} added")
        if wants_json():
            body = {
                "status": "success",
                "student": name,
                "enrolled": enrolled,
                "refused": len(results) - enrolled,
                "photos": [photo_json(name, r) for r in results],
                "total": enrolment.photo_counts().get(name, 0),
            }
            return _json(body, 201)
        for result in results:
            if result.enrolled:
                flash(f"{result.file}: enrolled.", "success")
            else:
                flash(f"{result.file}: not enrolled, {result.detail}.", "error")
        return redirect(back, code=303)

    @routes.post("/enrol/<name>/photos/<filename>/remove")
    def enrol_remove_photo(name: str, filename: str) -> Any:
        allowed()

        def run() -> str:
            left = enrolment.remove_photo(name, filename)
            services.files.update()
            services.audit.record(access().by, "photos", name, "1 removed")
            photos = "photo" if left == 1 else "photos"
            return f"Photo {filename} removed; {shown(name)} has {left} {photos} enrolled."

        if wants_json():  # errors answer with their own status (404, 400, 503)
            return _json({"status": "success", "message": run()}, 200)
        return act(run, url_for("dashboard.enrol_student", name=name))
