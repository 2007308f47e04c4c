"""``CameraKeyService``: the API's keys. The master key (``API_SECRET_KEY``) opens every route;
a camera key opens the camera's routes only, so a stolen camera is revoked alone.

A camera key is ``secrets.token_urlsafe(32)`` (256 bits), shown once by ``add`` and kept as its
SHA-256 only (``camera_keys``); ``revoke`` makes it open nothing, on every server at once. A
mark keeps the name of the camera key that made it (``marks.key_name``; "" for the master key).

Wrong keys are throttled per address, in the database (every server counts the same
attempts): once ``failures_per_minute`` wrong or missing keys came from one address within
``WINDOW``, ``throttled`` says how long that address's wrong keys wait, until the oldest of them
ages out. A valid key is never throttled: a guesser sharing a camera's address (a school NAT, a
proxy without ``ATTENDANCE_PROXY_HOPS``) cannot lock the camera out.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from ..db.keys import CameraKeyRow
from ..db.store import Store
from ..errors import BadRequestError, ConflictError, NotFoundError, StoreError
from ..models import Clock

log = logging.getLogger(__name__)

ADMIN, CAMERA = "admin", "camera"
KEY_BYTES = 32  # secrets.token_urlsafe(32): 43 characters
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_KEY = 256  # a longer header is no key of ours (and is not hashed)
WINDOW = timedelta(minutes=1)  # wrong keys are counted over the last minute
TOUCH_EVERY = timedelta(minutes=1)  # a key's last use is written at most once a minute


class Trail(Protocol):
    """The audit log (``privacy.audit.AuditLog``)."""

    def record(self, actor: str, action: str, subject: str = "", detail: str = "") -> None: ...


@dataclass(frozen=True)
class NewCameraKey:
    """A key just made: ``key`` exists here and on the camera only."""

    name: str
    key: str = field(repr=False)
    created_at: datetime = datetime(1970, 1, 1)


@dataclass(frozen=True)
class KeyHolder:
    """Who sent a request: the master key (``admin``) or the camera key ``name``."""

    role: str
    name: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


MASTER = KeyHolder(ADMIN)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def check_key_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise BadRequestError(
            "a camera key's name is 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return name


class CameraKeyService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        master_key: str,
        failures_per_minute: int,
        audit: Trail | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self._master = master_key.encode("utf-8")
        self.failures_per_minute = failures_per_minute
        self.audit = audit
        # The digests of the camera keys this process knows to be valid (``known``): read at
        # the first ``check`` (and by ``load_known`` at start), kept in step by ``check``,
        # ``add`` and ``revoke``.
        self._known: set[str] | None = None
        self._known_lock = threading.Lock()

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(tzinfo=None)

    def _record(self, actor: str, detail: str) -> None:
        if self.audit is not None:
            self.audit.record(actor, "settings", "", detail)

    # --- camera keys ----------------------------------------------------------------------------

    def add(self, name: str, actor: str = "server") -> NewCameraKey:
        """A new key for the camera ``name``; the only time the key itself is seen."""
        name = check_key_name(name)
        key = secrets.token_urlsafe(KEY_BYTES)
        row = self.store.add_camera_key(name, digest(key), self._now())
        if row is None:
            raise ConflictError(
                f"a camera key named {name} exists already (a revoked key keeps its name: "
                f"choose another, such as {name}-2)"
            )
        log.info("camera key %s added", name)
        self._remember(digest(key), True)
        self._record(actor, f"camera key {name} added")
        return NewCameraKey(name, key, row.created_at)

    def camera_keys(self) -> list[CameraKeyRow]:
        """Every camera key (revoked ones too), by name."""
        return self.store.camera_keys()

    def revoke(self, name: str, actor: str = "server") -> CameraKeyRow:
        """Revoke the key ``name``: from its next request on, on every server, it opens
        nothing (revoking it again changes nothing)."""
        row = self.store.revoke_camera_key(name, self._now())
        if row is None:
            raise NotFoundError(f"no camera key named {name[:64]!r}")
        log.info("camera key %s revoked", name)
        self._known = None  # the revoked key's digest is not kept here: read them again
        self._reload()
        self._record(actor, f"camera key {name} revoked")
        return row

    def check(self, key: str) -> KeyHolder | None:
        """Who holds ``key``: the master key (compared in constant time), a camera key that
        is not revoked (looked up by its SHA-256), else None."""
        if not key or len(key) > MAX_KEY:
            return None
        if self._master and hmac.compare_digest(
            key.encode("utf-8", "surrogateescape"), self._master
        ):
            return MASTER
        if self._known is None:
            self._reload()
        hashed = digest(key)
        row = self.store.camera_key_by_digest(hashed)
        if row is None or not row.valid:
            self._remember(hashed, False)
            return None
        self._remember(hashed, True)
        now = self._now()
        if row.last_used_at is None or row.last_used_at < now - TOUCH_EVERY:
            self.store.touch_camera_key(row.name, now, now - TOUCH_EVERY)
        return KeyHolder(CAMERA, row.name)

    def known(self, key: str) -> bool:
        """Whether ``key`` is the master key or a camera key this process knows to be valid,
        without asking the database (the server asks it before reading a request's body, in
        its event loop). False for a key added on another server since this one read the
        keys, until ``check`` has seen it once; True for a key revoked on another server until
        ``check`` has refused it once (``check`` stays the answer)."""
        if not key or len(key) > MAX_KEY:
            return False
        if self._master and hmac.compare_digest(
            key.encode("utf-8", "surrogateescape"), self._master
        ):
            return True
        known = self._known
        return known is not None and digest(key) in known

    def load_known(self) -> None:
        """Read the valid camera keys for ``known`` now (the server, before it listens)."""
        self._reload()

    def _reload(self) -> None:
        """Read the valid camera keys' digests for ``known`` (in a request's thread, which may
        wait for the database; a failure is tried again at the next ``check``)."""
        try:
            digests = self.store.valid_camera_key_digests()
        except StoreError as exc:
            log.warning("the camera keys could not be read: %s", exc)
            return
        with self._known_lock:
            self._known = digests

    def _remember(self, hashed: str, valid: bool) -> None:
        with self._known_lock:
            if self._known is None or (hashed in self._known) == valid:
                return
            known = set(self._known)  # readers in the event loop see one set or the other
            if valid:
                known.add(hashed)
            else:
                known.discard(hashed)
            self._known = known

    # --- wrong keys -----------------------------------------------------------------------------

    def throttled(self, address: str) -> int | None:
        """Seconds ``address`` waits before its wrong keys are answered 401 again (None: it may
        try). Asked only about a key that ``check`` refused."""
        now = self._now()
        failures = self.store.key_failures_since(address, now - WINDOW)
        limit = self.failures_per_minute
        if len(failures) < limit:
            return None
        oldest = failures[len(failures) - limit]
        return max(1, math.ceil((oldest + WINDOW - now).total_seconds()))

    def refused(self, address: str) -> None:
        """Keep a wrong or missing key from ``address`` (the key itself is never kept)."""
        now = self._now()
        self.store.record_key_failure(address, now, now - WINDOW)
