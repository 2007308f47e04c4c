"""``ErasureService``: forget a student entirely (the right to erasure).

Removed: the student's dataset folder (every photo), their photo rows and descriptors, the
registry row, marks, corrections, sightings, consent history, badges, intruder photos
identified as them, uncertain faces that named them (rows and files), and every line of every
CSV file under ``logs/`` that names them. The audit log's entries about them, and the
timetable history's mentions, are rewritten under an opaque id (``erased:<12 hex>``), and the
erasure itself is logged under that id. Then the database is compacted (SQLite ``VACUUM`` and
the write-ahead log checkpointed and truncated, the checkpoint's result checked; PostgreSQL
``VACUUM FULL`` of the tables concerned) so the deleted bytes are gone from the files, not only
unlinked from the tables. Every server re-enrols through the gallery version: the face is not
recognised any more.

An erasure is resumable: its database step records it as pending (the name sealed with the
data key), and a failure after that step (a CSV file, the compaction) leaves it so; erasing
the same name again finishes it (the files, one audit entry, the compaction).

What cannot be recalled: emails already sent, files exported or downloaded before, backups,
the server's own log output (docs/privacy.md says so).
"""

from __future__ import annotations

import csv
import io
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..attendance.files import CsvFiles, safe_cell, write_atomic
from ..attendance.marks import AttendanceService
from ..config import Settings
from ..db.privacy import PendingErasure
from ..db.store import Store
from ..errors import DataKeyError
from ..people.service import EnrolmentService
from .audit import AuditLog

log = logging.getLogger(__name__)


@dataclass
class ErasureReport:
    opaque_id: str
    photos: int = 0  # files deleted from the dataset folder
    rows: dict[str, int] = field(default_factory=dict)  # database rows per table
    files: int = 0  # intruder photos and review crops deleted
    csv_lines: int = 0  # lines removed from the CSV files
    resumed: bool = False  # an erasure that had failed after its database step, finished

    @property
    def records(self) -> int:
        return sum(self.rows.values())

    def summary(self) -> str:
        return (
            f"{self.photos} photo file(s), {self.records} database record(s), "
            f"{self.files} review file(s), {self.csv_lines} CSV line(s)"
        )


def scrub_csv_files(folder: Path, name: str) -> int:
    """Remove every line of every CSV file under ``folder`` that has ``name`` as a cell (as
    written, or neutralised with a leading quote); how many lines were removed."""
    removed = 0
    if not folder.is_dir():
        return 0
    cells = {name, safe_cell(name)}
    for path in sorted(folder.rglob("*.csv")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            log.error("a CSV file could not be read for an erasure: %s", exc)
            continue
        if name not in text:
            continue
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        dropped = 0
        for row in csv.reader(io.StringIO(text)):
            if cells & set(row):
                dropped += 1
                continue
            writer.writerow(row)
        if dropped:
            write_atomic(path, out.getvalue())
            removed += dropped
    return removed


class ErasureService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        enrolment: EnrolmentService,
        attendance: AttendanceService,
        files: CsvFiles,
        audit: AuditLog,
    ) -> None:
        self.settings = settings
        self.store = store
        self.enrolment = enrolment
        self.attendance = attendance
        self.files = files
        self.audit = audit

    def erase(self, name: str, actor: str) -> ErasureReport:
        """Erase student ``name`` (``NotFoundError`` if there is none, nor an erasure of theirs
        to finish); what was removed.

        The database step (every row, in one transaction) also records the erasure as
        pending; the files, the audit entry (with the step after it, in one transaction) and
        the compaction follow, and only then is the pending record deleted. A failure after
        the database step leaves it pending: the same call again finishes the job."""
        pending = self._pending(name)
        if pending is None:
            self.enrolment.student(name)
            report = ErasureReport(opaque_id=f"erased:{secrets.token_hex(6)}")
            report.photos = self.enrolment.forget_photos(name, remove_folder=True, reenrol=False)
            erased = self.store.erase_student(
                name,
                report.opaque_id,
                self.enrolment.sealer.seal(name.encode("utf-8")),
                self._now(),
                f"{report.photos} photo file(s)",
            )
            report.rows = {table: count for table, count in erased.rows.items() if count}
            pending = PendingErasure(
                erased.pending_id,
                report.opaque_id,
                b"",
                tuple(f for f in erased.files if f),
                "",
                "files",
            )
        else:
            log.info("finishing the erasure %s that did not complete", pending.opaque_id)
            report = ErasureReport(opaque_id=pending.opaque_id, resumed=True)
            report.photos = self.enrolment.forget_photos(name, remove_folder=True, reenrol=False)
        root = self.settings.data_dir.resolve()
        for stored in pending.files:
            path = Path(stored)
            try:
                if path.resolve().is_relative_to(root) and path.exists():
                    path.unlink()
                    report.files += 1
            except OSError as exc:
                log.error("a review file could not be deleted for an erasure: %s", exc.strerror)
        report.csv_lines = scrub_csv_files(self.settings.logs_dir, name)
        self.attendance.forget()  # the timetables read before
        self.files.update()  # the statistics file, without them
        report.csv_lines += scrub_csv_files(self.settings.logs_dir, name)  # written meanwhile
        self.enrolment.changed_elsewhere()  # re-enrol here, and tell every other server
        if pending.stage == "files":
            detail = report.summary()
            if report.resumed:
                detail = f"finished after a failure: {pending.summary}; {detail}"
            self.store.record_erasure(pending.id, self._now(), actor, report.opaque_id, detail)
        self.store.compact(full=True)  # StoreError when it cannot: the erasure stays pending
        self.store.erasure_done(pending.id)
        log.info("a student was erased as %s: %s", report.opaque_id, report.summary())
        return report

    def _now(self) -> datetime:
        return self.attendance.clock().astimezone(UTC).replace(tzinfo=None)

    def _pending(self, name: str) -> PendingErasure | None:
        """The unfinished erasure of ``name``, if there is one (the names are sealed: each is
        opened and compared; there are none but after a failure)."""
        for pending in self.store.pending_erasures():
            try:
                sealed_name = self.enrolment.sealer.open(pending.name_sealed)
            except DataKeyError:
                continue
            if sealed_name == name.encode("utf-8"):
                return pending
        return None
