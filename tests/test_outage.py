"""A database that goes away and comes back.

While the database cannot be reached the server answers 503 ``database_unavailable`` (scans and
``GET /health``) within seconds, writes nothing, and does not crash; when the database returns it
recovers by itself, and the scan a camera sends again marks its student exactly once.
``/health`` checks the database at most once a second per process (``app.DatabaseCheck``).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, select

from conftest import PROBES, ServerProcess, build_dataset, face_bytes, free_port, make_kit
from pg import PostgresServer, start_server
from smart_attendance.app import DatabaseCheck
from smart_attendance.attendance.files import day_csv_path
from smart_attendance.db.store import Store, _describe, pool_options
from smart_attendance.db.tables import marks
from smart_attendance.errors import StoreError

PASSWORD = "Sup3r-s3cret_pw"  # in the URL: trust authentication ignores it; it must never show


class Ticks:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- in process ---------------------------------------------------------------------------------


def test_the_health_check_pings_at_most_once_a_second_and_keeps_the_answer() -> None:
    calls: list[float] = []
    failing = [False]
    ticks = Ticks()

    def ping() -> None:
        calls.append(ticks.now)
        if failing[0]:
            raise StoreError("database unreachable: connection refused")

    check = DatabaseCheck(ping, interval_s=1.0, monotonic=ticks)
    assert [check.error() for _ in range(5)] == [None] * 5
    assert len(calls) == 1
    failing[0] = True
    ticks.now += 0.5
    assert check.error() is None  # the answer of the last second
    ticks.now += 0.6
    assert check.error() == "database unreachable: connection refused"
    assert check.error() == "database unreachable: connection refused"
    assert len(calls) == 2
    failing[0] = False
    ticks.now += 1.0
    assert check.error() is None
    assert len(calls) == 3


def test_health_answers_503_while_the_database_cannot_be_reached_and_200_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smart_attendance.app")
    kit = make_kit(tmp_path)
    try:
        services = kit.services
        assert kit.get("/health", key=None).status_code == 200
        ticks = Ticks()
        services.database = DatabaseCheck(services.store.ping, monotonic=ticks)
        working = services.store._ping_engine
        # a database that is gone: a URL that cannot be opened, with a password in it
        services.store._ping_engine = create_engine(
            f"postgresql+psycopg://attendance:{PASSWORD}@127.0.0.1:{free_port()}/gone"
        )
        services.store._password = PASSWORD
        answer = kit.get("/health", key=None)
        assert answer.status_code == 503
        body = answer.get_json()
        assert body["status"] == "database_unavailable"
        assert body["error"].startswith("database unreachable: ")
        assert (body["students"], body["workers"]) == (3, services.analyzer.workers)
        assert PASSWORD not in answer.get_data(as_text=True)
        assert "database unreachable: " in caplog.text
        services.store._ping_engine.dispose()
        services.store._ping_engine = working
        assert kit.get("/health", key=None).status_code == 503  # kept for a second
        ticks.now += 1.0
        answer = kit.get("/health", key=None)
        assert (answer.status_code, answer.get_json()["status"]) == (200, "ok")
        assert "error" not in answer.get_json()
        assert "the database answers again" in caplog.text
        assert PASSWORD not in caplog.text
    finally:
        kit.services.close()


def test_a_scan_the_database_fails_to_record_answers_503_writes_nothing_and_counts_once_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    kit = make_kit(tmp_path)
    try:
        store = kit.services.store

        def gone(*_args: object, **_kwargs: object) -> None:
            raise StoreError("database error: connection failed: server closed the connection")

        with monkeypatch.context() as outage:
            outage.setattr(store, "record_mark", gone)
            down = kit.recognize(kit.probe("ana_lima"), event_id="ev-1")
        assert down.status_code == 503
        assert down.get_json()["status"] == "database_unavailable"
        assert "database error in POST /recognize" in caplog.text
        assert "Traceback" not in caplog.text
        day = kit.clock().date()
        assert store.marks_on(day) == []
        assert not day_csv_path(kit.logs, day).exists()
        again = kit.recognize(kit.probe("ana_lima"), event_id="ev-1")
        assert again.status_code == 200
        assert [m["new"] for m in again.get_json()["marks"]] == [True]
        resent = kit.recognize(kit.probe("ana_lima"), event_id="ev-1")
        assert [m["new"] for m in resent.get_json()["marks"]] == [False]
        assert [m.name for m in store.marks_on(day)] == ["ana_lima"]
        assert "ana_lima" in day_csv_path(kit.logs, day).read_text()
    finally:
        kit.services.close()


def test_a_database_error_never_shows_the_password() -> None:
    class Failure(Exception):
        pass

    url = f"postgresql+psycopg://attendance:{PASSWORD}@db.school.lan/attendance"
    assert PASSWORD not in _describe(Failure(f"cannot connect to {url}"))
    assert PASSWORD not in _describe(Failure(f"host=db password={PASSWORD} dbname=x"))
    assert "***" in _describe(Failure(f"it was {PASSWORD}, see"), PASSWORD)
    with pytest.raises(StoreError) as refused:
        Store(f"postgresql+psycopg://attendance:{PASSWORD}@db.school.lan:port/attendance")
    assert PASSWORD not in str(refused.value)


def test_postgresql_connections_wait_seconds_not_minutes() -> None:
    assert pool_options("postgresql+psycopg://u@h/db", 8)["connect_args"] == {"connect_timeout": 5}
    assert "connect_args" not in pool_options("postgresql+psycopg://u@h/db?connect_timeout=20", 8)
    assert pool_options("sqlite:///x.db", 8) == {}


# --- a real server on a real PostgreSQL that stops and starts again --------------------------


def _pg_ctl(pg: PostgresServer, *args: str) -> None:
    pg._run(str(pg.bin_dir / "pg_ctl"), *args, "-D", str(pg.data_dir), "-w")


def _restart(pg: PostgresServer) -> None:
    """Start the stopped server again: same data folder, port and options (``restart`` reuses
    ``postmaster.opts``, written by the first start)."""
    _pg_ctl(pg, "restart", "-l", str(pg.log_path))


def _scan(server: ServerProcess, student: str, event: str) -> requests.Response:
    return server.recognize(face_bytes(PROBES[student]), camera="door", event_id=event)


def _wait_health(server: ServerProcess, code: int, timeout_s: float = 20) -> requests.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        answer = requests.get(server.url + "/health", timeout=10)
        if answer.status_code == code or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


@pytest.mark.real
def test_a_database_outage_answers_503_and_the_server_recovers_by_itself(tmp_path: Path) -> None:
    pg = start_server(free_port())
    server: ServerProcess | None = None
    try:
        url = pg.database("outage").replace("postgres@", f"postgres:{PASSWORD}@")
        # pg.py turns durability off; an immediate stop is a crash: a commit must survive it
        pg.execute(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" SET synchronous_commit = on')
        server = ServerProcess(
            build_dataset(tmp_path / "dataset"),
            tmp_path / "data",
            env={
                "ATTENDANCE_DATABASE_URL": url,
                "ATTENDANCE_REQUIRE_CONSENT": "0",
                "ATTENDANCE_CLASS_START": "00:00",
                "ATTENDANCE_LATE_AFTER_MINUTES": "1440",
            },
        ).start()
        assert server.proc is not None
        pid = server.proc.pid
        first = _scan(server, "george_w_bush", "ev-1")
        assert (first.status_code, first.json()["status"]) == (200, "success"), first.text

        _pg_ctl(pg, "stop", "-m", "immediate")
        began = time.monotonic()
        down = _scan(server, "colin_powell", "ev-2")
        took_s = time.monotonic() - began
        assert down.status_code == 503, down.text
        assert down.json()["status"] == "database_unavailable"
        assert took_s < 10
        began = time.monotonic()
        health = _wait_health(server, 503, timeout_s=5)
        health_s = time.monotonic() - began
        assert health.status_code == 503
        assert health.json()["status"] == "database_unavailable"
        assert {"students", "photos", "workers", "embedder"} <= set(health.json())
        for text in (down.text, health.text):
            assert PASSWORD not in text
            assert "postgresql" not in text

        _restart(pg)
        began = time.monotonic()
        health = _wait_health(server, 200, timeout_s=10)
        recovered_s = time.monotonic() - began
        assert (health.status_code, health.json()["status"]) == (200, "ok"), health.text
        again = _scan(server, "colin_powell", "ev-2")  # the camera sends the scan again
        assert (again.status_code, again.json()["status"]) == (200, "success"), again.text
        assert again.json()["marks"][0]["new"] is True
        twice = _scan(server, "colin_powell", "ev-2")
        assert twice.json()["marks"][0]["new"] is False
        print(
            f"\nscan 503 in {took_s:.2f}s, /health 503 in {health_s:.2f}s with the database down;"
            f" /health 200 {recovered_s:.2f}s after it started again"
        )

        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(marks.c.student, marks.c.day, marks.c.seen_at, marks.c.status)
                ).all()
        finally:
            engine.dispose()
        assert sorted(r.student for r in rows) == ["colin_powell", "george_w_bush"]
        (day,) = {r.day for r in rows}
        text = day_csv_path(tmp_path / "data" / "logs", day).read_text()
        in_file = sorted(tuple(row) for row in csv.reader(io.StringIO(text)))
        in_db = sorted((r.student, r.seen_at.strftime("%H:%M:%S"), r.status) for r in rows)
        assert in_file == sorted([("Name", "Time", "Status"), *in_db])

        assert server.proc.poll() is None and server.proc.pid == pid
        log = server.output()
        assert "Traceback" not in log
        assert PASSWORD not in log
        assert "database unreachable: " in log
        assert "the database answers again" in log
        if os.environ.get("OUTAGE_LOG"):
            print(log)
    finally:
        if server is not None:
            server.stop()
        pg.stop()
