"""Present or Late, and when a scan was seen: pure functions of times and settings."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..config import Settings
from ..errors import BadRequestError
from ..models import STATUS_LATE, STATUS_PRESENT

MAX_CLIENT_AGE = timedelta(days=7)
MAX_CLIENT_AHEAD = timedelta(seconds=60)


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


def plausible(stamp: datetime, now: datetime) -> bool:
    """A capture time is used only if it is not in the future and at most 7 days old."""
    return now - MAX_CLIENT_AGE <= stamp <= now + MAX_CLIENT_AHEAD
