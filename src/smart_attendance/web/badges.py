"""Badge check-in: a camera that read a printed card (``people/badges.py``) checks its student
in. Needs the ``X-API-KEY`` header (checked by ``create_app``), like ``/recognize``.

* ``POST /checkin``  JSON ``{"badge": TOKEN, "camera"?, "event_id"?, "captured_at"?}``: the
  student marked as a recognised face would be (the same answer as ``/recognize``, no
  ``faces``); a badge that checks nobody in is a 403 whose ``status`` says why
  (``badge_unknown``, ``badge_revoked``, ``badge_inactive``), which the client shows.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request

from ..app import Services
from ..attendance.scan import check_camera, check_event_id
from ..errors import BadgeRefusedError, BadRequestError
from . import acting_camera

FIELDS = frozenset({"badge", "camera", "event_id", "captured_at"})
MAX_FIELD = 200


def _body() -> dict[str, str | None]:
    body = request.get_json(silent=True) if request.is_json else None
    if not isinstance(body, dict):
        raise BadRequestError("send a JSON object (Content-Type: application/json)")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise BadRequestError(
            f"unknown field {unknown[0][:40]!r} (fields: {', '.join(sorted(FIELDS))})"
        )
    fields: dict[str, str | None] = {}
    for name in FIELDS:
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_FIELD):
            raise BadRequestError(f"{name} must be a text of at most {MAX_FIELD} characters")
        fields[name] = value
    if not fields["badge"]:
        raise BadRequestError("send the badge's text as the field 'badge'")
    return fields


def blueprint(services: Services) -> Blueprint:
    routes = Blueprint("badges", __name__)

    @routes.post("/checkin")
    def checkin() -> Any:
        fields = _body()
        camera = check_camera(acting_camera(fields["camera"] or request.headers.get("X-Camera-Id")))
        event_id = check_event_id(fields["event_id"] or request.headers.get("X-Event-Id"))
        try:
            result = services.badges.check_in(
                fields["badge"] or "",
                camera,
                event_id,
                fields["captured_at"],
                key_name=g.get("key_name", ""),
            )
        except BadgeRefusedError as exc:  # the reason is the status, for the camera's card
            return jsonify({"status": exc.reason, "error": str(exc)}), 403
        return jsonify(result.to_json())

    return routes
