"""Present or Late, when a scan was seen, and whether its mark arrived late: pure functions
of times and settings.

A client's capture time (``captured_at``) is trusted only inside a window: at most
ATTENDANCE_CLOCK_WINDOW_HOURS old (hours: what the camera client's offline queue needs, never
days) and not in the future beyond ``MAX_CLIENT_AHEAD`` (a camera's clock a little fast). A
mark received more than ``ARRIVED_LATE_AFTER`` after its capture time *arrived late*: the
register, the exports and the reports say so, so a backdated scan is never silent.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo

from ..config import Settings
from ..errors import BadRequestError, CaptureTimeError
from ..models import STATUS_LATE, STATUS_PRESENT

MAX_CLIENT_AHEAD = timedelta(seconds=60)  # a camera's clock may run this far ahead
ARRIVED_LATE_AFTER = timedelta(minutes=10)  # received later than this after capture: shown


def punctuality(local_now: datetime, settings: Settings) -> str:
    """Present or Late for a first sighting at ``local_now`` (aware, in the class's zone)."""
    start = datetime.combine(local_now.date(), settings.class_start, tzinfo=local_now.tzinfo)
    late_after = start + timedelta(minutes=settings.late_after_minutes)
    return STATUS_LATE if local_now > late_after else STATUS_PRESENT


def parse_capture_time(captured_at: str) -> datetime:
    """A client's ISO 8601 capture time, with its offset (``BadRequestError`` otherwise)."""
    try:
        stamp = datetime.fromisoformat(captured_at.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequestError("captured_at must be an ISO 8601 time with its offset") from None
    if stamp.tzinfo is None:
        raise BadRequestError("captured_at needs a UTC offset, e.g. 2026-11-23T08:57:12Z")
    return stamp


def check_window(stamp: datetime, now: datetime, window_hours: int) -> None:
    """``CaptureTimeError`` unless ``stamp`` (aware) is at most ``window_hours`` before ``now``
    and not in the future (beyond ``MAX_CLIENT_AHEAD``)."""
    shown = stamp.isoformat(timespec="seconds")
    if stamp > now + MAX_CLIENT_AHEAD:
        raise CaptureTimeError(
            f"captured_at {shown} is in the future by the server's clock: check the camera's "
            "clock (NTP); the scan was not recorded"
        )
    if stamp < now - timedelta(hours=window_hours):
        raise CaptureTimeError(
            f"captured_at {shown} is more than {window_hours} hours old "
            "(ATTENDANCE_CLOCK_WINDOW_HOURS): the scan was not recorded; correct the register "
            "by hand if the student was there"
        )


def arrival_delay(
    seen_at: datetime, received_at: datetime | None, zone: tzinfo
) -> timedelta | None:
    """How long after it was seen (``seen_at``: local wall time in ``zone``, as stored) a
    mark reached the server (``received_at``: UTC, as stored); None when not recorded."""
    if received_at is None:
        return None
    seen = seen_at.replace(tzinfo=zone) if seen_at.tzinfo is None else seen_at
    received = (
        received_at.replace(tzinfo=timezone.utc) if received_at.tzinfo is None else received_at
    )
    return received - seen


def arrived_late(seen_at: datetime, received_at: datetime | None, zone: tzinfo) -> bool:
    """True when the mark reached the server more than ``ARRIVED_LATE_AFTER`` after it was
    seen (a queued scan sent long after, or a capture time set back)."""
    delay = arrival_delay(seen_at, received_at, zone)
    return delay is not None and delay > ARRIVED_LATE_AFTER
