"""The HTTP API: ``create_app(services)`` adds routes to the services built by ``app``.

Routes (compatible with the original project's clients):

* ``POST /recognize``  header ``X-API-KEY``, multipart field ``image`` (one or more parts);
  with ``ATTENDANCE_REQUIRE_LIVENESS=challenge`` a field ``nonce`` (or ``X-Liveness-Nonce``)
* ``GET /liveness/challenge?camera=ID``  header ``X-API-KEY``: the liveness mode, and in
  challenge mode a one-use nonce with the actions the next scan must show

A camera key acts as its own camera (the key's name: ``acting_camera``) whatever ``camera``
a request names; the admin key names any.
* ``GET /statistics``  header ``X-API-KEY``
* ``POST /send_report`` header ``X-API-KEY``, optional ``date`` (YYYY-MM-DD): email the report now
* ``GET /enrolment``   header ``X-API-KEY``: the last enrolment, with skipped photos and why
* ``GET /health``      no key, no personal data; 503 until enrolment has finished, and while
  the database cannot be reached (``app.DatabaseCheck``: ``SELECT 1`` at most once a second)
* ``GET /openapi.json`` no key: this API as an OpenAPI 3.1 document (``web/openapi.py``)

and the register's and the registry's routes (``web/register.py``: ``GET /attendance``,
``POST /attendance/corrections``, ``GET /export.csv|.xlsx``; ``web/students.py``:
``GET|POST /students``, ``PATCH /students/<name>``, ``POST /students/<name>/photos``).

``X-API-KEY`` is the admin key (``API_SECRET_KEY``: every route) or a camera key
(``people/keys.py``: ``CAMERA_ROUTES`` only, else 403). A valid key is always served. A missing
or wrong key is a 401, logged with the client's address (never the key) and counted in the
database; an address with ``ATTENDANCE_KEY_FAILURES_PER_MINUTE`` of them in the last minute gets
429 with ``Retry-After`` for its further wrong keys, uncounted and unlogged (docs/api.md#keys).

Every error is JSON ``{"status": ..., "error": ...}`` with a 4xx (or 503) status (a JSON body
nested too deeply to parse included: ``BodyJSON``); the one table
mapping exceptions to HTTP statuses is ``ERROR_STATUS`` below. Answers are the services' typed
results, turned into the original project's JSON by their ``to_json``.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from typing import Any

from flask import Flask, Response, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..app import Services
from ..attendance.export import ExportFile
from ..errors import (
    AttendanceError,
    BadRequestError,
    CaptureTimeError,
    ConfigError,
    ConflictError,
    ForbiddenError,
    ImageError,
    ImageTooLargeError,
    LoginError,
    MailAuthError,
    MailNotConfiguredError,
    MailTimeoutError,
    MailUnavailableError,
    NotFoundError,
    NotReadyError,
    RateLimitedError,
    StoreError,
    TooManyAttemptsError,
    UnsupportedImageError,
    WorkerCrashedError,
    WorkerTimeoutError,
)
from ..models import FIRST_DAY, LAST_DAY
from .proxies import ForwardedFromProxies, TrustedProxies

log = logging.getLogger(__name__)

UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]")  # replaced in a downloaded file's name

# Routes without a key; and what a camera key opens (people/keys.py). Every other route of the
# API needs the admin key (API_SECRET_KEY): a camera key there is a 403.
OPEN_ROUTES = frozenset({"health", "static", "openapi"})  # openapi: GET /openapi.json
# Set by the server (web/serving.py, never by a client: it deletes any such header) on a request
# whose body it did not read, because its key was not one it knew to be valid.
BODY_WITHHELD = "X-Attendance-Body-Withheld"
CAMERA_ROUTES = frozenset({"recognize", "liveness_challenge", "badges.checkin"})

# (exception type, HTTP status, "status" field); the first matching row wins.
ERROR_STATUS: tuple[tuple[type[AttendanceError], int, str], ...] = (
    (ImageTooLargeError, 413, "too_large"),
    (UnsupportedImageError, 415, "unsupported_image"),
    (ImageError, 400, "bad_image"),
    (CaptureTimeError, 422, "error"),  # with "reason": "captured_at_out_of_window"
    (BadRequestError, 400, "bad_request"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (ForbiddenError, 403, "forbidden"),
    (TooManyAttemptsError, 429, "too_many_attempts"),
    (RateLimitedError, 429, "too_many_requests"),  # with Retry-After
    (LoginError, 401, "login_refused"),
    (NotReadyError, 503, "starting"),
    (StoreError, 503, "database_unavailable"),
    (WorkerTimeoutError, 503, "worker_timeout"),
    (WorkerCrashedError, 503, "busy"),
    (ConfigError, 500, "misconfigured"),
    (MailNotConfiguredError, 503, "mail_not_configured"),
    (MailAuthError, 502, "mail_login_refused"),
    (MailTimeoutError, 504, "mail_timeout"),
    (MailUnavailableError, 503, "mail_unavailable"),
)


def _day(raw: str | None, name: str = "date") -> date | None:
    """A date of a request (``YYYY-MM-DD``, from 1900 to 2999: ``models.FIRST_DAY`` and
    ``LAST_DAY``), None when left out; a ``BadRequestError`` naming the field ``name``
    otherwise."""
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise BadRequestError(f"{name} must be a date as YYYY-MM-DD") from None
    if day < FIRST_DAY:
        raise BadRequestError(f"{name} is too far in the past")
    if day > LAST_DAY:
        raise BadRequestError(f"{name} is too far in the future")
    return day


def _range(first: str | None, last: str | None) -> tuple[date | None, date | None]:
    """The ``from``/``to`` query parameters (either may be missing)."""
    start, end = _day(first, "from"), _day(last, "to")
    if start and end and end < start:
        raise BadRequestError("to is before from")
    return start, end


def _attachment(made: ExportFile) -> Response:
    """An export as a download, never cached; its file name keeps letters, digits, '.', '_'
    and '-' only (the others become '_')."""
    name = UNSAFE_FILE_CHARS.sub("_", made.name)
    return Response(
        made.chunks,  # streamed: the register is read a few days at a time
        content_type=made.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


def acting_camera(requested: str | None) -> str | None:
    """The camera a request acts as: a camera key is its own camera (the key's name), whatever
    camera id the request names, so a stolen key cannot draw another door's challenges, reset
    its intruder streak or sign marks with its name; the admin key names any camera
    (``requested``, None: the default one)."""
    key_name: str = g.get("key_name", "")
    return key_name or requested


class BodyJSON(DefaultJSONProvider):
    """Flask's JSON, with a body nested too deeply for the parser (``[[[[...`` by the
    thousand: a ``RecursionError``) refused as a 400 on every route that reads JSON, even with
    ``get_json(silent=True)``, rather than a 500."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise BadRequestError("the JSON body is nested too deeply") from None


