"""The camera client loop: capture, blink-to-scan, HUD, recording, offline queue.

For every frame: find the faces on a 320 px greyscale copy, take the largest face's landmarks,
follow its eye aspect ratio. When that face blinks, the burst of frames from just before the dip
to the recovery is queued on disk (capture time, camera id, unique event id) and sent to
``POST /recognize`` by a background uploader; the answer is shown on the result card. The same
face track is not scanned again for ``cooldown_s``. A printed badge in view (its QR code, read
``badge_every_s``) is queued as a check-in for ``POST /checkin`` instead, the same card not
again for ``cooldown_s``. A camera or stream that fails is reopened; neither the server nor the
camera can crash the client.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import requests
from PIL import Image

from ..engine.dlib_engine import FaceEngine, eye_aspect_ratio
from ..errors import DisplayError, SourceError
from ..models import LIVENESS_FAILED, RECOGNISED, Box, DetectParams, Recognition
from ..recognition.liveness import BlinkDetector
from . import hud
from .outbox import Outbox, Scan
from .qr import BadgeReader
from .sources import open_frames
from .uploader import Uploader

log = logging.getLogger(__name__)


@dataclass
class ClientOptions:
    source: str = "0"
    server: str = "http://127.0.0.1:5000"
    key: str = ""
    camera: str = "door"
    queue_dir: Path = Path("data/client-queue")
    window: bool = True
    record: Path | None = None
    cooldown_s: float = 8.0
    pre_s: float = 0.6
    detect_side: int = 320
    width: int = 0  # 0: the source's own resolution
    fps: float = 0.0  # 0: the source's own rate
    drain_s: float = 30.0  # at the end of a file, wait this long for the queue to empty
    badge_every_s: float = 0.2  # look for a badge's QR code this often (0: every frame)


def _is_live(source: str) -> bool:
    return source.isdigit() or "://" in source


class Scanner:
    """Per-frame state: the face track, its blink detector, the frame buffer, cool-downs."""

    def __init__(
        self,
        options: ClientOptions,
        outbox: Outbox,
        uploader: Uploader,
        fps: float,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.options = options
        self.clock = clock or (lambda: datetime.now(timezone.utc))  # stamps capture times
        self.outbox = outbox
        self.uploader = uploader
        self.fps = fps
        self.encoder = FaceEngine(describe=False)
        self.detector = BlinkDetector(fps)
        self.buffer: deque[tuple[int, np.ndarray, datetime]] = deque(
            maxlen=max(10, int(fps * (options.pre_s + 1.0)))
        )
        self.track_box: Box | None = None
        self.track_id = 0
        self.cooldown_until: dict[int, float] = {}
        self.badges = BadgeReader()
        self.badge_until: dict[str, float] = {}  # a card read: not sent again until then
        self.next_badge_look = float("-inf")
        self.state = hud.HudState(camera=options.camera)
        self.index = -1
        self.scans = 0
        self.open_level: deque[float] = deque(maxlen=int(fps * 2))

    def process(self, frame: np.ndarray, t: float) -> np.ndarray:
        self.index += 1
        now = self.clock()
        self.buffer.append((self.index, frame, now))
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        boxes = self.encoder.detect(grey, DetectParams(max_side=self.options.detect_side))
        state = self.state
        state.t = t
        state.faces = len(boxes)
        state.guidance = hud.guidance_for(grey, boxes, frame.shape[1])
        ear = None
        if boxes:
            box = max(boxes, key=lambda b: b.width * b.height)
            if self.track_box is None or box.iou(self.track_box) < 0.3:
                self.track_id += 1
                self.detector.reset()
                self.open_level.clear()
            self.track_box = box
            ear = eye_aspect_ratio(self.encoder.landmarks(grey, box))
            state.box = box
        else:
            self.track_box = None
            state.box = None
        blink = self.detector.update(ear)
        if ear is not None:
            self.open_level.append(ear)
            level = float(np.percentile(np.asarray(self.open_level), 80))
            state.openness = ear / level if level > 0 else None
            state.blinking = state.openness is not None and state.openness < 0.7
        else:
            state.openness = None
            state.blinking = False
        if blink and len(boxes) == 1 and t >= self.cooldown_until.get(self.track_id, 0.0):
            self._queue_burst(blink.start, t)
        if t >= self.next_badge_look:
            self.next_badge_look = t + self.options.badge_every_s
            self._queue_badges(frame, t, now)
        state.server = self.uploader.state
        state.queued = len(self.outbox)
        return hud.draw(frame, state)

    def _queue_burst(self, blink_start: int, t: float) -> None:
        first = blink_start - int(self.options.pre_s * self.fps)
        frames = [(i, f, when) for i, f, when in self.buffer if i >= first]
        if len(frames) < 4:
            return
        jpegs = []
        for _, frame, _ in frames:
            ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 88])
            if ok:
                jpegs.append(data.tobytes())
        captured = frames[len(frames) // 2][2]
        put = partial(self.outbox.put, jpegs, self.options.camera, self.fps, captured)
        if not self._keep(put, t):
            return
        self.uploader.wake()
        if self.uploader.state != "online":
            self.state.result = {
                "title": "Queued",
                "detail": f"server {self.uploader.state}: will send later",
                "kind": "queued",
            }
            self.state.result_until = t + 3.0
        self.cooldown_until[self.track_id] = t + self.options.cooldown_s
        self.scans += 1
        log.info("blink seen: scan queued (%d frames)", len(jpegs))

    def _queue_badges(self, frame: np.ndarray, t: float, now: datetime) -> None:
        """Queue a check-in for each badge in view, once per card in ``cooldown_s``."""
        for token in self.badges.read(frame):
            if t < self.badge_until.get(token, float("-inf")):
                continue
            self.badge_until = {k: v for k, v in self.badge_until.items() if v > t}
            self.badge_until[token] = t + self.options.cooldown_s
            if not self._keep(partial(self.outbox.put_badge, token, self.options.camera, now), t):
                continue
            self.uploader.wake()
            online = self.uploader.state == "online"
            self.state.result = {
                "title": "Badge read",
                "detail": "checking in" if online else "server offline: will send later",
                "kind": "queued",
            }
            self.state.result_until = t + 3.0
            self.scans += 1
            log.info("badge read: check-in queued")

    def _keep(self, put: Callable[[], Scan], t: float) -> bool:
        """Queue a scan; a queue that cannot be written (a full disk) is said, not fatal."""
        try:
            put()
        except OSError as exc:
            log.error("cannot queue the scan in %s: %s", self.options.queue_dir, exc)
            self.state.result = {
                "title": "Not saved",
                "detail": "queue disk full?",
                "kind": "unknown",
            }
            self.state.result_until = t + 3.0
            return False
        return True

    def on_answer(self, _scan: Scan, answer: Recognition) -> None:
        self.state.result = hud.result_card(answer)
        self.state.result_until = self.state.t + 3.0


class Window:
    """A Tk window showing the HUD frames (OpenCV is used headless)."""

    def __init__(self, title: str) -> None:
        import tkinter

        try:
            self.root = tkinter.Tk()
        except tkinter.TclError:
            raise DisplayError(
                "cannot open a window here (no display); use --no-window on "
                "a machine without a screen"
            ) from None
        self.root.title(title)
        self.label = tkinter.Label(self.root)
        self.label.pack()
        self.closed = False
        self.root.protocol("WM_DELETE_WINDOW", self._close)
        self.root.bind("<Escape>", lambda _e: self._close())
        self.root.bind("q", lambda _e: self._close())
        self._image: Any = None

    def _close(self) -> None:
        self.closed = True

    def show(self, frame: np.ndarray) -> None:
        from PIL import ImageTk

        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        self._image = ImageTk.PhotoImage(Image.fromarray(rgb))
        self.label.configure(image=self._image)
        self.root.update()

    def close(self) -> None:
        import tkinter

        with contextlib.suppress(tkinter.TclError):  # the window may already be gone
            self.root.destroy()


def run(
    options: ClientOptions,
    echo: Callable[[str], None] = print,
    session: requests.Session | None = None,
    clock: Callable[[], datetime] | None = None,
) -> int:
    """Run until the source ends (files, folders) or the window is closed / Ctrl-C.
    ``session``: the HTTP session to send scans with (default: a new one); ``clock``: the
    time that stamps each scan's capture time (default: this machine's clock)."""
    outbox = Outbox(options.queue_dir)
    scanner_ref: list[Scanner] = []

    def on_answer(scan: Scan, answer: Recognition) -> None:
        echo(_describe(answer))
        if scanner_ref:
            scanner_ref[0].on_answer(scan, answer)

    uploader = Uploader(outbox, options.server, options.key, on_answer, session=session)
    if len(outbox):  # said before the uploader starts, so before any answer it prints
        echo(f"{len(outbox)} queued scan(s) from before will be sent.")
    uploader.start()
    window = Window(f"Smart Attendance - {options.camera}") if options.window else None
    writer: Any = None
    started = time.monotonic()
    delay = 1.0
    try:
        while True:
            try:
                fps, frames = open_frames(options.source)
            except SourceError as exc:
                if not _is_live(options.source):
                    raise
                echo(f"Camera unavailable ({exc}); retrying in {delay:.0f} s.")
                time.sleep(delay)
                delay = min(delay * 2, 30)
                continue
            delay = 1.0
            fps = options.fps or fps
            if not scanner_ref:
                scanner_ref.append(Scanner(options, outbox, uploader, fps, clock))
            scanner = scanner_ref[0]
            last = time.monotonic()
            for frame in frames:
                if options.width and frame.shape[1] != options.width:
                    scale = options.width / frame.shape[1]
                    frame = cv2.resize(frame, None, fx=scale, fy=scale)
                t = (
                    scanner.index / fps
                    if not _is_live(options.source)
                    else time.monotonic() - started
                )
                drawn = scanner.process(frame, t)
                now = time.monotonic()
                scanner.state.fps = 0.9 * scanner.state.fps + 0.1 / max(1e-3, now - last)
                last = now
                if options.record is not None:
                    if writer is None:
                        writer = cv2.VideoWriter(
                            str(options.record),
                            cv2.VideoWriter.fourcc(*"mp4v"),
                            fps,
                            (drawn.shape[1], drawn.shape[0]),
                        )
                    writer.write(drawn)
                if window is not None:
                    window.show(drawn)
                    if window.closed:
                        return 0
            if not _is_live(options.source):
                break
            echo("Camera stopped sending frames; reopening.")
        if not outbox.wait_empty(options.drain_s):
            echo(
                f"{len(outbox)} scan(s) still queued in {options.queue_dir}; they will be "
                "sent on the next start."
            )
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        uploader.stop()
        _log_summary(outbox, uploader)
        if writer is not None:
            writer.release()
        if window is not None:
            window.close()


def summary(outbox: Outbox, uploader: Uploader) -> str:
    """What became of this run's scans, said when the client stops."""
    return (
        f"client stopped: {uploader.sent} sent, {uploader.rejected} rejected, "
        f"{outbox.quarantined} quarantined, {len(outbox)} still queued (queue: {outbox.root})"
    )


def _log_summary(outbox: Outbox, uploader: Uploader) -> None:
    # Logged, not printed: the printed lines are the answers. A warning (shown by the command)
    # when a scan was set aside or is left behind.
    notable = uploader.rejected or outbox.quarantined or len(outbox)
    log.log(logging.WARNING if notable else logging.INFO, "%s", summary(outbox, uploader))


def _describe(answer: Recognition) -> str:
    first = answer.first
    if answer.status == RECOGNISED and first is not None:
        seen = "new" if first.new else "already marked"
        return f"{first.name}: {first.attendance} ({seen})"
    if answer.status == LIVENESS_FAILED:
        return f"liveness failed: {answer.reason}"
    return f"{answer.status}: {answer.reason or ''}"
