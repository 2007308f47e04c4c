"""Integrity: no lost or forged record.

In process (``make_kit``): a capture time outside ATTENDANCE_CLOCK_WINDOW_HOURS is a 422 the
client understands; when the server received each scan is kept beside its capture time and a
mark that arrived late says so (register, export, reports); an event id never stands for
another student; the day files are derived from the database (flushed to disk, under a lock two
servers share, brought up to date at start); an unreadable student folder is skipped with its
reason and any enrolment failure shows in ``/health``.

Real (``real``): server processes killed with SIGKILL while marking and started again, the modes
of a real server's files, and an unreadable folder seen by a real server.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import signal
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.test import TestResponse

from conftest import (
    API_KEY,
    MONDAY_0855,
    PARIS,
    PROBES,
    STRANGERS,
    STUDENTS,
    TEST_DATA,
    Kit,
    ServerProcess,
    build_dataset,
    face_bytes,
    make_kit,
    require_faces,
    run_cli,
)
from scripted import BOX, ScriptedFace, near
from smart_attendance.attendance import files as files_module
from smart_attendance.attendance.files import day_csv, write_atomic
from smart_attendance.db.store import Store
from smart_attendance.models import Box, Mark
from smart_attendance.people.enrolment import Skipped

MONDAY = MONDAY_0855.date()
RELEASE_0_1_DB = Path(__file__).parent / "data" / "release-0.1.db"


def at(hour: int, minute: int, second: int = 0, day: int = 23) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=PARIS)


@pytest.fixture
def kits() -> Iterator[list[Kit]]:
    made: list[Kit] = []
    yield made
    for kit in made:
        kit.services.close()


def checkin(kit: Kit, body: dict[str, str]) -> TestResponse:
    return kit.client.post("/checkin", json=body, headers={"X-API-KEY": API_KEY})


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


# --- the capture-time window ----------------------------------------------------------------


def test_a_capture_time_outside_the_window_is_refused_with_422(kit: Kit) -> None:
    """ATTENDANCE_CLOCK_WINDOW_HOURS (12 by default) back, not in the future: anything else
    is answered 422 ``captured_at_out_of_window`` and nothing is recorded. The old rule took
    any time of the last 7 days: a key holder could mark a student on a day they missed, or
    turn Late into Present."""
    refused = {
        "two days back": MONDAY_0855 - timedelta(days=2),
        "just past the window": MONDAY_0855 - timedelta(hours=12, seconds=1),
        "ten minutes ahead": MONDAY_0855 + timedelta(minutes=10),
    }
    for seed, (label, moment) in enumerate(refused.items()):
        answer = kit.recognize(kit.probe("ana_lima", seed=seed), captured_at=moment.isoformat())
        assert answer.status_code == 422, label
        body = answer.get_json()
        assert (body["status"], body["reason"]) == ("error", "captured_at_out_of_window"), label
        assert body["error"].startswith(f"captured_at {moment.isoformat(timespec='seconds')}")
    assert (
        "more than 12 hours old"
        in kit.recognize(
            kit.probe("ben_ito"), captured_at=refused["two days back"].isoformat()
        ).get_json()["error"]
    )
    # A badge read at the door is held to the same window (before the badge is even read).
    badge = checkin(kit, {"badge": "x" * 32, "captured_at": refused["two days back"].isoformat()})
    assert badge.status_code == 422 and badge.get_json()["reason"] == "captured_at_out_of_window"
    store = kit.services.store
    assert store.marks_between(MONDAY - timedelta(days=7), MONDAY) == []
    assert sorted(p.name for p in kit.logs.glob("attendance_*.csv")) == []

    # Inside the window a queued scan is marked when it was seen: Sunday evening, Late.
    inside = kit.recognize(
        kit.probe("ana_lima", seed=9), captured_at=(MONDAY_0855 - timedelta(hours=11)).isoformat()
    )
    assert inside.status_code == 200
    assert (inside.get_json()["time"], inside.get_json()["attendance"]) == ("21:55:00", "Late")
    assert [m.day for m in store.marks_between(MONDAY - timedelta(days=7), MONDAY)] == [
        date(2026, 11, 22)
    ]


def test_the_window_is_a_setting_and_an_untrusted_clock_is_never_refused(
    tmp_path: Path, kits: list[Kit]
) -> None:
    wide = make_kit(tmp_path / "wide", clock_window_hours=48)
    kits.append(wide)
    two_days = (MONDAY_0855 - timedelta(hours=47)).isoformat()
    answer = wide.recognize(wide.probe("ana_lima"), captured_at=two_days)
    assert answer.status_code == 200 and answer.get_json()["time"] == "09:55:00"
    older = (MONDAY_0855 - timedelta(hours=49)).isoformat()
    refused = wide.recognize(wide.probe("ben_ito"), captured_at=older)
    assert refused.status_code == 422 and "more than 48 hours old" in refused.get_json()["error"]
    # ATTENDANCE_TRUST_CLIENT_CLOCK=0: the server's clock decides, whatever the scan claims.
    own = make_kit(tmp_path / "own", trust_client_clock=False)
    kits.append(own)
    old = own.recognize(own.probe("ana_lima"), captured_at=two_days)
    assert old.status_code == 200 and old.get_json()["time"] == "08:55:00"


# --- when each scan reached the server ------------------------------------------------------


def test_a_mark_that_arrived_late_says_so_in_the_register_the_export_and_the_report(
    kit: Kit,
) -> None:
    """ana's scan was queued at 08:20 and reached the server at 08:55; cleo's 10 minutes
    after it was seen (not late: more than 10 minutes is); ben's at once."""
    queued = kit.recognize(kit.probe("ana_lima"), captured_at=at(8, 20).isoformat())
    assert queued.status_code == 200 and queued.get_json()["time"] == "08:20:00"
    assert kit.recognize(kit.probe("cleo_park"), captured_at=at(8, 45).isoformat()).status_code
    assert kit.recognize(kit.probe("ben_ito")).status_code == 200
    store = kit.services.store
    received = {m.name: m.received_at for m in store.marks_on(MONDAY)}
    assert received == dict.fromkeys(
        ("ana_lima", "cleo_park", "ben_ito"), datetime(2026, 11, 23, 7, 55)
    )

    body = kit.get("/attendance?date=2026-11-23").get_json()
    assert body["classes"][0]["periods"][0]["students"] == [
        {
            "name": "ana_lima",
            "status": "Present",
            "time": "08:20:00",
            "source": "camera:default",
            "arrived_late": True,
            "received_at": "2026-11-23T08:55:00+01:00",
        },
        {"name": "ben_ito", "status": "Present", "time": "08:55:00", "source": "camera:default"},
        {"name": "cleo_park", "status": "Present", "time": "08:45:00", "source": "camera:default"},
    ]

    export = csv_rows(kit.get("/export.csv?from=2026-11-23&to=2026-11-23").data.decode())
    assert export[0][-1] == "Arrived late"
    assert {row[3]: row[-1] for row in export[1:]} == {
        "ana_lima": "2026-11-23 08:55:00",
        "ben_ito": "",
        "cleo_park": "",
    }
    # The original's day file keeps its three columns.
    assert (kit.logs / "attendance_2026-11-23.csv").read_text() == (
        "Name,Time,Status\n"
        "ana_lima,08:20:00,Present\n"
        "cleo_park,08:45:00,Present\n"
        "ben_ito,08:55:00,Present\n"
    )

    _day, message = kit.services.reports.message(MONDAY)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert (
        "Arrived late (received more than 10 minutes after they were seen):\n"
        "  ana_lima: seen 08:20, received 08:55\n\n"
    ) in text
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<b>Arrived late (1):</b> ana_lima: seen 08:20, received 08:55" in html


