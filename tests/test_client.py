"""The camera client.

In process: the client's uploader and offline queue against the real app of ``make_kit``, over
a ``requests.Session`` whose transport hands each request to the Flask test client (no socket;
"the server is down" is a transport that refuses to connect); the HUD. Real (``real``): the
client command on a real clip against a real server process, and its window on Xvfb.
"""

from __future__ import annotations

import copy
import csv
import logging
import os
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
from click.testing import CliRunner
from flask.testing import FlaskClient
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from conftest import (
    API_KEY,
    MONDAY_0855,
    TURN_THEN_BLINK,
    Kit,
    ServerProcess,
    free_port,
    json_response,
    make_kit,
    require_faces,
    require_tool,
    run_cli,
)
from smart_attendance.cli import main as cli_main
from smart_attendance.client import app as client_app
from smart_attendance.client import hud
from smart_attendance.client.outbox import Outbox, Scan
from smart_attendance.client.uploader import Uploader
from smart_attendance.errors import SourceError
from smart_attendance.models import Box, Face, MarkResult, Recognition
from smart_attendance.recognition import challenge as rules

CLIP = "talking_head_wda_aoc.mp4"
SERVER = "http://attendance.test"  # never resolved: the transport below is the app itself


# --- the client's transport to the app in this process ---------------------------------------


