"""The camera client on real clips against a real server: marks, offline queue, restarts."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import API_KEY, ServerProcess, free_port, require_faces, run_cli
from smart_attendance.client import hud
from smart_attendance.client.outbox import Outbox
from smart_attendance.models import Box

CLIP = "talking_head_wda_aoc.mp4"


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


def _client(
    tmp_path: Path, url: str, queue: Path, *extra: str, source: Path | None = None
) -> tuple[int, str]:
    result = run_cli(
        "client",
        "--source",
        str(source or require_faces() / "video" / CLIP),
        "--server",
        url,
        "--no-window",
        "--queue-dir",
        str(queue),
        "--camera",
        "door-9",
        *extra,
        env={"API_SECRET_KEY": API_KEY, "ATTENDANCE_DATA_DIR": str(tmp_path / "client")},
        cwd=tmp_path,
        timeout_s=300,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout


def _marks(data: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for day_file in sorted((data / "logs").glob("attendance_*.csv")):
        with open(day_file, newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def test_client_marks_the_student_who_blinks(tmp_path: Path) -> None:
    dataset = _speaker_dataset(tmp_path / "dataset")
    server = ServerProcess(
        dataset, tmp_path / "data", env={"ATTENDANCE_REQUIRE_LIVENESS": "1"}
    ).start()
    try:
        code, out = _client(
            tmp_path,
            server.url,
            tmp_path / "queue",
            "--cooldown",
            "2",
            "--record",
            str(tmp_path / "hud.mp4"),
        )
    finally:
        server.stop()
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "speaker: Late (new)" or lines[0] == "speaker: Present (new)", out
    assert all(line.startswith("speaker: ") for line in lines[1:])
    assert len(lines) >= 2  # blinks after the cool-down are scanned again: already marked
    marks = _marks(tmp_path / "data")
    assert [m["Name"] for m in marks] == ["speaker"]
    assert (tmp_path / "hud.mp4").stat().st_size > 100_000
    assert list((tmp_path / "queue").iterdir()) == []


def test_offline_queue_survives_outage_and_restart(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # 1. The server is down: every scan is queued on disk, none is lost.
    code, out = _client(tmp_path, url, queue, "--cooldown", "3", "--drain", "1")
    assert code == 0
    scans = Outbox(queue).pending()
    assert len(scans) >= 2, out
    assert "still queued" in out
    captured = sorted(scan.captured_at for scan in scans)
    # A copy of one scan (same event id) stands for a resend after a crash mid-upload.
    shutil.copytree(scans[0].folder, queue / (scans[0].folder.name + "_copy"))
    # 2. The server comes back; the client restarts on a source with no blink at all.
    dataset = _speaker_dataset(tmp_path / "dataset")
    server = ServerProcess(
        dataset, tmp_path / "data", port=port, env={"ATTENDANCE_TIMEZONE": "UTC"}
    ).start()
    try:
        empty = tmp_path / "empty"
        empty.mkdir()
        import cv2

        cv2.imwrite(str(empty / "wall.png"), np.full((120, 160, 3), 90, np.uint8))
        code, out = _client(tmp_path, url, queue, "--drain", "60", source=empty)
        assert code == 0
        assert f"{len(scans) + 1} queued scan(s) from before will be sent." in out
        answers = [line for line in out.splitlines() if line.startswith("speaker")]
        assert len(answers) == len(scans) + 1
        assert answers[0] == "speaker: Late (new)" or answers[0] == "speaker: Present (new)"
        assert all("already marked" in a for a in answers[1:])
    finally:
        server.stop()
    assert Outbox(queue).pending() == []
    marks = _marks(tmp_path / "data")
    assert [m["Name"] for m in marks] == ["speaker"]  # once, not once per resend
    # The mark carries the capture time from the outage, not the time it was sent.
    assert marks[0]["Time"] == captured[0][11:19]  # server zone is UTC, like captured_at


def test_client_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    result = run_cli("client", "--no-window", "--source", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: set API_SECRET_KEY")


def test_missing_video_is_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "client",
        "--no-window",
        "--source",
        str(tmp_path / "x.mp4"),
        env={"API_SECRET_KEY": "k"},
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: video file not found: {tmp_path / 'x.mp4'}"


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
    assert (out[:80, 300:] == hud.AMBER).all(axis=-1).any()  # the Late card's border
    state.t = 5.0  # the card is gone after its time
    assert not (hud.draw(frame, state)[:80, 300:] == hud.AMBER).all(axis=-1).any()


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb not installed (make install)")
def test_window_opens_on_a_virtual_screen(tmp_path: Path) -> None:
    import subprocess
    import time

    import cv2

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


def test_a_live_camera_that_disappears_is_reopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Camera missing at start: retried with back-off; camera stops mid-stream: reopened."""
    from smart_attendance.client import app
    from smart_attendance.sources import SourceError

    require_faces()  # the scanner loads dlib's models
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
    monkeypatch.setattr(app, "open_frames", open_frames)
    monkeypatch.setattr(app.time, "sleep", sleeps.append)
    said: list[str] = []
    options = app.ClientOptions(
        source="0",
        server=f"http://127.0.0.1:{free_port()}",
        key=API_KEY,
        queue_dir=tmp_path / "queue",
        window=False,
    )
    assert app.run(options, echo=said.append) == 0
    assert len(opened) == 5
    assert sleeps == [1.0, 2.0]  # back-off while the camera is missing, reset once it opens
    assert said.count("Camera unavailable (camera 0 cannot be opened); retrying in 1 s.") == 1
    assert said.count("Camera stopped sending frames; reopening.") == 2
