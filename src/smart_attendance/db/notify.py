"""``ChangeListener``: a server hears at once that another changed something shared (PostgreSQL).

A change of shared state adds one to a counter of the ``meta`` table (``Store.bump_meta``); on
PostgreSQL the same transaction sends ``NOTIFY smart_attendance, '<key>'`` (the counter's
name, e.g. ``gallery_version``), delivered to every listener when it commits. A listener is a
daemon thread holding one psycopg connection of its own (out of the pool, autocommit) in
``LISTEN smart_attendance``; it calls ``on_change(key)`` for each notification, and
``on_change(None)`` each time it (re)connects: what was sent while it was not listening is
lost, so the caller checks everything again. When the connection drops (the database restarts,
the network fails) it connects again every ``RETRY_S``; meanwhile, and on SQLite, the callers'
polling of the counters is what keeps the servers in step.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

CHANNEL = "smart_attendance"
LISTENER_NAME = "smart-attendance-listener"  # its application_name, in pg_stat_activity
RETRY_S = 2.0  # between attempts to connect again
WAKE_S = 1.0  # the thread looks at its stop flag this often
CHECK_S = 30.0  # a quiet connection is checked (SELECT 1) this often


def notifies(engine: Engine) -> bool:
    """Whether the database behind ``engine`` delivers notifications (PostgreSQL)."""
    return engine.dialect.name == "postgresql"


class ChangeListener:
    def __init__(
        self,
        engine: Engine,
        on_change: Callable[[str | None], None],
        retry_s: float = RETRY_S,
    ) -> None:
        self.engine = engine
        self.on_change = on_change
        self.retry_s = retry_s
        self.listening = threading.Event()  # set while LISTEN is in force
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None  # the psycopg connection, while connected

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="change-listener", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._listen()
                failures = 0
            except Exception as exc:  # psycopg, SQLAlchemy or socket errors: connect again
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                why = self._say(exc)
                log.log(level, "change notifications interrupted (polling meanwhile): %s", why)
            finally:
                self.listening.clear()
                self._close()
            self._stop.wait(self.retry_s)

    def _listen(self) -> None:
        """Connect, LISTEN and hand on notifications until stopped or the connection fails."""
        raw = self.engine.raw_connection()
        conn: Any = raw.driver_connection  # psycopg.Connection (an optional dependency)
        raw.detach()  # out of the pool for good: its slot is free for the request threads
        self._conn = conn
        conn.rollback()  # whatever the pool's checkout began
        conn.autocommit = True
        conn.execute(f"SET application_name = '{LISTENER_NAME}'")
        conn.add_notify_handler(lambda note: self._deliver(note.payload))
        conn.execute(f"LISTEN {CHANNEL}")
        self.listening.set()
        log.info("listening for changes made by other servers (PostgreSQL notifications)")
        self._deliver(None)  # anything sent before LISTEN was missed: check everything
        quiet = 0.0
        with selectors.DefaultSelector() as waiting:
            waiting.register(conn.fileno(), selectors.EVENT_READ)
            while not self._stop.is_set():
                readable = bool(waiting.select(WAKE_S))
                quiet = 0.0 if readable else quiet + WAKE_S
                if readable or quiet >= CHECK_S:
                    # Reads what arrived (each notification calls the handler), or raises
                    # when the connection is closed or broken.
                    conn.execute("SELECT 1")
                    quiet = 0.0

    def _say(self, exc: BaseException) -> str:
        """The first line of ``exc``, never with the database password."""
        text = (str(exc).splitlines() or [type(exc).__name__])[0]
        password = self.engine.url.password
        return (text.replace(str(password), "***") if password else text)[:160]

    def _deliver(self, key: str | None) -> None:
        try:
            self.on_change(key)
        except Exception:  # a failing callback never stops the notifications
            log.exception("a change notification could not be handled")

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def notify(conn: Connection, key: str) -> None:
    """Send ``key`` to every listener when the transaction of ``conn`` commits (nothing on a
    database without notifications)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_notify(CHANNEL, key)))
