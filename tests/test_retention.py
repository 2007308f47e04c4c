"""The retention purge (``privacy/retention.py``): each setting's window with an injected clock,
files and CSV day files, dry runs, descriptor-only enrolment, the daily run once across servers,
``attendance purge``, and what an intruder capture keeps (``ATTENDANCE_INTRUDER_PHOTOS``). The
purge's windows and deletes and the daily job's claim also on a real PostgreSQL server
(``db_url``)."""

from __future__ import annotations

import csv
import io
import stat
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import Result
from PIL import Image

from conftest import PARIS, Kit, make_kit, tick_together
from dashboard_kit import post_form, sign_in
from scripted import ScriptedFace, identity, near
from smart_attendance.app import Services, build_services
from smart_attendance.db.store import CachedFace
from smart_attendance.errors import StoreError
from smart_attendance.models import STATUS_EXCUSED, Correction
from smart_attendance.privacy.retention import JOB, PurgeReport, PurgeScheduler

TODAY = date(2026, 11, 23)  # a Monday
BORDERLINE = 0.49  # just farther than the threshold 0.47 from a student: an uncertain face
WINDOWS: dict[str, Any] = {  # each setting a different number of days, so each is tested on its own
    "retain_intruder_days": 2,
    "retain_uncertain_days": 3,
    "retain_marks_days": 5,
    "retain_audit_days": 7,
}


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)


def days_ago(n: int) -> date:
    return TODAY - timedelta(days=n)


def jpeg(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A real JPEG frame: coloured noise (every pixel differs from its neighbours)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=95)
    return out.getvalue()


def scan(kit: Kit, frame: bytes, when: datetime, camera: str = "gate") -> dict[str, Any]:
    kit.clock.set(when)
    response = kit.recognize(frame, camera=camera)
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def intruder_at(kit: Kit, when: datetime, seed: int, camera: str = "gate") -> None:
    """Three unknown faces in a row at ``camera``: one intruder event."""
    for n in range(kit.settings.intruder_threshold):
        frame = kit.analyzer.add(jpeg(1000 * seed + n), ScriptedFace(identity(20_000 + seed)))
        scan(kit, frame, when, camera)


def uncertain_at(kit: Kit, when: datetime, seed: int) -> None:
    face = ScriptedFace(near(kit.people["ana_lima"], BORDERLINE, 300 + seed))
    body = scan(kit, kit.analyzer.add(jpeg(3000 + seed), face), when, camera="hall")
    assert body["status"] == "unknown"


def present_at(kit: Kit, name: str, when: datetime) -> None:
    assert scan(kit, kit.probe(name, seed=when.day), when, camera="door")["name"] == name


def purge_entries(services: Services) -> list[tuple[str, str]]:
    return [(e.actor, e.detail) for e in services.audit.entries() if e.action == "purge"]


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --- each retention setting ----------------------------------------------------------------------


def on(db_url: str) -> str:
    """``database_url`` for ``make_kit``: "" on SQLite (the kit's own file), else the URL."""
    return "" if db_url.startswith("sqlite") else db_url


@pytest.fixture
def aged(tmp_path: Path) -> Iterator[Kit]:
    """A kit whose data lies on both sides of every window: for a setting of N days, an item
    N + 1 days old (goes) and one N days old (stays), each made at its time on the clock."""
    kit = age(make_kit(tmp_path, **WINDOWS))
    yield kit
    kit.services.close()


@pytest.fixture
def aged_on_db(tmp_path: Path, db_url: str) -> Iterator[Kit]:
    """The same on SQLite and on PostgreSQL (``db_url``): the windows' date arithmetic and
    the deletes, engine by engine."""
    kit = age(make_kit(tmp_path, database_url=on(db_url), **WINDOWS))
    yield kit
    kit.services.close()


