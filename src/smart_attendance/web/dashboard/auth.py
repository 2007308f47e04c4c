"""Sign-in, sign-out and sessions of the dashboard.

* ``GET|POST /login``: a form with ``username``, ``password`` and a hidden ``csrf_token``;
  refused logins are throttled per account and address (``AccountService.authenticate``),
  answered 429 with ``Retry-After`` when too many;
* ``POST /logout``: ends the session, on every server: its id is kept as ended in the database
  (``ended_sessions``), so a copy of the cookie opens nothing afterwards.

The session is Flask's signed cookie (``HttpOnly``, ``SameSite=Lax``, ``Secure`` when the
request came over HTTPS) holding the user's name, a random session id, the time of their last
password change (a change, or disabling the account, ends every session at once), the time of
the sign-in (a session ends ``ATTENDANCE_SESSION_MAX_HOURS`` after it, however much it is used)
and the time of the last request by the user (a session idle for
``ATTENDANCE_SESSION_IDLE_MINUTES`` ends). A live region's own refresh (the Today board's,
header ``X-Live-Refresh``) is not a request by the user: a board left open ends like any other
page. Every POST of the dashboard carries the CSRF token (Flask-WTF), in the form or in the
``X-CSRFToken`` header.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Flask, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect

from ...app import Services
from ...errors import LoginError, TooManyAttemptsError
from ...people.accounts import Access
from .common import FETCH_HEADER, _json, render, safe_next, wants_json

log = logging.getLogger(__name__)

csrf = CSRFProtect()
PUBLIC = frozenset({"dashboard.login"})
LIVE_REFRESH = "X-Live-Refresh"  # sent by app.js's live regions: not the user's activity
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class SecureWhenHttps(SecureCookieSessionInterface):
    """Flask's signed-cookie session, marked ``Secure`` when the request came over HTTPS
    (behind a proxy: ``ATTENDANCE_PROXY_HOPS`` makes its ``X-Forwarded-Proto`` count)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(request.is_secure)


def register(routes: Blueprint, services: Services) -> None:
    accounts = services.accounts
    idle_s = services.settings.session_idle_minutes * 60
    max_s = services.settings.session_max_hours * 3600

    def now_s() -> float:
        return services.clock().timestamp()

    def classes_of(student: str) -> list[str]:
        row = services.store.student(student)
        extra = row.classes if row else ()
        return services.attendance.timetable.classes_of(student, extra)

    @routes.record_once
    def setup(state: Any) -> None:
        app = state.app
        app.config.update(
            SECRET_KEY=services.settings.session_secret,
            SESSION_COOKIE_NAME="attendance_session",
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
            WTF_CSRF_CHECK_DEFAULT=False,  # the camera API has no forms; checked below
            WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        )
        app.session_interface = SecureWhenHttps()
        csrf.init_app(app)

    @routes.before_request
    def signed_in() -> Any:
        g.access = None
        if request.method in STATE_CHANGING:
            csrf.protect()  # raises CSRFError, answered below
        if request.endpoint in PUBLIC:
            return None
        name, stamp, sid = session.get("user"), session.get("stamp"), session.get("sid")
        seen, started = session.get("seen"), session.get("started")
        user = (
            accounts.session_user(name, stamp, sid)
            if isinstance(name, str) and isinstance(stamp, str) and isinstance(sid, str)
            else None
        )
        now = now_s()
        expired = user is not None and (
            not isinstance(seen, (int, float))
            or not isinstance(started, (int, float))
            or now - seen > idle_s
            or now - started > max_s
        )
        if user is None or expired:
            session.clear()
            if wants_json():
                return _json({"status": "signed_out", "error": "sign in again"}, 401)
            target = request.full_path if request.method == "GET" else "/"
            reason = "expired" if expired else None
            return redirect(url_for("dashboard.login", next=target.rstrip("?"), reason=reason))
        if not request.headers.get(LIVE_REFRESH):  # a board refreshing itself is not use
            session["seen"] = int(now)
        g.access = Access(user, classes_of)
        return None

    @routes.after_request
    def headers(response: Any) -> Any:
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
            "style-src 'self'; script-src 'self'; frame-src 'self'; frame-ancestors 'none'; "
            "form-action 'self'; base-uri 'none'",
        )
        return response

    @routes.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        target = safe_next(request.values.get("next"), url_for("dashboard.today"))
        notice = None
        if request.args.get("reason") == "expired":
            notice = "Your session ended after a while without use. Sign in again."
        if not accounts.has_admin():
            notice = (
                "No admin account exists yet. On the server, run: "
                "attendance users add NAME --role admin --password-stdin"
            )
        if request.method == "GET":
            return render("login.html", "Sign in", next=target, notice=notice)
        username = request.form.get("username", "")
        try:
            user = accounts.authenticate(
                username, request.form.get("password", ""), request.remote_addr or "?"
            )
        except TooManyAttemptsError as exc:
            page, code = render(
                "login.html", "Sign in", 429, next=target, error=str(exc), username=username
            )
            return page, code, {"Retry-After": str(exc.retry_after_s)}
        except LoginError as exc:
            return render(
                "login.html", "Sign in", 401, next=target, error=str(exc), username=username
            )
        session.clear()  # a new session: nothing carried over from before the sign-in
        session["user"] = user.name
        session["stamp"] = user.password_changed_at.isoformat()
        session["sid"] = accounts.new_session_id()
        session["started"] = session["seen"] = int(now_s())
        log.info("user %s signed in from %s", user.name, request.remote_addr)
        return redirect(target, code=303)

    @routes.post("/logout")
    def logout() -> Any:
        sid, started = session.get("sid"), session.get("started")
        if isinstance(sid, str) and isinstance(started, (int, float)):
            until = datetime.fromtimestamp(started + max_s, timezone.utc)
            accounts.end_session(sid, until)
        session.clear()
        return redirect(url_for("dashboard.login"), code=303)

    @routes.app_errorhandler(CSRFError)  # only the dashboard checks CSRF tokens
    def csrf_failed(_exc: CSRFError) -> Any:
        message = "The form expired or did not come from this site. Reload the page and try again."
        if wants_json() or request.headers.get(FETCH_HEADER):
            return _json({"status": "csrf_failed", "error": message}, 400)
        return render("error.html", "Form expired", 400, message=message)
