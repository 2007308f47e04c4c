"""Stateless servers: two servers (two ``build_services`` on one database and one shared folder,
as docs/deploy.md sets them up) answer as one. A camera's frames alternating between them make
one intruder photo; what one server corrects or erases changes what the other answers; on
PostgreSQL an enrolment on one is heard by the other at once (``LISTEN/NOTIFY``)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import text

from conftest import MONDAY_0855, Kit, make_kit, make_settings, scripted_folder
from scripted import ScriptedAnalyzer, ScriptedFace, identity, near
from smart_attendance.db.notify import LISTENER_NAME
from smart_attendance.db.store import Store
from smart_attendance.people.watcher import GalleryWatcher
from test_register import correct, day, statuses

MONDAY = MONDAY_0855.date()


@dataclass
class Servers:
    a: Kit
    b: Kit

    @property
    def both(self) -> tuple[Kit, Kit]:
        return self.a, self.b

    def advance(self, **delta: float) -> None:
        for kit in self.both:
            kit.clock.advance(**delta)


def _servers(base: Path, url: str) -> Servers:
    """Two servers of one school: one database, one dataset and data folder (one data key),
    the same scripted faces."""
    scripted = ScriptedAnalyzer(make_settings(base).max_image_pixels)
    first = make_kit(base, analyzer=scripted, database_url=url)
    second = make_kit(base, analyzer=scripted, database_url=url)
    return Servers(first, second)


@pytest.fixture
def servers(tmp_path: Path, db_url: str) -> Iterator[Servers]:
    made = _servers(tmp_path / "school", db_url)
    yield made
    for kit in made.both:
        kit.services.close()


def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (seed % 256, 80, 120)).save(buffer, format="JPEG")
    return buffer.getvalue() + seed.to_bytes(4, "big")  # a different frame for every seed


def _stranger(kit: Kit, person: int, n: int) -> bytes:
    """Frame ``n`` of stranger ``person`` (descriptors a little apart, as in a burst)."""
    face = ScriptedFace(near(identity(50_000 + person), 0.1, n))
    return kit.analyzer.add(_jpeg(1000 * person + n), face)


def _unknown(kit: Kit, frame: bytes, camera: str = "door") -> None:
    response = kit.recognize(frame, camera=camera)
    assert response.status_code == 200 and response.get_json()["status"] == "unknown"


def _photos(kit: Kit) -> list[Path]:
    return sorted(p for p in kit.settings.intruders_dir.rglob("intruder_*") if p.is_file())


def test_a_streak_alternating_between_servers_makes_one_photo(servers: Servers) -> None:
    a, b = servers.both
    assert (a.settings.intruder_threshold, a.settings.intruder_cooldown_s) == (3, 300)
    _unknown(a, _stranger(a, 1, 0))
    _unknown(b, _stranger(a, 1, 1))
    assert a.services.store.intruder_streak("door") == 2  # one count for both servers
    assert _photos(a) == []
    _unknown(a, _stranger(a, 1, 2))  # the third frame in a row, whichever server has it
    assert len(_photos(a)) == 1
    assert len(a.services.store.intruders_on(MONDAY)) == 1
    assert b.services.store.intruder_streak("door") == 0  # and it starts again

    # The same stranger again within the cooldown, the streak completed on B: B cannot
    # compare A's stranger (descriptors stay in A's memory), and A captured there lately.
    for n, kit in enumerate((b, a, b), start=3):
        _unknown(kit, _stranger(a, 1, n))
    assert len(_photos(a)) == 1
    # A, who made the last capture, compares: another stranger is photographed ...
    for n, kit in enumerate((a, b, a)):
        _unknown(kit, _stranger(a, 2, n))
    assert len(_photos(a)) == 2
    # ... and the first one, completed on A, is not (A remembers them).
    for n, kit in enumerate((b, a, b, a, b, a), start=6):
        _unknown(kit, _stranger(a, 1, n))
    assert len(_photos(a)) == 2

    # A known face on either server starts the streak again for both.
    _unknown(b, _stranger(a, 3, 0))
    _unknown(a, _stranger(a, 3, 1))
    assert b.recognize(b.probe("ana_lima"), camera="door").get_json()["status"] == "success"
    assert a.services.store.intruder_streak("door") == 0
    _unknown(a, _stranger(a, 3, 2))
    assert a.services.store.intruder_streak("door") == 1

    # After the cooldown, B may capture (even the first stranger).
    servers.advance(seconds=300)
    for n, kit in enumerate((b, a), start=20):
        _unknown(kit, _stranger(a, 1, n))
    assert len(_photos(a)) == 3
    assert [e["camera"] for e in a.services.store.intruders_on(MONDAY)] == ["door"] * 3


def test_the_marks_a_server_answers_follow_the_others_changes(servers: Servers) -> None:
    a, b = servers.both
    first = b.recognize(b.probe("ana_lima"))
    assert (first.get_json()["new"], first.get_json()["attendance"]) == (True, "Present")
    again = b.recognize(b.probe("ana_lima", seed=1))
    assert again.get_json()["new"] is False  # already marked: one read, no write

    # A correction on A is what B shows.
    fixed = correct(a, name="ana_lima", date="2026-11-23", status="Excused", reason="flu")
    assert fixed.status_code == 201, fixed.get_json()
    assert statuses(day(b, "date=2026-11-23"))[("default", "00:00", "ana_lima")] == "Excused"

    # Ana is erased on A, and comes back the same day (enrolled again): B marks her anew,
    # where a remembered mark would have answered "already marked" and recorded nothing.
    a.services.erasure.erase("ana_lima", "test")
    folder = a.settings.dataset_dir / "ana_lima"
    folder.mkdir()
    for n in (1, 2):
        face = ScriptedFace(near(a.people["ana_lima"], 0.1, n))
        photo = a.analyzer.add(f"again:{n}".encode(), face)
        (folder / f"{n}.jpg").write_bytes(photo)
    a.services.enrolment.enroll()
    assert b.services.enrolment.refresh() is True
    a.clock.advance(minutes=30)
    b.clock.advance(minutes=30)
    back = b.recognize(b.probe("ana_lima", seed=2))
    assert (back.get_json()["new"], back.get_json()["attendance"]) == (True, "Late")
    [mark] = a.services.store.marks_on(MONDAY)
    assert (mark.name, mark.status) == ("ana_lima", "Late")


def _enrol_new(kit: Kit, name: str, seed: int) -> None:
    scripted_folder(kit, name, seed)
    kit.services.enrolment.enroll()


def _seconds_until_enrolled(kit: Kit, name: str, limit_s: float = 20.0) -> float:
    start = time.monotonic()
    while name not in kit.services.enrolment.enrolled():
        assert time.monotonic() - start < limit_s, f"{name} not heard of within {limit_s} s"
        time.sleep(0.005)
    return time.monotonic() - start


def _wait(condition: Callable[[], bool], limit_s: float = 20.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.real
def test_an_enrolment_is_heard_at_once_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    """B polls once an hour here: only the notification can bring A's enrolment within the
    test's (generous) bound; it is heard again after B's listening connection is cut."""
    servers = _servers(tmp_path / "school", pg_url)
    a, b = servers.both
    watcher = GalleryWatcher(b.services.enrolment, interval=3600)
    assert watcher.listener is not None
    watcher.start()
    try:
        assert watcher.listener.listening.wait(20)
        _enrol_new(a, "eve_sun", 60)
        heard = _seconds_until_enrolled(b, "eve_sun")
        print(f"\nenrolment on A heard by B after {heard * 1000:.0f} ms (poll: 3600 s)")

        # The database drops B's listening connection: B connects again and hears the next.
        with a.services.store.engine.begin() as conn:
            cut = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = :name"
                ),
                {"name": LISTENER_NAME},
            ).all()
        assert cut == [(True,)]
        _wait(lambda: not watcher.listener.listening.is_set())  # type: ignore[union-attr]
        assert watcher.listener.listening.wait(20)
        _enrol_new(a, "fay_wu", 70)
        heard_again = _seconds_until_enrolled(b, "fay_wu")
        print(f"after a reconnection: {heard_again * 1000:.0f} ms")
    finally:
        watcher.stop()
        for kit in servers.both:
            kit.services.close()
    assert watcher.listener is not None
    assert watcher.listener._thread is not None and not watcher.listener._thread.is_alive()


def test_on_sqlite_the_poll_alone_brings_the_changes(tmp_path: Path) -> None:
    servers = _servers(tmp_path / "school", f"sqlite:///{tmp_path / 'attendance.db'}")
    a, b = servers.both
    watcher = GalleryWatcher(b.services.enrolment, interval=0.05)
    assert watcher.listener is None
    watcher.start()
    try:
        _enrol_new(a, "eve_sun", 60)
        _seconds_until_enrolled(b, "eve_sun")
    finally:
        watcher.stop()
        for kit in servers.both:
            kit.services.close()


def test_frames_counted_at_once_on_two_servers_complete_the_streak_exactly(
    servers: Servers,
) -> None:
    """60 unknown frames counted by 4 threads over both servers' stores at the same time:
    with a threshold of 3, exactly 20 of them complete the streak."""
    stores = [kit.services.store for kit in servers.both]
    when = MONDAY_0855.replace(tzinfo=None)
    completed: list[bool] = []
    lock = threading.Lock()

    def count(store: Store) -> None:
        for _ in range(15):
            done = store.count_unknown("gate", when, 3)
            with lock:
                completed.append(done)

    threads = [threading.Thread(target=count, args=(stores[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert (len(completed), completed.count(True)) == (60, 20)
    assert stores[0].intruder_streak("gate") == 0
