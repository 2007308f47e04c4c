"""``DailyJobThread``: the thread of a scheduled job of ``attendance serve`` (the daily report,
the retention purge). It calls ``tick()`` until stopped, waits the seconds ``tick`` returns, and
survives a database outage (``AttendanceError``: logged, tried again after ``retry_s``). Each job
says when it is due and claims its day in the database, so it runs once across servers."""

from __future__ import annotations

import logging
import os
import socket
import threading

from .errors import AttendanceError

log = logging.getLogger(__name__)


class DailyJobThread:
    name = "job"  # the thread's name and the log's word for the job
    retry_s = 15.0  # after an error, seconds before looking again

    def __init__(self) -> None:
        self.owner = f"{socket.gethostname()}:{os.getpid()}"[:64]  # who claims a day
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def enabled(self) -> bool:
        """Whether the job is configured to run (its time setting is set)."""
        raise NotImplementedError

    def tick(self) -> float:
        """Run what is due; seconds to wait before looking again."""
        raise NotImplementedError

    def start(self) -> None:
        if not self.enabled():
            return
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait_s = self.tick()
            except AttendanceError as exc:  # database down: try again shortly
                log.error("%s: %s", self.name, exc)
                wait_s = self.retry_s
            self._stop.wait(wait_s)
