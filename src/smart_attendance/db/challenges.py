"""The queries of liveness challenges (``ATTENDANCE_REQUIRE_LIVENESS=challenge``), mixed into
``Store``: the one-use nonces ``GET /liveness/challenge`` hands out, shared by every server.

A nonce is never stored: only its SHA-256 (unique), like a badge's token. Using one is a single
``UPDATE ... WHERE used_at IS NULL AND expires_at > now``: of two servers that get the same nonce
at once, exactly one sees its row change (PostgreSQL locks the row and re-checks the condition;
SQLite has one writer at a time); the other is told why it cannot have it. Rows are deleted an
hour after they expire, as new challenges are issued. Times are UTC without a zone, like the
rest of the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection

from ..models import NONCE_EXPIRED, NONCE_UNKNOWN, NONCE_USED
from .tables import liveness_challenges as challenges

# An expired row is kept this long, so a late scan is told "expired" (or "used") rather than
# "unknown"; then it is deleted.
KEEP_EXPIRED = timedelta(hours=1)


@dataclass(frozen=True)
class UsedChallenge:
    """The outcome of using a nonce: its ``actions`` when it was valid (and is now used up),
    else ``refused``: ``nonce_unknown``, ``nonce_expired`` or ``nonce_used``."""

    actions: tuple[str, ...] = ()
    refused: str | None = None


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
    ) -> None:
        """Store a new challenge (its nonce's SHA-256 ``digest``), and delete the rows that
        expired more than ``KEEP_EXPIRED`` ago."""
        with self._begin() as conn:
            conn.execute(
                delete(challenges).where(challenges.c.expires_at < issued_at - KEEP_EXPIRED)
            )
            conn.execute(
                challenges.insert().values(
                    nonce_sha256=digest,
                    camera=camera[:64],
                    key_name=key_name[:64],
                    actions=",".join(actions),
                    issued_at=issued_at,
                    expires_at=expires_at,
                    used_at=None,
                )
            )

    def use_challenge(
        self, digest: str, camera: str, key_name: str, now: datetime
    ) -> UsedChallenge:
        """Use the challenge whose nonce has this SHA-256, for a scan from ``camera`` sent
        with the key ``key_name``: once, before it expires, by the camera and key it was
        issued to (another camera's or key's nonce is ``nonce_unknown``: it is not theirs).
        Atomic across servers."""
        mine = (
            challenges.c.nonce_sha256 == digest,
            challenges.c.camera == camera,
            challenges.c.key_name == key_name,
        )
        with self._begin() as conn:
            done = conn.execute(
                update(challenges)
                .where(*mine, challenges.c.used_at.is_(None), challenges.c.expires_at > now)
                .values(used_at=now)
            )
            row = conn.execute(
                select(challenges.c.actions, challenges.c.used_at, challenges.c.expires_at).where(
                    *mine
                )
            ).first()
        if row is None:
            return UsedChallenge(refused=NONCE_UNKNOWN)
        if done.rowcount == 1:
            return UsedChallenge(tuple(a for a in row.actions.split(",") if a))
        if row.used_at is not None:
            return UsedChallenge(refused=NONCE_USED)
        return UsedChallenge(refused=NONCE_EXPIRED)

    def challenge_count(self) -> int:
        """How many challenges are stored (used, expired or waiting)."""
        with self._begin() as conn:
            return int(conn.execute(select(func.count()).select_from(challenges)).scalar() or 0)
