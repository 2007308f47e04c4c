"""The dashboard: server-rendered pages for teachers, the office and the admin, over the same
services the JSON API uses. Signed-in users only (a session cookie; the camera API key is never
accepted here, and the API never accepts the session).

* ``auth``: sign-in, sign-out, sessions (idle expiry, ended by a password change or a disabled
  account), CSRF on every state-changing request, the role checks;
* ``today``: ``/``, the day's board, live; marking by hand, excusing, undoing;
* ``people``: ``/student/<name>`` and ``/class/<name>``;
* ``review``: ``/review``, intruder photos and uncertain faces;
* ``enrol``: ``/enrol``, students and their photos (upload or the browser's camera);
* ``reports``: ``/reports``, statistics, exports and the daily email's preview;
* ``privacy``: a student's consent, export and erasure; ``/admin/audit``, the audit log;
* ``admin``: ``/admin``, users, the timetable, settings and health.

Every page module has ``register(routes, services)`` adding its views to the one ``dashboard``
blueprint; ``common`` holds what they share.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from ...app import Services
from ...errors import AttendanceError, ForbiddenError, NotFoundError

NAME = "dashboard"


def blueprint(services: Services) -> Blueprint:
    from . import admin, auth, enrol, people, privacy, reports, review, today
    from .common import shown

    routes = Blueprint(NAME, __name__)
    routes.add_app_template_filter(shown, "shown")  # {{ e.student|shown }}: the display name
    auth.register(routes, services)
    for page in (today, people, privacy, review, enrol, reports, admin):
        page.register(routes, services)

    @routes.errorhandler(AttendanceError)
    def page_error(exc: AttendanceError) -> Any:
        from .. import ERROR_STATUS
        from .common import _json, render, wants_json

        code = next((c for kind, c, _ in ERROR_STATUS if isinstance(exc, kind)), 400)
        if wants_json():
            return _json({"status": "error", "error": str(exc)}, code)
        title = {403: "Not allowed", 404: "Not found"}.get(code, "Something went wrong")
        if isinstance(exc, (ForbiddenError, NotFoundError)):
            return render("error.html", title, code, message=str(exc))
        return render("error.html", title, code, message=str(exc))

    return routes