TIMETABLE = """
[[class]]
name = "7b"
teachers = ["t7b@school.test"]
students = ["ana_lima", "ben_ito"]
  [[class.period]]
  days = ["mon"]
  start = "08:30"
  end = "09:25"
  late_after_minutes = 10
"""


def test_the_class_and_school_reports_list_the_marks_that_arrived_late(
    tmp_path: Path, kits: list[Kit]
) -> None:
    (tmp_path / "timetable.toml").write_text(TIMETABLE, encoding="utf-8")
    school = make_kit(tmp_path, now=at(9, 10), timetable=tmp_path / "timetable.toml")
    kits.append(school)
    assert school.recognize(school.probe("ana_lima"), captured_at=at(8, 35).isoformat())
    assert school.recognize(school.probe("ben_ito")).get_json()["attendance"] == "Late"
    reports = school.services.reports
    message = reports.class_message(MONDAY, "7b")
    assert message is not None
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "  08:35:00  Present  ana_lima\n" in text
    assert (
        "Arrived late (received more than 10 minutes after they were seen):\n"
        "  ana_lima, 08:30: seen 08:35, received 09:10\n"
    ) in text
    _day, whole = reports.message(MONDAY)
    whole_text = whole.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "  ana_lima, 7b 08:30: seen 08:35, received 09:10\n" in whole_text
    assert "ben_ito, 7b" not in whole_text