class KeysFirst:
    """The server's question about a request's key before it reads the body
    (``web.serving.KeyGate``); ``body_gate(app)`` makes one."""

    def __init__(self, app: Flask) -> None:
        services: Services = app.extensions["attendance"]
        self.keys = services.keys
        self.keys.load_known()  # once, here: the event loop never waits for the database
        self.routes = app.url_map.bind("localhost")

    def unsure(self, method: str, path: str, key: str) -> bool:
        """In the event loop: whether the route needs the API key and ``key`` is not one this
        process knows to be valid (``CameraKeyService.known``). A path the app has no route
        for counts as such too: it is answered (404...) without its body. The dashboard's and
        the open routes read their bodies as before."""
        try:
            endpoint, _arguments = self.routes.match(path, method)
        except HTTPException:  # no such route or method, or a redirect: no body needed
            return True
        if endpoint in OPEN_ROUTES or endpoint.startswith("dashboard."):
            return False
        return not self.keys.known(key)

    def valid(self, key: str) -> bool:
        """In a request thread: whether ``key`` opens the API (the database asked)."""
        return self.keys.check(key) is not None


def body_gate(app: Flask) -> KeysFirst:
    """What ``web.serving.make_server`` asks before it reads a request's body."""
    return KeysFirst(app)


def _error(status: str, message: str, code: int) -> tuple[Response, int]:
    return jsonify({"status": status, "error": message}), code