def age(kit: Kit) -> Kit:
    store = kit.services.store
    intruder_at(kit, at(days_ago(3), 23, 50), seed=1)  # Friday night: goes
    intruder_at(kit, at(days_ago(2), 0, 10), seed=2)  # Saturday just after midnight: stays
    uncertain_at(kit, at(days_ago(4), 12), seed=1)
    uncertain_at(kit, at(days_ago(3), 12), seed=2)
    for n in (6, 5):  # marks, their CSV day files, a correction and a sighting on each day
        present_at(kit, "ana_lima", at(days_ago(n), 8, 55))
        store.record_correction(
            Correction(
                "ben_ito",
                days_ago(n),
                "default",
                "00:00",
                None,
                STATUS_EXCUSED,
                "dentist",
                "user:office",
                datetime(2026, 11, 23, 7, 0),
            )
        )
        store.record_sighting("cleo_park", datetime.combine(days_ago(n), clock_time(20)), "door")
        kit.services.files.update(days_ago(n))
    kit.clock.set(at(days_ago(8), 23, 30))  # the audit log's cut-off is local midnight
    kit.services.audit.record("user:ada", "view", "ana_lima")  # goes
    kit.clock.set(at(days_ago(7), 0, 30))
    kit.services.audit.record("user:ada", "view", "ben_ito")  # stays
    # Left over: a day file of the original's, a photo whose row was never written, a
    # descriptor no photo uses.
    (kit.logs / "attendance_2025-01-06.csv").write_text("Name,Time,Status\n", encoding="utf-8")
    (kit.logs / "notes.csv").write_text("kept\n", encoding="utf-8")
    stray = kit.settings.intruders_dir / days_ago(20).isoformat()
    stray.mkdir(parents=True)
    (stray / "intruder_101010_gate_0badf00d.jpg").write_bytes(b"left by a crash")
    store.cache_faces("old-pipeline", {"0" * 64: CachedFace("no_face", "", None)})
    kit.clock.set(at(TODAY, 3, 0))
    return kit


EXPECTED = {
    "intruder photos": 1,
    "intruder photo files": 2,  # the row's and the one left by a crash
    "uncertain faces": 1,
    "uncertain face files": 1,
    "marks": 1,
    "corrections": 1,
    "sightings": 1,
    "CSV day files": 2,  # the purged day's and the original's of 2025
    "enrolment photos": 0,  # ATTENDANCE_ENROLMENT_PHOTOS=keep
    "audit entries": 1,
    "orphan descriptors": 1,
}


def snapshot(kit: Kit) -> dict[str, Any]:
    store = kit.services.store
    first, last = date(2020, 1, 1), TODAY
    return {
        "intruders": [(r.day, f"{r.seen_at:%H:%M}") for r in store.intruder_rows(first, last)],
        "uncertain": [r.day for r in store.uncertain_rows(first, last)],
        "marks": [(m.name, m.day) for m in store.marks_between(first, last)],
        "corrections": [(c.name, c.day) for c in store.corrections_between(first, last)],
        "sightings": [
            (name, day)
            for day in (days_ago(6), days_ago(5))
            for name, _seen, _camera in store.sightings_on(day)
        ],
        "audit": [(e.subject, e.at) for e in kit.services.audit.entries() if e.action == "view"],
        "orphans": store.orphan_faces(),
        "files": files_under(kit.settings.data_dir),
    }


def test_a_dry_run_counts_everything_and_deletes_nothing(aged: Kit) -> None:
    before = snapshot(aged)
    report = aged.services.purge.purge(dry_run=True)
    assert dict(report.counts()) == EXPECTED
    assert report.dry_run and report.failed_files == 0
    assert snapshot(aged) == before
    assert purge_entries(aged.services) == []  # nothing was purged: nothing to audit