# --- event ids --------------------------------------------------------------------------------


def test_an_event_id_never_stands_for_another_student(kit: Kit) -> None:
    """Student A with event X, then student B with X: B is marked (the old store answered
    A's mark, "success", and B was never marked). A resend is still harmless."""
    first = kit.recognize(kit.probe("ana_lima"), event_id="scan-7").get_json()
    assert (first["name"], first["new"]) == ("ana_lima", True)
    kit.clock.advance(minutes=25)  # Late by now
    other = kit.recognize(kit.probe("ben_ito"), event_id="scan-7").get_json()
    assert other["marks"] == [
        {
            "name": "ben_ito",
            "display_name": "ben_ito",
            "attendance": "Late",
            "new": True,
            "time": "09:20:00",
        }
    ]
    again = kit.recognize(kit.probe("ana_lima", seed=1), event_id="scan-7").get_json()
    assert again["marks"] == [
        {
            "name": "ana_lima",
            "display_name": "ana_lima",
            "attendance": "Present",
            "new": False,
            "time": "08:55:00",
        }
    ]
    # A group scan marks each student it names; its resend marks nobody twice.
    group = kit.frame(
        ScriptedFace(near(kit.people["cleo_park"], 0.2, 3), box=BOX),
        ScriptedFace(near(kit.people["ana_lima"], 0.2, 4), box=Box(20, 20, 220, 220)),
        label="group",
    )
    marks = kit.recognize(group, event_id="scan-7").get_json()["marks"]
    assert [(m["name"], m["new"]) for m in marks] == [("ana_lima", False), ("cleo_park", True)]
    store = kit.services.store
    assert sorted((m.name, m.status) for m in store.marks_on(MONDAY)) == [
        ("ana_lima", "Present"),
        ("ben_ito", "Late"),
        ("cleo_park", "Late"),
    ]
    assert (kit.logs / "attendance_2026-11-23.csv").read_text().count("\n") == 4


def test_a_release_0_1_event_id_still_stops_its_resend_and_no_one_else(tmp_path: Path) -> None:
    """Migration 0006: ``(event_id, student)`` is unique, no longer ``event_id`` alone."""
    path = tmp_path / "attendance.db"
    shutil.copy(RELEASE_0_1_DB, path)
    store = Store(f"sqlite:///{path}")
    store.create()
    try:
        day = date(2026, 11, 25)
        ana = Mark("ana_lima", day, datetime(2026, 11, 25, 9, 0), "Present", "door-1")
        ben = Mark("ben_ito", day, datetime(2026, 11, 25, 9, 0), "Present", "door-1")
        resent = store.record_mark(ana, "ev1/1")  # ana's scan of the 19th, sent again
        assert not resent.new and resent.mark.day == date(2026, 11, 19)
        other = store.record_mark(ben, "ev1/1")
        assert other.new and other.mark.name == "ben_ito"
        assert store.record_mark(ben, "ev1/1").mark.day == day
    finally:
        store.close()
    insert = (
        "INSERT INTO marks (student, day, class_name, period, period_end, late_after, seen_at, "
        "status, camera, source, key_name, event_id) VALUES (?, ?, 'default', '00:00', "
        "'24:00', '', ?, 'Present', 'x', 'x', '', 'ev1/1')"
    )
    with sqlite3.connect(path) as conn:
        conn.execute(insert, ("cid", "2026-11-26", "2026-11-26 09:00:00"))  # a third student
        with pytest.raises(sqlite3.IntegrityError, match=r"marks\.event_id, marks\.student"):
            conn.execute(insert, ("cid", "2026-11-27", "2026-11-27 09:00:00"))


