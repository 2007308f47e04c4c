"""``ReportService``: build the day's report from the database and send it, recording every
attempt (``attendance report log``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, timezone
from email.message import EmailMessage

from ..attendance.files import CsvFiles
from ..attendance.marks import AttendanceService
from ..config import Settings
from ..db.store import Store
from ..errors import AttendanceError
from ..models import Clock, ReportSent
from . import mailer
from .content import build_message, collect

log = logging.getLogger(__name__)


class ReportService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        files: CsvFiles,
        attendance: AttendanceService,
        names: Callable[[], list[str]],
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.store = store
        self.files = files
        self.attendance = attendance
        self.names = names
        self.clock = clock

    def today(self) -> date:
        return self.clock().astimezone(self.settings.zone).date()

    def message(self, day: date | None = None) -> tuple[date, EmailMessage]:
        """The day's report email (today by default), built from the database."""
        day = day or self.today()
        stats = self.attendance.statistics(last=day)
        marks = self.files.day_rows(day)
        report = collect(self.store, day, self.names(), self.settings.class_name, marks, stats)
        if report.marks:  # the attached files and the ones in logs/ are the same
            self.files.update(day, report.stats)
        return day, build_message(report, self.settings, self.clock())

    def send_report(self, day: date | None = None, kind: str = "manual") -> ReportSent:
        """Build and send the report now; every attempt is recorded with its outcome."""
        day, message = self.message(day)
        at = self.clock().astimezone(timezone.utc).replace(tzinfo=None)
        try:
            delivered = mailer.send(message, self.settings)
        except AttendanceError as exc:
            self.store.record_attempt(day, kind, at, "failed", self.settings.recipients, str(exc))
            log.error("%s report for %s not sent: %s", kind, day, exc)
            raise
        self.store.record_attempt(day, kind, at, "sent", delivered)
        log.info("%s report for %s sent to %d recipient(s)", kind, day, len(delivered))
        return ReportSent(day, tuple(delivered))
