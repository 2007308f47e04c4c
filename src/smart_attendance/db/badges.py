"""The queries of badge check-in (printed QR cards), mixed into ``Store``.

A card's token is never stored: only its SHA-256 (unique), so the database cannot print or
replay a card. Times are UTC without a zone, like the rest of the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from .tables import badges


@dataclass(frozen=True)
class BadgeRow:
    """A printed card (its token's hash is left out: nobody needs to read it back)."""

    id: int
    student: str
    issued_at: datetime  # UTC
    issued_by: str
    revoked_at: datetime | None = None  # UTC; set: the card checks nobody in

    @property
    def valid(self) -> bool:
        return self.revoked_at is None


class BadgeQueries:
    def _begin(self) -> AbstractContextManager[Connection]:  # provided by Store
        raise NotImplementedError

    def issue_badges(
        self, cards: Sequence[tuple[str, str]], at: datetime, by: str
    ) -> list[BadgeRow]:
        """Store new cards, ``(student, token_sha256)`` each, in one transaction: each
        student's earlier valid cards are revoked at ``at``. The new rows, in order."""
        issued = []
        with self._begin() as conn:
            for student, digest in cards:
                conn.execute(
                    update(badges)
                    .where(badges.c.student == student, badges.c.revoked_at.is_(None))
                    .values(revoked_at=at)
                )
                result = conn.execute(
                    badges.insert().values(
                        student=student, token_sha256=digest, issued_at=at, issued_by=by
                    )
                )
                (badge_id,) = result.inserted_primary_key or (0,)
                issued.append(BadgeRow(int(badge_id), student, at, by))
        return issued

    def badge_by_digest(self, digest: str) -> BadgeRow | None:
        """The card whose token has this SHA-256, revoked or not."""
        with self._begin() as conn:
            row = conn.execute(select(badges).where(badges.c.token_sha256 == digest)).first()
        return _badge(row) if row else None

    def revoke_badges(self, student: str, at: datetime) -> list[BadgeRow]:
        """Revoke the student's valid cards at ``at``; the cards revoked (none: nothing to do)."""
        with self._begin() as conn:
            rows = conn.execute(
                select(badges).where(badges.c.student == student, badges.c.revoked_at.is_(None))
            ).all()
            if rows:
                conn.execute(
                    update(badges)
                    .where(badges.c.id.in_([r.id for r in rows]))
                    .values(revoked_at=at)
                )
        return [BadgeRow(r.id, r.student, r.issued_at, r.issued_by, at) for r in rows]

    def badge_rows(self, student: str | None = None, revoked: bool = False) -> list[BadgeRow]:
        """The cards (of one student), by student then newest first; valid ones only unless
        ``revoked``."""
        query = select(badges)
        if student is not None:
            query = query.where(badges.c.student == student)
        if not revoked:
            query = query.where(badges.c.revoked_at.is_(None))
        with self._begin() as conn:
            rows = conn.execute(
                query.order_by(badges.c.student, badges.c.issued_at.desc(), badges.c.id.desc())
            ).all()
        return [_badge(r) for r in rows]


def _badge(row: Any) -> BadgeRow:
    return BadgeRow(row.id, row.student, row.issued_at, row.issued_by, row.revoked_at)