def test_purge_deletes_just_outside_each_window_and_keeps_just_inside(aged_on_db: Kit) -> None:
    aged = aged_on_db
    settings = aged.settings
    day_file = aged.logs / f"attendance_{days_ago(6)}.csv"
    kept_file = aged.logs / f"attendance_{days_ago(5)}.csv"
    assert [r["Days On Time"] for r in csv_rows(aged.logs / "student_statistics.csv")][:1] == ["2"]
    assert day_file.is_file() and kept_file.is_file()

    report = aged.services.purge.purge()

    assert dict(report.counts()) == EXPECTED and not report.dry_run
    assert report.cutoffs == {
        "intruders": days_ago(2),
        "uncertain": days_ago(3),
        "marks": days_ago(5),
        "audit": days_ago(7),
    }
    left = snapshot(aged)
    assert left["intruders"] == [(days_ago(2), "00:10")]
    assert left["uncertain"] == [days_ago(3)]
    assert left["marks"] == [("ana_lima", days_ago(5))]
    assert left["corrections"] == [("ben_ito", days_ago(5))]
    assert left["sightings"] == [("cleo_park", days_ago(5))]
    assert left["audit"] == [("ben_ito", datetime(2026, 11, 15, 23, 30))]  # UTC
    assert left["orphans"] == 0
    # The files of purged days are gone, with their day folders; the others stay.
    assert not day_file.exists() and kept_file.is_file()
    assert not (aged.logs / "attendance_2025-01-06.csv").exists()
    assert (aged.logs / "notes.csv").is_file()
    intruder_days = sorted(p.name for p in settings.intruders_dir.iterdir())
    assert intruder_days == [days_ago(2).isoformat()]
    review_days = sorted(p.name for p in settings.review_dir.iterdir())
    assert review_days == [days_ago(3).isoformat()]
    # The statistics file is rewritten from what is left.
    [ana] = [
        r for r in csv_rows(aged.logs / "student_statistics.csv") if r["Student Name"] == "ana_lima"
    ]
    assert ana["Days On Time"] == "1"
    # One audit entry with the counts (never a name), by the server.
    [(actor, detail)] = purge_entries(aged.services)
    assert actor == "server" and detail == report.summary()
    assert detail.startswith("intruder photos 1, intruder photo files 2, uncertain faces 1, ")
    assert "ana_lima" not in detail

    # Purging again finds nothing more.
    again = aged.services.purge.purge()
    assert again.total == 0


