"""``ConsentService``: each student's consent to face recognition, with who recorded it, when,
and the signed form's reference.

States: ``none`` (nothing recorded: the default of every student), ``given``, ``refused`` and
``withdrawn``. With ``ATTENDANCE_REQUIRE_CONSENT=1`` only ``given`` students are enrolled
(``EnrolmentService.consent_rule``): the photos of everyone else are not read. Refusing or
withdrawing deletes the student's photos and descriptors at once (their marks stay: attendance
itself is not biometric). Every change is kept in ``consent_events`` and in the audit log, and
reaches every server through the gallery version (no restart).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC

from ..db.privacy import ConsentEvent
from ..db.store import Store
from ..errors import BadRequestError, NotFoundError
from ..models import Clock
from ..people.enrolment import enrolled_students
from ..people.service import EnrolmentService
from .audit import AuditLog

log = logging.getLogger(__name__)

GIVEN, REFUSED, WITHDRAWN = "given", "refused", "withdrawn"
STATES = (GIVEN, REFUSED, WITHDRAWN)
MAX_TEXT = 120


@dataclass(frozen=True)
class ConsentChange:
    student: str
    before: str
    after: str
    photos_deleted: int = 0
    registered: bool = False  # added to the registry now, from its dataset folder


def _clean(value: str, field: str, required: bool) -> str:
    text = " ".join(str(value or "").split())
    if required and not text:
        raise BadRequestError(f"{field} is required (who recorded it, and the form's reference)")
    if len(text) > MAX_TEXT:
        raise BadRequestError(f"{field} is longer than {MAX_TEXT} characters")
    return text


class ConsentService:
    def __init__(
        self, store: Store, enrolment: EnrolmentService, audit: AuditLog, clock: Clock
    ) -> None:
        self.store = store
        self.enrolment = enrolment
        self.audit = audit
        self.clock = clock

    def states(self) -> dict[str, str]:
        return self.store.consent_states()

    def history(self, name: str) -> list[ConsentEvent]:
        return self.store.consent_history(name)

    def everyone(self) -> list[str]:
        """Every student of the registry and of the dataset folder (added to the registry)."""
        folders = enrolled_students(self.enrolment.settings.dataset_dir)
        self.enrolment.ensure_students(folders)
        return sorted(self.store.consent_states())

    def record(
        self, names: Sequence[str], state: str, by: str, document: str, actor: str
    ) -> list[ConsentChange]:
        """Record ``state`` for each of ``names`` (``by``: the person who gave, refused or
        withdrew it; ``document``: the form's reference, required to give consent). Refused
        or withdrawn: the student's photos and descriptors are deleted now."""
        if state not in STATES:
            raise BadRequestError(f"consent state must be one of {', '.join(STATES)}")
        by = _clean(by, "by", required=True)
        document = _clean(document, "document", required=state == GIVEN)
        if not names:
            raise BadRequestError("name at least one student (or all of them)")
        known = self.store.consent_states()
        missing = [n for n in names if n not in known]
        registered: set[str] = set()
        if missing:  # a dataset folder no server has registered yet (photos just copied in)
            folders = set(enrolled_students(self.enrolment.settings.dataset_dir))
            registered = set(self.enrolment.ensure_students([n for n in missing if n in folders]))
            known = self.store.consent_states()
            missing = [n for n in names if n not in known]
        if missing:
            raise NotFoundError(
                f"no student named {missing[0]!r}, and no dataset folder of that name: check "
                "the name (`attendance consent list`), or put the student's photos in "
                f"dataset/{missing[0]}/ (ATTENDANCE_DATASET_DIR) and run `attendance enroll`"
            )
        at = self.clock().astimezone(UTC).replace(tzinfo=None)
        changes = []
        for name in dict.fromkeys(names):
            self.store.record_consent(ConsentEvent(name, state, by, document, actor, at))
            deleted = 0
            if state != GIVEN:
                deleted = self.enrolment.forget_photos(name, reenrol=False)
            changes.append(ConsentChange(name, known[name], state, deleted, name in registered))
            detail = f"{state}, recorded for {by}" + (f", document {document}" if document else "")
            self.audit.record(actor, "consent", name, detail)
        self.enrolment.changed_elsewhere()  # re-enrol here, and tell every other server
        log.info("consent %s recorded for %d student(s)", state, len(changes))
        return changes
