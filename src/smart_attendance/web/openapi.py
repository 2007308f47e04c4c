"""The HTTP API described as an OpenAPI 3.1 document, served at ``GET /openapi.json`` (no key).

One document for people (docs/api.md says the same in words, with examples), for client
generators, and for the fuzzer: ``tests/test_fuzz.py`` runs Schemathesis from it against the
app (no 5xx, every answer as described here) and ``tests/test_openapi.py`` keeps its paths
and methods in step with the app's routes. The dashboard's pages (``web/dashboard/``) are for
people, not part of it.

Every error answer is JSON ``{"status": WHY, "error": "plain words"}`` (``ERROR_STATUS`` in
``web/__init__.py``); each operation lists the statuses it can answer.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

OPENAPI_VERSION = "3.1.0"
KEY_HEADER = "X-API-KEY"

Schema = dict[str, Any]

# --- small builders ------------------------------------------------------------------------


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **more: Any) -> Schema:
    return {"type": [kind, "null"], **more}


def _obj(required: tuple[str, ...], closed: bool = False, **properties: Schema) -> Schema:
    """An object schema. Python names ending in ``_`` stand for JSON keys that are keywords
    (``class_`` -> ``class``, ``from_`` -> ``from``)."""
    body: Schema = {
        "type": "object",
        "properties": {key.rstrip("_"): value for key, value in properties.items()},
    }
    if required:
        body["required"] = list(required)
    if closed:
        body["additionalProperties"] = False
    return body


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, description: str, schema: Schema | None = None) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _header(name: str, description: str, schema: Schema) -> Schema:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": schema,
    }


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer", "minimum": 0}
BOOLEAN: Schema = {"type": "boolean"}
DAY: Schema = {"type": "string", "format": "date"}
CAMERA: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"}
EVENT_ID: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,100}$"}
CAPTURED_AT: Schema = {
    "type": "string",
    "description": "When the camera captured the frame (ISO 8601 with an offset); trusted "
    "within ATTENDANCE_CLOCK_WINDOW_HOURS, else 422 captured_at_out_of_window",
}
STATUS: Schema = {
    "type": ["string", "null"],
    "enum": ["Present", "Late", "Absent", "Excused", None],
}
BINARY: Schema = {"type": "string", "format": "binary"}

# A student's name in a path: one segment (a folder name of the dataset).
STUDENT_NAME: Schema = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The student (their dataset folder's name)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[^/]+$"},
    "example": "ana_lima",
}
RANGE = [
    _query("from", "First day (YYYY-MM-DD); default the first day on record", DAY),
    _query("to", "Last day (YYYY-MM-DD); default today", DAY),
    _query("class", "One class of the timetable; default every class"),
]

# --- answers ---------------------------------------------------------------------------------

SCHEMAS: dict[str, Schema] = {
    "Error": _obj(
        ("status", "error"),
        status={
            "type": "string",
            "description": "Why, for a program: bad_request, bad_image, denied, forbidden, "
            "not_found, conflict, too_large, unsupported_image, too_many_attempts, "
            "starting, database_unavailable, busy, mail_* ...",
        },
        error={"type": "string", "description": "Why, in plain words"},
    ),
    "Box": _obj(
        ("left", "top", "right", "bottom"),
        left={"type": "integer"},
        top={"type": "integer"},
        right={"type": "integer"},
        bottom={"type": "integer"},
    ),
    "Face": _obj(
        ("box", "name", "distance", "margin"),
        box=_ref("Box"),
        name=_nullable("string", description="The student; null for an unknown face"),
        distance=_nullable("number"),
        margin=_nullable("number"),
        reason={"type": "string", "description": "face_too_small: too small to trust"},
    ),
    "Mark": _obj(
        ("name", "display_name", "attendance", "new", "time"),
        name=STRING,
        display_name={
            "type": "string",
            "description": "The name to greet the student with: the registry's display name, "
            "else name",
        },
        attendance={"type": ["string", "null"], "enum": ["Present", "Late", None]},
        new={"type": "boolean", "description": "The first mark of this period"},
        time={"type": "string", "description": "Local HH:MM:SS of the (first) mark"},
        class_=STRING,
        period=_nullable("string"),
        reason={
            "type": "string",
            "enum": ["no_period_now", "closure_day", "not_in_a_class", "student_left"],
            "description": "Only when attendance is null: why the student was not marked",
        },
    ),
    "Recognition": {
        **_obj(
            ("status", "faces"),
            status={"type": "string", "enum": ["success", "unknown", "liveness_failed"]},
            name=STRING,
            attendance={"type": ["string", "null"], "enum": ["Present", "Late", None]},
            new=BOOLEAN,
            time=STRING,
            marks={"type": "array", "items": _ref("Mark")},
            faces={"type": "array", "items": _ref("Face")},
            reason=_nullable(
                "string",
                description="no_face, face_too_small, unknown_face; or why liveness failed: "
                "no blink seen (blink mode); nonce_missing, nonce_unknown, nonce_expired, "
                "nonce_used, nonce_replaced, fps_inconsistent, face_changed, fps_too_low, "
                "no_neutral_start, "
                "action_missing:ACTION, action_not_asked:MOVEMENT, actions_out_of_order, "
                "action_too_soon:ACTION, action_too_late:ACTION (challenge mode); with status "
                "success and attendance null, why the student was not marked: no_period_now, "
                "closure_day, not_in_a_class, student_left",
            ),
        ),
        "oneOf": [
            {
                "properties": {"status": {"const": "success"}},
                "required": ["name", "attendance", "new", "time", "marks"],
            },
            {
                "properties": {"status": {"enum": ["unknown", "liveness_failed"]}},
                "required": ["reason"],
            },
        ],
    },
    "Challenge": {
        **_obj(
            ("mode",),
            mode={"type": "string", "enum": ["off", "blink", "challenge"]},
            nonce={
                "type": "string",
                "pattern": "^[A-Za-z0-9_-]{16,128}$",
                "description": "Send it with the next scan (form field nonce): once, before "
                "it expires, from the same camera with the same key",
            },
            actions={
                "type": "array",
                "items": {
                    "type": "string",
                    "enum": ["blink", "blink_twice", "turn_left", "turn_right"],
                },
                "minItems": 1,
                "maxItems": 3,
                "description": "To perform in this order, and nothing else (one blink more "
                "is allowed); turn_left is the student's own left",
            },
            prompts={
                "type": "array",
                "items": STRING,
                "description": "The actions in plain words, same order",
            },
            expires_in={"type": "number", "minimum": 0, "description": "Seconds"},
            expires_at={"type": "string", "description": "UTC, ISO 8601"},
        ),
        "oneOf": [
            {
                "properties": {"mode": {"const": "challenge"}},
                "required": ["nonce", "actions", "prompts", "expires_in", "expires_at"],
            },
            {"properties": {"mode": {"enum": ["off", "blink"]}}},
        ],
    },
    "Health": _obj(
        ("status", "students", "photos", "skipped_photos", "workers", "embedder"),
        status={"type": "string", "enum": ["ok", "starting", "error", "database_unavailable"]},
        students=INTEGER,
        photos=INTEGER,
        skipped_photos=INTEGER,
        workers=INTEGER,
        embedder=STRING,
        error=STRING,
    ),
    "StudentStats": _obj(
        (
            "name",
            "days_present",
            "days_on_time",
            "days_late",
            "total_days",
            "attendance_pct",
            "late_pct",
            "excused",
            "absent",
            "below_threshold",
        ),
        name=STRING,
        days_present=INTEGER,
        days_on_time=INTEGER,
        days_late=INTEGER,
        total_days=INTEGER,
        attendance_pct={"type": "number", "minimum": 0, "maximum": 100},
        late_pct={"type": "number", "minimum": 0, "maximum": 100},
        excused=INTEGER,
        absent=INTEGER,
        below_threshold=BOOLEAN,
    ),
    "Statistics": _obj(
        ("status", "days_on_record", "students"),
        status={"const": "success"},
        days_on_record=INTEGER,
        students={"type": "array", "items": _ref("StudentStats")},
    ),
    "ReportSent": _obj(
        ("status", "date", "recipients"),
        status={"const": "success"},
        date=DAY,
        recipients={"type": "array", "items": STRING},
    ),
    "Enrolment": _obj(
        ("status", "students", "photos", "seconds", "skipped"),
        status={"const": "success"},
        students=INTEGER,
        photos=INTEGER,
        seconds={"type": "number", "minimum": 0},
        skipped={
            "type": "array",
            "items": _obj(("path", "reason"), path=STRING, reason=STRING),
        },
    ),
    "Correction": _obj(
        ("name", "date", "class", "period", "old_status", "status", "reason", "by", "at"),
        name=STRING,
        date=DAY,
        class_=STRING,
        period=STRING,
        old_status=STATUS,
        status={"type": "string", "enum": ["Present", "Late", "Absent", "Excused", "Undone"]},
        reason=STRING,
        by=STRING,
        at={"type": "string", "description": "UTC, ISO 8601"},
    ),
    "Entry": _obj(
        ("name", "status"),
        name=STRING,
        status=STATUS,
        time={"type": "string", "description": "Local HH:MM:SS of the camera's mark"},
        source={"type": "string", "description": "camera:ID, or the corrector"},
        reason=STRING,
        history={"type": "array", "items": _ref("Correction")},
    ),
    "Day": _obj(
        ("status", "date", "classes"),
        status={"const": "success"},
        date=DAY,
        closure=_obj(("from", "to", "reason"), from_=DAY, to=DAY, reason=STRING),
        classes={
            "type": "array",
            "items": _obj(
                ("name", "periods"),
                name=STRING,
                periods={
                    "type": "array",
                    "items": _obj(
                        ("start", "end", "students"),
                        start=STRING,
                        end=STRING,
                        students={"type": "array", "items": _ref("Entry")},
                    ),
                },
            ),
        },
    ),
    "Corrected": _obj(
        ("status", "changed", "date", "class", "period", "student"),
        status={"const": "success"},
        changed={"type": "boolean", "description": "false: nothing new was recorded"},
        date=DAY,
        class_=STRING,
        period=STRING,
        student=_ref("Entry"),
    ),
    "BulkCorrected": _obj(
        ("status", "changed", "kept", "entries"),
        status={"const": "success"},
        changed={"type": "integer", "description": "Class periods corrected"},
        kept={"type": "integer", "description": "Left alone: a mark, or that status already"},
        entries={
            "type": "array",
            "items": _obj(
                ("date", "class", "period", "name", "status"),
                date=DAY,
                class_=STRING,
                period=STRING,
                name=STRING,
                status=STRING,
            ),
        },
    ),
    "Student": _obj(
        ("name", "display_name", "external_id", "classes", "photos", "active", "joined"),
        name=STRING,
        display_name=STRING,
        external_id=_nullable("string"),
        classes={"type": "array", "items": STRING},
        photos=INTEGER,
        active=BOOLEAN,
        joined=DAY,
        consent={"type": "string", "enum": ["none", "given", "refused", "withdrawn"]},
    ),
    "StudentAnswer": _obj(
        ("status", "student"),
        status={"const": "success"},
        student=_ref("Student"),
        # POST /students: other students whose name looks the same (added all the same)
        warnings={"type": "array", "items": {"type": "string"}},
    ),
    "Students": _obj(
        ("status", "students"),
        status={"const": "success"},
        students={"type": "array", "items": _ref("Student")},
    ),
    "Check": _obj(
        ("name", "label", "passed", "detail"),
        name={"type": "string", "enum": ["one_face", "big_enough", "sharp", "facing"]},
        label=STRING,
        passed=_nullable("boolean", description="null: not checked"),
        detail=STRING,
    ),
    "PhotoResult": _obj(
        ("file", "status", "checks"),
        file=STRING,
        status={"type": "string", "enum": ["enrolled", "refused"]},
        path=_nullable("string"),
        reason=_nullable(
            "string",
            description="no_face, many_faces, too_small, blurry, turned_away, unreadable, error",
        ),
        detail=STRING,
        checks={"type": "array", "items": _ref("Check")},
    ),
    "Photos": _obj(
        ("status", "student", "enrolled", "refused", "photos"),
        status={"const": "success"},
        student=STRING,
        enrolled=INTEGER,
        refused=INTEGER,
        photos={"type": "array", "items": _ref("PhotoResult")},
    ),
    "Erased": _obj(
        ("status", "erased", "photos", "records", "files", "csv_lines"),
        status={"const": "success"},
        erased={"type": "string", "description": "The opaque id the audit log keeps"},
        photos=INTEGER,
        records=INTEGER,
        files=INTEGER,
        csv_lines=INTEGER,
    ),
}

# --- requests ----------------------------------------------------------------------------------

NEW_STUDENT = _obj(
    ("name",),
    closed=True,
    name={"type": "string", "minLength": 1, "maxLength": 100, "description": "Folder name"},
    display_name={"type": "string", "maxLength": 255},
    external_id=_nullable("string", maxLength=64),
    classes={"type": "array", "items": STRING, "maxItems": 100},
    joined={
        **DAY,
        "description": "The day they joined (expected from its start); default: now, "
        "expected in the periods that start from now on",
    },
)
CHANGE_STUDENT = {
    **NEW_STUDENT,
    "required": [],
    "properties": {
        **NEW_STUDENT["properties"],
        "active": BOOLEAN,
    },
}
SLOT: dict[str, Schema] = {
    "name": STRING,
    "date": DAY,
    "class": STRING,
    "period": {"type": "string", "description": "The period's start, HH:MM"},
}
CORRECTION = {
    "type": "object",
    "required": ["name", "date", "status"],
    "properties": {
        **SLOT,
        "status": {"type": "string", "description": "Present, Late, Absent or Excused, any case"},
        "reason": {"type": "string", "maxLength": 512},
    },
}
UNDO = {"type": "object", "required": ["name", "date"], "properties": SLOT}
STATUS_WORD = {"type": "string", "description": "Present, Late, Absent or Excused, any case"}
CORRECT_DAYS = {
    "type": "object",
    "required": ["name", "from", "reason"],
    "properties": {
        "name": STRING,
        "from": DAY,
        "to": {**DAY, "description": "Default: from (one day); at most 92 days"},
        "status": {**STATUS_WORD, "description": "Default Excused"},
        "reason": {"type": "string", "maxLength": 512},
    },
}
CORRECT_PERIOD = {
    "type": "object",
    "required": ["class", "date"],
    "properties": {
        "class": STRING,
        "date": DAY,
        "period": {"type": "string", "description": "The period's start, HH:MM"},
        "status": {**STATUS_WORD, "description": "Default Present"},
        "reason": {"type": "string", "maxLength": 512},
    },
}
CHECKIN = _obj(
    ("badge",),
    closed=True,
    badge={"type": "string", "minLength": 1, "maxLength": 200},
    camera=CAMERA,
    event_id=EVENT_ID,
    captured_at={**CAPTURED_AT, "maxLength": 200},
)
CONSENT = _obj(
    ("state", "by"),
    closed=True,
    state={"type": "string", "enum": ["given", "refused", "withdrawn"]},
    by={"type": "string", "description": "Who gave, refused or withdrew it"},
    document={"type": "string", "description": "The signed form (required for given)"},
)
IMAGES = {"type": "array", "items": BINARY, "minItems": 1}
IMAGE_ENCODING = {"image": {"contentType": "image/jpeg, image/png, image/webp, image/bmp"}}
SCAN_FORM = _obj(
    ("image",),
    image={**IMAGES, "maxItems": 60, "description": "One frame, or a burst in time order"},
    camera=CAMERA,
    event_id=EVENT_ID,
    fps={"type": "number", "minimum": 1, "maximum": 240, "description": "The burst's frame rate"},
    captured_at=CAPTURED_AT,
    nonce={
        "type": "string",
        "maxLength": 200,
        "description": "ATTENDANCE_REQUIRE_LIVENESS=challenge: the nonce of GET "
        "/liveness/challenge (required then, usable once)",
    },
)
SCAN_HEADERS = [
    _header("X-Camera-Id", "The camera (when the form has no camera)", CAMERA),
    _header("X-Event-Id", "The scan's id: a resend never marks twice", EVENT_ID),
    _header("X-Captured-At", "The capture time (when the form has none)", CAPTURED_AT),
    _header("X-Liveness-Nonce", "The challenge's nonce (when the form has none)", STRING),
]

# --- the error answers --------------------------------------------------------------------------

ERRORS: dict[str, tuple[str, str]] = {
    "400": ("BadRequest", "Bad input (bad_request, bad_image)"),
    "401": ("Unauthorized", f"Missing or wrong {KEY_HEADER} (denied)"),
    "403": ("Forbidden", "Not allowed with this key (forbidden), or a refused badge"),
    "404": ("NotFound", "No such student (not_found)"),
    "409": ("Conflict", "Taken, or no consent recorded (conflict)"),
    "413": ("TooLarge", "Upload over ATTENDANCE_MAX_UPLOAD_MB, or too many pixels (too_large)"),
    "415": ("UnsupportedImage", "Not JPEG, PNG, WebP or BMP (unsupported_image)"),
    "422": ("Unprocessable", "Capture time out of the window (captured_at_out_of_window)"),
    "429": ("TooManyRequests", "Too many wrong keys from this address, or too many reports"),
    "502": ("MailLoginRefused", "The SMTP server refused the login (mail_login_refused)"),
    "503": ("Unavailable", "Starting, the database or the mail server is down; retry"),
    "504": ("MailTimeout", "The SMTP server did not answer in time (mail_timeout)"),
}
RESPONSES: dict[str, Schema] = {name: _json(_ref("Error"), text) for name, text in ERRORS.values()}
RESPONSES["TooManyRequests"]["headers"] = {
    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}
}
KEYED = ("401", "429")  # every operation that needs the key
ADMIN = (*KEYED, "403")  # ... the admin key: a camera key gets 403


def _errors(*codes: str) -> dict[str, Schema]:
    return {
        code: {"$ref": f"#/components/responses/{ERRORS[code][0]}"}
        for code in sorted(dict.fromkeys(codes))
    }


def _operation(
    summary: str,
    ok: dict[str, Schema],
    errors: tuple[str, ...],
    *,
    parameters: list[Schema] | None = None,
    body: Schema | None = None,
    open_: bool = False,
    tag: str = "",
) -> Schema:
    operation: Schema = {"summary": summary, "responses": {**ok, **_errors(*errors)}}
    if tag:
        operation["tags"] = [tag]
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    if open_:
        operation["security"] = []
    return operation


def _body(schema: Schema, media: str = "application/json", **more: Any) -> Schema:
    return {"required": True, "content": {media: {"schema": schema, **more}}}


def _file(media: str, description: str) -> dict[str, Schema]:
    return {
        "200": {
            "description": description,
            "headers": {
                "Content-Disposition": {
                    "description": 'attachment; filename="..."',
                    "schema": {"type": "string"},
                }
            },
            "content": {media: {"schema": BINARY}},
        }
    }


def _paths() -> dict[str, Schema]:
    day = _query("date", "The day (YYYY-MM-DD); default today", DAY)
    scan = ("400", "413", "415", "422", "503", *KEYED)
    return {
        "/recognize": {
            "post": _operation(
                "Recognise the faces of a frame (or a burst) and mark the students",
                {"200": _json(_ref("Recognition"), "Recognised, unknown, or liveness failed")},
                scan,
                parameters=SCAN_HEADERS,
                body=_body(SCAN_FORM, "multipart/form-data", encoding=IMAGE_ENCODING),
                tag="camera",
            )
        },
        "/liveness/challenge": {
            "get": _operation(
                "What the camera's next scan must show: the liveness mode, and in challenge "
                "mode a one-use nonce and one to three actions (it replaces the camera's "
                "last challenge; at most 30 a minute per key and camera, else 429)",
                {"200": _json(_ref("Challenge"), "The mode (and the challenge)")},
                ("400", "503", *KEYED),
                parameters=[
                    {
                        "name": "camera",
                        "in": "query",
                        "required": True,
                        "description": "The camera that will send the scan",
                        "schema": CAMERA,
                    }
                ],
                tag="camera",
            )
        },
        "/checkin": {
            "post": _operation(
                "Check a student in with a printed badge",
                {"200": _json(_ref("Recognition"), "Checked in (no faces)")},
                ("400", "403", "413", "422", "503", *KEYED),
                parameters=SCAN_HEADERS[:2],  # no X-Captured-At: the JSON has captured_at
                body=_body(CHECKIN),
                tag="camera",
            )
        },
        "/statistics": {
            "get": _operation(
                "Attendance statistics per student over a range",
                {"200": _json(_ref("Statistics"), "One row per active student")},
                ("400", "503", *ADMIN),
                parameters=RANGE,
                tag="register",
            )
        },
        "/send_report": {
            "post": _operation(
                "Build and email the day's report now",
                {"200": _json(_ref("ReportSent"), "Sent")},
                ("400", "413", "502", "503", "504", *ADMIN),
                parameters=[day],
                body={
                    "required": False,
                    "content": {
                        "application/json": {"schema": _obj((), date=DAY)},
                        "application/x-www-form-urlencoded": {"schema": _obj((), date=DAY)},
                    },
                },
                tag="register",
            )
        },
        "/enrolment": {
            "get": _operation(
                "The last enrolment, with every photo not enrolled and why",
                {"200": _json(_ref("Enrolment"), "The last enrolment")},
                ("503", *ADMIN),
                tag="students",
            )
        },
        "/health": {
            "get": _operation(
                "Ready? Counts only, no personal data",
                {
                    "200": _json(_ref("Health"), "Enrolment finished: recognising"),
                    "503": _json(_ref("Health"), "Starting, enrolment failed, or no database"),
                },
                (),
                open_=True,
                tag="server",
            )
        },
        "/openapi.json": {
            "get": _operation(
                "This document",
                {"200": _json({"type": "object"}, "The OpenAPI document")},
                (),
                open_=True,
                tag="server",
            )
        },
        "/attendance": {
            "get": _operation(
                "The register of one day: every expected student in every class period",
                {"200": _json(_ref("Day"), "The day's register")},
                ("400", "503", *ADMIN),
                parameters=[day, _query("class", "One class; default every class")],
                tag="register",
            )
        },
        "/attendance/corrections": {
            "post": _operation(
                "Set a student's status in one class period (recorded as a row of its own)",
                {
                    "200": _json(_ref("Corrected"), "Already so: nothing recorded"),
                    "201": _json(_ref("Corrected"), "Corrected"),
                },
                ("400", "413", "503", *ADMIN),
                body=_body(CORRECTION),
                tag="register",
            )
        },
        "/attendance/corrections/undo": {
            "post": _operation(
                "Take back the correction in force",
                {"201": _json(_ref("Corrected"), "Undone")},
                ("400", "413", "503", *ADMIN),
                body=_body(UNDO),
                tag="register",
            )
        },
        "/attendance/corrections/days": {
            "post": _operation(
                "Correct a student's unmarked class periods over days (default: Excused)",
                {
                    "200": _json(_ref("BulkCorrected"), "Nothing to change"),
                    "201": _json(_ref("BulkCorrected"), "Corrected"),
                },
                ("400", "413", "503", *ADMIN),
                body=_body(CORRECT_DAYS),
                tag="register",
            )
        },
        "/attendance/corrections/period": {
            "post": _operation(
                "Correct every unmarked student of one class period (default: Present)",
                {
                    "200": _json(_ref("BulkCorrected"), "Nothing to change"),
                    "201": _json(_ref("BulkCorrected"), "Corrected"),
                },
                ("400", "413", "503", *ADMIN),
                body=_body(CORRECT_PERIOD),
                tag="register",
            )
        },
        "/export.csv": {
            "get": _operation(
                "The register of a range as CSV",
                _file("text/csv", "One row per student per class period"),
                ("400", "503", *ADMIN),
                parameters=RANGE,
                tag="register",
            )
        },
        "/export.xlsx": {
            "get": _operation(
                "The register of a range as a workbook (Register and Days sheets)",
                _file(
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    "The workbook",
                ),
                ("400", "503", *ADMIN),
                parameters=RANGE,
                tag="register",
            )
        },
        "/students": {
            "get": _operation(
                "Every student of the registry",
                {"200": _json(_ref("Students"), "The students")},
                ("503", *ADMIN),
                tag="students",
            ),
            "post": _operation(
                "Add a student (joined today) and their empty dataset folder",
                {"201": _json(_ref("StudentAnswer"), "Added")},
                ("400", "409", "413", "503", *ADMIN),
                body=_body(NEW_STUDENT),
                tag="students",
            ),
        },
        "/students/{name}": {
            "parameters": [STUDENT_NAME],
            "patch": _operation(
                "Change a student (a new name renames them everywhere)",
                {"200": _json(_ref("StudentAnswer"), "Changed")},
                ("400", "404", "409", "413", "503", *ADMIN),
                body=_body(CHANGE_STUDENT),
                tag="students",
            ),
            "delete": _operation(
                "Erase the student and every record of them (cannot be undone)",
                {"200": _json(_ref("Erased"), "Erased")},
                ("404", "503", *ADMIN),
                tag="students",
            ),
        },
        "/students/{name}/photos": {
            "parameters": [STUDENT_NAME],
            "post": _operation(
                "Add photos: each enrolled (recognised at once) or refused with its checks",
                {"201": _json(_ref("Photos"), "One result per photo, in the order sent")},
                ("400", "404", "409", "413", "503", *ADMIN),
                body=_body(
                    _obj(("image",), image=IMAGES),
                    "multipart/form-data",
                    encoding={"image": {"contentType": "image/jpeg, image/png"}},
                ),
                tag="students",
            ),
        },
        "/students/{name}/consent": {
            "parameters": [STUDENT_NAME],
            "put": _operation(
                "Record consent to face recognition (refused/withdrawn deletes the photos)",
                {"200": _json(_ref("StudentAnswer"), "Recorded")},
                ("400", "404", "413", "503", *ADMIN),
                body=_body(CONSENT),
                tag="students",
            ),
        },
        "/students/{name}/export": {
            "parameters": [STUDENT_NAME],
            "get": _operation(
                "Everything held on the student, as a zip (a subject access request)",
                _file("application/zip", "record.json, photos/, review/, README.txt"),
                ("404", "503", *ADMIN),
                tag="students",
            ),
        },
    }


def _version() -> str:
    try:
        return version("smart-attendance")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0"


def document() -> dict[str, Any]:
    """The OpenAPI document of the JSON API."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Smart Attendance",
            "version": _version(),
            "description": "Face-recognition attendance: the camera's and the register's API. "
            f"Every operation but /health and /openapi.json needs the {KEY_HEADER} header. "
            'Every error is JSON {"status": WHY, "error": "plain words"}. '
            "docs/api.md says the same with examples.",
        },
        "security": [{"apiKey": []}],
        "tags": [
            {"name": "camera", "description": "Door cameras: faces and badges"},
            {"name": "register", "description": "Attendance, corrections, exports, reports"},
            {"name": "students", "description": "The registry: students, photos, consent"},
            {"name": "server", "description": "Readiness and this document"},
        ],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": KEY_HEADER,
                    "description": "API_SECRET_KEY (every route), or a camera key "
                    "(POST /recognize, POST /checkin and GET /liveness/challenge only)",
                }
            },
            "schemas": SCHEMAS,
            "responses": RESPONSES,
        },
    }