def test_a_file_that_cannot_be_deleted_is_logged_and_the_purge_goes_on(
    aged: Kit, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stuck = next(aged.settings.review_dir.glob(f"{days_ago(4)}/*"))
    original = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self.name == stuck.name:
            raise PermissionError(13, "Permission denied")
        original(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    report = aged.services.purge.purge()
    assert report.failed_files == 1 and report.uncertain_files == 0
    assert report.uncertain_faces == 1 and report.marks == 1  # the rest went on
    assert stuck.is_file()  # and its day folder with it
    assert "a file in" in caplog.text and "Permission denied" in caplog.text
    assert "could not be deleted" in purge_entries(aged.services)[0][1]


# --- enrolment photos: descriptor-only storage ---------------------------------------------------


def test_delete_mode_removes_enrolled_photos_and_the_students_are_still_recognised(
    tmp_path: Path,
) -> None:
    kit = make_kit(tmp_path, enrolment_photos="delete")
    try:
        photos = sorted(kit.settings.dataset_dir.rglob("*.jpg"))
        assert len(photos) == 6
        assert kit.services.purge.purge(dry_run=True).enrolment_photos == 6
        assert all(p.is_file() for p in photos)

        report = kit.services.purge.purge()
        assert report.enrolment_photos == 6 and report.orphan_descriptors == 0
        assert not any(p.exists() for p in photos)
        assert kit.recognize(kit.probe("ben_ito")).get_json()["name"] == "ben_ito"
        kit.services.enrolment.enroll()  # the next enrolment keeps the descriptors
        assert kit.recognize(kit.probe("cleo_park")).get_json()["name"] == "cleo_park"
        assert kit.services.purge.purge().enrolment_photos == 0
    finally:
        kit.services.close()
    # A server started later on the same data enrols the students from their descriptors.
    later = build_services(kit.settings, clock=kit.clock, analyzer=kit.analyzer)
    try:
        later.enrolment.enroll()
        assert sorted(later.enrolment.enrolled()) == ["ana_lima", "ben_ito", "cleo_park"]
    finally:
        later.close()


# --- the daily purge, once across servers ---------------------------------------------------------


def scheduler_for(kit: Kit, services: Services) -> PurgeScheduler:
    return PurgeScheduler(kit.settings, services.store, services.purge, kit.clock)


def test_the_daily_purge_runs_once_across_two_servers(tmp_path: Path, db_url: str) -> None:
    kit = make_kit(
        tmp_path, retain_intruder_days=2, purge_time=clock_time(3, 0), database_url=on(db_url)
    )
    other = build_services(kit.settings, clock=kit.clock, analyzer=kit.analyzer)
    store = kit.services.store
    try:
        intruder_at(kit, at(days_ago(5), 9), seed=1)
        schedulers = [scheduler_for(kit, kit.services), scheduler_for(kit, other)]

        def together(when: datetime) -> None:
            kit.clock.set(when)
            tick_together(schedulers, when)

        assert schedulers[0].tick(at(TODAY, 2, 59) + timedelta(seconds=58)) == 2.0
        together(at(TODAY, 2, 59))
        assert store.job_status(JOB, TODAY) is None and purge_entries(kit.services) == []
        for when in (at(TODAY, 3, 0), at(TODAY, 3, 1), at(TODAY, 15, 0)):
            together(when)
            assert len(purge_entries(kit.services)) == 1  # once, and not again
        assert store.job_status(JOB, TODAY) == "done"
        assert store.intruder_rows(date(2020, 1, 1), TODAY) == []

        # A server started after 03:00 the next day (none ran at 03:00) purges when it starts.
        intruder_at(kit, at(TODAY, 10), seed=2)
        restarted = scheduler_for(kit, other)
        kit.clock.set(at(TODAY + timedelta(days=3), 8, 0))
        restarted.tick()
        assert len(purge_entries(kit.services)) == 2
        assert store.job_status(JOB, TODAY + timedelta(days=3)) == "done"
        assert store.intruder_rows(date(2020, 1, 1), TODAY + timedelta(days=3)) == []
        scheduler_for(kit, kit.services).tick()
        assert len(purge_entries(kit.services)) == 2
    finally:
        other.close()
        kit.services.close()


def test_a_failed_daily_purge_is_tried_again_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    kit = make_kit(tmp_path, purge_time=clock_time(3, 0), database_url=on(db_url))
    store = kit.services.store
    try:
        scheduler = scheduler_for(kit, kit.services)
        calls: list[bool] = []

        def failing(dry_run: bool = False, actor: str = "server") -> PurgeReport:
            calls.append(dry_run)
            raise StoreError("database error: disk I/O error")

        monkeypatch.setattr(kit.services.purge, "purge", failing)
        kit.clock.set(at(TODAY, 3, 0))
        scheduler.tick()
        assert store.job_status(JOB, TODAY) == "failed" and calls == [False]
        kit.clock.set(at(TODAY, 3, 14))
        scheduler.tick()
        scheduler_for(kit, kit.services).tick()  # another server: not due either
        assert calls == [False]
        monkeypatch.undo()
        kit.clock.set(at(TODAY, 3, 16))
        scheduler.tick()
        assert store.job_status(JOB, TODAY) == "done"
        assert len(purge_entries(kit.services)) == 1
    finally:
        kit.services.close()


def test_no_purge_time_means_no_daily_purge(tmp_path: Path) -> None:
    kit = make_kit(tmp_path, purge_time=None)
    try:
        scheduler = scheduler_for(kit, kit.services)
        assert scheduler.tick(at(TODAY, 12)) == 3600.0
        scheduler.start()
        assert scheduler._thread is None
        assert kit.services.store.job_status(JOB, TODAY) is None
    finally:
        kit.services.close()


# --- attendance purge -----------------------------------------------------------------------------


def test_the_purge_command_prints_the_counts(tmp_path: Path, cli: Callable[..., Result]) -> None:
    kit = make_kit(tmp_path / "school", now=datetime(2020, 1, 6, 9, 0, tzinfo=PARIS))
    intruder_at(kit, datetime(2020, 1, 6, 9, 0, tzinfo=PARIS), seed=1)  # long ago, by any clock
    kit.services.close()
    env = {
        "ATTENDANCE_DATA_DIR": str(kit.settings.data_dir),
        "ATTENDANCE_DATASET_DIR": str(kit.settings.dataset_dir),
        "ATTENDANCE_TIMEZONE": "Europe/Paris",
        "ATTENDANCE_LOG_LEVEL": "WARNING",
    }
    dry = cli("purge", "--dry-run", env=env)
    assert dry.exit_code == 0, dry.output
    lines = dry.stdout.splitlines()
    assert lines[:3] == [
        "Dry run: nothing deleted. Would delete:",
        "  intruder photos:      1",
        "  intruder photo files: 1",
    ]
    assert "  marks:                0" in lines
    assert lines[-1].startswith("Kept from: intruder photos ")
    assert len(files_under(kit.settings.intruders_dir)) == 1

    done = cli("purge", env=env)
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines()[:2] == ["Deleted:", "  intruder photos:      1"]
    assert files_under(kit.settings.intruders_dir) == []
    check = build_services(kit.settings, clock=kit.clock, analyzer=kit.analyzer)
    try:
        [(actor, _detail)] = purge_entries(check)
        assert actor.startswith("cli:")
    finally:
        check.close()

    missing = cli("purge", env={**env, "ATTENDANCE_DATA_DIR": str(tmp_path / "nowhere")})
    assert missing.exit_code == 1
    assert missing.stderr.startswith("Error: no database at ")
    assert not (tmp_path / "nowhere").exists()


# --- intruder photos: full, blurred, off ----------------------------------------------------------


def capture(kit: Kit, frame: bytes) -> None:
    """Three unknown faces in a row at the gate: an intruder event at 08:55."""
    for _ in range(kit.settings.intruder_threshold):
        scan(kit, frame, at(TODAY, 8, 55))


def stranger_frame(kit: Kit) -> bytes:
    return kit.analyzer.add(jpeg(7, (640, 480)), ScriptedFace(identity(30_000)))


def the_photo(kit: Kit) -> Path:
    [row] = kit.services.store.intruder_rows(TODAY, TODAY)
    path = Path(row.path)
    assert path.parent == kit.settings.intruders_dir / TODAY.isoformat()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(kit.settings.intruders_dir.stat().st_mode) == 0o700
    assert kit.services.sealer.is_sealed(path.read_bytes())
    return path


def test_full_intruder_photos_are_sealed_frames(tmp_path: Path) -> None:
    kit = make_kit(tmp_path, intruder_photos="full")
    try:
        frame = stranger_frame(kit)
        capture(kit, frame)
        path = the_photo(kit)
        assert path.suffix == ".jpg"
        assert kit.services.sealer.open(path.read_bytes()) == frame
    finally:
        kit.services.close()


def test_blurred_intruder_photos_show_someone_was_there_not_who(tmp_path: Path) -> None:
    kit = make_kit(tmp_path, intruder_photos="blurred")
    try:
        frame = stranger_frame(kit)
        capture(kit, frame)
        data = kit.services.sealer.open(the_photo(kit).read_bytes())
        assert data != frame
        with Image.open(io.BytesIO(data)) as image:
            assert (image.format, image.size) == ("JPEG", (480, 360))
            pixels = np.asarray(image.convert("L"), dtype=np.float64)
        with Image.open(io.BytesIO(frame)) as original:
            sharp = np.asarray(original.convert("L").resize((480, 360)), dtype=np.float64)
        picture = pixels[:300]  # above the caption
        detail = np.abs(np.diff(picture, axis=1)).mean()
        assert detail < 1.0 < 20.0 < np.abs(np.diff(sharp[:300], axis=1)).mean()
        caption = pixels[-12:]
        assert (caption < 40).mean() > 0.5 and (caption > 200).any()  # white text on black
    finally:
        kit.services.close()


def test_with_intruder_photos_off_only_the_event_is_kept(tmp_path: Path) -> None:
    kit = make_kit(tmp_path, intruder_photos="off")
    try:
        capture(kit, stranger_frame(kit))
        [row] = kit.services.store.intruder_rows(TODAY, TODAY)
        assert (row.path, row.camera, row.seen_at) == ("", "gate", datetime(2026, 11, 23, 8, 55))
        assert (
            not kit.settings.intruders_dir.exists() or files_under(kit.settings.intruders_dir) == []
        )
        # The review page says so; the photo address finds nothing; the event can be deleted.
        token = sign_in(kit, role="admin")
        page = kit.client.get("/review").get_data(as_text=True)
        assert "No photo kept" in page
        assert f"/review/intruders/{row.id}/photo" not in page
        assert kit.client.get(f"/review/intruders/{row.id}/photo").status_code == 404
        response = post_form(kit, f"/review/intruders/{row.id}", token, action="delete")
        assert response.status_code == 303
        assert kit.services.store.intruder_rows(TODAY, TODAY) == []
    finally:
        kit.services.close()
