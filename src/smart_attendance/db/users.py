"""The queries of the dashboard's accounts and of login throttling, mixed into ``Store``.

Failed logins are rows of the database, not a process's memory, so every server behind a load
balancer counts the same attempts.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from .audit import AuditRow, insert_audit
from .tables import ended_sessions, login_failures, users


@dataclass(frozen=True)
class UserRow:
    """A dashboard account. ``classes``: a teacher's classes (ignored for other roles)."""

    name: str
    role: str
    password_hash: str
    classes: tuple[str, ...] = ()
    active: bool = True
    created_at: datetime = datetime(1970, 1, 1)
    password_changed_at: datetime = datetime(1970, 1, 1)


class UserQueries:
    def _begin(self) -> AbstractContextManager[Connection]:  # provided by Store
        raise NotImplementedError

    def users(self) -> list[UserRow]:
        with self._begin() as conn:
            rows = conn.execute(select(users).order_by(users.c.name)).all()
        return [_user(r) for r in rows]

    def user(self, name: str) -> UserRow | None:
        with self._begin() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
        return _user(row) if row else None

    def count_admins(self) -> int:
        with self._begin() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(users)
                    .where(users.c.role == "admin", users.c.active.is_(True))
                ).scalar_one()
            )

    def add_user(self, row: UserRow, audit_row: AuditRow | None = None) -> bool:
        """Insert an account, with the audit entry that records it (``audit_row``) in the same
        transaction; False (and neither written) if the name is taken."""
        try:
            with self._begin() as conn:
                if audit_row is not None:
                    insert_audit(conn, audit_row)
                conn.execute(
                    users.insert().values(
                        name=row.name,
                        role=row.role,
                        classes=",".join(row.classes),
                        password_hash=row.password_hash,
                        active=row.active,
                        created_at=row.created_at,
                        password_changed_at=row.password_changed_at,
                    )
                )
        except IntegrityError:
            return False
        return True

    def update_user(self, row: UserRow, audit_row: AuditRow | None = None) -> None:
        """Write the account ``row``, with the audit entry that records the change
        (``audit_row``) in the same transaction."""
        with self._begin() as conn:
            if audit_row is not None:
                insert_audit(conn, audit_row)
            conn.execute(
                update(users)
                .where(users.c.name == row.name)
                .values(
                    role=row.role,
                    classes=",".join(row.classes),
                    password_hash=row.password_hash,
                    active=row.active,
                    password_changed_at=row.password_changed_at,
                )
            )

    # --- throttling ---------------------------------------------------------------------------

    def record_login_failure(self, username: str, address: str, at: datetime) -> None:
        with self._begin() as conn:
            conn.execute(
                login_failures.insert().values(username=username[:64], address=address[:64], at=at)
            )

    def login_failures_since(
        self, since: datetime, username: str, address: str
    ) -> tuple[list[datetime], list[datetime]]:
        """The times of failed logins since ``since``: (for this account from this address,
        from this address for any account), oldest first."""
        with self._begin() as conn:
            rows = conn.execute(
                select(login_failures.c.username, login_failures.c.address, login_failures.c.at)
                .where(
                    login_failures.c.at >= since,
                    or_(
                        login_failures.c.address == address[:64],
                        login_failures.c.username == username[:64],
                    ),
                )
                .order_by(login_failures.c.at)
            ).all()
        pair = [r.at for r in rows if r.username == username[:64] and r.address == address[:64]]
        by_address = [r.at for r in rows if r.address == address[:64]]
        return pair, by_address

    def clear_login_failures(self, username: str, address: str, before: datetime) -> None:
        """Forget this pair's failures (a successful login) and everyone's before ``before``."""
        with self._begin() as conn:
            conn.execute(
                delete(login_failures).where(
                    or_(
                        login_failures.c.at < before,
                        (login_failures.c.username == username[:64])
                        & (login_failures.c.address == address[:64]),
                    )
                )
            )

    # --- sessions signed out ------------------------------------------------------------------

    def end_session(self, digest: str, at: datetime, expires_at: datetime) -> None:
        """Keep the session ``digest`` (its id's SHA-256) as ended until ``expires_at``, when
        it would have ended anyway; rows past their time are forgotten here."""
        try:
            with self._begin() as conn:
                conn.execute(delete(ended_sessions).where(ended_sessions.c.expires_at < at))
                conn.execute(
                    ended_sessions.insert().values(
                        session_sha256=digest, ended_at=at, expires_at=expires_at
                    )
                )
        except IntegrityError:  # ended already (signed out twice, or on two servers at once)
            pass

    def session_ended(self, digest: str) -> bool:
        with self._begin() as conn:
            row = conn.execute(
                select(ended_sessions.c.session_sha256).where(
                    ended_sessions.c.session_sha256 == digest
                )
            ).first()
        return row is not None


def _user(row: Any) -> UserRow:
    classes = tuple(c for c in (row.classes or "").split(",") if c)
    return UserRow(
        row.name,
        row.role,
        row.password_hash,
        classes,
        bool(row.active),
        row.created_at,
        row.password_changed_at,
    )
