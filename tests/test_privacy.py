"""Privacy in process: consent gates enrolment, erasure leaves no trace, the export holds every
record, descriptors and photos are encrypted at rest, the audit log, and no photo or descriptor
in the logs (docs/privacy.md).

The real services and app on a real SQLite file, scripted faces, a fixed clock
(``conftest.make_kit``), with ``ATTENDANCE_REQUIRE_CONSENT=1``, the product's default.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sqlite3
import stat
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import Result
from sqlalchemy import text
from werkzeug.test import TestResponse

from conftest import API_KEY, Kit, make_kit, scripted_folder
from dashboard_kit import post_form, sign_in
from scripted import ScriptedFace, identity, near
from smart_attendance.errors import DataKeyError
from smart_attendance.privacy import erasure as erasure_module
from smart_attendance.privacy.sealing import DataSealer, load_sealer, new_key
from test_review import BORDERLINE, jpeg

HEADERS = {"X-API-KEY": API_KEY}
FORM = {"by": "Ann Lima (mother)", "document": "form 2026-114"}


@pytest.fixture
def school(tmp_path: Path, db_url: str) -> Iterator[Kit]:
    """On SQLite (the kit's own file) and on PostgreSQL (``db_url``)."""
    on = "" if db_url.startswith("sqlite") else db_url
    kit = make_kit(tmp_path, require_consent=True, database_url=on)
    yield kit
    kit.services.close()


def consent(kit: Kit, name: str, state: str = "given", **body: str) -> TestResponse:
    fields = {"state": state, **FORM, **body}
    return kit.client.put(f"/students/{name}/consent", json=fields, headers=HEADERS)


def recognised(kit: Kit, name: str, seed: int = 0) -> str | None:
    body = kit.recognize(kit.probe(name, seed=seed)).get_json()
    found: str | None = body.get("name")
    return found


def db_rows(kit: Kit, sql: str) -> list[tuple[Any, ...]]:
    with kit.services.store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def files_naming(folder: Path, name: str) -> list[str]:
    """Every file under ``folder`` whose path or raw bytes contain ``name``."""
    found = []
    needle = name.encode()
    for path in sorted(folder.rglob("*")):
        named = needle in str(path.relative_to(folder)).encode()
        if named or (path.is_file() and needle in path.read_bytes()):
            found.append(str(path))
    return found


# --- consent -----------------------------------------------------------------------------------


def test_without_consent_no_photo_is_read_and_nobody_is_recognised(school: Kit) -> None:
    services = school.services
    assert services.enrolment.enrolled() == []
    assert services.enrolment.report is not None
    assert services.enrolment.report.awaiting == ["ana_lima", "ben_ito", "cleo_park"]
    assert school.analyzer.calls == 0  # no photo was analysed at all
    assert db_rows(school, "SELECT count(*) FROM face_cache") == [(0,)]
    assert db_rows(school, "SELECT count(*) FROM photos") == [(0,)]
    # not read, so not sealed either: the school's files are as they were
    assert (school.settings.dataset_dir / "ana_lima" / "1.jpg").read_bytes() == b"photo:ana_lima:1"
    assert recognised(school, "ana_lima") is None
    listed = school.client.get("/students", headers=HEADERS).get_json()["students"]
    assert {s["name"]: s["consent"] for s in listed} == dict.fromkeys(
        ("ana_lima", "ben_ito", "cleo_park"), "none"
    )


def test_the_dataset_and_photos_awaiting_consent_are_private(school: Kit) -> None:
    dataset = school.settings.dataset_dir
    folder, photo = dataset / "ana_lima", dataset / "ana_lima" / "1.jpg"
    for path, mode in ((dataset, 0o755), (folder, 0o755), (photo, 0o644)):
        path.chmod(mode)  # as a school copies them in
    outside = school.settings.data_dir.parent / "elsewhere.jpg"
    outside.write_bytes(b"not the dataset's")
    outside.chmod(0o644)
    (folder / "3.jpg").symlink_to(outside)  # a link is left alone, never followed
    school.services.enrolment.enroll()
    assert school.services.enrolment.report is not None
    assert "ana_lima" in school.services.enrolment.report.awaiting
    assert photo.read_bytes() == b"photo:ana_lima:1"  # not read, not sealed: still plain
    assert stat.S_IMODE(dataset.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(photo.stat().st_mode) == 0o600
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644
    # A photo uploaded once consent is given is written private too.
    consent(school, "ana_lima")
    new = school.analyzer.add(jpeg(5), ScriptedFace(near(school.people["ana_lima"], 0.1, 5)))
    files = {"image": (io.BytesIO(new), "new.jpg")}
    added = school.client.post("/students/ana_lima/photos", data=files, headers=HEADERS)
    assert added.status_code == 201 and added.get_json()["enrolled"] == 1, added.get_json()
    stored = school.settings.dataset_dir / added.get_json()["photos"][0]["path"]
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600


def test_given_consent_enrols_at_once_and_seals_the_photos(school: Kit) -> None:
    answer = consent(school, "ana_lima")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["student"]["consent"] == "given"
    assert recognised(school, "ana_lima") == "ana_lima"
    assert recognised(school, "ben_ito") is None  # still no consent
    services = school.services
    assert services.enrolment.enrolled() == ["ana_lima"]
    # The photos are encrypted in place, and still open to the same bytes.
    photo = school.settings.dataset_dir / "ana_lima" / "1.jpg"
    sealed = photo.read_bytes()
    assert sealed.startswith(b"SMART-ATTENDANCE-SEALED-1\n") and b"photo:ana_lima" not in sealed
    assert services.sealer.open(sealed) == b"photo:ana_lima:1"
    assert stat.S_IMODE(photo.stat().st_mode) == 0o600
    # The stored descriptors are sealed: the float32 bytes are not in the database.
    [(blob,), (blob2,)] = db_rows(school, "SELECT descriptor FROM face_cache ORDER BY sha256")
    for raw in (blob, blob2):
        assert raw.startswith(b"SMART-ATTENDANCE-SEALED-1\n")
        vector = np.frombuffer(services.sealer.open(raw), dtype=np.float32)
        assert vector.shape == (128,) and vector.tobytes() not in raw
    [event] = services.consent.history("ana_lima")
    assert (event.state, event.by, event.document, event.recorded_by) == (
        "given",
        "Ann Lima (mother)",
        "form 2026-114",
        "api",
    )


def test_photos_of_a_student_without_consent_are_refused_with_the_reason(school: Kit) -> None:
    upload = school.client.post(
        "/students/ben_ito/photos",
        data={"image": [(io.BytesIO(b"\x89PNG whatever"), "ben.png")]},
        headers=HEADERS,
    )
    assert upload.status_code == 409
    assert "ben_ito has no recorded consent" in upload.get_json()["error"]
    assert sorted(p.name for p in (school.settings.dataset_dir / "ben_ito").iterdir()) == [
        "1.jpg",
        "2.jpg",
    ]


def test_withdrawing_deletes_photos_and_descriptors_and_keeps_the_marks(school: Kit) -> None:
    consent(school, "ana_lima")
    assert school.recognize(school.probe("ana_lima")).get_json()["new"] is True
    withdrawn = consent(school, "ana_lima", "withdrawn", document="")
    assert withdrawn.status_code == 200
    assert list((school.settings.dataset_dir / "ana_lima").iterdir()) == []
    assert db_rows(school, "SELECT count(*) FROM face_cache") == [(0,)]
    assert db_rows(school, "SELECT count(*) FROM photos") == [(0,)]
    assert recognised(school, "ana_lima", seed=1) is None
    assert db_rows(school, "SELECT student, status FROM marks") == [("ana_lima", "Present")]
    states = [e.state for e in school.services.consent.history("ana_lima")]
    assert states == ["given", "withdrawn"]


@pytest.mark.parametrize(
    ("body", "code", "error"),
    [
        ({"state": "maybe"}, 400, "consent state must be one of given, refused, withdrawn"),
        ({"by": ""}, 400, "by is required"),
        ({"document": ""}, 400, "document is required"),
        ({"colour": "red"}, 400, "unknown field 'colour'"),
    ],
)
def test_a_bad_consent_request_gets_a_clear_400(
    school: Kit, body: dict[str, str], code: int, error: str
) -> None:
    answer = consent(school, "ana_lima", **body)
    assert answer.status_code == code
    assert error in answer.get_json()["error"]
    assert school.services.store.consent_states()["ana_lima"] == "none"


def test_consent_for_an_unknown_student_is_404(school: Kit) -> None:
    assert consent(school, "nobody").status_code == 404


def test_consent_through_the_command_reaches_the_running_server(
    school: Kit, cli: Callable[..., Result]
) -> None:
    env = {
        "ATTENDANCE_DATA_DIR": str(school.settings.data_dir),
        "ATTENDANCE_DATASET_DIR": str(school.settings.dataset_dir),
        "ATTENDANCE_DATABASE_URL": school.settings.database_url,
    }
    done = cli("consent", "give", "--all", "--by", "Head teacher", "--document", "forms", env=env)
    assert done.exit_code == 0, done.output
    assert "ana_lima: none -> given" in done.output
    assert school.services.enrolment.refresh()  # what the server's watcher does every second
    assert recognised(school, "cleo_park") == "cleo_park"
    refused = cli("consent", "refuse", "cleo_park", "--by", "Cleo Park", env=env)
    assert "cleo_park: given -> refused (2 photo(s) deleted)" in refused.output
    assert school.services.enrolment.refresh()
    assert recognised(school, "cleo_park", seed=1) is None
    listing = cli("consent", "list", "--state", "refused", env=env)
    header, row = listing.output.splitlines()
    assert header.split() == ["Student", "Consent", "Last", "recorded", "(by,", "document)"]
    assert row.split()[:2] == ["cleo_park", "refused"] and row.split()[3:5] == ["by", "Cleo"]
    assert row.index("refused") == header.index("Consent")  # in the column
    missing = cli("consent", "give", "--by", "x", "--document", "y", env=env)
    assert missing.exit_code != 0 and "name the students, or give --all" in missing.output


def test_consent_for_photos_copied_in_while_the_server_runs_registers_the_folder(
    school: Kit, cli: Callable[..., Result]
) -> None:
    """The README's order: photos copied into dataset/ with the server running, then consent
    from the command. The folder is found and the student registered; a name with no folder
    says what to do."""
    scripted_folder(school, "bob_hope", seed=40)
    env = {
        "ATTENDANCE_DATA_DIR": str(school.settings.data_dir),
        "ATTENDANCE_DATASET_DIR": str(school.settings.dataset_dir),
        "ATTENDANCE_DATABASE_URL": school.settings.database_url,
    }
    done = cli("consent", "give", "bob_hope", "--by", "his parents", "--document", "f1", env=env)
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines()[0] == (
        "bob_hope: none -> given (a new student, from its dataset folder)"
    )
    assert school.services.store.consent_states()["bob_hope"] == "given"
    assert school.services.enrolment.refresh()  # what the server's watcher does every second
    assert recognised(school, "bob_hope") == "bob_hope"
    typo = cli("consent", "give", "bob_hop", "--by", "x", "--document", "y", env=env)
    assert typo.exit_code == 1
    assert typo.stderr == (
        "Error: no student named 'bob_hop', and no dataset folder of that name: check the name "
        "(`attendance consent list`), or put the student's photos in dataset/bob_hop/ "
        "(ATTENDANCE_DATASET_DIR) and run `attendance enroll`\n"
    )
    assert "bob_hop" not in school.services.store.consent_states()


# --- erasure and access ------------------------------------------------------------------------


def busy_day(kit: Kit) -> None:
    """Marks, a correction, CSV files, an intruder photo identified as ana_lima, an uncertain
    face that named her, audit entries: everything that can name a student."""
    consent(kit, "ana_lima")
    consent(kit, "ben_ito")
    kit.recognize(kit.probe("ana_lima"), camera="door-1")
    kit.recognize(kit.probe("ben_ito"), camera="door-1")
    near_ana = ScriptedFace(near(kit.people["ana_lima"], BORDERLINE, 13))
    kit.recognize(kit.analyzer.add(jpeg(3), near_ana), camera="door-2")  # an uncertain face
    for seed in range(3):
        stranger = ScriptedFace(identity(20_040 + seed))
        kit.recognize(kit.analyzer.add(jpeg(540 + seed), stranger), camera="door-2")
    token = sign_in(kit)
    today = kit.services.attendance.today()
    [intruder] = kit.services.store.intruder_rows(today, today)
    identified = post_form(
        kit, f"/review/intruders/{intruder.id}", token, action="identify", student="ana_lima"
    )
    assert identified.status_code == 303
    post_form(
        kit,
        "/today/correct",
        token,
        name="ana_lima",
        status="Late",
        reason="bus",
        date="2026-11-23",
    )
    kit.client.get("/student/ana_lima")
    kit.services.files.update(kit.services.attendance.today())


def test_erasure_leaves_the_name_in_no_file_and_the_face_unknown(school: Kit) -> None:
    busy_day(school)
    data, dataset = school.settings.data_dir, school.settings.dataset_dir
    assert files_naming(data, "ana_lima")  # the database and the CSV files name her now
    assert db_rows(school, "SELECT count(*) FROM uncertain WHERE candidate = 'ana_lima'") == [(1,)]
    assert db_rows(school, "SELECT count(*) FROM intruders WHERE student = 'ana_lima'") == [(1,)]

    answer = school.client.delete("/students/ana_lima", headers=HEADERS)
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["erased"].startswith("erased:") and body["photos"] == 2
    assert body["files"] == 2 and body["csv_lines"] >= 2 and body["records"] >= 6

    assert files_naming(data, "ana_lima") == []
    assert files_naming(dataset, "ana_lima") == []
    assert recognised(school, "ana_lima", seed=5) is None
    assert recognised(school, "ben_ito") == "ben_ito"  # the others are untouched
    assert db_rows(school, "SELECT count(*) FROM marks WHERE student = 'ben_ito'") == [(1,)]
    # The audit log keeps the erasure, and her earlier entries, under the opaque id only.
    [erasure] = [e for e in school.services.audit.entries() if e.action == "erase"]
    assert (erasure.actor, erasure.subject) == ("api", body["erased"])
    views = [e for e in school.services.audit.entries() if e.action == "view"]
    assert views and {e.subject for e in views} == {body["erased"]}
    assert school.client.delete("/students/ana_lima", headers=HEADERS).status_code == 404


def test_an_erasure_that_failed_after_its_database_step_is_finished_by_a_retry(
    school: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy_day(school)
    scrub = erasure_module.scrub_csv_files
    calls = []

    def fails_once(folder: Path, name: str) -> int:
        calls.append(name)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return scrub(folder, name)

    monkeypatch.setattr(erasure_module, "scrub_csv_files", fails_once)
    failed = school.client.delete("/students/ana_lima", headers=HEADERS)
    assert failed.status_code == 500
    assert db_rows(school, "SELECT count(*) FROM marks WHERE student = 'ana_lima'") == [(0,)]
    assert files_naming(school.settings.logs_dir, "ana_lima")  # the CSV lines are left
    assert [e for e in school.services.audit.entries() if e.action == "erase"] == []
    # The retry finishes the job: CSV lines, one audit entry, compaction.
    answer = school.client.delete("/students/ana_lima", headers=HEADERS)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["csv_lines"] >= 2
    assert files_naming(school.settings.data_dir, "ana_lima") == []
    [erasure] = [e for e in school.services.audit.entries() if e.action == "erase"]
    assert erasure.subject == answer.get_json()["erased"]
    assert "finished after a failure" in erasure.detail
    assert db_rows(school, "SELECT count(*) FROM pending_erasures") == [(0,)]
    assert school.client.delete("/students/ana_lima", headers=HEADERS).status_code == 404


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's write-ahead log
def test_an_erasure_whose_checkpoint_cannot_complete_stays_pending(school: Kit) -> None:
    busy_day(school)
    reader = sqlite3.connect(school.settings.data_dir / "attendance.db", isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM marks").fetchall()  # a read the log must keep
        busy = school.client.delete("/students/ana_lima", headers=HEADERS)
        assert busy.status_code == 503, busy.get_json()
        assert "retry to finish" in busy.get_json()["error"]
    finally:
        reader.close()
    assert [e.action for e in school.services.audit.entries(1)] == ["erase"]  # recorded once
    answer = school.client.delete("/students/ana_lima", headers=HEADERS)
    assert answer.status_code == 200, answer.get_json()
    assert files_naming(school.settings.data_dir, "ana_lima") == []
    assert len([e for e in school.services.audit.entries() if e.action == "erase"]) == 1
    assert db_rows(school, "SELECT count(*) FROM pending_erasures") == [(0,)]


def test_the_export_holds_every_record_photos_and_a_readme(school: Kit) -> None:
    busy_day(school)
    answer = school.client.get("/students/ana_lima/export", headers=HEADERS)
    assert answer.status_code == 200 and answer.mimetype == "application/zip"
    assert 'filename="student-ana_lima.zip"' in answer.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(answer.data))
    names = set(archive.namelist())
    assert {"README.txt", "record.json", "photos/1.jpg", "photos/2.jpg"} <= names
    assert archive.read("photos/1.jpg") == b"photo:ana_lima:1"  # decrypted
    assert sum(n.startswith("review/") for n in names) == 2  # the intruder and uncertain photos
    record = json.loads(archive.read("record.json"))
    assert [m["status"] for m in record["marks"]] == ["Present"]
    assert [c["new_status"] for c in record["corrections"]] == ["Late"]
    assert [c["state"] for c in record["consent_events"]] == ["given"]
    assert record["students"][0]["consent"] == "given"
    assert len(record["intruders"]) == 1 and len(record["uncertain"]) == 1
    assert {"view", "correct", "consent"} <= {a["action"] for a in record["audit"]}
    assert "subject access request" in archive.read("README.txt").decode()
    assert [e.action for e in school.services.audit.entries(1)] == ["export"]


def test_the_export_leaves_out_faces_staff_rejected_as_not_the_student(school: Kit) -> None:
    busy_day(school)  # one uncertain face that named ana_lima, left open
    other = ScriptedFace(near(school.people["ana_lima"], BORDERLINE, 14))
    school.recognize(school.analyzer.add(jpeg(7), other), camera="door-3")  # someone else
    today = school.services.attendance.today()
    rows = school.services.store.uncertain_rows(today, today)
    assert [r.camera for r in rows] == ["door-2", "door-3"]
    rejected = rows[1]
    crop = school.services.sealer.open(Path(rejected.path).read_bytes())
    token = sign_in(school)
    done = post_form(school, f"/review/uncertain/{rejected.id}", token, action="reject")
    assert done.status_code == 303
    assert school.services.store.uncertain_row(rejected.id).state == "rejected"
    for answer in (
        school.client.get("/students/ana_lima/export", headers=HEADERS),
        school.client.get("/student/ana_lima/export"),
    ):
        assert answer.status_code == 200
        archive = zipfile.ZipFile(io.BytesIO(answer.data))
        record = json.loads(archive.read("record.json"))
        assert [u["camera"] for u in record["uncertain"]] == ["door-2"]
        review = [n for n in archive.namelist() if n.startswith("review/")]
        assert len(review) == 2 and f"review/uncertain-{rejected.id}.jpg" not in review
        assert all(archive.read(n) != crop for n in review)


# --- encryption at rest ------------------------------------------------------------------------


def test_the_key_file_is_private_and_another_key_opens_nothing(school: Kit) -> None:
    consent(school, "ana_lima")
    key_file = school.settings.data_dir / "data_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    [(blob,), _] = db_rows(school, "SELECT descriptor FROM face_cache")
    thief = DataSealer([new_key().encode()], "a stolen copy")
    with pytest.raises(DataKeyError, match="cannot be decrypted"):
        thief.open(blob)
    with pytest.raises(DataKeyError):
        thief.open((school.settings.dataset_dir / "ana_lima" / "1.jpg").read_bytes())


def test_rotation_seals_everything_with_a_new_key(school: Kit, cli: Callable[..., Result]) -> None:
    busy_day(school)
    old = load_sealer(school.settings)
    env = {
        "ATTENDANCE_DATA_DIR": str(school.settings.data_dir),
        "ATTENDANCE_DATASET_DIR": str(school.settings.dataset_dir),
        "ATTENDANCE_DATABASE_URL": school.settings.database_url,
    }
    done = cli("encryption", "rotate", env=env)
    assert done.exit_code == 0, done.output
    assert "Encrypted 4 descriptor(s) and 6 file(s) again." in done.output
    new = load_sealer(school.settings)
    assert new.keys != old.keys and len(new.keys) == 1
    photo = (school.settings.dataset_dir / "ana_lima" / "1.jpg").read_bytes()
    assert new.open(photo) == b"photo:ana_lima:1"
    with pytest.raises(DataKeyError):
        old.open(photo)
    # A server started with the new key recognises everyone as before.
    again = make_kit(
        school.settings.data_dir.parent,
        require_consent=True,
        database_url=school.settings.database_url,
    )
    assert recognised(again, "ben_ito") == "ben_ito"
    again.services.close()


def test_a_bad_data_key_setting_is_one_clear_line(cli: Callable[..., Result]) -> None:
    done = cli("audit", env={"ATTENDANCE_DATA_KEY": "not-a-key"})
    assert done.exit_code == 1
    assert "ATTENDANCE_DATA_KEY: not a data key" in done.output
    assert len(done.output.strip().splitlines()) == 1


# --- the dashboard and the audit log -----------------------------------------------------------


def test_consent_export_and_erasure_on_the_student_page(school: Kit) -> None:
    token = sign_in(school, "ada", "admin")
    page = school.client.get("/student/ana_lima").get_data(as_text=True)
    assert 'data-consent="none"' in page and "Erase ana_lima" in page
    done = post_form(school, "/student/ana_lima/consent", token, state="given", **FORM)
    assert done.status_code == 303
    assert school.services.store.consent_states()["ana_lima"] == "given"
    assert recognised(school, "ana_lima") == "ana_lima"
    zipped = school.client.get("/student/ana_lima/export")
    assert zipped.mimetype == "application/zip"
    wrong = post_form(school, "/student/ana_lima/erase", token, confirm="ana")
    assert wrong.status_code == 303 and school.services.store.student("ana_lima") is not None
    erased = post_form(school, "/student/ana_lima/erase", token, confirm="ana_lima")
    assert erased.headers["Location"].endswith("/enrol")
    assert school.services.store.student("ana_lima") is None
    assert "ana_lima was erased" in school.client.get("/enrol").get_data(as_text=True)
    audit = school.client.get("/admin/audit").get_data(as_text=True)
    assert "user:ada" in audit and "erase" in audit and "erased:" in audit
    assert "ana_lima" not in audit


def test_a_teacher_may_not_record_consent_export_erase_or_read_the_audit(school: Kit) -> None:
    token = sign_in(school, "tom", "teacher", ["default"])
    assert (
        post_form(school, "/student/ana_lima/consent", token, state="given", **FORM).status_code
        == 403
    )
    assert school.client.get("/student/ana_lima/export").status_code == 403
    assert (
        post_form(school, "/student/ana_lima/erase", token, confirm="ana_lima").status_code == 403
    )
    assert school.client.get("/admin/audit").status_code == 403
    page = school.client.get("/student/ana_lima").get_data(as_text=True)
    assert "Record consent" not in page and "Erase ana_lima" not in page


def test_the_enrol_pages_say_who_awaits_consent(school: Kit) -> None:
    sign_in(school, "ada", "admin")
    listing = school.client.get("/enrol").get_data(as_text=True)
    assert 'data-awaiting="ana_lima"' in listing
    photos = school.client.get("/enrol/ana_lima").get_data(as_text=True)
    assert "data-awaiting-consent" in photos and "Awaiting consent" in photos


def test_the_enrol_pages_say_whose_consent_was_refused_not_awaited(school: Kit) -> None:
    consent(school, "cleo_park", "refused")
    consent(school, "ben_ito", "given")
    consent(school, "ben_ito", "withdrawn")
    sign_in(school, "ada", "admin")
    listing = school.client.get("/enrol").get_data(as_text=True)
    photos_column = {
        name: " ".join(re.sub(r"<[^>]+>", " ", cell).split())
        for name, cell in re.findall(
            r'<span class="name">(\w+)</span>.*?<td class="num">(.*?)</td>', listing, re.S
        )
    }
    assert photos_column == {
        "ana_lima": "awaiting consent",
        "ben_ito": "consent withdrawn",
        "cleo_park": "consent refused",
    }
    photos = school.client.get("/enrol/cleo_park").get_data(as_text=True)
    assert "Consent refused:" in photos and "Awaiting consent" not in photos


def test_the_audit_command_prints_the_log(school: Kit, cli: Callable[..., Result]) -> None:
    consent(school, "ana_lima")
    school.clock.advance(minutes=5)
    env = {
        "ATTENDANCE_DATA_DIR": str(school.settings.data_dir),
        "ATTENDANCE_DATABASE_URL": school.settings.database_url,
    }
    done = cli("audit", "--student", "ana_lima", env=env)
    assert done.exit_code == 0
    [line] = done.output.strip().splitlines()
    assert line.startswith("2026-11-23 07:55:00  api  consent  ana_lima  (given, recorded for")


def test_no_photo_or_descriptor_reaches_the_logs(
    school: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    busy_day(school)
    school.client.get("/students/ana_lima/export", headers=HEADERS)
    school.client.delete("/students/ana_lima", headers=HEADERS)
    text = caplog.text
    assert caplog.records  # the scenario did log
    assert "photo:" not in text and "probe:" not in text and "stranger:" not in text
    for vector in school.people.values():
        for value in vector[:4]:
            assert f"{value:.4f}" not in text and f"{value:.3f}" not in text
    assert "ana_lima" not in text.split("erased as")[-1]


def test_the_marks_of_a_student_who_withdrew_are_kept_for_the_register(school: Kit) -> None:
    consent(school, "ben_ito")
    school.recognize(school.probe("ben_ito"))
    school.clock.advance(days=1)
    consent(school, "ben_ito", "withdrawn", document="")
    view = school.client.get("/attendance?date=2026-11-23", headers=HEADERS).get_json()
    [period] = view["classes"][0]["periods"]
    assert {"name": "ben_ito", "status": "Present"}.items() <= period["students"][1].items()
