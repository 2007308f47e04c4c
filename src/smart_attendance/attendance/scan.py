"""``ScanService``: one scan (``POST /recognize``) from its request fields to the register.

Checks the fields, asks the recognition service who is in the frames, marks them with the
attendance service, counts unknown faces for the intruder service, queues uncertain faces (left
unknown although a student was near) for review, and brings the CSV files up to date. Answers a
typed ``Recognition``; the web app turns it into the original's JSON, where an uncertain face
is unknown like any other (its candidate is never answered).

With ``ATTENDANCE_REQUIRE_LIVENESS=challenge`` it also hands out challenges (``challenge``: a
one-use nonce, stored hashed in the database, and random actions) and uses a scan's nonce up
before anything else: a scan without a valid one is ``liveness_failed`` and marks nobody.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta, timezone

from ..engine import imaging
from ..errors import BadRequestError
from ..models import (
    LIVENESS_FAILED,
    NONCE_MISSING,
    NONCE_UNKNOWN,
    RECOGNISED,
    UNKNOWN,
    LivenessChallenge,
    MarkResult,
    Recognition,
)
from ..people.service import EnrolmentService
from ..recognition.challenge import draw_actions
from ..recognition.service import RecognitionService
from .files import CsvFiles
from .intruders import IntruderService
from .marks import AttendanceService
from .review import ReviewService

CAMERA_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
EVENT_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
MAX_BURST = 60
DEFAULT_FPS = 25.0
NONCE_BYTES = 24  # secrets.token_urlsafe(24): 192 bits, 32 characters
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")  # a longer or odd one is none of ours


def check_camera(camera: str | None) -> str:
    camera = (camera or "default").strip() or "default"
    if not CAMERA_RE.match(camera):
        raise BadRequestError("camera id must be 1-64 letters, digits, '.', '_', ':' or '-'")
    return camera


def check_event_id(event_id: str | None) -> str | None:
    if event_id is None or event_id == "":
        return None
    if not EVENT_RE.match(event_id):
        raise BadRequestError("event id must be 1-100 letters, digits, '.', '_', ':' or '-'")
    return event_id


def check_fps(fps: float | None) -> float:
    if fps is None:
        return DEFAULT_FPS
    if not 1 <= fps <= 240:
        raise BadRequestError("fps must be a number from 1 to 240")
    return float(fps)


def nonce_digest(nonce: str) -> str:
    """What the database keeps of a nonce: its SHA-256."""
    return hashlib.sha256(nonce.encode("ascii")).hexdigest()


class ScanService:
    def __init__(
        self,
        enrolment: EnrolmentService,
        recognition: RecognitionService,
        attendance: AttendanceService,
        intruders: IntruderService,
        files: CsvFiles,
        review: ReviewService,
    ) -> None:
        self.enrolment = enrolment
        self.recognition = recognition
        self.attendance = attendance
        self.intruders = intruders
        self.files = files
        self.review = review

    def recognize(
        self,
        frames: Sequence[bytes],
        camera: str | None = None,
        event_id: str | None = None,
        fps: float | None = None,
        captured_at: str | None = None,
        key_name: str = "",
        nonce: str | None = None,
    ) -> Recognition:
        """Recognise every face in the frames, mark known students, watch for intruders
        (``key_name``: the camera key that sent the scan, kept with its marks).

        Several frames are a burst in time order (``fps`` frames a second, default 25); with
        ``ATTENDANCE_REQUIRE_LIVENESS`` only students whose face blinks in the burst are marked;
        in challenge mode, only with the ``nonce`` of a challenge issued to this camera and key
        (used up here, whatever the outcome), and only students who perform its actions.
        Uncertain faces of the best frame go to the review queue and do not count toward the
        intruder streak; queuing them never fails the scan.
        """
        camera = check_camera(camera)
        event_id = check_event_id(event_id)
        fps = check_fps(fps)
        received_at = self.attendance.clock()  # kept with the marks beside the capture time
        seen_at = self.attendance.seen_at(captured_at)  # out of the window: 422, nothing kept
        if not frames:
            raise BadRequestError("send at least one image")
        if len(frames) > MAX_BURST:
            raise BadRequestError(f"a burst has at most {MAX_BURST} frames")
        settings = self.attendance.settings  # the request's pixel budget, from headers only
        imaging.request_pixels(frames, settings.max_image_pixels, settings.max_request_pixels)
        actions: tuple[str, ...] = ()
        elapsed_s: float | None = None  # since the challenge was issued
        if self.recognition.liveness == "challenge":
            actions, elapsed_s, refused = self._use_nonce(nonce, camera, key_name)
            if refused:
                return self._failed(camera, Recognition(LIVENESS_FAILED, (), reason=refused))
        sighting = self.recognition.look(frames, self.enrolment.current(), fps, actions, elapsed_s)
        if sighting.uncertain:
            self.review.record(camera, seen_at, frames[sighting.best], sighting.uncertain)
        if sighting.status == UNKNOWN:
            if sighting.reason == "unknown_face" and sighting.stranger:
                self.intruders.unknown(camera, frames[sighting.best], sighting.strangers)
            return Recognition(UNKNOWN, sighting.faces, reason=sighting.reason)
        self.intruders.known(camera)
        if sighting.status == LIVENESS_FAILED:
            failed = Recognition(LIVENESS_FAILED, sighting.faces, reason=sighting.reason)
            return self._failed(camera, failed)
        marks = self.attendance.mark(
            sighting.names, seen_at, camera, event_id, key_name=key_name, received_at=received_at
        )
        if any(mark.new for mark in marks):
            self.files.update(seen_at.date())
        return Recognition(RECOGNISED, sighting.faces, self._with_display_names(marks))

    def _failed(self, camera: str, answer: Recognition) -> Recognition:
        """A liveness failure, counted for the camera on today's date (the dashboard's Admin
        page shows the counts)."""
        self.attendance.store.count_liveness_failure(camera, self.attendance.today())
        return answer

    def _with_display_names(self, marks: Sequence[MarkResult]) -> tuple[MarkResult, ...]:
        """The marks with the name to greet each student with (the registry's display name,
        else their name)."""
        names: dict[str, str] = {}
        for mark in marks:
            if mark.name not in names:
                row = self.attendance.store.student(mark.name)
                names[mark.name] = (row.display_name if row else "") or mark.name
        return tuple(replace(mark, display_name=names[mark.name]) for mark in marks)

    def challenge(self, camera: str | None, key_name: str = "") -> LivenessChallenge:
        """What a camera must do before its next scan (``GET /liveness/challenge``): in
        challenge mode a new nonce for ``camera`` and the key ``key_name``, valid
        ``ATTENDANCE_CHALLENGE_SECONDS`` for one scan, and its random actions; otherwise the
        mode alone (``blink`` or ``off``)."""
        if not (camera or "").strip():
            raise BadRequestError("say which camera asks: GET /liveness/challenge?camera=ID")
        camera = check_camera(camera)
        mode = self.recognition.liveness
        if mode != "challenge":
            return LivenessChallenge(mode)
        settings = self.attendance.settings
        nonce = secrets.token_urlsafe(NONCE_BYTES)
        issued = self.attendance.clock().astimezone(timezone.utc)
        expires = issued + timedelta(seconds=settings.challenge_seconds)
        # The camera's last challenge is replaced; its actions are kept while it was unused
        # and unexpired (asking again draws nothing easier); at most so many a minute.
        actions = self.attendance.store.issue_challenge(
            nonce_digest(nonce),
            camera,
            key_name,
            draw_actions(),
            issued.replace(tzinfo=None),
            expires.replace(tzinfo=None),
        )
        return LivenessChallenge(mode, nonce, actions, settings.challenge_seconds, expires)

    def _use_nonce(
        self, nonce: str | None, camera: str, key_name: str
    ) -> tuple[tuple[str, ...], float | None, str | None]:
        """The actions of the challenge ``nonce`` (used up now) and the seconds since it was
        issued, or why there are none: ``nonce_missing``, ``nonce_unknown``,
        ``nonce_expired``, ``nonce_used`` or ``nonce_replaced``."""
        nonce = (nonce or "").strip()
        if not nonce:
            return (), None, NONCE_MISSING
        if not NONCE_RE.match(nonce):
            return (), None, NONCE_UNKNOWN
        now = self.attendance.clock().astimezone(timezone.utc).replace(tzinfo=None)
        used = self.attendance.store.use_challenge(nonce_digest(nonce), camera, key_name, now)
        if used.refused:
            return (), None, used.refused
        if not used.actions:  # a row that lost its actions: nothing to check against
            return (), None, NONCE_UNKNOWN
        elapsed = (now - used.issued_at).total_seconds() if used.issued_at else None
        return used.actions, elapsed, None
