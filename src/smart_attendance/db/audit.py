"""An audit entry to write, and the one insert that writes it: in its own transaction
(``PrivacyQueries.record_audit``) or in the transaction of the change it records (a
correction, an account), so that the change and its entry are kept together or not at all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from .tables import audit


@dataclass(frozen=True)
class AuditRow:
    at: datetime  # UTC, naive
    actor: str  # user:NAME | cli:USER | api | camera:ID | server
    action: str  # one of privacy.audit.ACTIONS
    subject: str = ""  # a student, class:NAME, user:NAME, or nothing
    detail: str = ""


def insert_audit(conn: Connection, row: AuditRow) -> None:
    conn.execute(
        audit.insert().values(
            at=row.at,
            actor=row.actor[:128],
            action=row.action[:32],
            subject=row.subject[:255],
            detail=row.detail[:512],
        )
    )
