"""The camera client loop: capture, blink-to-scan or the server's challenge, HUD, recording,
offline queue.

For every frame: find the faces on a 320 px greyscale copy, take the largest face's landmarks,
follow its eye aspect ratio and head yaw. When a face is steady in front of the camera the
client asks the server for a liveness challenge (``challenge.py``); in challenge mode it shows
the actions, follows them and queues the frames it recorded with the challenge's nonce. In
blink mode (the server says so, or is too old to know challenges) a blink of that face queues
the burst of frames from just before the dip to the recovery. Scans go to a queue on disk
(capture time, camera id, unique event id) and are sent to ``POST /recognize`` by a background
uploader; the answer is shown on the result card. The same face track is not scanned again for
``cooldown_s``. A printed badge in view (its QR code, read ``badge_every_s``) is queued as a
check-in for ``POST /checkin`` instead, the same card not again for ``cooldown_s``. A camera or
stream that fails is reopened; neither the server nor the camera can crash the client.

Frame rates: a live camera's real rate is measured (over the last two seconds) and used for the
blink rule and the bursts' ``fps``; a rate unlike the one assumed (``--fps`` or the camera's
own) is warned about in the log and on the HUD. A video file's own rate is used as it is.
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

from ..config import Settings
from ..engine.dlib_engine import FaceEngine, eye_aspect_ratio, yaw_ratio
from ..errors import ConfigError, DisplayError, SourceError
from ..models import LIVENESS_FAILED, RECOGNISED, Box, DetectParams, Recognition
from ..recognition.liveness import Blink, BlinkDetector
from . import challenge as ch
from . import hud, words
from .outbox import Outbox, Scan
from .qr import BadgeReader
from .sources import open_frames
from .uploader import Uploader, unreachable

log = logging.getLogger(__name__)

STEADY_S = 0.4  # a face this long in view, alone and close enough, is asked for a challenge
MODE_RECHECK_S = 60.0  # in blink mode, ask the server again this often (it may switch)
ASK_AGAIN_S = 3.0  # after a failed ask (offline, busy), wait this long
LOST_S = 1.0  # a challenge ends when its face has been out of view this long
FPS_WINDOW_S = 2.0  # the camera's rate is measured over this window
FPS_TOLERANCE = 0.25  # a rate further than this (relative) from the assumed one is warned
MODE_FILE = ".liveness-mode"  # in the queue folder: the server's mode, known across restarts
MIN_FILE_FPS, MAX_FILE_FPS = 1.0, 240.0  # a video file's own rate outside this is not believed


@dataclass
class ClientOptions:
    source: str = "0"
    server: str = "http://127.0.0.1:5000"
    key: str = ""
    key_from: str = ""  # where the key came from (API_SECRET_KEY or a key file), said on a 401
    camera: str = "door"
    queue_dir: Path = Path("data/client-queue")
    queue_max_mb: int = 500  # the queue folder's caps (ATTENDANCE_CLIENT_QUEUE_MAX_MB, _DAYS)
    queue_max_days: int = 7
    window: bool = True
    record: Path | None = None
    cooldown_s: float = 8.0
    pre_s: float = 0.6
    detect_side: int = 320
    width: int = 0  # 0: the source's own resolution
    fps: float = 0.0  # 0: the source's own rate
    drain_s: float = 30.0  # at the end of a file, wait this long for the queue to empty
    badge_every_s: float = 0.2  # look for a badge's QR code this often (0: every frame)
    mirror: bool = True  # show the preview as a mirror (the frames sent are never flipped)
    max_burst_frames: int = ch.MAX_BURST_FRAMES
    max_burst_pixels: int = ch.MAX_BURST_PIXELS
    max_burst_bytes: int = ch.MAX_BURST_BYTES


def _is_live(source: str) -> bool:
    return source.isdigit() or "://" in source


def find_key(settings: Settings) -> tuple[str, str]:
    """The key the client sends, and where it came from: ``API_SECRET_KEY`` (environment or
    .env), else the key the server generated in its data folder (``DATA_DIR/api_key``, the
    same ``ATTENDANCE_DATA_DIR`` and ``./data`` default as ``attendance serve``), as on the
    server's own machine. ``ConfigError`` saying what to do when there is neither."""
    if settings.api_key:
        return settings.api_key, "API_SECRET_KEY"
    key_file = settings.api_key_file
    try:
        key = key_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        key = ""
    except OSError as exc:
        raise ConfigError(
            f"set API_SECRET_KEY to the server's key, or a camera key (`attendance keys add "
            f"NAME`): the server's key file {key_file} cannot be read ({exc.strerror}); run "
            "the client as the server's user, or copy the key"
        ) from None
    if not key:
        raise ConfigError(
            "set API_SECRET_KEY to a camera key (`attendance keys add NAME` on the server) or "
            f"the server's key: no key in the environment or .env, and no {key_file} (the "
            "key `attendance serve` generates; on the server's machine, run the client in the "
            "folder the server runs in, or set ATTENDANCE_DATA_DIR to its data folder)"
        )
    return key, str(key_file)


