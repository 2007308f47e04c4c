"""``AccountService``: the dashboard's accounts (admin, teacher, office), their passwords
(Argon2id, argon2-cffi), logins throttled per account and address, and what each may see.

Roles:

* ``admin``: everything, settings and accounts included;
* ``office``: every class, read and correct, enrol students, review; no accounts or settings;
* ``teacher``: their own classes (``classes``): rosters, marks, corrections, reports, and the
  uncertain faces of their students.

Failed logins are rows of the database (every server counts the same attempts): five for one
account from one address within ``THROTTLE_WINDOW`` refuse further attempts for that pair,
the right password included, until the oldest of them ages out; twenty from one address, any
account, refuse that address's wrong passwords (429 instead of 401) but never a right one, so a
guesser behind the school's NAT does not lock out the teachers behind it. A login never says
which of name or password was wrong, and an unknown name costs the same time as a wrong
password. The server log names a failed sign-in by a short keyed hash of the name typed
(``name_tag``), never the name: it is sometimes a password typed in the wrong field.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..db.audit import AuditRow
from ..db.store import Store
from ..db.users import UserRow
from ..errors import BadRequestError, ConflictError, LoginError, NotFoundError, TooManyAttemptsError
from ..models import Clock

log = logging.getLogger(__name__)

ADMIN, TEACHER, OFFICE = "admin", "teacher", "office"
ROLES = (ADMIN, TEACHER, OFFICE)
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5  # for one account from one address, within the window
MAX_FAILURES_PER_ADDRESS = 20  # from one address, any account, within the window
SESSION_ID_BYTES = 32


def check_username(name: str) -> str:
    name = (name or "").strip()
    if not USERNAME_RE.match(name):
        raise BadRequestError(
            "a user name is 1-64 letters, digits, '.', '_', '@' or '-', starting with a "
            "letter or digit"
        )
    return name


def check_role(role: str) -> str:
    role = (role or "").strip().lower()
    if role not in ROLES:
        raise BadRequestError(f"role must be one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise BadRequestError(f"a password has at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise BadRequestError(f"a password has at most {MAX_PASSWORD} characters")
    return password


@dataclass(frozen=True)
class Access:
    """What one signed-in user may see and do. ``classes_of(student)``: the student's classes
    (timetable rosters and the registry's extra classes)."""

    user: UserRow
    classes_of: Callable[[str], Sequence[str]]

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def role(self) -> str:
        return self.user.role

    @property
    def is_admin(self) -> bool:
        return self.user.role == ADMIN

    @property
    def every_class(self) -> bool:
        return self.user.role in (ADMIN, OFFICE)

    @property
    def may_enrol(self) -> bool:
        return self.user.role in (ADMIN, OFFICE)

    @property
    def may_review_intruders(self) -> bool:
        return self.user.role in (ADMIN, OFFICE)

    def may_see_class(self, class_name: str) -> bool:
        return self.every_class or class_name in self.user.classes

    def may_see_student(self, student: str) -> bool:
        if self.every_class:
            return True
        return any(c in self.user.classes for c in self.classes_of(student))

    def visible_classes(self, names: Sequence[str]) -> list[str]:
        return [c for c in names if self.may_see_class(c)]

    @property
    def by(self) -> str:
        """How corrections made by this user are signed."""
        return f"user:{self.user.name}"


class AccountService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        known_class: Callable[[str], bool],
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.known_class = known_class
        self.hasher = hasher or PasswordHasher()
        self._dummy: str | None = None  # verified for unknown names, so they cost the same
        self._tag_key = secrets.token_bytes(16)  # for name_tag, new at each start

    def name_tag(self, name: str) -> str:
        """A short tag of a typed sign-in name for the log, never the name itself (people
        sometimes type their password there): a keyed hash whose key is new at each start, so
        that it tells repeated attempts at one name apart and cannot be reversed by guessing."""
        digest = hmac.new(self._tag_key, name.encode("utf-8", "surrogateescape"), "sha256")
        return digest.hexdigest()[:8]

    @property
    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self.hasher.hash("not a password of anybody")
        return self._dummy

    def _now(self) -> datetime:
        return self.clock().astimezone(timezone.utc).replace(tzinfo=None)

    def _classes(self, role: str, classes: Sequence[str]) -> tuple[str, ...]:
        wanted = tuple(dict.fromkeys(c.strip() for c in classes if c.strip()))
        if role != TEACHER:
            if wanted:
                raise BadRequestError("only a teacher has classes (admin and office see all)")
            return ()
        for name in wanted:
            if not self.known_class(name):
                raise BadRequestError(f"unknown class {name[:64]!r} (not in the timetable)")
        return wanted

    # --- accounts -----------------------------------------------------------------------------

    def users(self) -> list[UserRow]:
        return self.store.users()

    def user(self, name: str) -> UserRow:
        row = self.store.user(name)
        if row is None:
            raise NotFoundError(f"no user named {name[:64]!r}")
        return row

    def has_admin(self) -> bool:
        return self.store.count_admins() > 0

    def _audit(self, by: str, name: str, detail: str) -> AuditRow:
        """The audit entry of a change to the account ``name``, written with it."""
        return AuditRow(self._now(), by, "settings", f"user:{name}", detail)

    def add(
        self,
        name: str,
        role: str,
        password: str,
        classes: Sequence[str] = (),
        *,
        by: str = "server",
    ) -> UserRow:
        """Add an account; ``by`` (``user:NAME``, ``cli:USER``) is kept in the audit log."""
        name = check_username(name)
        role = check_role(role)
        now = self._now()
        row = UserRow(
            name,
            role,
            self.hasher.hash(check_password(password)),
            self._classes(role, classes),
            True,
            now,
            now,
        )
        classes_text = f": {', '.join(row.classes)}" if row.classes else ""
        if not self.store.add_user(row, self._audit(by, name, f"added ({role}{classes_text})")):
            raise ConflictError(f"a user named {name} already exists")
        log.info("user %s added (%s)", name, role)
        return row

    def set_password(self, name: str, password: str, *, by: str = "server") -> UserRow:
        """A new password; the user's sessions on every browser end."""
        row = replace(
            self.user(name),
            password_hash=self.hasher.hash(check_password(password)),
            password_changed_at=self._now(),
        )
        self.store.update_user(row, self._audit(by, name, "password changed"))
        log.info("password of user %s changed", name)
        return row

    def set_active(self, name: str, active: bool, *, by: str = "server") -> UserRow:
        """Disable (sessions end at once) or enable an account; the last admin stays."""
        row = self.user(name)
        if not active and row.role == ADMIN and row.active and self.store.count_admins() <= 1:
            raise ConflictError("this is the last admin; add another admin first")
        row = replace(row, active=active, password_changed_at=self._now())
        done = "enabled" if active else "disabled"
        self.store.update_user(row, self._audit(by, name, done))
        log.info("user %s %s", name, done)
        return row

    def set_classes(self, name: str, classes: Sequence[str], *, by: str = "server") -> UserRow:
        row = self.user(name)
        row = replace(row, classes=self._classes(row.role, classes))
        listed = ", ".join(row.classes) or "none"
        self.store.update_user(row, self._audit(by, name, f"classes: {listed}"))
        return row

    # --- logins -------------------------------------------------------------------------------

    def authenticate(self, name: str, password: str, address: str) -> UserRow:
        """The account for a name and password from ``address``; ``LoginError`` (the same for
        an unknown name, a wrong password and a disabled account) or ``TooManyAttemptsError``."""
        now = self._now()
        name = (name or "").strip()[:64]
        pair, by_address = self.store.login_failures_since(now - THROTTLE_WINDOW, name, address)
        if len(pair) >= MAX_FAILURES_PER_ACCOUNT:  # this account from this address: stop here
            log.warning("login throttled for one account from %s", address)
            raise self._too_many(pair, MAX_FAILURES_PER_ACCOUNT, now)
        row = self.store.user(name) if name else None
        if not self._verify(row.password_hash if row else self._dummy_hash, password):
            row = None
        if row is None or not row.active:
            self.store.record_login_failure(name, address, now)
            if len(by_address) >= MAX_FAILURES_PER_ADDRESS:
                # The address's ceiling holds back wrong passwords only: a colleague behind
                # the same school NAT who types the right one still gets in.
                log.warning("login throttled for address %s", address)
                raise self._too_many(by_address, MAX_FAILURES_PER_ADDRESS, now)
            log.warning("failed sign-in (name #%s) from %s", self.name_tag(name), address)
            raise LoginError("wrong user name or password")
        self.store.clear_login_failures(name, address, now - THROTTLE_WINDOW)
        if self.hasher.check_needs_rehash(row.password_hash):
            row = replace(row, password_hash=self.hasher.hash(password))
            self.store.update_user(row)
        return row

    @staticmethod
    def _too_many(failures: list[datetime], limit: int, now: datetime) -> TooManyAttemptsError:
        """The refusal once ``limit`` of ``failures`` are in the window: wait until the
        oldest that counts ages out."""
        oldest = failures[len(failures) - limit]
        wait = max(1, math.ceil((oldest + THROTTLE_WINDOW - now).total_seconds()))
        return TooManyAttemptsError(
            f"too many failed sign-ins; try again in {max(1, (wait + 59) // 60)} minute(s)", wait
        )

    def _verify(self, stored: str, password: str) -> bool:
        if len(password) > MAX_PASSWORD:
            return False
        try:
            return self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    # --- sessions -----------------------------------------------------------------------------

    @staticmethod
    def new_session_id() -> str:
        """A random id for a new session (kept in its signed cookie)."""
        return secrets.token_urlsafe(SESSION_ID_BYTES)

    def end_session(self, session_id: str, until: datetime) -> None:
        """Sign the session ``session_id`` out on every server: its cookie, even copied, opens
        nothing any more. Remembered until ``until`` (UTC), when it would have ended anyway."""
        until = until.astimezone(timezone.utc).replace(tzinfo=None)
        self.store.end_session(_session_digest(session_id), self._now(), until)

    def session_user(self, name: str, stamp: str, session_id: str) -> UserRow | None:
        """The account of a session: None when it was signed out, or the account disabled,
        removed, or its password changed after the session began (``stamp``)."""
        if not session_id or len(session_id) > 128:
            return None
        row = self.store.user(name)
        if row is None or not row.active or row.password_changed_at.isoformat() != stamp:
            return None
        if self.store.session_ended(_session_digest(session_id)):
            return None
        return row


def _session_digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).hexdigest()
