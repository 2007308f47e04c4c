"""The queries of the API's keys, mixed into ``Store``: the camera keys (one per door camera)
and the wrong keys that throttle an address.

A camera key is never stored: only its SHA-256 (unique), so the database cannot give a key
back. Wrong keys are rows of the database, not a process's memory, so every server behind a
load balancer counts the same attempts. Times are UTC without a zone, like the rest of the store.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from .tables import camera_keys, key_failures

ADDRESS_CHARS = 64  # key_failures.address


@dataclass(frozen=True)
class CameraKeyRow:
    """A camera's key (its hash is left out: nobody needs to read it back)."""

    name: str
    created_at: datetime  # UTC
    revoked_at: datetime | None = None  # UTC; set: the key opens nothing
    last_used_at: datetime | None = None  # UTC, to the minute or so

    @property
    def valid(self) -> bool:
        return self.revoked_at is None


class KeyQueries:
    def _begin(self) -> AbstractContextManager[Connection]:  # provided by Store
        raise NotImplementedError

    # --- camera keys ----------------------------------------------------------------------------

    def add_camera_key(self, name: str, digest: str, at: datetime) -> CameraKeyRow | None:
        """Store a new key (``digest``: its SHA-256); None when the name is taken (a revoked
        key keeps its name, so the marks it made stay unambiguous)."""
        try:
            with self._begin() as conn:
                conn.execute(
                    camera_keys.insert().values(name=name, key_sha256=digest, created_at=at)
                )
        except IntegrityError:
            return None
        return CameraKeyRow(name, at)

    def camera_keys(self) -> list[CameraKeyRow]:
        """Every camera key, revoked ones too, by name."""
        with self._begin() as conn:
            rows = conn.execute(select(camera_keys).order_by(camera_keys.c.name)).all()
        return [_key(r) for r in rows]

    def camera_key(self, name: str) -> CameraKeyRow | None:
        with self._begin() as conn:
            row = conn.execute(select(camera_keys).where(camera_keys.c.name == name)).first()
        return _key(row) if row else None

    def valid_camera_key_digests(self) -> set[str]:
        """The SHA-256 of every camera key that is not revoked."""
        with self._begin() as conn:
            rows = conn.execute(
                select(camera_keys.c.key_sha256).where(camera_keys.c.revoked_at.is_(None))
            ).all()
        return {r[0] for r in rows}

    def camera_key_by_digest(self, digest: str) -> CameraKeyRow | None:
        """The key whose SHA-256 is ``digest``, revoked or not."""
        with self._begin() as conn:
            row = conn.execute(
                select(camera_keys).where(camera_keys.c.key_sha256 == digest)
            ).first()
        return _key(row) if row else None

    def revoke_camera_key(self, name: str, at: datetime) -> CameraKeyRow | None:
        """Revoke the key ``name`` at ``at`` (a key revoked before keeps its time); the key,
        None when there is no such key."""
        with self._begin() as conn:
            conn.execute(
                update(camera_keys)
                .where(camera_keys.c.name == name, camera_keys.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            row = conn.execute(select(camera_keys).where(camera_keys.c.name == name)).first()
        return _key(row) if row else None

    def touch_camera_key(self, name: str, at: datetime, before: datetime) -> None:
        """Set the key's last use to ``at`` unless it was already used since ``before`` (one
        write a minute, whatever the number of servers)."""
        with self._begin() as conn:
            conn.execute(
                update(camera_keys)
                .where(
                    camera_keys.c.name == name,
                    or_(camera_keys.c.last_used_at.is_(None), camera_keys.c.last_used_at < before),
                )
                .values(last_used_at=at)
            )

    # --- wrong keys -----------------------------------------------------------------------------

    def record_key_failure(self, address: str, at: datetime, forget_before: datetime) -> None:
        """Keep a wrong key from ``address`` at ``at``; every address's failures older than
        ``forget_before`` are deleted (the table holds one throttling window at most)."""
        with self._begin() as conn:
            conn.execute(delete(key_failures).where(key_failures.c.at < forget_before))
            conn.execute(key_failures.insert().values(address=address[:ADDRESS_CHARS], at=at))

    def key_failures_since(self, address: str, since: datetime) -> list[datetime]:
        """The times of wrong keys from ``address`` since ``since``, oldest first."""
        with self._begin() as conn:
            rows = conn.execute(
                select(key_failures.c.at)
                .where(
                    key_failures.c.address == address[:ADDRESS_CHARS], key_failures.c.at >= since
                )
                .order_by(key_failures.c.at)
            ).all()
        return [r.at for r in rows]


def _key(row: Any) -> CameraKeyRow:
    return CameraKeyRow(row.name, row.created_at, row.revoked_at, row.last_used_at)
