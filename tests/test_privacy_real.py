"""Privacy through a real server and real commands, on real faces (marker ``real``): a student
without consent is not recognised and has no descriptor; after ``attendance consent give`` the
running server recognises them without a restart; ``attendance students export`` holds their
records and photos; after ``attendance students erase`` their name is in no file under the data
folder or the dataset folder (raw bytes: after the server wrote marks, the CSV files, an
intruder photo and sent the day's report to a real SMTP server) and the face is unknown
again."""

from __future__ import annotations

import io
import json
import sqlite3
import time
import zipfile
from pathlib import Path

import pytest
import requests

from conftest import (
    API_KEY,
    PROBES,
    STRANGERS,
    ServerProcess,
    build_dataset,
    face_bytes,
    free_port,
    require_faces,
    run_cli,
)
from test_privacy import files_naming
from test_report import PASSWORD, TEACHERS, USER, SmtpServer

pytestmark = pytest.mark.real

STUDENT = "george_w_bush"


def name_seen(server: ServerProcess, probe: bytes) -> str | None:
    answer = server.recognize(probe)
    assert answer.status_code == 200, answer.text
    found: str | None = answer.json().get("name")
    return found


def wait_for(
    server: ServerProcess, probe: bytes, wanted: str | None, timeout_s: float = 15
) -> None:
    """Until the server names ``probe`` ``wanted`` (its gallery follows the command's change
    within a few seconds)."""
    deadline = time.monotonic() + timeout_s
    while (seen := name_seen(server, probe)) != wanted:
        assert time.monotonic() < deadline, f"still {seen!r}, expected {wanted!r}"
        time.sleep(0.5)


def descriptors(data: Path) -> int:
    with sqlite3.connect(data / "attendance.db") as conn:
        [(count,)] = conn.execute(
            "SELECT count(*) FROM face_cache WHERE descriptor IS NOT NULL"
        ).fetchall()
    return int(count)


def test_consent_export_and_erasure_through_the_server_and_the_commands(tmp_path: Path) -> None:
    require_faces()
    dataset, data = build_dataset(tmp_path / "dataset"), tmp_path / "data"
    mail = SmtpServer(free_port())
    settings = {
        "ATTENDANCE_REQUIRE_CONSENT": "1",
        "ATTENDANCE_CLASS_START": "00:00",
        "ATTENDANCE_LATE_AFTER_MINUTES": "1440",
        "SENDER_EMAIL": USER,
        "SENDER_PASSWORD": PASSWORD,
        "TEACHER_EMAIL": TEACHERS,
        "ATTENDANCE_SMTP_HOST": "127.0.0.1",
        "ATTENDANCE_SMTP_PORT": str(mail.port),
        "ATTENDANCE_SMTP_SECURITY": "none",
    }
    server = ServerProcess(dataset, data, env=settings, log_path=tmp_path / "server.log")
    server.start()
    env = {
        **settings,
        "API_SECRET_KEY": API_KEY,
        "ATTENDANCE_DATASET_DIR": str(dataset),
        "ATTENDANCE_DATA_DIR": str(data),
    }
    probe = face_bytes(PROBES[STUDENT])
    mail.__enter__()
    try:
        assert name_seen(server, probe) is None
        assert descriptors(data) == 0  # nobody's photo was described
        given = run_cli(
            "consent",
            "give",
            STUDENT,
            "colin_powell",
            "--by",
            "Parent",
            "--document",
            "F-1",
            env=env,
        )
        assert given.returncode == 0, given.stderr
        wait_for(server, probe, STUDENT)  # no restart
        assert descriptors(data) == 8  # the two students' four photos each
        assert name_seen(server, face_bytes(PROBES["colin_powell"])) == "colin_powell"
        for photo in STRANGERS[:3]:  # an intruder photo, sealed in data/intruders
            server.recognize(face_bytes(photo))
        assert server.get("/statistics").status_code == 200
        sent = requests.post(
            server.url + "/send_report", headers={"X-API-KEY": API_KEY}, timeout=60
        )
        assert sent.status_code == 200, sent.text
        [message] = mail.inbox.messages  # sent: it cannot be recalled (docs/privacy.md)
        assert STUDENT in message.get_body(("plain",)).get_content()

        zipped = tmp_path / "export.zip"
        export = run_cli("students", "export", STUDENT, "--out", str(zipped), env=env)
        assert export.returncode == 0, export.stderr
        archive = zipfile.ZipFile(io.BytesIO(zipped.read_bytes()))
        record = json.loads(archive.read("record.json"))
        assert [m["student"] for m in record["marks"]] == [STUDENT]
        photos = [n for n in archive.namelist() if n.startswith("photos/")]
        assert len(photos) == 4 and all(archive.read(n)[:2] == b"\xff\xd8" for n in photos)

        assert files_naming(data, STUDENT)  # the database and logs/*.csv name him
        erase = run_cli("students", "erase", STUDENT, "--yes", env=env)
        assert erase.returncode == 0, erase.stderr
        assert erase.stdout.startswith(f"Erased {STUDENT}: 4 photo file(s)")
        wait_for(server, probe, None)
        assert name_seen(server, face_bytes(PROBES["colin_powell"])) == "colin_powell"
        assert files_naming(data, STUDENT) == []
        assert files_naming(dataset, STUDENT) == []
        assert descriptors(data) == 4
    finally:
        server.stop()
        mail.__exit__()
    log = server.output()
    assert "\xff\xd8" not in log and "SMART-ATTENDANCE-SEALED" not in log
