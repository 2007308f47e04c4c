"""The camera client's offline queue: what each answer of the server does to a queued scan.

In process: the client's outbox and uploader against the real app of ``make_kit`` through the
``AppTransport`` of test_client (no socket); ``Canned`` answers chosen scans itself (a 503 for
one scan only). The uploader's clock is a number the test moves, so back-off is not waited for.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import API_KEY, MONDAY_0855, Kit, json_response
from smart_attendance.client import app as client_app
from smart_attendance.client import hud
from smart_attendance.client.outbox import Outbox, Scan
from smart_attendance.client.uploader import Uploader, key_refused
from smart_attendance.models import Recognition
from test_client import (
    SERVER,
    AppTransport,
    NoFaceEngine,
    _cli,
    _local,
    _m,
    _wall,
    session_to,
)

MONDAY = MONDAY_0855.date()


class Canned(AppTransport):
    """The app, except for the scans whose event id is in ``answers``: those get that status
    and JSON body, as a server in trouble with that one scan would answer."""

    def __init__(self, kit: Kit) -> None:
        super().__init__(kit.client)
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body
        for event_id, (code, answer) in self.answers.items():
            if event_id.encode() in raw:
                self.attempts += 1
                return json_response(request, code, answer)
        return super().send(request, *args, **kwargs)


class Door:
    """A door machine's queue and uploader on ``kit``'s app, with a clock the test moves."""

    def __init__(self, kit: Kit, queue: Path, key: str = API_KEY) -> None:
        self.kit = kit
        self.now = 1_800_000_000.0
        self.transport = Canned(kit)
        self.outbox = Outbox(queue, clock=lambda: self.now)
        self.answers: list[tuple[Scan, Recognition]] = []
        self.uploader = Uploader(
            self.outbox,
            SERVER,
            key,
            lambda scan, answer: self.answers.append((scan, answer)),
            session=session_to(self.transport),
        )

    def queue(self, *frames: bytes, minute: int, camera: str = "door-9") -> Scan:
        return self.outbox.put(list(frames), camera, 10, _local(8, minute))

    def close(self) -> None:
        self.uploader.stop()


@pytest.fixture
def door(kit: Kit, tmp_path: Path) -> Iterator[Door]:
    made = Door(kit, tmp_path / "queue")
    yield made
    made.close()


def _names(root: Path) -> list[str]:
    return [name for _, dirs, files in os.walk(root) for name in dirs + files]


def _reason(folder: Path) -> dict[str, Any]:
    data = json.loads((folder / "reason.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_a_refused_scan_is_kept_in_rejected_with_the_reason_and_the_next_is_sent(
    door: Door, caplog: pytest.LogCaptureFixture
) -> None:
    kit = door.kit
    bad = door.queue(kit.probe("ben_ito"), kit.probe("ben_ito", seed=1), minute=50, camera="door 9")
    good = door.queue(kit.probe("ana_lima"), minute=51)
    door.uploader.start()  # the loop, as the camera client runs it
    assert door.outbox.wait_empty(10)
    door.uploader.stop()
    # The refused scan is kept, whole, with what the server said; the next one was sent.
    [kept] = door.outbox.rejected()
    assert kept.name == bad.folder.name
    assert sorted(p.name for p in kept.iterdir()) == [
        "000.jpg",
        "001.jpg",
        "reason.json",
        "scan.json",
    ]
    assert (kept / "000.jpg").read_bytes() == kit.probe("ben_ito")
    reason = _reason(kept)
    assert (reason["http_status"], reason["status"], reason["endpoint"]) == (
        400,
        "bad_request",
        "/recognize",
    )
    assert reason["reason"].startswith("camera id must be")
    assert reason["answer"]["error"] == reason["reason"]  # the server's JSON, as it came
    assert reason["rejected_at"] == "2027-01-15T08:00:00+00:00"  # the client's clock
    assert [(scan.event_id, answer.status) for scan, answer in door.answers] == [
        (bad.event_id, "bad_request"),
        (good.event_id, "success"),
    ]
    assert (door.uploader.sent, door.uploader.rejected) == (1, 1)
    [mark] = kit.services.store.marks_on(MONDAY)
    assert (mark.name, f"{mark.seen_at:%H:%M}") == ("ana_lima", "08:51")
    # The HUD says it in plain words; the log names the reason and where the scan is.
    assert hud.result_card(door.answers[0][1]) == {
        "title": "Refused",
        "detail": "camera id not accepted",
        "kind": "unknown",
    }
    [line] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert f"scan {bad.event_id} (HTTP 400 bad_request: camera id must be" in line
    assert str(kept) in line and "probe:" not in caplog.text  # never the image bytes

    # Resent by hand: the camera id corrected in scan.json, the folder moved back.
    meta = json.loads((kept / "scan.json").read_text(encoding="utf-8"))
    (kept / "scan.json").write_text(json.dumps({**meta, "camera": "door-9"}), encoding="utf-8")
    kept.rename(door.outbox.root / kept.name)
    [again] = door.outbox.pending()
    assert again.event_id == bad.event_id and door.uploader.send(again)
    assert _m(door.answers[-1][1].first) == ("ben_ito", "Present", True, "08:50:00")
    assert door.outbox.pending() == [] and door.outbox.rejected() == []


def test_a_scan_outside_the_servers_capture_window_is_kept_aside(door: Door) -> None:
    kit = door.kit
    old = door.outbox.put([kit.probe("ana_lima")], "door-9", 10, MONDAY_0855 - timedelta(days=2))
    door.queue(kit.probe("ben_ito"), minute=52)
    assert door.uploader.send_next() == "rejected"
    assert door.uploader.send_next() == "answered"
    [kept] = door.outbox.rejected()
    assert kept.name == old.folder.name
    reason = _reason(kept)
    assert (reason["http_status"], reason["reason"]) == (422, "captured_at_out_of_window")
    assert reason["captured_at"] == old.captured_at
    refused = door.answers[0][1]
    assert hud.result_card(refused) == {
        "title": "Refused",
        "detail": "too old, or the clock is wrong",
        "kind": "unknown",
    }
    assert [m.name for m in kit.services.store.marks_on(MONDAY)] == ["ben_ito"]
    assert door.outbox.pending() == []


def test_a_refused_badge_is_kept_aside_and_shown_as_before(door: Door) -> None:
    badge = door.outbox.put_badge("SA1:not-a-card-of-this-school", "door-9", _local(8, 50))
    assert door.uploader.send_next() == "rejected"
    [kept] = door.outbox.rejected()
    assert kept.name == badge.folder.name
    reason = _reason(kept)
    assert (reason["http_status"], reason["status"], reason["endpoint"]) == (
        403,
        "badge_unknown",
        "/checkin",
    )
    assert hud.result_card(door.answers[0][1]) == {
        "title": "Badge refused",
        "detail": "not a badge of this school",
        "kind": "unknown",
    }


def test_a_truncated_metadata_file_is_quarantined_and_the_rest_sent(
    door: Door, caplog: pytest.LogCaptureFixture
) -> None:
    kit = door.kit
    first = door.queue(kit.probe("ana_lima"), minute=50)
    cut = door.queue(kit.probe("ben_ito"), minute=51)
    meta = (cut.folder / "scan.json").read_bytes()
    (cut.folder / "scan.json").write_bytes(meta[: len(meta) // 2])  # a power cut mid-write
    lost = door.queue(kit.probe("cleo_park"), minute=52)
    (lost.folder / "scan.json").unlink()
    # On start: both broken entries go to quarantine/, each with why; the others stay queued.
    restarted = Outbox(door.outbox.root)
    assert [s.event_id for s in restarted.pending()] == [first.event_id]
    assert restarted.quarantined == 2
    cut_aside, lost_aside = restarted.quarantine()
    assert (cut_aside.name, lost_aside.name) == (cut.folder.name, lost.folder.name)
    assert _reason(cut_aside)["reason"] == "scan.json is not valid JSON (cut short?)"
    assert _reason(lost_aside)["reason"] == "scan.json is missing"
    assert (cut_aside / "000.jpg").read_bytes() == kit.probe("ben_ito")  # nothing deleted
    # On a pass: an entry broken while the client runs (a frame gone) is set aside too.
    later = door.queue(kit.probe("ben_ito", seed=2), minute=53)
    (later.folder / "000.jpg").unlink()
    assert door.uploader.send_next() == "answered"
    assert door.uploader.send_next() is None
    assert door.outbox.pending() == [] and len(door.outbox) == 0
    assert _reason(door.outbox.quarantine()[-1])["reason"] == "0 frame(s) on disk, 1 in scan.json"
    assert [m.name for m in kit.services.store.marks_on(MONDAY)] == ["ana_lima"]
    assert "cannot be sent (scan.json is missing)" in caplog.text


def test_a_503_on_one_scan_backs_it_off_while_the_next_is_sent(door: Door) -> None:
    kit = door.kit
    stuck = door.queue(kit.probe("ana_lima"), minute=50)
    door.queue(kit.probe("ben_ito"), minute=51)
    door.transport.answers[stuck.event_id] = (503, {"status": "busy", "error": "worker died"})
    assert door.uploader.send_next() == "retry"
    assert door.uploader.state == "busy"
    retry = json.loads((stuck.folder / "retry.json").read_text(encoding="utf-8"))
    assert retry["attempts"] == 1 and retry["last_error"] == "HTTP 503 busy"
    waits = door.outbox.retry(stuck).next_attempt_at - door.now
    assert 1.0 <= waits <= 2.0  # the first back-off, with jitter
    door.now += 0.5  # the sender's short pause is over; the stuck scan is still backing off
    assert door.uploader.send_next() == "answered"
    assert _m(door.answers[-1][1].first) == ("ben_ito", "Present", True, "08:51:00")
    assert door.uploader.send_next() is None  # nothing due
    # It fails again: a longer back-off. Then the server takes it.
    door.now += 2.0
    assert door.uploader.send_next() == "retry"
    assert 2.0 <= door.outbox.retry(stuck).next_attempt_at - door.now <= 4.0
    assert door.outbox.retry(stuck).attempts == 2
    del door.transport.answers[stuck.event_id]
    door.now += 4.0
    assert door.uploader.send_next() == "answered"
    assert _m(door.answers[-1][1].first) == ("ana_lima", "Present", True, "08:50:00")
    assert door.outbox.pending() == [] and door.outbox.rejected() == []


def test_the_sending_loop_goes_on_past_a_scan_the_server_keeps_failing(door: Door) -> None:
    kit = door.kit
    door.outbox.clock = door.uploader.clock = time.time
    stuck = door.queue(kit.probe("ana_lima"), minute=50)
    door.transport.answers[stuck.event_id] = (500, {"status": "error", "error": "internal"})
    nxt = door.queue(kit.probe("ben_ito"), minute=51)
    door.uploader.start()
    deadline = time.monotonic() + 10
    while not door.answers and time.monotonic() < deadline:
        time.sleep(0.05)
    door.uploader.stop()
    assert [scan.event_id for scan, _ in door.answers] == [nxt.event_id]
    assert door.outbox.pending() == [stuck] and door.outbox.retry(stuck).attempts >= 1


def test_a_wrong_key_keeps_every_scan_and_pauses_sending(kit: Kit, tmp_path: Path) -> None:
    wrong = Door(kit, tmp_path / "queue", key="not-the-key")
    try:
        scans = [
            wrong.queue(kit.probe("ben_ito"), minute=50, camera="door 9"),  # would be refused
            wrong.queue(kit.probe("ana_lima"), minute=51),
        ]
        assert wrong.uploader.send_next() == "paused"
        assert wrong.uploader.state == "denied"
        wrong.now += 30
        assert wrong.uploader.send_next() is None  # paused: the key must be fixed first
        assert wrong.transport.attempts == 1
        assert wrong.outbox.pending() == scans and wrong.answers == []
        assert [wrong.outbox.retry(s).attempts for s in scans] == [0, 0]  # no back-off charged
        assert wrong.outbox.rejected() == [] and wrong.outbox.quarantine() == []
        wrong.now += 31
        assert wrong.uploader.send_next() == "paused"  # tried again a minute later
    finally:
        wrong.close()
    fixed = Door(kit, tmp_path / "queue")  # the key is corrected, the client restarted
    try:
        assert [fixed.uploader.send_next() for _ in range(2)] == ["rejected", "answered"]
        assert [m.name for m in kit.services.store.marks_on(MONDAY)] == ["ana_lima"]
    finally:
        fixed.close()


def test_a_camera_id_with_a_colon_never_names_a_file(door: Door) -> None:
    kit = door.kit
    sent = door.queue(kit.probe("ana_lima"), minute=50, camera="door:1")
    refused = door.outbox.put_badge("SA1:unknown", "door:1", _local(8, 51))
    broken = door.queue(kit.probe("ben_ito"), minute=52, camera="door:1")
    (broken.folder / "scan.json").write_text('{"camera": "door:1", "event_', encoding="utf-8")
    assert door.uploader.send_next() == "answered"
    assert door.uploader.send_next() == "rejected"
    assert door.uploader.send_next() is None
    names = _names(door.outbox.root)
    assert len(door.outbox.rejected()) == len(door.outbox.quarantine()) == 1
    assert refused.folder.name in names and broken.folder.name in names
    assert not [name for name in names if ":" in name or "door" in name]
    [mark] = kit.services.store.marks_on(MONDAY)
    assert (mark.name, mark.camera) == ("ana_lima", "door:1")  # sent as it is
    assert not sent.folder.exists()


def test_the_client_says_what_became_of_its_scans_when_it_stops(
    kit: Kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(client_app, "FaceEngine", NoFaceEngine)
    queue = tmp_path / "queue"
    before = Outbox(queue)
    before.put([kit.probe("ana_lima")], "door-9", 10, _local(8, 50))
    before.put([kit.probe("ben_ito")], "door 9", 10, _local(8, 51))
    broken = before.put([kit.probe("cleo_park")], "door-9", 10, _local(8, 52))
    (broken.folder / "scan.json").write_text("", encoding="utf-8")
    said: list[str] = []
    options = client_app.ClientOptions(
        source=str(_wall(tmp_path / "wall")),
        server=SERVER,
        key=API_KEY,
        camera="door-9",
        queue_dir=queue,
        window=False,
        drain_s=10,
    )
    session = session_to(AppTransport(kit.client))
    notes: list[str] = []
    with caplog.at_level(logging.INFO):
        assert client_app.run(options, said.append, session, note=notes.append) == 0
    assert said[0] == "2 queued scan(s) from before will be sent."
    assert sorted(said[1:]) == [
        "ana_lima: Present (new)",
        "bad_request: camera id must be 1-64 letters, digits, '.', '_', ':' or '-'",
    ]
    # Printed by the command (on stderr), and in the log once.
    expected = (
        "client stopped: 0 blink(s) seen, 0 scan(s) queued; 1 sent, 1 refused, 1 quarantined, "
        f"0 still queued (queue: {queue})"
    )
    assert notes == [expected]
    [summary] = [r for r in caplog.records if r.getMessage().startswith("client stopped")]
    assert summary.getMessage() == expected


def _headless(tmp_path: Path, server: str, **env: str) -> list[str]:
    """``attendance client --no-window`` arguments on an empty wall, with a scan queued from
    before (``env``: the settings the command reads)."""
    queue = tmp_path / "queue"
    Outbox(queue).put([b"\xff\xd8 a frame"], "door-9", 10, _local(8, 50))
    wall = _wall(tmp_path / "wall")
    return ["client", "--no-window", "--source", str(wall), "--server", server,
            "--queue-dir", str(queue), "--camera", "door-9", "--drain", "1"]  # fmt: skip


def test_a_headless_client_whose_key_is_refused_at_the_start_stops_saying_why(
    kit: Kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_app, "FaceEngine", NoFaceEngine)
    # The command's HTTP session goes to the app in this process.
    to_app = session_to(AppTransport(kit.client))
    monkeypatch.setattr("smart_attendance.client.uploader.requests.Session", lambda: to_app)
    args = _headless(tmp_path, SERVER)
    door = tmp_path / "door"  # the door machine's folder (the kit's server has tmp_path/data)
    door.mkdir()
    result = _cli(door, monkeypatch, *args, API_SECRET_KEY="not-the-key-0123456789abcdef")
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stderr.splitlines()[-1] == (
        "Error: the server refused the API key in API_SECRET_KEY (HTTP 401): set "
        "API_SECRET_KEY, in the environment or .env, to this camera's key (`attendance keys "
        "add NAME` on the server prints one) or the server's own key (its data/api_key)."
    )
    assert len(Outbox(tmp_path / "queue")) == 1  # kept for when the key is fixed
    # The key the server generated, read from its data folder, is named as such.
    (door / "data").mkdir()
    (door / "data" / "api_key").write_text("another-servers-key-0123456789\n")
    result = _cli(door, monkeypatch, *args)
    assert result.exit_code == 1
    assert f"the key read from {door / 'data' / 'api_key'} (HTTP 401)" in result.stderr


def test_an_unreachable_server_is_said_in_the_log_and_when_the_client_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(client_app, "FaceEngine", NoFaceEngine)
    nobody = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused
    with caplog.at_level(logging.WARNING):
        result = _cli(tmp_path, monkeypatch, *_headless(tmp_path, nobody), API_SECRET_KEY=API_KEY)
    assert result.exit_code == 0  # the scans wait in the queue for the server
    said = (
        f"cannot reach the server at {nobody} (ConnectionError): check that it runs and the "
        "URL (--server, ATTENDANCE_SERVER_URL)"
    )
    # Once in the log at the client's default level (WARNING), not once per try.
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"{said}; 1 scan(s) queued, kept until it is fixed"]
    assert result.stderr.splitlines()[-1] == (
        "client stopped: 0 blink(s) seen, 0 scan(s) queued; 0 sent, 0 refused, 0 quarantined, "
        f"1 still queued (queue: {tmp_path / 'queue'}); not sent: {said}"
    )


def test_a_key_refused_while_running_is_logged_once_and_said_when_the_client_stops(
    kit: Kit, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = Door(kit, tmp_path / "queue", key="not-the-key")
    wrong.uploader.key_from = "API_SECRET_KEY"
    try:
        wrong.queue(kit.probe("ana_lima"), minute=50)
        with caplog.at_level(logging.WARNING):
            assert wrong.uploader.send_next() == "paused"
            wrong.now += 61
            assert wrong.uploader.send_next() == "paused"
        client = [r for r in caplog.records if r.name.startswith("smart_attendance.client")]
        [logged] = [r for r in client if r.levelno >= logging.WARNING]
        assert logged.levelno == logging.ERROR
        assert logged.getMessage().startswith(
            "the server refused the API key in API_SECRET_KEY (HTTP 401): set API_SECRET_KEY"
        )
        assert client_app.summary(wrong.outbox, wrong.uploader).endswith(
            "1 still queued (queue: "
            f"{wrong.outbox.root}); not sent: {key_refused('API_SECRET_KEY')}"
        )
    finally:
        wrong.close()


# --- the queue folder's caps -----------------------------------------------------------------

MB = 1024 * 1024


def _scan_of(outbox: Outbox, at: float, size: int) -> Scan:
    """A queued scan captured at ``at`` (seconds since the epoch) whose frame is ``size`` bytes."""
    from datetime import datetime, timezone

    when = datetime.fromtimestamp(at, timezone.utc)
    return outbox.put([b"\xff" * size], "door", 25.0, captured_at=when)


def test_the_queue_folder_is_capped_in_size_oldest_set_aside_first(tmp_path: Path) -> None:
    now = [time.time()]
    outbox = Outbox(tmp_path / "q", max_bytes=3 * MB, wall=lambda: now[0])
    first = _scan_of(outbox, now[0] - 300, MB)
    refused = outbox.reject(_scan_of(outbox, now[0] - 200, MB), {"http_status": 422})
    os.utime(refused / "reason.json", (now[0] - 200, now[0] - 200))  # before the next one
    outbox.set_aside(_scan_of(outbox, now[0] - 100, MB // 2), "a frame missing")
    assert len(outbox) == 1 and outbox.pruned == 0  # 2.5 MB: under the cap
    now[0] += 61  # the caps are checked at most once a minute
    newest = _scan_of(outbox, now[0], MB)  # 3.5 MB: the oldest set-aside entry goes first
    assert outbox.rejected() == [] and len(outbox.quarantine()) == 1
    assert not refused.exists() and {s.event_id for s in outbox.pending()} == {
        first.event_id,
        newest.event_id,
    }
    now[0] += 61
    latest = _scan_of(outbox, now[0], MB + MB // 4)  # then the quarantined one, the oldest scan
    assert outbox.quarantine() == []
    assert [s.event_id for s in outbox.pending()] == [newest.event_id, latest.event_id]
    assert outbox.pruned == 3


def test_the_queue_folder_is_capped_in_age(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """By the files' times (when queued, when set aside), not the capture time."""
    now, day = time.time(), 86400

    def written(folder: Path, name: str, days_ago: float) -> Path:
        os.utime(folder / name, (now - days_ago * day, now - days_ago * day))
        return folder

    root = tmp_path / "q"
    early = Outbox(root)
    stale = written(_scan_of(early, now, 1000).folder, "scan.json", 8)
    kept = _scan_of(early, now - 30 * day, 1000)  # captured long ago, queued today: kept
    old_refusal = early.reject(_scan_of(early, now, 1000), {"http_status": 400})
    written(old_refusal, "reason.json", 8)
    recent_refusal = early.reject(_scan_of(early, now, 1000), {"http_status": 400})
    written(recent_refusal, "scan.json", 9)  # queued long ago, set aside a day ago: kept
    written(recent_refusal, "reason.json", 1)
    with caplog.at_level(logging.WARNING):
        outbox = Outbox(root, max_age_s=7 * day)  # the next start
    assert [s.event_id for s in outbox.pending()] == [kept.event_id]
    assert outbox.rejected() == [recent_refusal] and not stale.exists()
    assert "deleted 1 queued scan(s), 1 rejected and 0 quarantined" in caplog.text