# --- the CSV files: derived from the database ------------------------------------------------


def test_day_files_are_brought_up_to_date_with_the_database_at_start(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a kill -9 between a mark's commit and its file leaves behind (a mark missing from
    the day's file, a day without its file), put right by ``CsvFiles.sync`` (``attendance
    serve`` runs it at start), which then reads only the days changed since."""
    files, store = kit.services.files, kit.services.store
    assert kit.recognize(kit.probe("ana_lima")).status_code == 200
    store.record_mark(Mark("ben_ito", MONDAY, datetime(2026, 11, 23, 8, 57), "Present", "d"))
    friday = date(2026, 11, 20)
    store.record_mark(Mark("cleo_park", friday, datetime(2026, 11, 20, 9, 30), "Late", "d"))
    assert (kit.logs / "attendance_2026-11-23.csv").read_text().count("\n") == 2  # ben missing

    assert files.sync() == [friday, MONDAY]
    assert (kit.logs / "attendance_2026-11-20.csv").read_text() == (
        "Name,Time,Status\ncleo_park,09:30:00,Late\n"
    )
    assert (kit.logs / "attendance_2026-11-23.csv").read_text() == (
        "Name,Time,Status\nana_lima,08:55:00,Present\nben_ito,08:57:00,Present\n"
    )

    read: list[date] = []
    day_rows = files.day_rows

    def counted(day: date) -> list[Mark]:
        read.append(day)
        return day_rows(day)

    monkeypatch.setattr(files, "day_rows", counted)
    assert files.sync() == [] and read == []  # nothing changed: no day is read again
    assert kit.recognize(kit.probe("cleo_park")).status_code == 200
    read.clear()
    assert files.sync() == [] and read == [MONDAY]  # the one day changed: read, already right
    (kit.logs / "attendance_2026-11-20.csv").unlink()
    read.clear()
    assert files.sync() == [friday] and read == [friday]  # a missing file: written again
    # The latest mark deleted (an erasure) and its id used again by a new mark (SQLite) whose
    # file was not written: the last start's mark is not the one that has its id now.
    with sqlite3.connect(kit.settings.data_dir / "attendance.db") as conn:
        [(last,)] = conn.execute("SELECT max(id) FROM marks").fetchall()
        conn.execute("DELETE FROM marks WHERE id = ?", (last,))
    again = store.record_mark(Mark("cleo_park", MONDAY, datetime(2026, 11, 23, 9, 40), "Late", "d"))
    assert again.new and store.change_ids()[0] == last
    read.clear()
    assert files.sync() == [MONDAY] and sorted(read) == [friday, MONDAY]
    assert "cleo_park,09:40:00,Late" in (kit.logs / "attendance_2026-11-23.csv").read_text()
    for day in (friday, MONDAY):
        path = kit.logs / f"attendance_{day.isoformat()}.csv"
        assert path.read_text() == day_csv(day_rows(day))


def test_two_servers_on_one_data_folder_never_leave_a_mark_out_of_the_day_file(
    tmp_path: Path, kits: list[Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Server one reads the day from the database, then is slow to write its file; server
    two marks ben meanwhile. Without a lock shared by both processes, one's file (without
    ben) overwrote two's."""
    one, two = make_kit(tmp_path), make_kit(tmp_path)  # one dataset, database and logs/
    kits += [one, two]
    read, go = threading.Event(), threading.Event()
    day_rows = one.services.files.day_rows

    def slow(day: date) -> list[Mark]:
        rows = day_rows(day)
        read.set()
        go.wait(10)
        return rows

    monkeypatch.setattr(one.services.files, "day_rows", slow)
    answers: list[int] = []
    first = threading.Thread(
        target=lambda: answers.append(one.recognize(one.probe("ana_lima")).status_code)
    )
    first.start()
    assert read.wait(10)
    second = threading.Thread(
        target=lambda: answers.append(two.recognize(two.probe("ben_ito")).status_code)
    )
    second.start()
    second.join(1.0)  # blocked on the lock (the old code wrote its file at once)
    go.set()
    first.join(10)
    second.join(10)
    assert answers == [200, 200]
    assert (tmp_path / "data" / "logs" / "attendance_2026-11-23.csv").read_text() == (
        "Name,Time,Status\nana_lima,08:55:00,Present\nben_ito,08:55:00,Present\n"
    )


