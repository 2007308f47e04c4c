"""The daily report, sent by the server itself at ATTENDANCE_REPORT_TIME, exactly once a day.

Every server process runs a ``ReportScheduler`` thread. When the report time of the local day
has passed and the day's report is not sent, a process *claims* the day in the database (an
insert under a primary key, or an atomic update of a failed or abandoned claim), so with several
processes or server instances sharing the database exactly one sends it. A server that was down
at report time sends the missed report when it starts, the same day. A failed send is retried
with exponential back-off (30 s, 1 min, 2 min, ... up to 30 min), also after midnight, until it
is delivered; manual sends (``POST /send_report``) do not count against it. With a timetable
the day's report is several emails (the school's and one per class, ``ReportService``): the day
counts as sent when at least one went out, so a class email refused while the others were
delivered is in the attempt log but not sent again by itself.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone

from ..config import Settings
from ..db.store import Store
from ..errors import AttendanceError
from ..jobs import DailyJobThread
from ..models import Clock
from .service import ReportService

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(minutes=30)


def retry_delay(attempts: int, first: timedelta = FIRST_RETRY) -> timedelta:
    delay: timedelta = min(MAX_RETRY, first * (2 ** max(0, attempts - 1)))
    return delay


class ReportScheduler(DailyJobThread):
    name = "report-scheduler"

    def __init__(
        self,
        settings: Settings,
        store: Store,
        reports: ReportService,
        clock: Clock,
        first_retry: timedelta = FIRST_RETRY,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.reports = reports
        self.clock = clock
        self.first_retry = first_retry
        self._pending: set[date] = set()  # failed days this process knows to retry

    def enabled(self) -> bool:
        return self.settings.report_time is not None

    def tick(self, now: datetime | None = None) -> float:
        """Send what is due; return how many seconds to wait before looking again."""
        settings = self.settings
        report_time = settings.report_time
        if report_time is None:
            return 3600.0
        now = now or self.clock()
        local = now.astimezone(settings.zone)
        due_at = datetime.combine(local.date(), report_time, tzinfo=local.tzinfo)
        days = sorted(self._pending | self.store.unsent_reports(local.date()))
        if local >= due_at:
            days.append(local.date())
        for day in dict.fromkeys(days):
            self._try(day, now)
        until_due = (due_at - local).total_seconds()
        return max(0.5, min(15.0, until_due if until_due > 0 else 15.0))

    def _try(self, day: date, now: datetime) -> None:
        naive_now = now.astimezone(timezone.utc).replace(tzinfo=None)
        if not self.store.claim_report(day, naive_now, LEASE, self.owner):
            return
        try:
            self.reports.send_report(day, kind="scheduled")
        except AttendanceError as exc:
            attempts = self.store.finish_report(
                day, False, naive_now, lambda n: retry_delay(n, self.first_retry)
            )
            delay = retry_delay(attempts, self.first_retry)
            self._pending.add(day)
            log.warning(
                "scheduled report for %s failed (attempt %d, retry in %d s): %s",
                day,
                attempts,
                delay.total_seconds(),
                exc,
            )
        else:
            self.store.finish_report(day, True, naive_now)
            self._pending.discard(day)
