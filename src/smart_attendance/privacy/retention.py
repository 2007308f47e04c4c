"""The retention purge: what is older than its setting is deleted, daily, once across servers.

==========================  =================================  ==============================
What                        Setting (default)                  Deleted
==========================  =================================  ==============================
intruder photos             ATTENDANCE_RETAIN_INTRUDER_DAYS    rows and files of older days
                            (30)                               (``DATA_DIR/intruders/DAY``)
uncertain faces             ATTENDANCE_RETAIN_UNCERTAIN_DAYS   rows and crops of older days
                            (30)                               (``DATA_DIR/review/DAY``)
marks, corrections,         ATTENDANCE_RETAIN_MARKS_DAYS       rows of older days, and their
sightings                   (400)                              ``logs/attendance_DAY.csv``
enrolment photos            ATTENDANCE_ENROLMENT_PHOTOS        ``delete``: each file whose
                            (keep)                             descriptor is computed
audit log                   ATTENDANCE_RETAIN_AUDIT_DAYS       entries written before the
                            (400)                              cut-off day
orphan descriptors          (always, once the gallery is built) descriptors no photo uses
==========================  =================================  ==============================

A day's data is kept N days: with N = 30, on 23 November the data of 24 October stays and that
of 23 October goes (days are local days in ``ATTENDANCE_TIMEZONE``, from the injected clock).
The statistics file is rewritten from what is left.

Rows go first, then their files: a file that is already gone is fine, a file that cannot be
deleted is logged (with the reason, never the photo) and counted, and the purge goes on. Day
folders of purged days are emptied (files left by a crash between the file and its row too)
and removed. Every purge writes one log line and one audit entry with its counts, never names.

``PurgeScheduler`` runs the purge in ``attendance serve`` at ``ATTENDANCE_PURGE_TIME``: the
day is claimed in the ``job_runs`` table (job ``purge``), so with several servers on one
database exactly one purges; a server that was down at that time purges when it starts, the
same day; a failed purge is tried again after ``RETRY``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from ..attendance.files import CsvFiles, day_csv_path
from ..config import Settings
from ..db.retention import DONE
from ..db.store import Store
from ..errors import StoreError
from ..jobs import DailyJobThread
from ..models import Clock
from ..people.service import EnrolmentService
from .audit import AuditLog

log = logging.getLogger(__name__)

JOB = "purge"
LEASE = timedelta(minutes=30)  # a purge not finished by then was abandoned: another may run it
RETRY = timedelta(minutes=15)  # after a failed purge


@dataclass
class PurgeReport:
    """What a purge deleted (a dry run: what it would delete), per kind."""

    dry_run: bool = False
    intruder_photos: int = 0  # rows (events, with or without a photo)
    intruder_files: int = 0
    uncertain_faces: int = 0  # rows
    uncertain_files: int = 0  # crops
    marks: int = 0
    corrections: int = 0
    sightings: int = 0
    csv_files: int = 0  # logs/attendance_DAY.csv
    enrolment_photos: int = 0  # ATTENDANCE_ENROLMENT_PHOTOS=delete
    audit_entries: int = 0
    orphan_descriptors: int = 0
    failed_files: int = 0  # files that could not be deleted (logged)
    cutoffs: dict[str, date] = field(default_factory=dict)  # kind -> first day kept

    def counts(self) -> list[tuple[str, int]]:
        """(what, how many), in the order they are printed."""
        return [
            ("intruder photos", self.intruder_photos),
            ("intruder photo files", self.intruder_files),
            ("uncertain faces", self.uncertain_faces),
            ("uncertain face files", self.uncertain_files),
            ("marks", self.marks),
            ("corrections", self.corrections),
            ("sightings", self.sightings),
            ("CSV day files", self.csv_files),
            ("enrolment photos", self.enrolment_photos),
            ("audit entries", self.audit_entries),
            ("orphan descriptors", self.orphan_descriptors),
        ]

    @property
    def total(self) -> int:
        return sum(count for _what, count in self.counts())

    def summary(self) -> str:
        """One line of counts (the log line and the audit entry's detail)."""
        text = ", ".join(f"{what} {count}" for what, count in self.counts())
        if self.failed_files:
            text += f"; {self.failed_files} file(s) could not be deleted"
        return text


def _day_folder(path: Path) -> date | None:
    try:
        return date.fromisoformat(path.name)
    except ValueError:
        return None


class PurgeService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        files: CsvFiles,
        enrolment: EnrolmentService,
        audit: AuditLog,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.files = files
        self.enrolment = enrolment
        self.audit = audit
        self._lock = threading.Lock()  # one purge at a time in this process

    def cutoff(self, days: int, today: date | None = None) -> date:
        """The first day kept when data is kept ``days`` days."""
        today = today or self.clock().astimezone(self.settings.zone).date()
        return today - timedelta(days=days)

    def purge(self, dry_run: bool = False, actor: str = "server") -> PurgeReport:
        """Delete what is older than its retention setting (``dry_run``: count it, delete
        nothing). ``StoreError`` when the database fails (what was deleted stays deleted);
        files that cannot be deleted are logged and counted, never an error."""
        settings = self.settings
        today = self.clock().astimezone(settings.zone).date()
        report = PurgeReport(dry_run=dry_run)
        keep = report.cutoffs
        keep["intruders"] = self.cutoff(settings.retain_intruder_days, today)
        keep["uncertain"] = self.cutoff(settings.retain_uncertain_days, today)
        keep["marks"] = self.cutoff(settings.retain_marks_days, today)
        keep["audit"] = self.cutoff(settings.retain_audit_days, today)
        with self._lock:
            store = self.store
            expired = store.purge_intruders(keep["intruders"], dry_run)
            report.intruder_photos = expired.rows
            report.intruder_files = self._delete_files(
                report, expired.paths, settings.intruders_dir, keep["intruders"], dry_run
            )
            expired = store.purge_uncertain(keep["uncertain"], dry_run)
            report.uncertain_faces = expired.rows
            report.uncertain_files = self._delete_files(
                report, expired.paths, settings.review_dir, keep["uncertain"], dry_run
            )
            register = store.purge_register(keep["marks"], dry_run)
            report.marks = register["marks"]
            report.corrections = register["corrections"]
            report.sightings = register["sightings"]
            report.csv_files = self._delete_day_files(report, keep["marks"], dry_run)
            if settings.enrolment_photos == "delete":
                report.enrolment_photos = self.enrolment.drop_enrolled_photos(dry_run)
            audit_before = datetime.combine(keep["audit"], time(0), tzinfo=settings.zone)
            report.audit_entries = store.purge_audit(
                audit_before.astimezone(UTC).replace(tzinfo=None), dry_run
            )
            report.orphan_descriptors = self.enrolment.prune_descriptors(dry_run)
            if not dry_run and (report.marks or report.corrections or report.csv_files):
                self.files.update()  # the statistics, from what is left
        if dry_run:
            log.info("retention purge, dry run (%s): would delete %s", actor, report.summary())
        else:
            log.info("retention purge (%s): deleted %s", actor, report.summary())
            self.audit.record(actor, "purge", "", report.summary())
            if report.total:
                try:  # the deleted rows' bytes leave the database file too
                    self.store.compact()
                except StoreError as exc:  # the purge stands; the next one compacts
                    log.warning("the database was not compacted after the purge: %s", exc)
        return report

    def _delete_files(
        self, report: PurgeReport, paths: list[str], root: Path, before: date, dry_run: bool
    ) -> int:
        """Delete the purged rows' files (only under the data folder) and every file left in
        the day folders of ``root`` before ``before``; how many existed."""
        data_root = self.settings.data_dir.resolve()
        targets: dict[Path, None] = {}
        outside = 0
        for raw in paths:
            path = Path(raw).resolve()
            if path.is_relative_to(data_root):
                targets[path] = None
            else:
                outside += 1
        if outside:
            log.warning("retention purge: %d photo file(s) outside the data folder kept", outside)
        folders = []
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                day = _day_folder(folder)
                if day is not None and day < before and folder.is_dir():
                    folders.append(folder)
                    here = folder.resolve()  # a link in it is deleted, never what it points to
                    targets.update(
                        (here / f.name, None) for f in folder.iterdir() if not f.is_dir()
                    )
        count = sum(self._delete(report, path, dry_run) for path in targets)
        if not dry_run:
            for folder in folders:
                with contextlib.suppress(OSError):  # not empty (a file that could not go): kept
                    folder.rmdir()
        return count

    def _delete_day_files(self, report: PurgeReport, before: date, dry_run: bool) -> int:
        logs = self.settings.logs_dir
        if not logs.is_dir():
            return 0
        count = 0
        for path in sorted(logs.glob("attendance_*.csv")):
            try:
                day = date.fromisoformat(path.stem.removeprefix("attendance_"))
            except ValueError:
                continue
            if day < before and path == day_csv_path(logs, day):
                count += self._delete(report, path, dry_run)
        return count

    def _delete(self, report: PurgeReport, path: Path, dry_run: bool) -> int:
        """1 when ``path`` was deleted (a dry run: exists), 0 when it was already gone or
        could not be deleted (logged, counted in ``failed_files``)."""
        if dry_run:
            return int(path.is_file() or path.is_symlink())
        try:
            path.unlink()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            report.failed_files += 1
            log.warning(
                "retention purge: a file in %s could not be deleted: %s",
                path.parent.name,
                exc.strerror or type(exc).__name__,
            )
            return 0
        return 1


class PurgeScheduler(DailyJobThread):
    """Runs ``PurgeService.purge`` once a day at ``ATTENDANCE_PURGE_TIME``, once across every
    server sharing the database (a thread of ``attendance serve``)."""

    name = "purge-scheduler"
    retry_s = 60.0

    def __init__(
        self,
        settings: Settings,
        store: Store,
        purge: PurgeService,
        clock: Clock,
        retry: timedelta = RETRY,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.purge = purge
        self.clock = clock
        self.retry = retry
        self._done: date | None = None  # the last day this process knows was purged

    def enabled(self) -> bool:
        return self.settings.purge_time is not None

    def tick(self, now: datetime | None = None) -> float:
        """Purge when today's purge is due and nobody did it; seconds to wait before looking
        again."""
        purge_time = self.settings.purge_time
        if purge_time is None:
            return 3600.0
        now = now or self.clock()
        local = now.astimezone(self.settings.zone)
        due_at = datetime.combine(local.date(), purge_time, tzinfo=local.tzinfo)
        if local >= due_at and self._done != local.date():
            self._try(local.date(), now)
        until_due = (due_at - local).total_seconds()
        return max(0.5, min(60.0, until_due if until_due > 0 else 60.0))

    def _try(self, day: date, now: datetime) -> None:
        naive_now = now.astimezone(UTC).replace(tzinfo=None)
        if not self.store.claim_job(JOB, day, naive_now, LEASE, self.owner):
            if self.store.job_status(JOB, day) == DONE:
                self._done = day
            return
        try:
            report = self.purge.purge(actor="server")
        except Exception as exc:  # recorded, tried again after RETRY
            message = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            self.store.finish_job(JOB, day, False, message, naive_now + self.retry)
            log.error(
                "daily purge of %s failed (retry in %d s): %s",
                day,
                self.retry.total_seconds(),
                message,
            )
            return
        self.store.finish_job(JOB, day, True, report.summary())
        self._done = day