def test_a_file_is_flushed_to_disk_and_so_is_its_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushed: list[str] = []
    fsync = os.fsync

    def spy(fd: int) -> None:
        flushed.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        fsync(fd)

    monkeypatch.setattr(files_module.os, "fsync", spy)
    write_atomic(tmp_path / "logs" / "attendance_2026-11-23.csv", "Name,Time,Status\n")
    assert flushed == ["file", "folder"]
    assert stat.S_IMODE((tmp_path / "logs" / "attendance_2026-11-23.csv").stat().st_mode) == 0o600


# --- enrolment failures ---------------------------------------------------------------------


def _unreadable(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """``folder`` cannot be listed, as a folder of another user's would not be (the tests run
    as root, who may read anything: the real test below drops that power instead)."""
    iterdir = Path.iterdir

    def refuse(self: Path) -> Iterator[Path]:
        if self == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return iterdir(self)

    monkeypatch.setattr(Path, "iterdir", refuse)


def test_an_unreadable_student_folder_is_skipped_with_its_reason(
    tmp_path: Path, kits: list[Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = make_kit(tmp_path, enrol=False)
    kits.append(kit)
    _unreadable(monkeypatch, kit.settings.dataset_dir / "ben_ito")
    report = kit.services.enrolment.enroll()
    assert report.skipped == [Skipped("ben_ito/", "cannot read the folder (Permission denied)")]
    assert kit.services.enrolment.enrolled() == ["ana_lima", "cleo_park"]
    health = kit.get("/health", key=None)
    assert health.status_code == 200
    assert (health.get_json()["status"], health.get_json()["skipped_photos"]) == ("ok", 1)
    assert kit.get("/enrolment").get_json()["skipped"] == [
        {"path": "ben_ito/", "reason": "cannot read the folder (Permission denied)"}
    ]


def test_any_enrolment_failure_shows_in_health_and_the_log(
    tmp_path: Path,
    kits: list[Kit],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kit = make_kit(tmp_path, enrol=False)
    kits.append(kit)
    _unreadable(monkeypatch, kit.settings.dataset_dir)
    with caplog.at_level(logging.ERROR), pytest.raises(PermissionError):
        kit.services.enrolment.enroll()
    health = kit.get("/health", key=None)
    assert health.status_code == 503
    body = health.get_json()
    assert body["status"] == "error"
    assert body["error"] == (
        "enrolment failed: Permission denied (PermissionError; the server's log has the file)"
    )
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [body["error"]]
    assert str(kit.settings.dataset_dir) in caplog.text  # the log names the folder


# --- real processes ---------------------------------------------------------------------------

ALL_DAY = {"ATTENDANCE_CLASS_START": "00:00", "ATTENDANCE_LATE_AFTER_MINUTES": "1440"}


def _without_root_powers() -> list[str]:
    """A prefix that runs a command as root without the power to read or write files their
    modes refuse (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH); none when not root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv (util-linux): modes cannot be enforced")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def _with_models(data: Path) -> Path:
    """The data folder, with the ONNX model the other tests built (no conversion at start)."""
    (data / "models").mkdir(parents=True, exist_ok=True)
    for model in (TEST_DATA / "models").glob("*.onnx"):
        shutil.copy(model, data / "models" / model.name)
    return data


def _day_files(data: Path) -> dict[str, list[tuple[str, str, str]]]:
    """Every day file of ``data/logs``: its rows, without the header."""
    out = {}
    for path in sorted((data / "logs").glob("attendance_*.csv")):
        rows = csv_rows(path.read_text(encoding="utf-8"))
        assert rows[0] == ["Name", "Time", "Status"]
        out[path.stem.removeprefix("attendance_")] = [(r[0], r[1], r[2]) for r in rows[1:]]
    return out


def _database_days(data: Path) -> dict[str, list[tuple[str, str, str]]]:
    """The marks of the database, day by day, as the day files list them."""
    with sqlite3.connect(data / "attendance.db") as conn:
        rows = conn.execute("SELECT day, student, seen_at, status FROM marks").fetchall()
    out: dict[str, list[tuple[str, str, str]]] = {}
    for day, student, seen_at, status in rows:
        out.setdefault(str(day), []).append((student, str(seen_at)[11:19], status))
    return {day: sorted(marks, key=lambda m: (m[1], m[0])) for day, marks in out.items()}


def _kill_9(server: ServerProcess) -> None:
    assert server.proc is not None
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=30)


@pytest.mark.real
def test_kill_9_during_marking_then_the_day_file_matches_the_database(tmp_path: Path) -> None:
    """A real server marks one student, then four at once and is killed with SIGKILL once
    the first of them is answered. Its ``logs/`` folder is read-only to it during those four
    (root's power to ignore modes dropped), so the marks it committed are surely missing from
    the day file when it dies: the window between a commit and its file, made wide. The next
    start writes the day file again from the database."""
    require_faces()
    prefix = _without_root_powers()
    dataset, data = build_dataset(tmp_path / "dataset"), _with_models(tmp_path / "data")
    server = ServerProcess(
        dataset, data, env=ALL_DAY, prefix=prefix, log_path=tmp_path / "first.log"
    ).start()
    logs = data / "logs"
    try:
        first = server.recognize(face_bytes(PROBES["george_w_bush"])).json()
        assert (first["name"], first["new"]) == ("george_w_bush", True)
        logs.chmod(0o500)
        probes = [
            face_bytes(PROBES["colin_powell"]),
            face_bytes(PROBES["donald_rumsfeld"]),
            face_bytes(STUDENTS["obama"][0]),
            face_bytes(STUDENTS["biden"][0]),
        ]
        answered = threading.Event()

        def send(probe: bytes) -> None:
            try:
                if server.recognize(probe).status_code == 200:
                    answered.set()
            except requests.RequestException:
                pass  # killed while this scan was in flight

        threads = [threading.Thread(target=send, args=(p,)) for p in probes]
        for thread in threads:
            thread.start()
        assert answered.wait(120), server.output()
        _kill_9(server)
        for thread in threads:
            thread.join(60)
    finally:
        logs.chmod(0o700)
        server.stop()
    before = _database_days(data)
    marked = sum(len(marks) for marks in before.values())
    assert marked >= 2, server.output()
    assert _day_files(data) != before  # the file missed what was committed before the kill
    assert "could not update the CSV files" in server.output()

    again = ServerProcess(dataset, data, env=ALL_DAY, log_path=tmp_path / "second.log").start()
    try:
        assert again.get("/health").status_code == 200
    finally:
        again.stop()
    assert _database_days(data) == before  # nothing lost, nothing added
    assert _day_files(data) == before, again.output()
    assert "differed from the database and were written again" in again.output()


def _modes(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): oct(stat.S_IMODE(path.lstat().st_mode))
        for path in [root, *root.rglob("*")]
    }


@pytest.mark.real
def test_everything_under_a_real_servers_data_folder_is_private(tmp_path: Path) -> None:
    """Started on a data folder of an older release (0755 folders, 0644 files), a real server
    makes them private and creates every file 0600 and folder 0700: the database and its
    -wal/-shm, the day files, an intruder photo, the keys."""
    require_faces()
    dataset = build_dataset(tmp_path / "dataset", {"george_w_bush": STUDENTS["george_w_bush"]})
    data = _with_models(tmp_path / "data")
    old_file = data / "logs" / "exported-by-hand.csv"  # no day file: the purge leaves it
    old_file.parent.mkdir(parents=True)
    old_file.write_text("Name,Time,Status\nsomeone,08:00:00,Present\n")
    for path, mode in ((data, 0o755), (old_file.parent, 0o755), (old_file, 0o644)):
        path.chmod(mode)
    (data / "models").chmod(0o755)
    server = ServerProcess(dataset, data, env=ALL_DAY, log_path=tmp_path / "server.log").start()
    try:
        assert server.recognize(face_bytes(PROBES["george_w_bush"])).json()["new"] is True
        for photo in STRANGERS[:3]:  # three unknown faces in a row: an intruder photo
            assert server.recognize(face_bytes(photo)).status_code == 200
        modes = _modes(data)  # while it runs: the -wal and -shm files are there
    finally:
        server.stop()
    for name in (
        "attendance.db",
        "attendance.db-wal",
        "attendance.db-shm",
        "data_key",
        "session_secret",
        "logs/student_statistics.csv",
        "logs/exported-by-hand.csv",
    ):
        assert modes.get(name) == "0o600", (name, modes)
    assert [n for n in modes if n.startswith("intruders/") and (data / n).is_file()], modes
    day_files = [n for n in modes if n.startswith("logs/attendance_2")]
    assert len(day_files) == 1, modes
    folders = {n for n in modes if (data / n).is_dir() and not (data / n).is_symlink()}
    assert {".", "logs", "intruders", "models"} <= folders
    wrong = {
        name: mode
        for name, mode in modes.items()
        if mode != ("0o700" if name in folders else "0o600")
    }
    assert wrong == {}


@pytest.mark.real
def test_a_command_creates_the_database_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = run_cli("db", "upgrade", env={"ATTENDANCE_DATA_DIR": str(data)}, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert oct(stat.S_IMODE(data.stat().st_mode)) == "0o700"
    assert oct(stat.S_IMODE((data / "attendance.db").stat().st_mode)) == "0o600"


class Launched(ServerProcess):
    """A server process started without waiting for it to be ready: the test reads its
    ``/health`` itself (``ServerProcess.start`` waits for a 200 and stops it otherwise)."""

    launching: bool = False

    def launch(self) -> Launched:
        self.launching = True
        try:
            self.start(timeout_s=0.5)
        except RuntimeError:
            assert self.proc is not None and self.proc.poll() is None, self.output()
        finally:
            self.launching = False
        return self

    def stop(self) -> None:
        if not self.launching:
            super().stop()


def _health(url: str, timeout_s: float = 90) -> dict[str, Any]:
    """``/health`` once the server is no longer starting (ready, or failed)."""
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            body = requests.get(url + "/health", timeout=2).json()
        except requests.RequestException:
            body = {}
        if body.get("status") not in (None, "starting"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"still starting after {timeout_s} s: {body}")


@pytest.mark.real
def test_a_real_server_skips_an_unreadable_folder_and_says_why_enrolment_failed(
    tmp_path: Path,
) -> None:
    """A student folder the server's user cannot read is skipped with the reason (it used to
    kill the enrolment thread: ``/health`` 503 "starting" forever); a dataset folder it cannot
    read fails the enrolment, and ``/health`` says so."""
    require_faces()
    prefix = _without_root_powers()
    dataset = build_dataset(
        tmp_path / "dataset",
        {"george_w_bush": STUDENTS["george_w_bush"][:2], "biden": STUDENTS["biden"][:1]},
    )
    data = _with_models(tmp_path / "data")
    locked = dataset / "biden"
    locked.chmod(0)
    server = Launched(dataset, data, env=ALL_DAY, prefix=prefix, log_path=tmp_path / "a.log")
    try:
        health = _health(server.launch().url)
        assert (health["status"], health["students"], health["skipped_photos"]) == ("ok", 1, 1)
        enrolment = server.get("/enrolment").json()
        assert enrolment["skipped"] == [
            {"path": "biden/", "reason": "cannot read the folder (Permission denied)"}
        ]
    finally:
        server.stop()
        locked.chmod(0o755)

    dataset.chmod(0)
    broken = Launched(dataset, data, env=ALL_DAY, prefix=prefix, log_path=tmp_path / "b.log")
    try:
        health = _health(broken.launch().url)
        answer = requests.get(broken.url + "/health", timeout=5)
        assert answer.status_code == 503
        assert health["status"] == "error"
        assert health["error"].startswith("enrolment failed: Permission denied"), health
        assert str(dataset) not in health["error"]  # no path (it may name a student)
    finally:
        broken.stop()
        dataset.chmod(0o755)
    log = broken.output()
    assert "enrolment failed: Permission denied" in log and str(dataset) in log
