"""The composition root: ``build_services(settings)`` builds every service once, each with its
dependencies passed in. ``attendance serve``, every CLI command and the tests use it; the web
app (``web.create_app(services)``) only adds routes.

    Settings --> Store (db) ----------------------------+
             \\-> Analyzer (engine: worker pool)         |
                   |                                    v
                   +--> EnrolmentService (people)  --> ScanService (attendance)
                   +--> RecognitionService (recognition)   |-- AttendanceService (marks)
                                                           |-- IntruderService
                                                           |-- ReviewService (uncertain faces)
                                                           +-- CsvFiles
                        ReportService (reports) <-- Store, CsvFiles, enrolled names
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np

from .attendance.files import CsvFiles
from .attendance.intruders import IntruderService
from .attendance.marks import AttendanceService
from .attendance.review import ReviewService
from .attendance.scan import ScanService
from .attendance.timetable import timetable_for
from .config import Settings
from .db.store import Store
from .errors import NotReadyError, StoreError
from .models import Analyzer, Clock, DetectParams, Frame, Health, StudentStats, system_clock
from .people.accounts import AccountService
from .people.badges import BadgeService
from .people.keys import CameraKeyService
from .people.service import EnrolmentService
from .people.watcher import GalleryWatcher
from .privacy.access import AccessService
from .privacy.audit import AuditLog
from .privacy.consent import ConsentService
from .privacy.erasure import ErasureService
from .privacy.retention import PurgeService
from .privacy.sealing import DataSealer, load_sealer
from .recognition.service import RecognitionService
from .reports.service import ReportService

Tag = TypeVar("Tag")
AnalyzerKind = Literal["pool", "local", "none"]
log = logging.getLogger(__name__)


class NoAnalyzer:
    """The analyzer of a command that recognises nobody (reports, statistics): it starts no
    worker, and anything that would need one says so."""

    workers = 0
    embedder = "none"

    def _refuse(self) -> NotReadyError:
        return NotReadyError("this command does not recognise faces")

    def analyze(
        self, images: Sequence[bytes], params: DetectParams, describe: int | None = None
    ) -> list[Frame]:
        raise self._refuse()

    def analyze_many(
        self, items: Iterable[tuple[Tag, bytes]], params: DetectParams
    ) -> Iterator[tuple[Tag, Frame | Exception]]:
        raise self._refuse()

    def describe_mirrored(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        raise self._refuse()

    def warm_up(self) -> None:
        """Nothing to load."""

    def close(self) -> None:
        """Nothing to release."""


def make_analyzer(settings: Settings, kind: AnalyzerKind = "pool") -> Analyzer:
    """The face engine for ``settings``: worker processes (``pool``, the server), one engine in
    this process (``local``), or none."""
    if kind == "none":
        return NoAnalyzer()
    if kind == "local":
        from .engine.local import InProcessAnalyzer

        return InProcessAnalyzer(settings.max_image_pixels, settings.embedder, settings.models_dir)
    from .engine.pool import WorkerPool

    return WorkerPool(
        settings.worker_count,
        settings.max_image_pixels,
        settings.embedder,
        settings.models_dir,
        timeout_s=settings.worker_timeout_s,
    )


class DatabaseCheck:
    """Whether the database answers, for ``GET /health``: ``ping`` (``Store.ping``, a
    ``SELECT 1`` with a short timeout) at most once every ``interval_s`` in this process, the
    answer kept in between. A request that comes while another checks does not wait for it: it
    gets the previous answer. A change (unreachable, back) is logged once."""

    def __init__(
        self,
        ping: Callable[[], None],
        interval_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ping = ping
        self.interval_s = interval_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._error: str | None = None

    def error(self) -> str | None:
        """None while the database answers; else why not (no URL, no password)."""
        if self._fresh():
            return self._error
        if not self._lock.acquire(blocking=self._checked_at is None):
            return self._error  # another thread is checking: its previous answer
        try:
            if not self._fresh():
                self._check()
            return self._error
        finally:
            self._lock.release()

    def _fresh(self) -> bool:
        checked = self._checked_at
        return checked is not None and self._monotonic() - checked < self.interval_s

    def _check(self) -> None:
        try:
            self._ping()
            error = None
        except StoreError as exc:
            error = str(exc)
        if error and not self._error:
            log.warning("%s (GET /health answers 503 until it is back)", error)
        elif self._error and not error:
            log.info("the database answers again")
        self._error, self._checked_at = error, self._monotonic()


@dataclass
class Services:
    """Every service of one process, built once by ``build_services``."""

    settings: Settings
    clock: Clock
    store: Store
    analyzer: Analyzer
    enrolment: EnrolmentService
    recognition: RecognitionService
    attendance: AttendanceService
    intruders: IntruderService
    files: CsvFiles
    review: ReviewService  # intruder photos and uncertain faces, for a person to decide
    scans: ScanService
    reports: ReportService
    accounts: AccountService  # the dashboard's users
    watcher: GalleryWatcher  # started by `attendance serve`: follows other processes' enrolments
    sealer: DataSealer  # encryption at rest (descriptors, photos)
    audit: AuditLog  # who viewed, exported, corrected, erased, changed consent
    consent: ConsentService  # consent to face recognition, and its consequences
    erasure: ErasureService  # the right to erasure
    access: AccessService  # subject access: everything held on a student, as a zip
    purge: PurgeService  # the retention purge (daily in `attendance serve`, `attendance purge`)
    badges: BadgeService  # printed QR cards: check-in without a face
    keys: CameraKeyService  # the API's keys: the master key, camera keys, wrong-key throttling
    database: DatabaseCheck = field(init=False)  # for /health: does the database answer?

    def __post_init__(self) -> None:
        self.database = DatabaseCheck(self.store.ping)

    def statistics(self) -> list[StudentStats]:
        return self.attendance.statistics()

    def health(self) -> Health:
        report = self.enrolment.report
        return Health(
            ready=self.enrolment.ready.is_set(),
            students=report.students if report else 0,
            photos=report.photos if report else 0,
            skipped_photos=len(report.skipped) if report else 0,
            workers=self.analyzer.workers,
            embedder=self.analyzer.embedder,
            error=self.enrolment.error,
            database_error=self.database.error(),
        )

    def close(self) -> None:
        self.watcher.stop()
        self.files.close()  # the CSV changes still pending are written
        self.analyzer.close()
        self.store.close()


def build_services(
    settings: Settings,
    *,
    clock: Clock = system_clock,
    analyzer: Analyzer | AnalyzerKind = "pool",
    store: Store | None = None,
    sealer: DataSealer | None = None,
) -> Services:
    """Open the store (creating its tables) and start the face engine for ``settings``; a
    timetable with a mistake stops here with a ``ConfigError`` naming its line. The data key
    (``sealer``) is loaded from the settings, or made in DATA_DIR at the first start."""
    timetable = timetable_for(settings)
    if sealer is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        sealer = load_sealer(settings)
    if store is None:
        store = Store(settings.db_url, sealer, threads=settings.threads)
        store.create()
    else:
        store.sealer = sealer
    audit = AuditLog(store, clock)
    engine = make_analyzer(settings, analyzer) if isinstance(analyzer, str) else analyzer
    enrolment = EnrolmentService(settings, store, engine, clock, sealer)
    recognition = RecognitionService(
        engine,
        DetectParams(
            max_side=settings.detect_max_side,
            upsample=settings.detect_upsample,
            min_face_px=settings.min_face_px,
        ),
        describe=settings.burst_describe,
        require_liveness=settings.require_liveness,
    )
    attendance = AttendanceService(settings, store, clock, timetable)
    intruders = IntruderService(settings, store, clock, sealer)
    files = CsvFiles(settings.logs_dir, attendance, settings.csv_write_seconds)
    review = ReviewService(settings, store, clock, attendance, files, enrolment)
    scans = ScanService(enrolment, recognition, attendance, intruders, files, review)
    reports = ReportService(settings, store, files, attendance, enrolment.names, clock)
    return Services(
        settings=settings,
        clock=clock,
        store=store,
        analyzer=engine,
        enrolment=enrolment,
        recognition=recognition,
        attendance=attendance,
        intruders=intruders,
        files=files,
        review=review,
        scans=scans,
        reports=reports,
        accounts=AccountService(
            store, clock, lambda name: attendance.timetable.school_class(name) is not None
        ),
        watcher=GalleryWatcher(enrolment),
        sealer=sealer,
        audit=audit,
        consent=ConsentService(store, enrolment, audit, clock),
        erasure=ErasureService(settings, store, enrolment, attendance, files, audit),
        access=AccessService(settings, store, enrolment, audit, clock),
        purge=PurgeService(settings, store, clock, files, enrolment, audit),
        badges=BadgeService(store, clock, attendance, audit, files.update),
        keys=CameraKeyService(
            store, clock, settings.api_key, settings.key_failures_per_minute, audit
        ),
    )
