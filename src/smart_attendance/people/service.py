"""``EnrolmentService``: the gallery the server recognises, and whether it is ready.

Enrolment runs once at start (in the background while the server answers ``starting``) and
again on ``attendance enroll``; the matcher is swapped in one assignment, so a request sees the
old gallery or the new one, never half of one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date

from ..config import Settings
from ..db.store import Store
from ..errors import AttendanceError, NotReadyError
from ..models import Analyzer
from ..recognition.matcher import Gallery, Matcher
from .enrolment import EnrolmentReport, enroll, enrolled_students


class EnrolmentService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        analyzer: Analyzer | None,
        today: Callable[[], date],
    ) -> None:
        self.settings = settings
        self.store = store
        self.analyzer = analyzer
        self.today = today
        self.matcher = Matcher(Gallery.empty(), settings.match_threshold, settings.match_margin)
        self.report: EnrolmentReport | None = None
        self.error: str | None = None
        self.ready = threading.Event()

    def enroll(
        self,
        on_total: Callable[[int], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> EnrolmentReport:
        """(Re)build the gallery from the dataset folder; the server is ready afterwards."""
        if self.analyzer is None:
            raise NotReadyError("this command does not recognise faces")
        try:
            gallery, report = enroll(
                self.settings.dataset_dir,
                self.store,
                self.analyzer,
                on_total=on_total,
                on_progress=on_progress,
            )
        except AttendanceError as exc:
            self.error = str(exc)
            raise
        # Every student folder is a student of the registry, expected in class from the day
        # it was first seen.
        self.store.ensure_students(
            set(gallery.names) | set(enrolled_students(self.settings.dataset_dir)), self.today()
        )
        self.matcher = Matcher(gallery, self.settings.match_threshold, self.settings.match_margin)
        self.report = report
        self.error = None
        self.ready.set()
        return report

    def current(self) -> Matcher:
        """The matcher to use for a request; ``NotReadyError`` while enrolling."""
        if not self.ready.is_set():
            raise NotReadyError("the server is still enrolling the dataset; try again shortly")
        return self.matcher

    def enrolled(self) -> list[str]:
        """Students with at least one enrolled descriptor."""
        return list(self.matcher.gallery.names)

    def names(self) -> list[str]:
        """Enrolled students; before (or without) enrolment, the dataset's folder names."""
        return list(self.matcher.gallery.names) or enrolled_students(self.settings.dataset_dir)
