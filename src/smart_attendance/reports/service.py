"""``ReportService``: build the day's reports from the database and send them, recording every
attempt (``attendance report log``).

Without a timetable there is one report, the original's, to ``TEACHER_EMAIL``. With one, the
whole school's report goes to ``TEACHER_EMAIL`` and each class that has ``teachers`` and was
on the register that day gets its own report, to them (``classes``). All of them go out in
one SMTP session, the school's first; each message is one line of the attempt log, with its
recipients and outcome (a class's failure names the class).

A message that fails does not stop the others. ``send_report`` succeeds when at least one
message was delivered, and answers every address that received one; it raises the first
message's ``MailError`` only when nothing could be sent. So the scheduler retries a day only
when nothing went out: a class whose email failed while others were delivered is not sent
again by itself (its failure is in the log; ``attendance report send`` sends every message of
the day again).

Sends asked over the API (``send_requested``) are limited to ``ATTENDANCE_REPORT_SENDS_PER_HOUR``,
counted across servers from the attempt log (every manual send that reached the mail server
counts, delivered or refused, the command's too); more raise ``RateLimitedError`` with the
seconds until the oldest leaves the hour. A send that never reached it (email not configured,
the SMTP server cannot be connected to) is logged as ``unsent`` and does not count: an admin
setting up email can try again at once.
A report's day is one of ``models.FIRST_DAY`` to ``LAST_DAY``; another is a ``BadRequestError``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta, timezone
from email.message import EmailMessage

from ..attendance.files import CsvFiles
from ..attendance.marks import AttendanceService
from ..attendance.timetable import Timetable
from ..config import Settings
from ..db.store import Store
from ..errors import AttendanceError, BadRequestError, MailError, RateLimitedError
from ..models import FIRST_DAY, LAST_DAY, STATUS_EXCUSED, Clock, ReportSent, StudentStats
from . import classes, mailer
from .content import HISTORY_DAYS, build_message, collect

log = logging.getLogger(__name__)

UNSENT = "unsent"  # an attempt that never reached the mail server: not counted in the limit


def _check_day(day: date) -> date:
    """``day``, or a ``BadRequestError`` when it is out of ``FIRST_DAY``..``LAST_DAY`` (the
    report's 30-day history and ranges would overflow near ``date.min`` and ``date.max``)."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise BadRequestError(
            f"a report's day is from {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}"
        )
    return day