def source_fps(options: ClientOptions, own: float, live: bool, folder: bool) -> tuple[float, str]:
    """The frame rate to assume at the start, and a warning when ``--fps`` is set aside: a
    video file's own rate wins over ``--fps`` (its frames are in its own time); a folder has
    none (``--fps``, else 10); a live camera starts with ``--fps`` or its own and is measured."""
    if live or folder:
        return options.fps or own, ""
    believable = MIN_FILE_FPS <= own <= MAX_FILE_FPS
    if not believable:
        return options.fps or 25.0, ""
    if options.fps and abs(options.fps - own) > FPS_TOLERANCE * own:
        return own, (
            f"--fps {options.fps:g} set aside: the video file's own rate is {own:.3g} fps, "
            "and blinks are judged at that rate"
        )
    return own, ""


class Scanner:
    """Per-frame state: the face track, its blink detector, the frame buffer, the challenge
    in progress, cool-downs, the measured frame rate and what this run has seen."""

    def __init__(
        self,
        options: ClientOptions,
        outbox: Outbox,
        uploader: Uploader,
        fps: float,
        clock: Callable[[], datetime] | None = None,
        live: bool = False,
        ask: Callable[[], ch.Asked] | None = None,
    ) -> None:
        self.options = options
        self.clock = clock or (lambda: datetime.now(timezone.utc))  # stamps capture times
        self.outbox = outbox
        self.uploader = uploader
        self.live = live
        self.expected_fps = fps if fps > 0 else 25.0
        self.fps = self.expected_fps
        self.encoder = FaceEngine(describe=False)
        self.detector = BlinkDetector(self.fps)
        self.buffer: deque[tuple[int, np.ndarray, datetime]] = deque(
            maxlen=max(10, int(self.fps * (options.pre_s + 1.0)))
        )
        self.track_box: Box | None = None
        self.track_id = 0
        self.track_since = 0.0
        self.cooldown_until: dict[int, float] = {}
        self.badges = BadgeReader()
        self.badge_until: dict[str, float] = {}  # a card read: not sent again until then
        self.next_badge_look = float("-inf")
        self.state = hud.HudState(camera=options.camera, mirror=options.mirror)
        self.index = -1
        # What this run has done (said when the client stops).
        self.scans = 0  # scans and badges queued
        self.blinks = 0  # blinks seen (of the face in front)
        self.challenges = 0  # challenges followed to the end and queued
        self.challenges_failed = 0  # too slow, or the face left
        self.frames_with_face = 0
        self.open_level: deque[float] = deque(maxlen=max(4, int(self.fps * 2)))
        self.frame_times: deque[float] = deque()
        self.fps_warned = False
        # The server's liveness mode: challenge, blink, off, or unknown ("").
        self.mode = self._load_mode()
        self.mode_checked_t = float("-inf")
        self.ask_problem = ""  # the last ask's failure: offline, denied, error
        self.next_ask_t = float("-inf")
        self.asked_track = -1
        self.asker = ch.Asker(ask or self._ask_server)
        self.follower: ch.Follower | None = None
        self.recording: ch.Recording | None = None
        self.challenge_track = -1
        self.challenge_seen_t = 0.0
        self.challenge_box: Box | None = None

    # --- the server's mode ----------------------------------------------------------------------

    def _ask_server(self) -> ch.Asked:
        return ch.ask(
            self.uploader.session,
            self.options.server,
            self.options.key,
            self.options.camera,
        )

    def _load_mode(self) -> str:
        try:
            mode = (self.options.queue_dir / MODE_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            return ""
        return mode if mode in (ch.CHALLENGE, ch.BLINK, ch.OFF) else ""

    def _set_mode(self, mode: str) -> None:
        if mode == self.mode:
            return
        if self.mode:
            log.warning("the server's liveness mode is now %s (was %s)", mode, self.mode)
        self.mode = mode
        with contextlib.suppress(OSError):  # only a hint for the next start
            (self.options.queue_dir / MODE_FILE).write_text(mode + "\n", encoding="utf-8")

    # --- frame rate -------------------------------------------------------------------------------

    def _measure(self, t: float) -> None:
        """A live camera's real rate (the frames this loop gets a second): used for blinks and
        bursts, and warned about when unlike the rate assumed."""
        times = self.frame_times
        times.append(t)
        while times and t - times[0] > FPS_WINDOW_S:
            times.popleft()
        if not self.live or len(times) < 5 or t - times[0] < 0.75 * FPS_WINDOW_S:
            return
        measured = (len(times) - 1) / (t - times[0])
        far = abs(measured - self.expected_fps) > FPS_TOLERANCE * self.expected_fps
        self.state.fps_warning = (
            words.say("fps_warning", measured=measured, expected=self.expected_fps) if far else ""
        )
        if far and not self.fps_warned:
            self.fps_warned = True
            log.warning(
                "the camera delivers %.1f frames a second, not the %.3g assumed (--fps or the "
                "camera's own): blinks are judged at the measured rate",
                measured,
                self.expected_fps,
            )
        if abs(measured - self.fps) > FPS_TOLERANCE * self.fps and self.follower is None:
            self.fps = measured
            self.detector = BlinkDetector(measured)
            self.buffer = deque(
                self.buffer, maxlen=max(10, int(measured * (self.options.pre_s + 1)))
            )

    # --- every frame ------------------------------------------------------------------------------

    def process(self, frame: np.ndarray, t: float) -> np.ndarray:
        self.index += 1
        now = self.clock()
        self._measure(t)
        self.buffer.append((self.index, frame, now))
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        boxes = self.encoder.detect(grey, DetectParams(max_side=self.options.detect_side))
        state = self.state
        state.t = t
        state.faces = len(boxes)
        guidance = hud.guidance_for(grey, boxes, frame.shape[1])
        ear = yaw = None
        if boxes:
            box = max(boxes, key=lambda b: b.width * b.height)
            if self.track_box is None or box.iou(self.track_box) < 0.3:
                self.track_id += 1
                self.track_since = t
                self.detector.reset()
                self.open_level.clear()
            self.track_box = box
            points = self.encoder.landmarks(grey, box)
            ear, yaw = eye_aspect_ratio(points), yaw_ratio(points)
            state.box = box
        else:
            self.track_box = None
            state.box = None
        blink = self.detector.update(ear)
        if blink:
            self.blinks += 1
        if ear is not None:
            self.frames_with_face += 1
        if ear is not None:
            self.open_level.append(ear)
            level = float(np.percentile(np.asarray(self.open_level), 80))
            state.openness = ear / level if level > 0 else None
            state.blinking = state.openness is not None and state.openness < 0.7
        else:
            state.openness = None
            state.blinking = False
        ready = guidance == words.say("blink_to_scan")
        cooling = t < self.cooldown_until.get(self.track_id, 0.0)
        state.guidance = guidance
        self._liveness(frame, t, now, blink, yaw, len(boxes), ready, cooling)
        if ready and cooling and self.follower is None:
            state.guidance = words.say("next_student")
        if t >= self.next_badge_look:
            self.next_badge_look = t + self.options.badge_every_s
            self._queue_badges(frame, t, now)
        state.server = self.uploader.state
        state.queued = len(self.outbox)
        return hud.draw(frame, state)

    def _liveness(
        self,
        frame: np.ndarray,
        t: float,
        now: datetime,
        blink: Blink | None,
        yaw: float | None,
        faces: int,
        ready: bool,
        cooling: bool,
    ) -> None:
        asked = self.asker.take()
        if asked is not None:
            self._on_asked(asked, t)
        if self.follower is not None:
            self._follow(frame, t, now, blink, yaw)
            return
        self.state.prompt = None
        steady = ready and not cooling and t - self.track_since >= STEADY_S
        if steady and t >= self.next_ask_t and not self.asker.busy:
            again = self.mode == ch.CHALLENGE and self.asked_track != self.track_id
            due = self.mode != ch.CHALLENGE and t - self.mode_checked_t >= MODE_RECHECK_S
            if again or due:
                self.asked_track = self.track_id
                self.asker.start()
        if self.mode == ch.CHALLENGE:
            # No blink scans: the server would refuse a burst without a nonce.
            if ready and not cooling and self.ask_problem:
                key = "denied_no_challenge" if self.ask_problem == ch.DENIED else None
                self.state.guidance = words.say(key or "offline_no_challenge")
            elif ready and not cooling:
                self.state.guidance = words.say("hold_still")
            return
        if blink and faces == 1 and not cooling:
            self._queue_burst(blink.start, t)

    def _on_asked(self, asked: ch.Asked, t: float) -> None:
        if asked.mode in (ch.OFFLINE, ch.DENIED, ch.ERROR):
            if self.ask_problem != asked.mode:
                log.info("cannot ask the server for a challenge: %s (%s)", asked.mode, asked.detail)
            self.ask_problem = asked.mode
            self.next_ask_t = t + (30.0 if asked.mode == ch.DENIED else ASK_AGAIN_S)
            self.asked_track = -1  # ask again for this face when it is time
            return
        self.ask_problem = ""
        self.mode_checked_t = t
        self._set_mode(asked.mode)
        if asked.challenge is None:
            return
        if self.track_box is None or self.track_id != self.asked_track:
            return  # the student left meanwhile: a new challenge for the next one
        c = asked.challenge
        total = max(1.0, c.expires_in_s - ch.SEND_MARGIN_S)
        self.follower = ch.Follower(c, self.fps, t, t + total)
        self.recording = ch.Recording(roll=int(3.0 * self.fps))
        first = self.index - int(self.options.pre_s * self.fps)
        for item in self.buffer:  # a little before the prompt: the eyes' open level
            if item[0] >= first:
                self.recording.add(item)
        self.challenge_track = self.track_id
        self.challenge_seen_t = t
        self.challenge_box = self.track_box
        log.info("challenge: %s", ", ".join(c.actions))

    def _follow(
        self, frame: np.ndarray, t: float, now: datetime, blink: Blink | None, yaw: float | None
    ) -> None:
        follower, recording = self.follower, self.recording
        assert follower is not None and recording is not None
        box = self.track_box
        if box is not None:
            moved = self.challenge_box is not None and box.iou(self.challenge_box) < 0.3
            if moved and self.track_id != self.challenge_track:  # another face: a new student
                self._end_challenge(t, "challenge_lost")
                return
            self.challenge_box = box
            self.challenge_seen_t = t
            self.challenge_track = self.track_id
        elif t - self.challenge_seen_t > LOST_S:
            self._end_challenge(t, "challenge_lost")
            return
        recording.add((self.index, frame, now))
        if t > follower.deadline_t and not follower.done:
            self._end_challenge(t, "challenge_too_slow")
            return
        openness = self.state.openness if box is not None else None
        follower.update(self.index, t, blink, yaw if box is not None else None, openness)
        first = follower.burst_start(int(self.options.pre_s * self.fps))
        if first is not None:
            recording.fix_front(first)
        if follower.done and follower.done_t is not None and t - follower.done_t >= ch.TAIL_S:
            self._queue_challenge(t)
            return
        c = follower.challenge
        step = min(follower.step, len(c.actions) - 1)
        self.state.prompt = hud.Prompt(
            action=c.actions[step],
            words=words.action_words(c.actions[step], c.prompts[step]),
            step=step + 1,
            steps=len(c.actions),
            left_s=follower.deadline_t - t,
            total_s=follower.deadline_t - follower.started_t,
        )

    def _end_challenge(self, t: float, why: str) -> None:
        self.follower = None
        self.recording = None
        self.state.prompt = None
        self.challenges_failed += 1
        self.asked_track = -1  # the same student may try again
        self.next_ask_t = t + 2.0
        title, detail = words.card(why)
        self._show(t, {"title": title, "detail": detail, "kind": "unknown"}, 2.0)
        log.info("challenge ended: %s", why)

    def _queue_challenge(self, t: float) -> None:
        follower, recording = self.follower, self.recording
        assert follower is not None and recording is not None
        self.follower, self.recording, self.state.prompt = None, None, None
        items = recording.items
        if len(items) < 2:
            self._end_challenge(t, "challenge_lost")
            return
        fps = self.fps / recording.stride
        jpegs, fps, _ = self._fit([f for _, f, _ in items], fps)
        captured = items[len(items) // 2][2]
        nonce = follower.challenge.nonce
        put = partial(self.outbox.put, jpegs, self.options.camera, fps, captured, nonce=nonce)
        if self._keep(put, t):
            self.challenges += 1
            self._queued(t, f"challenge done: scan queued ({len(jpegs)} frames, {fps:.3g} fps)")

    # --- scans ------------------------------------------------------------------------------------

    def _fit(self, frames: list[np.ndarray], fps: float) -> tuple[list[bytes], float, int]:
        o = self.options
        return ch.fit_burst(frames, fps, o.max_burst_frames, o.max_burst_pixels, o.max_burst_bytes)

    def _queue_burst(self, blink_start: int, t: float) -> None:
        first = blink_start - int(self.options.pre_s * self.fps)
        frames = [(i, f, when) for i, f, when in self.buffer if i >= first]
        if len(frames) < 4:
            return
        jpegs, fps, _ = self._fit([f for _, f, _ in frames], self.fps)
        captured = frames[len(frames) // 2][2]
        put = partial(self.outbox.put, jpegs, self.options.camera, fps, captured)
        if self._keep(put, t):
            self._queued(t, f"blink seen: scan queued ({len(jpegs)} frames)")

    def _queued(self, t: float, said: str) -> None:
        """A scan is in the queue: wake the sender, say so, cool this face down."""
        self.uploader.wake()
        if self.uploader.state == "online":
            self._show(t, _card("scanning", "scanning"), 10.0)  # until the answer comes
        else:
            self._show(t, _card("queued", "queued", state=self.uploader.state), 3.0)
        self.cooldown_until[self.track_id] = t + self.options.cooldown_s
        self.scans += 1
        log.info("%s", said)

    def _show(self, t: float, card: dict[str, str], seconds: float) -> None:
        self.state.result = card
        self.state.result_until = t + seconds

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
            state = self.uploader.state
            card = (
                _card("badge_read", "queued")
                if online
                else _card("badge_queued", "queued", state=state)
            )
            self._show(t, card, 3.0)
            self.scans += 1
            log.info("badge read: check-in queued")

    def _keep(self, put: Callable[[], Scan], t: float) -> bool:
        """Queue a scan; a queue that cannot be written (a full disk) is said, not fatal."""
        try:
            put()
        except OSError as exc:
            log.error("cannot queue the scan in %s: %s", self.options.queue_dir, exc)
            self._show(t, _card("not_saved", "unknown"), 3.0)
            return False
        return True

    def on_answer(self, _scan: Scan, answer: Recognition) -> None:
        self.state.result = hud.result_card(answer, self.uploader.display_names)
        self.state.result_until = self.state.t + 3.0


def _card(key: str, kind: str, **values: object) -> dict[str, str]:
    title, detail = words.card(key, **values)
    return {"title": title, "detail": detail, "kind": kind}


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
    note: Callable[[str], None] | None = None,
) -> int:
    """Run until the source ends (files, folders) or the window is closed / Ctrl-C.
    ``echo``: the answers, one line each; ``note``: warnings and the summary when the client
    stops (default: ``echo``). ``session``: the HTTP session to send scans with (default: a
    new one); ``clock``: the time that stamps each scan's capture time (default: this
    machine's clock)."""
    note = note or echo
    outbox = Outbox(
        options.queue_dir,
        max_bytes=options.queue_max_mb * 1024 * 1024,
        max_age_s=options.queue_max_days * 86400.0,
    )
    scanner_ref: list[Scanner] = []

    def on_answer(scan: Scan, answer: Recognition) -> None:
        echo(_describe(answer))
        if scanner_ref:
            scanner_ref[0].on_answer(scan, answer)

    uploader = Uploader(
        outbox, options.server, options.key, on_answer, session=session, key_from=options.key_from
    )
    if len(outbox):  # said before the uploader starts, so before any answer it prints
        echo(f"{len(outbox)} queued scan(s) from before will be sent.")
    if not check_server(options, uploader):
        # Headless, nobody would see the HUD's "server: denied": stop, saying why.
        note(f"Error: {uploader.problem}.")
        uploader.stop()
        return 1
    uploader.start()
    window = Window(f"Smart Attendance - {options.camera}") if options.window else None
    writer: Any = None
    started = time.monotonic()
    delay = 1.0
    live = _is_live(options.source)
    try:
        while True:
            try:
                own_fps, frames = open_frames(options.source)
            except SourceError as exc:
                if not live:
                    raise
                echo(f"Camera unavailable ({exc}); retrying in {delay:.0f} s.")
                time.sleep(delay)
                delay = min(delay * 2, 30)
                continue
            delay = 1.0
            fps, warning = source_fps(options, own_fps, live, Path(options.source).is_dir())
            if warning:
                note(f"Warning: {warning}.")
            if not scanner_ref:
                scanner_ref.append(Scanner(options, outbox, uploader, fps, clock, live=live))
            scanner = scanner_ref[0]
            last = time.monotonic()
            for frame in frames:
                if options.width and frame.shape[1] != options.width:
                    scale = options.width / frame.shape[1]
                    frame = cv2.resize(frame, None, fx=scale, fy=scale)
                t = scanner.index / fps if not live else time.monotonic() - started
                drawn = scanner.process(frame, t)
                now = time.monotonic()
                scanner.state.fps = 0.9 * scanner.state.fps + 0.1 / max(1e-3, now - last)
                last = now
                if options.record is not None:
                    if writer is None:
                        writer = cv2.VideoWriter(
                            str(options.record),
                            cv2.VideoWriter.fourcc(*"mp4v"),
                            scanner.fps,
                            (drawn.shape[1], drawn.shape[0]),
                        )
                    writer.write(drawn)
                if window is not None:
                    window.show(drawn)
                    if window.closed:
                        return 0
            if not live:
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
        ran = scanner_ref[0] if scanner_ref else None
        stuck = uploader.problem and len(outbox)  # said even when no frame was read
        if ran is not None or uploader.sent or uploader.rejected or stuck:
            note(summary(outbox, uploader, ran))
        _log_summary(outbox, uploader, ran)
        if ran is not None and ran.frames_with_face >= 5 * ran.fps and not ran.blinks:
            note(
                f"No blink was seen in {ran.frames_with_face} frames with a face: is the "
                f"frame rate right ({ran.fps:.3g} fps assumed)?"
            )
        if writer is not None:
            writer.release()
        if window is not None:
            window.close()


def check_server(options: ClientOptions, uploader: Uploader) -> bool:
    """Ask the server once at the start, with the key, whether it takes this camera's scans
    (``GET /liveness/challenge``, the route the client asks anyway); False when it refuses the
    key (401) and there is no window to show it (the client then stops). A server that cannot
    be reached is said in the log (scans are queued meanwhile)."""
    asked = ch.ask(uploader.session, options.server, options.key, options.camera)
    if asked.mode == ch.DENIED:
        uploader.refused_key(logged=options.window)  # headless: the client stops, saying it
        return options.window
    if asked.mode == ch.OFFLINE:
        uploader.state = "offline"
        uploader.trouble(unreachable(options.server.rstrip("/"), asked.detail))
    return True


def summary(outbox: Outbox, uploader: Uploader, scanner: Scanner | None = None) -> str:
    """What this run saw and what became of its scans, said when the client stops."""
    seen = ""
    if scanner is not None:
        challenges = ""
        if scanner.challenges or scanner.challenges_failed:
            challenges = (
                f"{scanner.challenges} challenge(s) passed on screen, "
                f"{scanner.challenges_failed} not finished, "
            )
        rate = f", camera {scanner.fps:.3g} fps" if scanner.live else ""
        seen = f"{scanner.blinks} blink(s) seen, {challenges}{scanner.scans} scan(s) queued{rate}; "
    problem = f"; not sent: {uploader.problem}" if uploader.problem and len(outbox) else ""
    return (
        f"client stopped: {seen}{uploader.sent} sent, {uploader.rejected} refused, "
        f"{outbox.quarantined} quarantined, {len(outbox)} still queued (queue: {outbox.root})"
        f"{problem}"
    )


def _log_summary(outbox: Outbox, uploader: Uploader, scanner: Scanner | None) -> None:
    # Printed by ``run`` (``note``) and logged at INFO: not twice on the command's stderr.
    log.info("%s", summary(outbox, uploader, scanner))


def _describe(answer: Recognition) -> str:
    first = answer.first
    if answer.status == RECOGNISED and first is not None:
        seen = "new" if first.new else "already marked"
        return f"{first.name}: {first.attendance} ({seen})"
    if answer.status == LIVENESS_FAILED:
        return f"liveness failed: {answer.reason}"
    return f"{answer.status}: {answer.reason or ''}"
