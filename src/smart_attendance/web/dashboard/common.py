"""What the dashboard's pages share: the signed-in user, role checks, dates from the query
string, page rendering with the navigation, form actions that report back with a message, and
the name a person reads for a student (``shown``, the templates' ``|shown`` filter: the
registry's display name, else the dataset folder's name; forms and links keep the folder's)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, flash, g, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from ...errors import AttendanceError, BadRequestError, ForbiddenError
from ...people.accounts import Access
from .. import _day

FETCH_HEADER = "X-Requested-With"  # set by static/app.js on its requests


def access() -> Access:
    """The signed-in user of this request (set by ``auth`` before every view)."""
    found: Access = g.access
    return found


def display_names() -> dict[str, str]:
    """Folder name -> display name of the students that have one, read once per request."""
    if "display_names" not in g:
        store = current_app.extensions["attendance"].store
        g.display_names = {s.name: s.display_name for s in store.students() if s.display_name}
    found: dict[str, str] = g.display_names
    return found


def shown(name: str) -> str:
    """The name a person reads for student ``name``: their display name, else ``name``."""
    return display_names().get(name) or name


def require(allowed: bool, what: str = "this page") -> None:
    if not allowed:
        raise ForbiddenError(f"your account cannot open {what}")


def wants_json() -> bool:
    return request.headers.get(FETCH_HEADER) == "fetch" or request.accept_mimetypes.best == (
        "application/json"
    )


parse_day = _day  # a date of the query string or a form, by the API's rule


def date_range(default_days: int, today: date) -> tuple[date, date]:
    """``from`` and ``to`` of the query string; by default the ``default_days`` up to today;
    no longer than ATTENDANCE_MAX_RANGE_DAYS."""
    last = parse_day(request.args.get("to"), "to") or today
    first = parse_day(request.args.get("from"), "from") or last - timedelta(days=default_days - 1)
    if last < first:
        raise BadRequestError("'to' is before 'from'")
    current_app.extensions["attendance"].attendance.check_range(first, last)
    return first, last


NAV = (
    ("dashboard.today", "Today", lambda a: True),
    ("dashboard.review", "Review", lambda a: True),
    ("dashboard.enrol", "Enrol", lambda a: a.may_enrol),
    ("dashboard.reports", "Reports", lambda a: True),
    ("dashboard.admin", "Admin", lambda a: a.is_admin),
)


def render(template: str, title: str, status: int = 200, **context: Any) -> tuple[str, int]:
    """A page in the layout (``base.html``), with the navigation the user's role allows."""
    user = g.get("access")
    nav = [(endpoint, label) for endpoint, label, allowed in NAV if user and allowed(user)]
    return render_template(
        template, title=title, nav=nav, access=user, endpoint=request.endpoint, **context
    ), status


def safe_next(raw: str | None, default: str) -> str:
    """A same-site path to go back to (never another site: no scheme, no host)."""
    if not raw:
        return default
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or not raw.startswith("/") or raw.startswith("//"):
        return default
    return raw


def act(action: Callable[[], str], back: str) -> Response:
    """Run a form's action: its message (or the error's) is flashed and the browser goes back
    to ``back`` (a fetch gets the message as JSON instead)."""
    try:
        message = action()
    except ForbiddenError:
        raise
    except AttendanceError as exc:
        if wants_json():
            return _json({"status": "error", "error": str(exc)}, 400)
        flash(str(exc), "error")
        return redirect(back, code=303)
    if wants_json():
        return _json({"status": "success", "message": message}, 200)
    flash(message, "success")
    return redirect(back, code=303)


def _json(body: dict[str, Any], code: int) -> Response:
    response = jsonify(body)
    response.status_code = code
    return response


def back_to(endpoint: str, **values: Any) -> str:
    return safe_next(request.form.get("next"), url_for(endpoint, **values))