@dataclass(frozen=True)
class Outgoing:
    """One email of the day: the whole school's (``class_name`` None) or a class's."""

    class_name: str | None
    recipients: tuple[str, ...]
    message: EmailMessage

    @property
    def label(self) -> str:
        return "the school's report" if self.class_name is None else f"class {self.class_name}"


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
        self._requested = threading.Lock()  # one requested send at a time in this process

    def today(self) -> date:
        return self.clock().astimezone(self.settings.zone).date()

    @property
    def timetable(self) -> Timetable:
        return self.attendance.timetable

    def message(self, day: date | None = None) -> tuple[date, EmailMessage]:
        """The day's report for ``TEACHER_EMAIL`` (today by default): without a timetable the
        original's report, with one the whole school's."""
        day = _check_day(day or self.today())
        if self.timetable.is_default:
            return day, self._default_message(day)
        return day, self._school_message(day)

    def messages(self, day: date | None = None) -> tuple[date, list[Outgoing]]:
        """Every email of the day: the report for ``TEACHER_EMAIL`` first, then one per class
        that has teachers and students on the register that day."""
        day, school = self.message(day)
        out = [Outgoing(None, tuple(self.settings.recipients), school)]
        if not self.timetable.is_default:
            for school_class in self.timetable.classes:
                if school_class.teachers:
                    message = self._class_message(day, school_class.name, school_class.teachers)
                    if message is not None:
                        out.append(Outgoing(school_class.name, school_class.teachers, message))
        return day, out

    def class_message(self, day: date, class_name: str) -> EmailMessage | None:
        """Class ``class_name``'s email of ``day`` as its teachers get it (the dashboard's
        preview; built even when the class has no teachers); None when the class was not on
        the register that day."""
        self.attendance.check_class(class_name)
        school_class = self.timetable.school_class(class_name)
        teachers = school_class.teachers if school_class else ()
        return self._class_message(day, class_name, teachers)

    # --- building -----------------------------------------------------------------------------

    def _display_names(self) -> dict[str, str]:
        """Folder name -> display name of the students that have one: reports name students
        as a person reads them."""
        return {s.name: s.display_name for s in self.store.students() if s.display_name}

    def _default_message(self, day: date) -> EmailMessage:
        stats = self.attendance.statistics(last=day)
        rows = self.files.day_rows(day)
        excused = [
            (e.student, e.reason)
            for e in self.attendance.register.entries(day, day)
            if e.status == STATUS_EXCUSED
        ]
        report = collect(
            self.store,
            day,
            self.names(),
            self.settings.class_name,
            rows,
            stats,
            excused=excused,
            corrections=self.store.corrections_between(day, day),
            zone=self.settings.zone,
            display_names=self._display_names(),
        )
        if report.day_rows:  # the attached files and the ones in logs/ are the same
            self.files.update(day, report.stats)
        return build_message(report, self.settings, self.clock())

    def _register_report(
        self, day: date, title: str, class_name: str | None
    ) -> classes.RegisterReport:
        register = self.attendance.register
        first = day - timedelta(days=HISTORY_DAYS - 1)
        history = register.entries(first, day, class_name)
        entries = [e for e in history if e.day == day]
        closure = self.timetable.closure_on(day)
        return classes.RegisterReport(
            day=day,
            title=title,
            class_name=class_name,
            entries=entries,
            corrections=self.store.corrections_between(day, day, class_name),
            stats=self._statistics(day, class_name, {e.student for e in entries}),
            zone=self.settings.zone,
            closure=closure.reason if closure else None,
            history=classes.collect_history(history),
            names=self._display_names(),
        )

    def _statistics(self, day: date, class_name: str | None, today: set[str]) -> list[StudentStats]:
        stats = self.attendance.statistics(last=day, class_name=class_name)
        if class_name is None:
            return stats
        return [s for s in stats if s.total_days or s.name in today]  # the class's students

    def _school_message(self, day: date) -> EmailMessage:
        report = self._register_report(day, self.settings.class_name, None)
        report.intruders = self.store.intruders_on(day)
        if self.store.sealer is not None:
            report.open_photo = self.store.sealer.open
        report.day_rows = self.files.day_rows(day)
        if report.day_rows:  # the attached files and the ones in logs/ are the same
            self.files.update(day, report.stats)
        return classes.build_message(report, self.settings, self.settings.recipients, self.clock())

    def _class_message(
        self, day: date, class_name: str, teachers: tuple[str, ...]
    ) -> EmailMessage | None:
        """The class's report, or None when the class was not on the register that day."""
        report = self._register_report(day, class_name, class_name)
        if not report.entries and not report.corrections:
            return None
        return classes.build_message(report, self.settings, teachers, self.clock())

    # --- sending ------------------------------------------------------------------------------

    def send_requested(self, day: date | None = None) -> ReportSent:
        """``send_report`` asked by someone (``POST /send_report``): at most
        ``ATTENDANCE_REPORT_SENDS_PER_HOUR`` manual sends in the last hour across servers, or
        ``RateLimitedError``. Requests to this server wait for each other, so two at once
        cannot both take the last send of the hour."""
        if day is not None:
            _check_day(day)  # a bad day is a 400 before it counts as a send
        with self._requested:
            limit = self.settings.report_sends_per_hour
            now = self.clock().astimezone(timezone.utc).replace(tzinfo=None)
            sends = self.store.sends_since("manual", now - timedelta(hours=1))
            if len(sends) >= limit:
                free_at = sends[-limit] + timedelta(hours=1)
                wait_s = max(1, math.ceil((free_at - now).total_seconds()))
                log.warning("report send refused: %d manual sends in the last hour", len(sends))
                raise RateLimitedError(
                    f"the report was sent by hand {len(sends)} times in the last hour (at most "
                    f"{limit}: ATTENDANCE_REPORT_SENDS_PER_HOUR); try again in {wait_s} s",
                    wait_s,
                )
            return self.send_report(day, kind="manual")

    def send_report(self, day: date | None = None, kind: str = "manual") -> ReportSent:
        """Build and send the day's emails now; every attempt is recorded with its outcome.
        Raises the first ``MailError`` only when no email could be sent."""
        day, outgoing = self.messages(day)
        at = self.clock().astimezone(timezone.utc).replace(tzinfo=None)
        try:
            deliveries = mailer.send_all(
                [(o.message, o.recipients) for o in outgoing], self.settings
            )
        except AttendanceError as exc:  # not configured: nothing was tried
            self.store.record_attempt(day, kind, at, UNSENT, self.settings.recipients, str(exc))
            log.error("%s report for %s not sent: %s", kind, day, exc)
            raise
        delivered: list[str] = []
        errors: list[MailError] = []
        for item, delivery in zip(outgoing, deliveries, strict=True):
            if delivery.error is None:
                self.store.record_attempt(day, kind, at, "sent", delivery.delivered)
                delivered += delivery.delivered
                continue
            errors.append(delivery.error)
            prefix = "" if item.class_name is None else f"class {item.class_name}: "
            error = f"{prefix}{delivery.error}"
            outcome = "failed" if delivery.reached else UNSENT
            self.store.record_attempt(day, kind, at, outcome, item.recipients, error)
            log.error("%s report for %s: %s not sent: %s", kind, day, item.label, delivery.error)
        recipients = tuple(dict.fromkeys(delivered))
        if not recipients and errors:
            raise errors[0]
        log.info(
            "%s report for %s: %d of %d email(s) sent, to %d recipient(s)",
            kind,
            day,
            len(outgoing) - len(errors),
            len(outgoing),
            len(recipients),
        )
        return ReportSent(day, recipients)