# The 401's words: where a key comes from (no path of this server: anyone may read them).
KEY_REFUSED = (
    "missing or wrong X-API-KEY: send the admin key (API_SECRET_KEY, or the key the server "
    "generated in its data folder, data/api_key) or a camera key made with "
    "`attendance keys add NAME`"
)


def create_app(services: Services) -> Flask:
    """The Flask app serving ``services``; it builds nothing but routes."""
    settings = services.settings
    if not settings.api_key:
        raise ConfigError("API_SECRET_KEY is empty: the server never runs without a key")
    if not settings.session_secret:
        raise ConfigError(
            "ATTENDANCE_SESSION_SECRET is empty: the dashboard's sessions need a signing key"
        )

    app = Flask(__name__)
    app.json = BodyJSON(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = settings.max_upload_bytes
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["attendance"] = services
    keys = services.keys

    @app.before_request
    def check_key() -> Any:
        # The dashboard signs its users in with sessions and never takes the API key.
        if request.endpoint in OPEN_ROUTES or request.endpoint is None:
            return None
        if request.blueprint == "dashboard":
            return None
        address = request.remote_addr or "unknown"
        holder = keys.check(request.headers.get("X-API-KEY", ""))
        if holder is None:
            # Only wrong keys are throttled: a valid key is served whatever its address sent.
            wait = keys.throttled(address)
            if wait is not None:
                response, code = _error(
                    "too_many_attempts",
                    f"too many wrong API keys from this address; try again in {wait} s",
                    429,
                )
                response.headers["Retry-After"] = str(wait)
                return response, code
            keys.refused(address)
            log.warning("api key refused from %s", address)
            return jsonify({"status": "denied", "error": KEY_REFUSED}), 401
        if request.headers.get(BODY_WITHHELD):
            # A valid key this server did not know yet (added on another server since it read
            # the keys): the body was not read. It knows the key now.
            response, code = _error(
                "busy", "this server had not seen this key yet: send the request again", 503
            )
            response.headers["Retry-After"] = "1"
            return response, code
        if not holder.is_admin and request.endpoint not in CAMERA_ROUTES:
            return _error(
                "forbidden",
                "a camera key opens the camera's routes only (POST /recognize, POST /checkin, "
                "GET /liveness/challenge); "
                "this one needs the admin key",
                403,
            )
        g.authorised = True
        g.key_name = holder.name  # "" for the admin key; kept with the marks it makes
        return None

    @app.post("/recognize")
    def recognize() -> Any:
        uploads = request.files.getlist("image")
        if not uploads:
            names = sorted(request.files.keys())
            hint = f" (got file fields: {', '.join(names)[:100]})" if names else ""
            return _error("bad_request", "send the image as multipart field 'image'" + hint, 400)
        frames = [upload.read() for upload in uploads]
        camera = acting_camera(request.form.get("camera") or request.headers.get("X-Camera-Id"))
        event_id = request.form.get("event_id") or request.headers.get("X-Event-Id")
        raw_fps = request.form.get("fps")
        try:
            fps = float(raw_fps) if raw_fps else None
        except ValueError:
            return _error("bad_request", "fps must be a number", 400)
        captured_at = request.form.get("captured_at") or request.headers.get("X-Captured-At")
        nonce = request.form.get("nonce") or request.headers.get("X-Liveness-Nonce")
        result = services.scans.recognize(
            frames,
            camera=camera,
            event_id=event_id,
            fps=fps,
            captured_at=captured_at,
            key_name=g.get("key_name", ""),
            nonce=nonce,
        )
        return jsonify(result.to_json())

    @app.get("/liveness/challenge")
    def liveness_challenge() -> Any:
        # A new nonce at every call: never cached by a proxy or the client's HTTP library.
        camera = acting_camera(request.args.get("camera"))
        challenge = services.scans.challenge(camera, g.get("key_name", ""))
        response = jsonify(challenge.to_json())
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/statistics")
    def statistics() -> Any:
        first, last = _range(request.args.get("from"), request.args.get("to"))
        class_name = request.args.get("class") or None
        summary = services.attendance.summary(first, last, class_name)
        return jsonify(
            {
                "status": "success",
                "days_on_record": summary.days_on_record,
                "students": [s.as_dict() for s in summary.students],
            }
        )

    @app.post("/send_report")
    def send_report() -> Any:
        raw = request.args.get("date") or request.form.get("date")
        if raw is None and request.is_json:
            body = request.get_json(silent=True)
            raw = body.get("date") if isinstance(body, dict) else None
        day = None
        if raw:
            try:
                day = date.fromisoformat(str(raw))
            except ValueError:
                return _error("bad_request", "date must be YYYY-MM-DD", 400)
        # A day out of FIRST_DAY..LAST_DAY is a 400, and at most ATTENDANCE_REPORT_SENDS_PER_HOUR
        # sends an hour across servers (429 with Retry-After): the report service says so.
        return jsonify(services.reports.send_requested(day).to_json())

    @app.get("/enrolment")
    def enrolment() -> Any:
        report = services.enrolment.report
        if report is None:
            return _error("starting", "enrolment has not finished yet", 503)
        return jsonify(
            {
                "status": "success",
                "students": report.students,
                "photos": report.photos,
                "seconds": round(report.seconds, 2),
                "skipped": [{"path": s.path, "reason": s.reason} for s in report.skipped],
            }
        )

    @app.get("/health")
    def health() -> Any:
        health = services.health()
        return jsonify(health.to_json()), 200 if health.status == "ok" else 503

    @app.get("/openapi.json")  # the API described (web/openapi.py); no key, like /health
    def openapi() -> Any:
        from .openapi import document

        return jsonify(document())

    from . import badges, dashboard, register, students  # they import this module's helpers

    app.register_blueprint(register.blueprint(services))
    app.register_blueprint(students.blueprint(services))
    app.register_blueprint(badges.blueprint(services))
    app.register_blueprint(dashboard.blueprint(services))
    if settings.proxy_hops:  # X-Forwarded-* believed from the configured proxies only
        app.wsgi_app = ForwardedFromProxies(  # type: ignore[method-assign]
            app.wsgi_app, settings.proxy_hops, TrustedProxies(settings.trusted_proxies)
        )

    @app.errorhandler(AttendanceError)
    def attendance_error(exc: AttendanceError) -> Any:
        if isinstance(exc, StoreError):  # 503 database_unavailable: worth a line in the log
            log.warning("database error in %s %s: %s", request.method, request.path, exc)
        for kind, code, status in ERROR_STATUS:
            if isinstance(exc, kind):
                body: dict[str, object] = {"status": status, "error": str(exc)}
                reason = getattr(exc, "reason", None)  # a stable code for cameras
                if isinstance(reason, str):
                    body["reason"] = reason
                response = jsonify(body)
                if isinstance(exc, RateLimitedError):
                    response.headers["Retry-After"] = str(exc.retry_after_s)
                return response, code
        return _error("error", str(exc), 400)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc: RequestEntityTooLarge) -> Any:
        return _error("too_large", f"upload larger than {settings.max_upload_mb:g} MB", 413)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        code = exc.code or 400
        status = {404: "not_found", 405: "method_not_allowed"}.get(code, "bad_request")
        return _error(status, exc.description or exc.name, code)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        log.error("unexpected error in %s: %s", request.path, type(exc).__name__, exc_info=exc)
        return _error("error", "internal error; the server log has details", 500)

    return app
