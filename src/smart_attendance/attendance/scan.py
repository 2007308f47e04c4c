"""``ScanService``: one scan (``POST /recognize``) from its request fields to the register.

Checks the fields, asks the recognition service who is in the frames, marks them with the
attendance service, counts unknown faces for the intruder service, queues uncertain faces (left
unknown although a student was near) for review, and brings the CSV files up to date. Answers a
typed ``Recognition``; the web app turns it into the original's JSON, where an uncertain face
is unknown like any other (its candidate is never answered).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..engine import imaging
from ..errors import BadRequestError
from ..models import LIVENESS_FAILED, RECOGNISED, UNKNOWN, Recognition
from ..people.service import EnrolmentService
from ..recognition.service import RecognitionService
from .files import CsvFiles
from .intruders import IntruderService
from .marks import AttendanceService
from .review import ReviewService

CAMERA_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
EVENT_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
MAX_BURST = 60
DEFAULT_FPS = 25.0


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
    ) -> Recognition:
        """Recognise every face in the frames, mark known students, watch for intruders
        (``key_name``: the camera key that sent the scan, kept with its marks).

        Several frames are a burst in time order (``fps`` frames a second, default 25); with
        ``ATTENDANCE_REQUIRE_LIVENESS`` only students whose face blinks in the burst are marked.
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
        sighting = self.recognition.look(frames, self.enrolment.current(), fps)
        if sighting.uncertain:
            self.review.record(camera, seen_at, frames[sighting.best], sighting.uncertain)
        if sighting.status == UNKNOWN:
            if sighting.reason == "unknown_face" and sighting.stranger:
                self.intruders.unknown(camera, frames[sighting.best], sighting.strangers)
            return Recognition(UNKNOWN, sighting.faces, reason=sighting.reason)
        self.intruders.known(camera)
        if sighting.status == LIVENESS_FAILED:
            return Recognition(LIVENESS_FAILED, sighting.faces, reason=sighting.reason)
        marks = self.attendance.mark(
            sighting.names, seen_at, camera, event_id, key_name=key_name, received_at=received_at
        )
        if any(mark.new for mark in marks):
            self.files.update(seen_at.date())
        return Recognition(RECOGNISED, sighting.faces, tuple(marks))