class AppTransport(HTTPAdapter):
    """What a socket would carry, handed to the Flask test client instead. ``down`` (or no
    client): every request fails to connect, like a server that is not running."""

    def __init__(self, client: FlaskClient | None) -> None:
        super().__init__()
        self.client = client
        self.down = client is None
        self.attempts = 0

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        self.attempts += 1
        if self.down or self.client is None:
            raise requests.ConnectionError("connection refused", request=request)
        url = urlsplit(request.url or "")
        body = request.body or b""
        answer = self.client.open(
            url.path,
            method=request.method or "GET",
            query_string=url.query,
            headers=list(request.headers.items()),
            data=body.encode() if isinstance(body, str) else body,
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response.reason = answer.status.partition(" ")[2]
        response.headers = CaseInsensitiveDict(dict(answer.headers.items()))
        response._content = answer.get_data()
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        response.url = request.url or ""
        response.request = request
        return response


def session_to(transport: AppTransport) -> requests.Session:
    session = requests.Session()
    session.mount("http://", transport)
    session.mount("https://", transport)
    return session


class Client:
    """The client's queue and uploader, as the camera client wires them, on ``kit``'s app."""

    def __init__(self, kit: Kit, queue: Path, key: str = API_KEY) -> None:
        self.kit = kit
        self.transport = AppTransport(kit.client)
        self.outbox = Outbox(queue)
        self.answers: list[tuple[Scan, Recognition]] = []
        self.session = session_to(self.transport)
        self.uploader = Uploader(
            self.outbox,
            SERVER,
            key,
            lambda scan, answer: self.answers.append((scan, answer)),
            session=self.session,
        )

    def start(self) -> None:
        """Send in the background, as the camera client does."""
        self.uploader.start()

    def close(self) -> None:
        self.uploader.stop()  # started or not; closes the session too

    def queue(self, *frames: bytes, at: datetime, camera: str = "door-9", fps: float = 10) -> Scan:
        return self.outbox.put(list(frames), camera, fps, at)

    def send_one(self) -> Recognition:
        """Send the oldest queued scan, which must get a final answer; that answer."""
        before = len(self.answers)
        assert self.uploader.send(self.outbox.pending()[0])
        assert len(self.answers) == before + 1
        return self.answers[-1][1]


@pytest.fixture
def client(kit: Kit, tmp_path: Path) -> Iterator[Client]:
    made = Client(kit, tmp_path / "queue")
    yield made
    made.close()


def _m(mark: MarkResult | None) -> tuple[str, str | None, bool, str] | None:
    """A mark's name, attendance, new and time (not its class or display name)."""
    return None if mark is None else (mark.name, mark.attendance, mark.new, mark.time)


def _local(hh: int, mm: int, day: datetime = MONDAY_0855) -> datetime:
    return day.replace(hour=hh, minute=mm, second=0, microsecond=0)


def _day_rows(kit: Kit) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for day_file in sorted(kit.logs.glob("attendance_*.csv")):
        with open(day_file, newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


class NoFaceEngine:
    """The client's face engine without dlib: the test frames show nobody."""

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        pass

    def detect(self, _image: np.ndarray, _params: object) -> list[Box]:
        return []


def _wall(folder: Path) -> Path:
    """An image folder source: one frame of an empty wall."""
    import cv2

    folder.mkdir()
    cv2.imwrite(str(folder / "wall.png"), np.full((120, 160, 3), 90, np.uint8))
    return folder


# --- the offline queue and the answers, in process --------------------------------------------


def test_a_queued_scan_is_sent_answered_and_removed(client: Client) -> None:
    kit = client.kit
    scan = client.queue(kit.probe("ana_lima"), at=_local(8, 50))
    client.start()
    assert client.outbox.wait_empty(10)
    assert client.uploader.state == "online" and client.uploader.sent == 1
    [(answered, answer)] = client.answers
    assert answered == scan
    assert answer.status == "success"
    assert [_m(m) for m in answer.marks] == [("ana_lima", "Present", True, "08:50:00")]
    assert [face.name for face in answer.faces] == ["ana_lima"]
    assert not scan.folder.exists()
    # The form fields arrived: the camera id, the capture time (not the time it was sent).
    [mark] = kit.services.store.marks_on(MONDAY_0855.date())
    assert (mark.name, mark.camera, f"{mark.seen_at:%H:%M:%S}") == (
        "ana_lima",
        "door-9",
        "08:50:00",
    )
    assert _day_rows(kit) == [{"Name": "ana_lima", "Time": "08:50:00", "Status": "Present"}]


def test_scans_stay_queued_while_offline_and_are_sent_after_a_restart(
    kit: Kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_app, "FaceEngine", NoFaceEngine)
    queue = tmp_path / "queue"
    # 1. The server is down: every scan is kept on disk, in capture order; none is lost.
    offline = Client(kit, queue)
    offline.transport.down = True
    scans = [
        offline.queue(kit.probe("ana_lima", seed=seed), at=_local(8, minute))
        for seed, minute in ((3, 52), (1, 50), (2, 51))
    ]
    for _ in range(2):
        assert not offline.uploader.send(offline.outbox.pending()[0])
    assert offline.uploader.state == "offline"
    assert offline.transport.attempts == 2 and offline.answers == []
    assert [s.captured_at for s in offline.outbox.pending()] == sorted(s.captured_at for s in scans)
    assert kit.services.store.marks_on(MONDAY_0855.date()) == []
    offline.close()
    # A copy of one scan (same event id) stands for a resend after a crash mid-upload.
    first = min(scans, key=lambda s: s.captured_at)
    shutil.copytree(first.folder, queue / (first.folder.name + "_copy"))

    # 2. The client restarts while the server is still down: the scans are still queued.
    said: list[str] = []
    down = AppTransport(None)
    options = client_app.ClientOptions(
        source=str(_wall(tmp_path / "wall")),
        server=SERVER,
        key=API_KEY,
        camera="door-9",
        queue_dir=queue,
        window=False,
        drain_s=0,
    )
    notes: list[str] = []
    assert client_app.run(options, said.append, session_to(down), note=notes.append) == 0
    assert said == [
        "4 queued scan(s) from before will be sent.",
        f"4 scan(s) still queued in {queue}; they will be sent on the next start.",
    ]
    assert notes == [
        "client stopped: 0 blink(s) seen, 0 scan(s) queued; 0 sent, 0 refused, 0 quarantined, "
        f"4 still queued (queue: {queue}); not sent: cannot reach the server at {SERVER} "
        "(ConnectionError): check that it runs and the URL (--server, ATTENDANCE_SERVER_URL)"
    ]
    assert len(Outbox(queue)) == 4

    # 3. The server is back, 50 minutes later (Late by then); the client restarts again.
    kit.clock.set(_local(9, 45))
    said.clear()
    options.drain_s = 10
    back = session_to(AppTransport(kit.client))
    notes.clear()
    assert client_app.run(options, said.append, back, note=notes.append) == 0
    assert said[0] == "4 queued scan(s) from before will be sent."
    assert said[1:] == ["ana_lima: Present (new)"] + ["ana_lima: Present (already marked)"] * 3
    assert Outbox(queue).pending() == []
    assert notes == [
        "client stopped: 0 blink(s) seen, 0 scan(s) queued; 4 sent, 0 refused, 0 quarantined, "
        f"0 still queued (queue: {queue})"
    ]
    # Marked once, not once per scan or resend, at the capture time from the outage.
    [mark] = kit.services.store.marks_on(MONDAY_0855.date())
    assert (mark.status, f"{mark.seen_at:%H:%M:%S}") == ("Present", "08:50:00")
    assert _day_rows(kit) == [{"Name": "ana_lima", "Time": "08:50:00", "Status": "Present"}]


def test_a_resend_of_the_same_event_never_marks_twice(tmp_path: Path) -> None:
    # The server's own clock decides the day here, so only the event id can tell a resend.
    kit = make_kit(tmp_path, trust_client_clock=False)
    client = Client(kit, tmp_path / "queue")
    try:
        scan = client.queue(kit.probe("ana_lima"), at=_local(8, 50))
        shutil.copytree(scan.folder, scan.folder.with_name(scan.folder.name + "_copy"))
        assert _m(client.send_one().first) == ("ana_lima", "Present", True, "08:55:00")
        kit.clock.advance(days=1)
        again = client.send_one()  # the same event, received the next day
        assert _m(again.first) == ("ana_lima", "Present", False, "08:55:00")
        tuesday = (MONDAY_0855 + timedelta(days=1)).date()
        assert kit.services.store.marks_on(tuesday) == []
        # A new scan that day is a new event: marked.
        client.queue(kit.probe("ana_lima", seed=1), at=_local(8, 50))
        assert _m(client.send_one().first) == ("ana_lima", "Present", True, "08:55:00")
        assert len(kit.services.store.marks_on(tuesday)) == 1
        assert client.outbox.pending() == []
    finally:
        client.close()
        kit.services.close()


def test_a_refused_key_keeps_scans_queued(kit: Kit, tmp_path: Path) -> None:
    wrong = Client(kit, tmp_path / "queue", key="not-the-key")
    try:
        scan = wrong.queue(kit.probe("ana_lima"), at=_local(8, 50))
        assert not wrong.uploader.send(scan)
        assert wrong.uploader.state == "denied"
        assert wrong.outbox.pending() == [scan] and wrong.answers == []
        assert kit.services.store.marks_on(MONDAY_0855.date()) == []
    finally:
        wrong.close()
    fixed = Client(kit, tmp_path / "queue")  # the key is corrected, the client restarted
    try:
        assert _m(fixed.send_one().first) == ("ana_lima", "Present", True, "08:50:00")
        assert fixed.uploader.state == "online"
    finally:
        fixed.close()


def test_a_server_still_enrolling_keeps_scans_and_a_refused_scan_is_kept_aside(
    tmp_path: Path,
) -> None:
    kit = make_kit(tmp_path, enrol=False)
    client = Client(kit, tmp_path / "queue")
    try:
        scan = client.queue(kit.probe("ana_lima"), at=_local(8, 50))
        assert not client.uploader.send(scan)  # 503 "starting": try again later
        assert client.uploader.state == "busy" and client.outbox.pending() == [scan]
        kit.services.enrolment.enroll()
        assert _m(client.send_one().first) == ("ana_lima", "Present", True, "08:50:00")
        # A scan the server refuses (400) has its final answer: it is not sent forever, and
        # it is kept aside in rejected/, not deleted.
        client.queue(kit.probe("ben_ito"), at=_local(8, 51), camera="door 9!")
        refused = client.send_one()
        assert refused.status == "bad_request" and "camera id" in (refused.reason or "")
        assert client.outbox.pending() == [] and len(client.outbox.rejected()) == 1
        assert hud.result_card(refused) == {
            "title": "Refused",
            "detail": "camera id not accepted",
            "kind": "unknown",
        }
    finally:
        client.close()
        kit.services.close()


def test_result_cards_for_the_servers_answers(client: Client) -> None:
    kit = client.kit
    kit.clock.set(_local(9, 30))
    client.queue(kit.probe("ana_lima"), at=_local(8, 50))
    client.queue(kit.probe("ana_lima", seed=1), at=_local(8, 56))
    client.queue(kit.probe("ben_ito"), at=_local(9, 20))
    client.queue(kit.stranger(), at=_local(9, 21))
    client.queue(kit.analyzer.add(b"an empty corridor"), at=_local(9, 22))
    cards = [hud.result_card(client.send_one()) for _ in range(5)]
    # Plain words, and students by their display names (the folder name made readable when
    # the registry has none).
    assert cards == [
        {"title": "Ana Lima", "detail": "Present", "kind": "present"},
        {"title": "Ana Lima", "detail": "Present (already marked)", "kind": "present"},
        {"title": "Ben Ito", "detail": "Late", "kind": "late"},
        {"title": "Not recognised", "detail": "Ask your teacher", "kind": "unknown"},
        {"title": "No face seen", "detail": "Look at the camera and try again", "kind": "unknown"},
    ]


def test_result_cards_when_liveness_is_required(tmp_path: Path) -> None:
    kit = make_kit(tmp_path, require_liveness=True)
    client = Client(kit, tmp_path / "queue")
    try:
        still = kit.probe("ana_lima")
        client.queue(still, at=_local(8, 50))
        client.queue(*[still] * 12, at=_local(8, 51))
        # Eyes shut for 6 frames: a blink at 25 fps, closed for over a second at 5 fps. The
        # frame rate travels with each scan.
        ears = (0.30,) * 8 + (0.12,) * 6 + (0.30,) * 6
        burst = [kit.probe("ana_lima", ear=ear) for ear in ears]
        client.queue(*burst, at=_local(8, 52), fps=5)
        client.queue(*burst, at=_local(8, 53), fps=25)
        answers = [client.send_one() for _ in range(4)]
        assert [hud.result_card(a) for a in answers] == [
            {"title": "Please blink", "detail": "No blink was seen: try again", "kind": "unknown"},
            {"title": "Please blink", "detail": "No blink was seen: try again", "kind": "unknown"},
            {"title": "Please blink", "detail": "No blink was seen: try again", "kind": "unknown"},
            {"title": "Ana Lima", "detail": "Present", "kind": "present"},
        ]
        assert [a.status for a in answers] == ["liveness_failed"] * 3 + ["success"]
        assert all(face.name is None for a in answers[:3] for face in a.faces)  # no name leaks
        assert _m(answers[3].first) == ("ana_lima", "Present", True, "08:53:00")
    finally:
        client.close()
        kit.services.close()


def test_the_health_check_shows_the_connection_state(client: Client) -> None:
    client.uploader.check()
    assert client.uploader.state == "online"
    client.transport.down = True
    client.uploader.check()
    assert client.uploader.state == "offline"


# --- the command's own errors, in process ------------------------------------------------------


def _cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str, **env: str) -> Any:
    """``attendance ARGS`` in this process, with only the given settings."""
    for name in [n for n in os.environ if n.startswith("ATTENDANCE_")] + ["API_SECRET_KEY"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner().invoke(cli_main, list(args), env=env)


def test_client_refuses_to_start_without_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _cli(tmp_path, monkeypatch, "client", "--no-window", "--source", str(tmp_path))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("Error: set API_SECRET_KEY")


def test_missing_video_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "x.mp4"
    result = _cli(
        tmp_path,
        monkeypatch,
        "client",
        "--no-window",
        "--source",
        str(missing),
        "--server",
        "http://127.0.0.1:9",
        API_SECRET_KEY="k",
    )
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stderr.strip() == f"Error: video file not found: {missing}"


def test_a_live_camera_that_disappears_is_reopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Camera missing at start: retried with back-off; camera stops mid-stream: reopened."""
    blank = np.zeros((240, 320, 3), np.uint8)
    opened: list[int] = []

    def open_frames(source: str) -> tuple[float, object]:
        opened.append(len(opened))
        if len(opened) <= 2:
            raise SourceError("camera 0 cannot be opened")
        if len(opened) <= 4:
            return 25.0, iter([blank, blank, blank])  # the stream ends: unplugged
        raise KeyboardInterrupt  # Ctrl-C: stop the test

    sleeps: list[float] = []
    monkeypatch.setattr(client_app, "open_frames", open_frames)
    monkeypatch.setattr(client_app, "FaceEngine", NoFaceEngine)
    monkeypatch.setattr(client_app.time, "sleep", sleeps.append)
    said: list[str] = []
    options = client_app.ClientOptions(
        source="0", server=SERVER, key=API_KEY, queue_dir=tmp_path / "queue", window=False
    )
    down = session_to(AppTransport(None))
    assert client_app.run(options, echo=said.append, session=down) == 0
    assert len(opened) == 5
    assert sleeps == [1.0, 2.0]  # back-off while the camera is missing, reset once it opens
    assert said.count("Camera unavailable (camera 0 cannot be opened); retrying in 1 s.") == 1
    assert said.count("Camera stopped sending frames; reopening.") == 2


# --- the HUD --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mean", "boxes", "expected"),
    [
        (20, [], "Too dark: turn on a light"),
        (120, [], "Look at the camera"),
        (120, [Box(0, 0, 200, 200), Box(300, 0, 500, 200)], "One person at a time"),
        (120, [Box(0, 0, 60, 60)], "Come closer"),
        (120, [Box(0, 0, 250, 250)], "Blink to scan"),
    ],
)
def test_guidance(mean: int, boxes: list[Box], expected: str) -> None:
    grey = np.full((480, 640), mean, np.uint8)
    assert hud.guidance_for(grey, boxes, 640) == expected


def test_hud_draws_panels_box_meter_and_card() -> None:
    frame = np.full((480, 640, 3), 128, np.uint8)
    state = hud.HudState(
        t=1.0,
        box=Box(220, 120, 420, 320),
        openness=1.0,
        server="offline",
        queued=3,
        result={"title": "ana", "detail": "Late", "kind": "late"},
        result_until=2.0,
    )
    out = hud.draw(frame, state)
    assert out.shape == frame.shape and not np.array_equal(out, frame)
    assert out[5:40, 5:200].mean() < 100  # the dark status panel
    assert (out[120:125, 220:240] == hud.GREEN).all(axis=-1).any()  # face bracket
    assert (out[:, 426:436] == hud.GREEN).all(axis=-1).sum() > 50  # the eye meter, filled
    card = hud.layout(640, 480).card
    where = (slice(card.y1, card.y2), slice(card.x1, card.x2))
    assert (out[where] == hud.AMBER).all(axis=-1).any()  # the Late card's border
    state.t = 5.0  # the card is gone after its time
    assert not (hud.draw(frame, state)[where] == hud.AMBER).all(axis=-1).any()


# --- the scanner: the server's challenge, blink mode, frame rates, the key -----------------------

FACE = Box(200, 100, 440, 340)  # alone, close enough: "ready"


class ScriptedFace:
    """The client's face engine without dlib: one face at ``FACE`` in every frame (none where
    ``script`` says None); ``landmarks`` hands the frame's (ear, yaw) to the patched ratios."""

    script: ClassVar[list[tuple[float, float] | None]] = []

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        self.frame = -1

    def detect(self, _image: np.ndarray, _params: object) -> list[Box]:
        self.frame += 1
        return [] if self.script[self.frame] is None else [FACE]

    def landmarks(self, _image: np.ndarray, _box: Box) -> tuple[float, float] | None:
        return self.script[self.frame]


class ChallengeServer(HTTPAdapter):
    """A server in challenge mode, as the contract says: ``GET /liveness/challenge`` answers
    ``challenge`` (or ``status`` when set: 404 for an older server), ``POST /recognize``
    records the form and answers ``answer``; ``down``: no connection."""

    def __init__(self, challenge: dict[str, Any] | None = None, status: int = 200) -> None:
        super().__init__()
        self.challenge = challenge
        self.status = status
        self.down = False
        self.asked = 0
        self.posts: list[tuple[dict[str, str], int]] = []  # form fields, image count
        self.answer: dict[str, Any] = {
            "status": "success",
            "name": "greg_hall",
            "marks": [
                {
                    "name": "greg_hall",
                    "display_name": "Gregory Hall",
                    "attendance": "Present",
                    "new": True,
                    "time": "08:50:00",
                }
            ],
        }

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise requests.ConnectionError("refused", request=request)
        url = urlsplit(request.url or "")
        if url.path == "/liveness/challenge":
            self.asked += 1
            return json_response(request, self.status, self.challenge or {"mode": "blink"})
        body = request.body if isinstance(request.body, bytes) else b""
        from email.parser import BytesParser
        from email.policy import HTTP

        header = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(header + body)
        form: dict[str, str] = {}
        images = 0
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "image":
                images += 1
            else:
                form[str(name)] = str(part.get_content()).strip()
        self.posts.append((form, images))
        return json_response(request, 200, self.answer)


def _scanner(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server: ChallengeServer,
    script: list[tuple[float, float] | None],
    fps: float = 25.0,
    live: bool = False,
) -> client_app.Scanner:
    monkeypatch.setattr(ScriptedFace, "script", script)
    monkeypatch.setattr(client_app, "FaceEngine", ScriptedFace)
    monkeypatch.setattr(client_app, "eye_aspect_ratio", lambda p: p[0])
    monkeypatch.setattr(client_app, "yaw_ratio", lambda p: p[1])
    options = client_app.ClientOptions(
        server=SERVER, key=API_KEY, camera="door-9", queue_dir=tmp_path / "queue", window=False
    )
    outbox = Outbox(options.queue_dir)
    uploader = Uploader(outbox, SERVER, API_KEY, session=session_to(server))
    return client_app.Scanner(options, outbox, uploader, fps, live=live)


def _play(scanner: client_app.Scanner, frames: int, fps: float = 25.0) -> list[hud.HudState]:
    """Feed ``frames`` frames at ``fps``; the HUD state after each (a copy)."""
    frame = np.full((480, 640, 3), 128, np.uint8)
    seen = []
    for i in range(frames):
        scanner.process(frame, i / fps)
        scanner.asker.wait()  # the server's answer, before the next frame
        seen.append(copy.deepcopy(scanner.state))
    return seen


def _turn_then_blink(start: int = 30) -> list[tuple[float, float] | None]:
    """Facing the camera; from ``start`` the head turns to the student's left (the image's
    right: positive yaw) and back; then a blink."""
    script: list[tuple[float, float] | None] = [(0.30, 0.0)] * start
    script += [(0.30, 0.1 * k) for k in range(1, 7)]  # up to 0.6
    script += [(0.30, 0.6)] * 6 + [(0.30, 0.6 - 0.1 * k) for k in range(1, 7)]
    script += [(0.30, 0.0)] * 20 + [(0.12, 0.0)] * 3 + [(0.30, 0.0)] * 40
    return script


def test_a_challenge_is_shown_followed_and_sent_with_its_nonce(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ChallengeServer(TURN_THEN_BLINK)
    script = _turn_then_blink()
    scanner = _scanner(tmp_path, monkeypatch, server, script)
    states = _play(scanner, len(script))
    assert server.asked == 1  # asked once the face was steady, not on every frame
    prompts = [s.prompt.action if s.prompt else None for s in states]
    assert prompts.index("turn_left") < prompts.index("blink")
    turn = states[prompts.index("turn_left")]
    assert turn.prompt is not None and turn.prompt.words == "Turn your head to your left"
    assert (turn.prompt.step, turn.prompt.steps) == (1, 2)
    assert "blink_to_scan" not in [s.guidance for s in states]
    # Queued with the nonce, once; then sent within the server's limits.
    [scan] = scanner.outbox.pending()
    assert scan.nonce == "n-0123" and scanner.challenges == 1 and scanner.scans == 1
    assert scanner.uploader.send(scan)
    [(form, images)] = server.posts
    assert form["nonce"] == "n-0123" and form["camera"] == "door-9"
    # From shortly before the turn to the blink's end: about 80 frames, every other one sent,
    # at half the rate.
    assert 30 <= images <= 60
    assert float(form["fps"]) == pytest.approx(12.5)
    # After it: "Checking" until the answer, which names the student by display name.
    queued_at = next(
        i for i, s in enumerate(states) if s.prompt is None and i > prompts.index("blink")
    )
    assert states[queued_at].result["title"] in ("Saved", "Checking...")
    assert states[-1].guidance == "Done: next student, please"  # not "Blink to scan"
    scanner.on_answer(scan, Recognition.from_json(server.answer))
    assert scanner.state.result["title"] == "Gregory Hall"


def _sent_track(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    challenge: dict[str, Any],
    script: list[tuple[float, float] | None],
) -> tuple[list[Face | None], float, float]:
    """Play ``script`` through the client following ``challenge``; the face of each frame it
    sent (from the script's eye ratio and yaw), the frame rate sent, and the seconds from the
    challenge's arrival to the burst's queuing."""
    server = ChallengeServer(challenge)
    scanner = _scanner(tmp_path, monkeypatch, server, script)
    index_of: dict[int, int] = {}
    frames: list[np.ndarray] = []
    sent: list[tuple[list[np.ndarray], float]] = []
    fit = scanner._fit

    def spy(chosen: list[np.ndarray], fps: float) -> tuple[list[bytes], float, int]:
        jpegs, rate, step = fit(chosen, fps)
        sent.append((chosen[::step], rate))
        return jpegs, rate, step

    monkeypatch.setattr(scanner, "_fit", spy)
    asked_at = queued_at = None
    for i in range(len(script)):
        frame = np.full((480, 640, 3), 128, np.uint8)
        frames.append(frame)  # kept, so that no other array takes its id
        index_of[id(frame)] = i
        scanner.process(frame, i / 25)
        scanner.asker.wait()
        if asked_at is None and scanner.follower is not None:
            asked_at = i
        if queued_at is None and sent:
            queued_at = i
    assert asked_at is not None and queued_at is not None, "no challenge burst was queued"
    [(chosen, rate)] = sent
    track: list[Face | None] = []
    for frame in chosen:
        row = script[index_of[id(frame)]]
        track.append(None if row is None else Face(Box(200, 120, 360, 280), ear=row[0], yaw=row[1]))
    return track, rate, (queued_at - asked_at) / 25


def test_the_burst_the_client_sends_passes_the_servers_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The frames the client keeps for a challenge, as the server checks them: a neutral start,
    the actions and no others, in their time windows, a frame rate that fits the time since the
    challenge was issued."""
    script = _turn_then_blink()
    track, rate, elapsed = _sent_track(tmp_path, monkeypatch, TURN_THEN_BLINK, script)
    assert rules.fps_consistent(len(track), rate, elapsed)
    assert rules.check_burst(track, ["turn_left", "blink"], rate, elapsed) is None


def test_the_burst_starts_where_the_student_last_faced_the_camera(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A student who looks down (eyes nearly shut) just before turning: the burst reaches back
    to where they faced the camera with open eyes, which the server needs."""
    script: list[tuple[float, float] | None] = [(0.30, 0.0)] * 45
    script += [(0.10, 0.0)] * 30  # looking down, lids low, for 1.2 s
    script += [(0.30, 0.1 * k) for k in range(1, 7)] + [(0.30, 0.6)] * 6
    script += [(0.30, 0.6 - 0.1 * k) for k in range(1, 7)] + [(0.30, 0.0)] * 40
    challenge = {**TURN_THEN_BLINK, "actions": ["turn_left"], "prompts": ["Turn"]}
    track, rate, elapsed = _sent_track(tmp_path, monkeypatch, challenge, script)
    assert track[0] is not None and track[0].ear == 0.30  # from before the look down
    assert rules.check_burst(track, ["turn_left"], rate, elapsed) is None


def test_blink_twice_needs_two_blinks_close_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two blinks 2.4 s apart are not "blink twice" (the server would refuse them): the client
    waits for a second blink soon after a first."""
    from smart_attendance.client import challenge as ch
    from smart_attendance.recognition.liveness import Blink

    asked = ch.Challenge("n" * 20, ("blink_twice",), ("Blink twice",), 20.0)
    follower = ch.Follower(asked, 25.0, 0.0, 17.0)

    def blink(frame: int) -> Blink:
        return Blink(frame, frame / 25, frame - 1, frame + 1, 0.2)

    assert not follower.update(30, 1.2, blink(30), 0.0)
    assert not follower.update(90, 3.6, blink(90), 0.0)  # too late: a new first blink
    assert follower.update(110, 4.4, blink(110), 0.0)  # 0.8 s after it
    assert follower.first_start == 89


def test_the_servers_new_reasons_have_words() -> None:
    from smart_attendance.client import words

    for reason in (
        "action_not_asked:turn_right",
        "action_too_soon:blink",
        "action_too_late:turn_left",
        "no_neutral_start",
        "nonce_replaced",
        "fps_inconsistent",
        "fps_too_low",
    ):
        title, detail = words.liveness_card(reason)
        assert (title, detail) != words.card("liveness"), reason  # not the generic blink card
        assert detail and "_" not in detail


def test_a_challenge_not_done_in_time_is_said_and_a_new_one_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ChallengeServer({**TURN_THEN_BLINK, "expires_in": 5.0})  # 2 s after the margin
    script: list[tuple[float, float] | None] = [(0.30, 0.0)] * 150  # never turns
    scanner = _scanner(tmp_path, monkeypatch, server, script)
    states = _play(scanner, len(script))
    titles = [s.result.get("title") for s in states if s.card_showing()]
    assert "Too slow" in titles
    assert server.asked >= 2 and scanner.challenges_failed >= 1
    assert scanner.outbox.pending() == []


def test_an_older_server_means_blink_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = ChallengeServer(status=404)
    script = _turn_then_blink()
    scanner = _scanner(tmp_path, monkeypatch, server, script)
    _play(scanner, len(script))
    assert scanner.mode == "blink" and server.asked == 1
    [scan] = scanner.outbox.pending()  # the blink queued a scan, without a nonce
    assert scan.nonce is None and scanner.blinks == 1
    assert scanner.uploader.send(scan)
    assert "nonce" not in server.posts[0][0]


def test_offline_in_challenge_mode_no_face_scan_is_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "queue").mkdir()
    (tmp_path / "queue" / client_app.MODE_FILE).write_text("challenge\n")  # learnt before
    server = ChallengeServer(TURN_THEN_BLINK)
    server.down = True
    script = _turn_then_blink()
    scanner = _scanner(tmp_path, monkeypatch, server, script)
    states = _play(scanner, len(script))
    assert scanner.mode == "challenge" and scanner.blinks == 1
    assert scanner.outbox.pending() == []  # a burst without a nonce would be refused
    said = "Server offline: show your badge or see your teacher"
    assert states[-1].guidance == said
    server.down = False  # back: the next ask gets a challenge
    more: list[tuple[float, float] | None] = [(0.30, 0.0)] * 100
    ScriptedFace.script = script + more
    frame = np.full((480, 640, 3), 128, np.uint8)
    for i in range(len(script), len(script) + 100):
        scanner.process(frame, i / 25)
        scanner.asker.wait()
    assert scanner.follower is not None and scanner.state.prompt is not None


def test_a_camera_slower_than_assumed_is_measured_and_warned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = ChallengeServer(status=404)
    script: list[tuple[float, float] | None] = [(0.30, 0.0)] * 40
    scanner = _scanner(tmp_path, monkeypatch, server, script, fps=30.0, live=True)
    with caplog.at_level(logging.WARNING):
        states = _play(scanner, 40, fps=10.0)  # a webcam that delivers 10 frames a second
    assert scanner.fps == pytest.approx(10.0) and scanner.detector.fps == pytest.approx(10.0)
    assert states[-1].fps_warning == "camera 10 fps, not 30: using 10"
    assert states[5].fps_warning == ""  # not before it is measured
    warnings = [r.getMessage() for r in caplog.records if "frames a second" in r.getMessage()]
    assert len(warnings) == 1 and "10.0 frames a second, not the 30" in warnings[0]


@pytest.mark.parametrize(
    ("fps", "own", "live", "folder", "expected", "warned"),
    [
        (30.0, 10.0, False, False, 10.0, True),  # a video file: its own rate
        (10.5, 10.0, False, False, 10.0, False),
        (0.0, 10.0, False, False, 10.0, False),
        (12.0, 0.0, False, False, 12.0, False),  # a file without a believable rate
        (0.0, 1000.0, False, False, 25.0, False),
        (5.0, 10.0, False, True, 5.0, False),  # a folder: --fps
        (15.0, 30.0, True, False, 15.0, False),  # live: --fps, then measured
    ],
)
def test_the_rate_assumed_at_the_start(
    fps: float, own: float, live: bool, folder: bool, expected: float, warned: bool
) -> None:
    options = client_app.ClientOptions(fps=fps)
    rate, warning = client_app.source_fps(options, own, live, folder)
    assert rate == expected and bool(warning) == warned


def test_the_key_generated_by_the_server_is_found_in_its_data_folder(tmp_path: Path) -> None:
    from smart_attendance.config import Settings
    from smart_attendance.errors import ConfigError

    data = tmp_path / "data"
    assert client_app.find_key(Settings(api_key="k" * 30, data_dir=data)) == (
        "k" * 30,
        "API_SECRET_KEY",
    )
    with pytest.raises(ConfigError, match=r"set API_SECRET_KEY .* no .*data/api_key"):
        client_app.find_key(Settings(data_dir=data))
    data.mkdir()
    (data / "api_key").write_text("generated-by-serve-0123456789\n")
    assert client_app.find_key(Settings(data_dir=data)) == (
        "generated-by-serve-0123456789",
        str(data / "api_key"),
    )


def test_the_client_command_uses_the_servers_key_in_the_same_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "api_key").write_text("generated-by-serve-0123456789\n")
    missing = tmp_path / "x.mp4"
    args = ("client", "--no-window", "--source", str(missing), "--server", "http://127.0.0.1:9")
    result = _cli(tmp_path, monkeypatch, *args)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Using the server's key kept in {tmp_path / 'data' / 'api_key'}.",
        f"Error: video file not found: {missing}",
    ]


# --- real: the client command, a real server, a real clip, a real window ----------------------


def _speaker_dataset(folder: Path) -> Path:
    import cv2

    person = folder / "speaker"
    person.mkdir(parents=True)
    capture = cv2.VideoCapture(str(require_faces() / "video" / CLIP))
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index in (60, 120, 190):
            cv2.imwrite(str(person / f"{index}.jpg"), frame)
        index += 1
    capture.release()
    return folder


def _marks(data: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for day_file in sorted((data / "logs").glob("attendance_*.csv")):
        with open(day_file, newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


@pytest.mark.real
def test_client_marks_the_student_who_blinks(tmp_path: Path) -> None:
    dataset = _speaker_dataset(tmp_path / "dataset")
    server = ServerProcess(
        dataset, tmp_path / "data", env={"ATTENDANCE_REQUIRE_LIVENESS": "1"}
    ).start()
    try:
        result = run_cli(
            "client",
            "--source",
            str(require_faces() / "video" / CLIP),
            "--server",
            server.url,
            "--no-window",
            "--queue-dir",
            str(tmp_path / "queue"),
            "--camera",
            "door-9",
            "--cooldown",
            "2",
            "--record",
            str(tmp_path / "hud.mp4"),
            env={"API_SECRET_KEY": API_KEY, "ATTENDANCE_DATA_DIR": str(tmp_path / "client")},
            cwd=tmp_path,
            timeout_s=300,
        )
    finally:
        server.stop()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0
    out = result.stdout
    lines = out.splitlines()
    assert lines[0] == "speaker: Late (new)" or lines[0] == "speaker: Present (new)", out
    assert all(line.startswith("speaker: ") for line in lines[1:])
    assert len(lines) >= 2  # blinks after the cool-down are scanned again: already marked
    marks = _marks(tmp_path / "data")
    assert [m["Name"] for m in marks] == ["speaker"]
    assert (tmp_path / "hud.mp4").stat().st_size > 100_000
    assert [p.name for p in (tmp_path / "queue").iterdir()] == [client_app.MODE_FILE]
    assert (tmp_path / "queue" / client_app.MODE_FILE).read_text() == "blink\n"  # asked, learnt


@pytest.mark.real
def test_window_opens_on_a_virtual_screen(tmp_path: Path) -> None:
    import subprocess
    import time

    import cv2

    require_tool(shutil.which("Xvfb") is not None, "Xvfb not installed (make install: xvfb)")

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(20):
        cv2.imwrite(str(frames / f"{i:03d}.png"), np.full((240, 320, 3), 100 + i, np.uint8))
    display = f":{free_port() % 500 + 100}"
    xvfb = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "800x600x24"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        result = run_cli(
            "client",
            "--source",
            str(frames),
            "--server",
            "http://127.0.0.1:9",
            "--fps",
            "10",
            "--drain",
            "0",
            "--queue-dir",
            str(tmp_path / "q"),
            env={"API_SECRET_KEY": "k", "DISPLAY": display},
            cwd=tmp_path,
            timeout_s=120,
        )
    finally:
        xvfb.terminate()
        xvfb.wait()
    assert result.returncode == 0, result.stderr
    without_display = run_cli(
        "client",
        "--source",
        str(frames),
        "--server",
        "http://127.0.0.1:9",
        env={"API_SECRET_KEY": "k", "DISPLAY": ""},
        cwd=tmp_path,
        timeout_s=120,
    )
    assert without_display.returncode == 1
    assert "use --no-window" in without_display.stderr
