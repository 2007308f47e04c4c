"""Admin (``/admin``, admin only): the dashboard's accounts, the camera keys, the timetable as
loaded and its history, the effective settings (secrets never shown: only whether they are set)
and the server's health.

* ``POST /admin/users``: add an account (``name``, ``role``, ``classes`` for a teacher,
  ``password`` and ``confirm``);
* ``POST /admin/users/<name>`` with ``action``: ``disable`` or ``enable`` (a disabled user's
  sessions end at their next request), ``password`` (``password`` and ``confirm``; every session
  of the user ends, except the admin's own current one), ``classes`` (a teacher's ``classes``);
* ``POST /admin/cameras``: add a camera key (``name``); the answer is the Admin page with the
  new key shown once (never in a redirect's flash message, which would carry it in the session
  cookie), not cached;
* ``POST /admin/cameras/<name>/revoke``: revoke a camera key (it opens nothing from its next
  request on).

The camera keys' section also counts each camera's liveness failures (scans answered
``liveness_failed``: a refused nonce, a burst that does not perform the challenge), today and
over the last ``FAILURE_DAYS`` days: a door where they pile up is worth a look.

Office and teachers get 403 on every route here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time, timedelta, timezone, tzinfo
from typing import Any

from flask import Blueprint, jsonify, make_response, request, session, url_for
from werkzeug.wrappers import Response

from ...app import Services
from ...attendance.rosters import unmatched_roster_names
from ...attendance.timetable import Period, Timetable, minutes_text
from ...config import SPECS, Settings, Spec
from ...db.challenges import LivenessFailures
from ...db.store import TimetableRow
from ...errors import AttendanceError, BadRequestError, ForbiddenError
from ...people.accounts import ROLES, TEACHER
from ...people.keys import NewCameraKey
from .common import access, act, render, require, wants_json

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ATTEMPTS_SHOWN = 10
FAILURE_DAYS = 7  # the liveness failures shown: today and the six days before


def require_admin() -> None:
    require(access().is_admin, "the admin pages")


@dataclass(frozen=True)
class SettingRow:
    env: str
    value: str
    default: str
    doc: str
    secret: bool

    @property
    def is_default(self) -> bool:
        return not self.secret and self.value == self.default


def shown(value: Any) -> str:
    """A setting's value as text, as it would be written in ``.env``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def without_password(url: str) -> str:
    """A database URL with its password hidden (``user:***@host``)."""
    if not url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: show nothing of it
        return "(set)"


def setting_rows(settings: Settings, specs: tuple[Spec, ...] = SPECS) -> list[SettingRow]:
    rows = []
    for spec in specs:
        value = getattr(settings, spec.attr)
        if spec.secret:
            text = "set" if value else "not set"
        elif spec.attr == "database_url":
            text = without_password(shown(value))
        else:
            text = shown(value)
        rows.append(SettingRow(spec.env, text, spec.default, spec.doc, spec.secret))
    return rows


@dataclass(frozen=True)
class DayPeriods:
    day: str
    periods: list[Period]


def week_of(periods: tuple[Period, ...]) -> list[DayPeriods]:
    """A class's periods per weekday (days without a period left out)."""
    out = []
    for index, name in enumerate(WEEKDAYS):
        today = sorted((p for p in periods if index in p.days), key=lambda p: p.start)
        if today:
            out.append(DayPeriods(name, today))
    return out


@dataclass(frozen=True)
class InForce:
    row: TimetableRow
    since: str  # local, ``YYYY-MM-DD HH:MM`` (a day alone for rows recorded before 0010)
    until: str  # when the next one came into force, like ``since``; "now": still in force

    @property
    def label(self) -> str:
        if self.row.kind == "default":
            return "the default (no timetable file)"
        return self.row.source or "a timetable file"


def _since(row: TimetableRow, zone: tzinfo) -> str:
    if row.effective_at is None:
        return row.effective_from.isoformat()
    local = row.effective_at.replace(tzinfo=timezone.utc).astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M}"


def history(rows: list[TimetableRow], zone: tzinfo) -> list[InForce]:
    """The timetables in force, newest first, each until the next came into force."""
    out = []
    for index, row in enumerate(rows):
        following = rows[index + 1] if index + 1 < len(rows) else None
        until = _since(following, zone) if following else "now"
        out.append(InForce(row, _since(row, zone), until))
    return list(reversed(out))


@dataclass(frozen=True)
class CameraFailures:
    camera: str
    today: int
    week: int


