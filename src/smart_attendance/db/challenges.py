"""The queries of liveness challenges (``ATTENDANCE_REQUIRE_LIVENESS=challenge``), mixed into
``Store``: the one-use nonces ``GET /liveness/challenge`` hands out, shared by every server.

A nonce is never stored: only its SHA-256 (unique), like a badge's token. Using one is a single
``UPDATE ... WHERE used_at IS NULL AND expires_at > now`` and no newer challenge of the camera:
of two servers that get the same nonce at once, exactly one sees its row change (PostgreSQL
locks the row and re-checks the condition; SQLite has one writer at a time); the other is told
why it cannot have it. Rows are deleted an hour after they expire, as new challenges are
issued. Times are UTC without a zone, like the rest of the store.

One challenge per camera is outstanding: a new one replaces the camera's last (whose nonce is
then ``nonce_replaced``), and while that one was still unused and unexpired the new one keeps
its actions under a new nonce, so that asking again draws nothing easier; the actions are drawn
anew once the last challenge was used or expired. Each key may have ``CHALLENGES_PER_MINUTE``
challenges issued per camera in any minute, across servers (``RateLimitedError`` beyond).

Liveness failures are counted per camera and day in the ``meta`` table (key
``liveness_failures:YYYYMMDD:CAMERA``), kept ``KEEP_FAILURE_DAYS`` days.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Integer, String, and_, delete, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..errors import RateLimitedError, StoreError
from ..models import NONCE_EXPIRED, NONCE_REPLACED, NONCE_UNKNOWN, NONCE_USED
from .tables import liveness_challenges as challenges
from .tables import meta

# An expired row is kept this long, so a late scan is told "expired" (or "used") rather than
# "unknown"; then it is deleted.
KEEP_EXPIRED = timedelta(hours=1)
# Challenges one key may have issued for one camera in any minute: a door serves a student
# every few seconds at most; a key drawing faster is looking for an easy challenge.
CHALLENGES_PER_MINUTE = 30
RATE_WINDOW = timedelta(minutes=1)
# Liveness failures per camera and day: the meta table's keys (64 characters at most; a
# camera id longer than FAILURE_NAME_MAX is shortened with a hash of it).
FAILURES_PREFIX = "liveness_failures:"
FAILURE_NAME_MAX = 37
KEEP_FAILURE_DAYS = 90


def _failure_key(day: date, camera: str) -> str:
    if len(camera) > FAILURE_NAME_MAX:
        digest = hashlib.sha256(camera.encode()).hexdigest()[:8]
        camera = camera[: FAILURE_NAME_MAX - 9] + "~" + digest
    return f"{FAILURES_PREFIX}{day:%Y%m%d}:{camera}"


@dataclass(frozen=True)
class UsedChallenge:
    """The outcome of using a nonce: its ``actions`` when it was valid (and is now used up),
    else ``refused``: ``nonce_unknown``, ``nonce_expired`` or ``nonce_used``."""

    actions: tuple[str, ...] = ()
    refused: str | None = None
    issued_at: datetime | None = None  # UTC, when it was issued (valid ones only)


@dataclass(frozen=True)
class LivenessFailures:
    """A camera's liveness failures on one day (the camera as counted: a very long id is
    shortened)."""

    camera: str
    day: date
    count: int


class ChallengeQueries:
    def _begin(self) -> AbstractContextManager[Connection]:  # provided by Store
        raise NotImplementedError

    def issue_challenge(
        self,
        digest: str,
        camera: str,
        key_name: str,
        actions: Sequence[str],
        issued_at: datetime,
        expires_at: datetime,
        per_minute: int = CHALLENGES_PER_MINUTE,
    ) -> tuple[str, ...]:
        """Store a new challenge (its nonce's SHA-256 ``digest``) for ``camera``, replacing the
        camera's last one, and answer its actions: ``actions`` (freshly drawn), or those of
        the camera's last challenge while it is unused and unexpired. Refused
        (``RateLimitedError``) when the key ``key_name`` had ``per_minute`` challenges issued
        for this camera in the last minute. Deletes the rows that expired more than
        ``KEEP_EXPIRED`` ago."""
        camera, key_name = camera[:64], key_name[:64]
        c = challenges.c
        with self._begin() as conn:
            conn.execute(delete(challenges).where(c.expires_at < issued_at - KEEP_EXPIRED))
            recent = conn.execute(
                select(func.count(), func.min(c.issued_at)).where(
                    c.camera == camera,
                    c.key_name == key_name,
                    c.issued_at > issued_at - RATE_WINDOW,
                )
            ).one()
            if recent[0] >= per_minute:
                free_at = recent[1] + RATE_WINDOW
                wait = max(1, math.ceil((free_at - issued_at).total_seconds()))
                raise RateLimitedError(
                    f"too many challenges for camera {camera}: at most {per_minute} a minute; "
                    f"try again in {wait} s",
                    wait,
                )
            last = conn.execute(
                select(c.actions, c.used_at, c.expires_at)
                .where(c.camera == camera)
                .order_by(c.id.desc())
                .limit(1)
            ).first()
            if last is not None and last.used_at is None and last.expires_at > issued_at:
                kept = tuple(a for a in last.actions.split(",") if a)
                actions = kept or tuple(actions)
            conn.execute(
                challenges.insert().values(
                    nonce_sha256=digest,
                    camera=camera,
                    key_name=key_name,
                    actions=",".join(actions),
                    issued_at=issued_at,
                    expires_at=expires_at,
                    used_at=None,
                )
            )
        return tuple(actions)

    def use_challenge(
        self, digest: str, camera: str, key_name: str, now: datetime
    ) -> UsedChallenge:
        """Use the challenge whose nonce has this SHA-256, for a scan from ``camera`` sent
        with the key ``key_name``: once, before it expires, by the camera and key it was
        issued to (another camera's or key's nonce is ``nonce_unknown``: it is not theirs),
        while it is the camera's last challenge (else ``nonce_replaced``). Atomic across
        servers."""
        mine = (
            challenges.c.nonce_sha256 == digest,
            challenges.c.camera == camera,
            challenges.c.key_name == key_name,
        )
        newer = challenges.alias("newer")
        replaced = (
            select(newer.c.id)
            .where(newer.c.camera == challenges.c.camera, newer.c.id > challenges.c.id)
            .exists()
        )
        with self._begin() as conn:
            done = conn.execute(
                update(challenges)
                .where(
                    *mine,
                    challenges.c.used_at.is_(None),
                    challenges.c.expires_at > now,
                    ~replaced,
                )
                .values(used_at=now)
            )
            row = conn.execute(
                select(
                    challenges.c.actions,
                    challenges.c.used_at,
                    challenges.c.expires_at,
                    challenges.c.issued_at,
                    replaced.label("replaced"),
                ).where(*mine)
            ).first()
        if row is None:
            return UsedChallenge(refused=NONCE_UNKNOWN)
        if done.rowcount == 1:
            actions = tuple(a for a in row.actions.split(",") if a)
            return UsedChallenge(actions, issued_at=row.issued_at)
        if row.used_at is not None:
            return UsedChallenge(refused=NONCE_USED)
        if row.expires_at <= now:
            return UsedChallenge(refused=NONCE_EXPIRED)
        return UsedChallenge(refused=NONCE_REPLACED)

    def challenge_count(self) -> int:
        """How many challenges are stored (used, expired or waiting)."""
        with self._begin() as conn:
            return int(conn.execute(select(func.count()).select_from(challenges)).scalar() or 0)

    # --- liveness failures per camera ---------------------------------------------------------

    def count_liveness_failure(self, camera: str, day: date) -> int:
        """One more liveness failure of ``camera`` on ``day`` (the school's day); its count
        now. Forgets the counts of days more than ``KEEP_FAILURE_DAYS`` before."""
        key = _failure_key(day, camera)
        old = _failure_key(day - timedelta(days=KEEP_FAILURE_DAYS), "")
        for _attempt in range(3):
            try:
                with self._begin() as conn:
                    conn.execute(
                        delete(meta).where(and_(meta.c.key >= FAILURES_PREFIX, meta.c.key < old))
                    )
                    done = conn.execute(
                        update(meta)
                        .where(meta.c.key == key)
                        .values(value=(meta.c.value.cast(Integer) + 1).cast(String))
                    )
                    if done.rowcount == 0:
                        conn.execute(meta.insert().values(key=key, value="1"))
                    value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
                return int(str(value))
            except IntegrityError:  # another server counted the first one at the same time
                continue
        raise StoreError(f"could not count a liveness failure of {camera}; please retry")

    def liveness_failures(self, first: date, last: date) -> list[LivenessFailures]:
        """The liveness failures counted per camera and day from ``first`` to ``last``, by
        day then camera."""
        low, high = _failure_key(first, ""), _failure_key(last + timedelta(days=1), "")
        with self._begin() as conn:
            rows = conn.execute(
                select(meta.c.key, meta.c.value)
                .where(meta.c.key >= low, meta.c.key < high)
                .order_by(meta.c.key)
            ).all()
        out = []
        for key, value in rows:
            stamp, _, camera = key[len(FAILURES_PREFIX) :].partition(":")
            try:
                day = datetime.strptime(stamp, "%Y%m%d").date()
                out.append(LivenessFailures(camera, day, int(value)))
            except ValueError:
                continue
        return out
