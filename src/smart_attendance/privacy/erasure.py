"""``ErasureService``: forget a student entirely (the right to erasure).

Removed: the student's dataset folder (every photo), their photo rows and descriptors, the
registry row, marks, corrections, sightings, consent history, badges, intruder photos
identified as them, uncertain faces that named them (rows and files), and every line of every
CSV file under ``logs/`` that names them. The audit log's entries about them, and the
timetable history's mentions, are rewritten under an opaque id (``erased:<12 hex>``), and the
erasure itself is logged under that id. Then the database is compacted (SQLite ``VACUUM`` and
the write-ahead log checkpointed and truncated; PostgreSQL ``VACUUM``) so the deleted bytes
are gone from the files, not only unlinked from the tables. Every server re-enrols through the
gallery version: the face is not recognised any more.

What cannot be recalled: emails already sent, files exported or downloaded before, backups,
the server's own log output (docs/privacy.md says so).
"""

from __future__ import annotations

import csv
import io
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from ..attendance.files import CsvFiles, safe_cell, write_atomic
from ..attendance.marks import AttendanceService
from ..config import Settings
from ..db.store import Store
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
        """Erase student ``name`` (``NotFoundError`` if there is none); what was removed."""
        self.enrolment.student(name)
        report = ErasureReport(opaque_id=f"erased:{secrets.token_hex(6)}")
        report.photos = self.enrolment.forget_photos(name, remove_folder=True, reenrol=False)
        erased = self.store.erase_student(name, report.opaque_id)
        report.rows = {table: count for table, count in erased.rows.items() if count}
        root = self.settings.data_dir.resolve()
        for stored in erased.files:
            if not stored:
                continue
            path = Path(stored)
            try:
                if path.resolve().is_relative_to(root):
                    path.unlink(missing_ok=True)
                    report.files += 1
            except OSError as exc:
                log.error("a review file could not be deleted for an erasure: %s", exc.strerror)
        report.csv_lines = scrub_csv_files(self.settings.logs_dir, name)
        self.attendance.forget()  # the timetables read before
        self.files.update()  # the statistics file, without them
        report.csv_lines += scrub_csv_files(self.settings.logs_dir, name)  # written meanwhile
        self.enrolment.changed_elsewhere()  # re-enrol here, and tell every other server
        self.audit.record(actor, "erase", report.opaque_id, report.summary())
        self.store.compact()
        log.info("a student was erased as %s: %s", report.opaque_id, report.summary())
        return report