def camera_failures(rows: list[LivenessFailures], today: date) -> list[CameraFailures]:
    """Liveness failures per camera: today's and the last ``FAILURE_DAYS`` days' (most first)."""
    per: dict[str, list[int]] = {}
    for row in rows:
        counts = per.setdefault(row.camera, [0, 0])
        counts[1] += row.count
        if row.day == today:
            counts[0] += row.count
    out = [CameraFailures(camera, t, w) for camera, (t, w) in per.items()]
    return sorted(out, key=lambda c: (-c.today, -c.week, c.camera))


def _form_passwords() -> str:
    password = request.form.get("password", "")
    if password != request.form.get("confirm", ""):
        raise BadRequestError("the two passwords differ")
    return password


def register(routes: Blueprint, services: Services) -> None:
    accounts = services.accounts

    def admin_page(new_key: NewCameraKey | None = None) -> tuple[str, int]:
        timetable: Timetable = services.attendance.timetable
        report = services.enrolment.report
        today = services.attendance.today()
        first = today - timedelta(days=FAILURE_DAYS - 1)
        return render(
            "admin.html",
            "Admin",
            camera_keys=services.keys.camera_keys(),
            new_key=new_key,
            liveness_failures=camera_failures(
                services.store.liveness_failures(first, today), today
            ),
            failure_days=FAILURE_DAYS,
            users=accounts.users(),
            roles=ROLES,
            teacher=TEACHER,
            class_names=[c.name for c in timetable.classes],
            timetable=timetable,
            unmatched=unmatched_roster_names(
                timetable,
                [row.name for row in services.store.students()],
                services.settings.dataset_dir,
            ),
            week_of=week_of,
            minutes_text=minutes_text,
            history=history(services.store.timetable_history(), services.settings.zone),
            settings=setting_rows(services.settings),
            health=services.health(),
            skipped=report.skipped if report else [],
            enrolment=report,
            attempts=services.store.attempts(ATTEMPTS_SHOWN),
            me=access().name,
        )

    @routes.get("/admin")
    def admin() -> Any:
        require_admin()
        return admin_page()

    @routes.post("/admin/cameras")
    def admin_add_camera_key() -> Any:
        require_admin()
        try:
            made = services.keys.add(request.form.get("name", ""), actor=access().by)
        except ForbiddenError:
            raise
        except AttendanceError as exc:
            failure = exc

            def failed() -> str:
                raise failure

            return act(failed, url_for("dashboard.admin") + "#cameras")
        if wants_json():
            response: Response = jsonify({"status": "success", "name": made.name, "key": made.key})
        else:
            response = make_response(admin_page(new_key=made))
        response.headers["Cache-Control"] = "no-store"
        return response

    @routes.post("/admin/cameras/<name>/revoke")
    def admin_revoke_camera_key(name: str) -> Any:
        require_admin()

        def run() -> str:
            row = services.keys.revoke(name, actor=access().by)
            return f"Camera key {row.name} revoked: it opens nothing from now on."

        return act(run, url_for("dashboard.admin") + "#cameras")

    @routes.post("/admin/users")
    def admin_add_user() -> Any:
        require_admin()
        form = request.form

        def run() -> str:
            password = _form_passwords()
            role = form.get("role", "")
            row = accounts.add(
                form.get("name", ""), role, password, form.getlist("classes"), by=access().by
            )
            classes = f" ({', '.join(row.classes)})" if row.classes else ""
            return f"User {row.name} added as {row.role}{classes}."

        return act(run, url_for("dashboard.admin") + "#users")

    @routes.post("/admin/users/<name>")
    def admin_user(name: str) -> Any:
        require_admin()
        action = request.form.get("action", "")
        back = url_for("dashboard.admin") + "#users"

        def run() -> str:
            if action in ("disable", "enable"):
                if action == "disable" and name == access().name:
                    raise BadRequestError("you cannot disable your own account")
                row = accounts.set_active(name, action == "enable", by=access().by)
                if row.active:
                    return f"User {row.name} enabled."
                return f"User {row.name} disabled: their sessions have ended."
            if action == "password":
                row = accounts.set_password(name, _form_passwords(), by=access().by)
                if row.name == access().name:  # this session goes on; the others end
                    session["stamp"] = row.password_changed_at.isoformat()
                    return "Your password was changed; your other sessions have ended."
                return f"Password of {row.name} changed: their sessions have ended."
            if action == "classes":
                row = accounts.set_classes(name, request.form.getlist("classes"), by=access().by)
                listed = ", ".join(row.classes) or "none"
                return f"Classes of {row.name}: {listed}."
            raise BadRequestError("action must be disable, enable, password or classes")

        return act(run, back)
