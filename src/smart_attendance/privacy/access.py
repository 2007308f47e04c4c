"""Subject access: everything held on one student, as a zip a school can hand over.

``record.json`` has every row that names the student (registry, consent history, marks,
corrections, sightings, photos, badges, intruder photos identified as them, uncertain faces
that named them, except those staff rejected as not them (someone else's face), the audit
log's entries about them); ``photos/`` their enrolment photos and
``review/`` the review photos linked to them, decrypted; ``README.txt`` says in plain words
what each part is. Face descriptors are not included: they are numbers computed from the
photos, meaningless without the software (the README says so).
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..config import Settings
from ..db.store import Store
from ..models import Clock
from ..people.enrolment import read_photo
from ..people.service import EnrolmentService
from .audit import AuditLog

README = """\
Personal data held by Smart Attendance on {name}
Exported {when} (server time zone {zone}).

This archive answers a subject access request. It holds every record the attendance system
keeps about this student, in files you can open with any computer:

  record.json   Every record, by kind (JSON text; open it with a text editor):
                - students: the student's entry (name, display name, classes, the day they
                  joined, their consent to face recognition);
                - consent_events: each time consent was given, refused or withdrawn, who
                  recorded it and the signed form's reference;
                - marks: each class period they were seen (Present or Late), when and by which
                  camera; corrections: each change made by staff, by whom and why;
                - sightings: times they were seen outside any class period;
                - photos: their enrolment photos (files in photos/) and whether each was used;
                - badges: check-in cards printed for them (the card's code is not kept);
                - intruders and uncertain: photos from the door cameras that staff or the
                  system linked to them (files in review/; faces that staff found were
                  someone else's are left out);
                - audit: who looked at or changed their record, and when.
  photos/       The enrolment photos the system keeps (it may keep none: see photos in
                record.json).
  review/       Door camera photos linked to them, if any.

Not included: the face descriptors (128 numbers computed from each photo; they mean nothing
outside this software and are deleted with the photos) and emails already sent.
Times marked "UTC" are universal time; the others are local school time.
"""


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    return value


class AccessService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        enrolment: EnrolmentService,
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.store = store
        self.enrolment = enrolment
        self.audit = audit
        self.clock = clock

    def export(self, name: str, actor: str) -> bytes:
        """The zip of everything held on ``name`` (``NotFoundError`` if no such student)."""
        student = self.enrolment.student(name)
        shown = student.display_name
        who = f"{shown} ({name})" if shown else name  # the README: a person reads it
        records = self.store.student_records(name)
        now = self.clock().astimezone(self.settings.zone)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(
                "README.txt",
                README.format(name=who, when=f"{now:%Y-%m-%d %H:%M}", zone=self.settings.timezone),
            )
            body = {
                table: [{k: _json(v) for k, v in row.items()} for row in rows]
                for table, rows in records.items()
            }
            archive.writestr("record.json", json.dumps(body, indent=2, ensure_ascii=False))
            for photo in self.enrolment.photos(name):
                if photo.kept:
                    archive.writestr(
                        f"photos/{photo.filename}", self.enrolment.photo(name, photo.filename)
                    )
            root = self.settings.data_dir.resolve()
            for kind in ("intruders", "uncertain"):
                for row in records[kind]:
                    path = Path(row["path"]) if row.get("path") else None
                    if path is None or not path.resolve().is_relative_to(root):
                        continue
                    try:
                        data = read_photo(path, self.enrolment.sealer)
                    except OSError:
                        continue
                    archive.writestr(f"review/{kind}-{row['id']}{path.suffix}", data)
        self.audit.record(actor, "export", name, "subject access export")
        return buffer.getvalue()
