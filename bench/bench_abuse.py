"""Hostile and broken clients: what they cost the server, and whether cameras are still answered.

Starts ``attendance serve`` (2 workers, no student enrolled) and measures:

* **Pixel bursts**: one ``POST /recognize`` whose frames are tiny PNGs of 40 megapixels (about
  115 KB each) or large JPEGs. Prints the answer, its time, the resident memory of the server
  and its workers before and at the peak of the request (VmHWM, reset before each case through
  /proc/PID/clear_refs), and the slowest answer another camera got meanwhile (one 640x480
  frame after another).
* **Slow connections**: N sockets from one address (127.0.0.2) that send a request line and then
  one header line every second, never finishing. Prints how many the server held and refused,
  the latency of real requests (from 127.0.0.1) while they are held, and how long the server
  took to close them all.
* **Wrong keys from a camera's address**: a door camera with its own camera key scans one
  frame after another from 127.0.0.1 while a guesser on the same address (a school NAT) sends
  ``--guesses`` wrong keys as fast as it can. Prints the camera's scans a second before and
  during the guessing, its answers, and the guesser's (401 until throttled, then 429).
* **A slow upload**: one scan of ``--upload-kb`` KB sent at ``--upload-kbps`` KB/s (weak Wi-Fi:
  1400 KB at 50 KB/s, 28 s, longer than the channel timeout in all). Prints its answer and time.

The work is checked: the server must have nobody enrolled, so every frame it answers (200) must
be answered unknown, each pixel burst must get its expected answer (413 when over the request's
pixel budget, else 200), and the slow upload must be answered 200; anything else stops the
benchmark. Detection at the default 320 px; the server's folders on disk.

    .venv/bin/python bench/bench_abuse.py [--slow 400] [--frames 60] [--guesses 300]
        [--upload-kb 1400] [--upload-kbps 50] [--cases pixels,slow,lockout,upload] [--src PATH]

``--src`` runs the server from another checkout's ``src`` folder (``PYTHONPATH``), e.g. the
last commit's: ``mkdir /tmp/old && git archive HEAD src | tar -x -C /tmp/old`` then
``--src /tmp/old/src``: the numbers before a change.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import requests
from PIL import Image

from common import (
    BOUNDARY,
    FRAMES,
    Server,
    WrongAnswer,
    clean_env,
    disk_folder,
    machine,
    multipart,
    our_server,
    require,
    run,
    table,
    where,
)

KEY = "bench-abuse-key-0123456789abcdef"  # long enough for any key check
SLOW_ADDRESS = "127.0.0.2"  # the slow clients' address (loopback; the cameras use 127.0.0.1)


def big_png(width: int, height: int) -> bytes:
    """A valid black RGB PNG of ``width`` x ``height``: 40 megapixels is about 115 KB."""
    row = b"\x00" + bytes(width * 3)
    packer = zlib.compressobj(6)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def big_jpeg(width: int, height: int) -> bytes:
    """A smooth JPEG (a gradient) of ``width`` x ``height``."""
    out = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(out, "JPEG")
    return out.getvalue()


def _status(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory_mb(server: Server, field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of the server and its workers, summed, in MB."""
    return sum(_status(pid, field) for pid in server.tree_pids()) / 1024


def reset_peaks(server: Server) -> None:
    for pid in server.tree_pids():
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS


def recognize(
    url: str, body: bytes, timeout_s: float = 120, key: str = KEY
) -> tuple[int | str, float]:
    headers = {
        "X-API-KEY": key,
        "Content-Type": "multipart/form-data; boundary=bench-boundary-7f3a9c",
    }
    started = time.perf_counter()
    try:
        answer = requests.post(url + "/recognize", data=body, headers=headers, timeout=timeout_s)
        status: int | str = answer.status_code
    except requests.RequestException as exc:
        return type(exc).__name__, time.perf_counter() - started
    seconds = time.perf_counter() - started
    if status == 200 and answer.json().get("status") != "unknown":
        raise WrongAnswer(f"a frame answered {answer.json()} where nobody is enrolled")
    return status, seconds


class Camera(threading.Thread):
    """Another camera: one frame after another, recording each answer's latency."""

    def __init__(self, url: str, body: bytes) -> None:
        super().__init__(daemon=True)
        self.url, self.body = url, body
        self.key = KEY
        self.pause_s = 0.1  # between scans (0: at full rate)
        self.latencies: list[float] = []
        self.failures = 0
        self.stopping = threading.Event()
        self.wrong: WrongAnswer | None = None

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                status, seconds = recognize(self.url, self.body, timeout_s=60, key=self.key)
            except WrongAnswer as exc:
                self.wrong = exc
                return
            self.latencies.append(seconds)
            self.failures += status != 200
            time.sleep(self.pause_s)

    def stop(self) -> None:
        self.stopping.set()
        self.join()
        if self.wrong is not None:
            raise self.wrong


def pixel_case(
    server: Server, label: str, body: bytes, frame: bytes, expected: int = 200
) -> list[object]:
    time.sleep(0.5)
    before = memory_mb(server, "VmRSS")
    reset_peaks(server)
    camera = Camera(server.url, multipart(frame))
    camera.start()
    status, seconds = recognize(server.url, body)
    time.sleep(0.3)
    camera.stop()
    if status != expected:
        raise WrongAnswer(f"{label} answered {status}, expected {expected}")
    peak = memory_mb(server, "VmHWM")
    slowest = max(camera.latencies) * 1000 if camera.latencies else float("nan")
    return [
        label,
        f"{len(body) / 1e6:.1f}",
        status,
        f"{seconds:.2f}",
        f"{before:.0f}",
        f"{peak:.0f} (+{peak - before:.0f})",
        f"{slowest:.0f}" + (f" ({camera.failures} failed)" if camera.failures else ""),
    ]


class SlowClients:
    """``count`` connections from ``address`` that never finish their request."""

    def __init__(self, port: int, count: int, address: str = SLOW_ADDRESS) -> None:
        self.sockets: list[socket.socket] = []
        self.refused = 0
        self.opened_at = time.monotonic()
        for i in range(count):
            sock = socket.socket()
            sock.bind((address, 0))
            sock.settimeout(5)
            try:
                sock.connect(("127.0.0.1", port))
                sock.sendall(f"POST /recognize HTTP/1.1\r\nHost: x\r\nX-Slow: {i}\r\n".encode())
            except OSError:
                self.refused += 1
                sock.close()
                continue
            sock.setblocking(False)  # checked and fed without waiting
            self.sockets.append(sock)

    def open(self) -> list[socket.socket]:
        """The sockets the server has not closed (nor answered) yet."""
        alive = []
        for sock in self.sockets:
            try:
                if sock.recv(1) == b"":
                    continue  # closed by the server
            except BlockingIOError:
                alive.append(sock)  # nothing to read: still waiting for the rest
            except OSError:
                continue  # reset by the server
        return alive

    def trickle(self) -> None:
        """One more header line on every open connection."""
        for sock in self.open():
            with contextlib.suppress(OSError):
                sock.send(b"X-More: 1\r\n")

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def slow_case(server: Server, count: int, frame: bytes, wait_s: float) -> list[object]:
    body = multipart(frame)
    slow = SlowClients(server.port, count)
    time.sleep(1.0)  # the server accepts them (and refuses those over its caps)
    slow.trickle()
    held = len(slow.open())
    latencies = []
    for _ in range(5):
        status, seconds = recognize(server.url, body, timeout_s=10)
        latencies.append(seconds if status == 200 else float("inf"))
        slow.trickle()
        time.sleep(0.5)
    while slow.open() and time.monotonic() - slow.opened_at < wait_s:
        slow.trickle()
        time.sleep(1.0)
    left = len(slow.open())
    closed_in = time.monotonic() - slow.opened_at  # since they were opened
    slow.close()
    shown = [f"{s * 1000:.0f}" if s != float("inf") else "timeout" for s in latencies]
    return [
        count,
        held,
        count - held,
        f"{statistics.median(latencies) * 1000:.0f}" if max(latencies) < 1e9 else " / ".join(shown),
        shown[-1] if max(latencies) < 1e9 else "-",
        f"all in {closed_in:.0f} s" if not left else f"{left} still open after {closed_in:.0f} s",
    ]


def camera_key(server: Server, data: Path, dataset: Path, src: str | None) -> str:
    """A camera key made with ``attendance keys add`` on the server's folders (the server's
    clean environment and empty settings file)."""
    settings = {
        "API_SECRET_KEY": KEY,
        "ATTENDANCE_DATA_DIR": str(data),
        "ATTENDANCE_DATASET_DIR": str(dataset),
    }
    if src:
        settings["PYTHONPATH"] = os.path.abspath(src)
    command = [sys.executable, "-m", "smart_attendance", "keys", "add", "door-1"]
    made = subprocess.run(
        [*command, "--env-file", str(server.log.with_suffix(".env"))],
        env=clean_env(settings),
        cwd=server.cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.strip().splitlines()[-1]


def scans_per_s(server: Server, body: bytes, key: str, seconds: float) -> tuple[float, int]:
    """One scan after another for ``seconds``: scans a second, and how many were not 200."""
    done = failed = 0
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        status, _ = recognize(server.url, body, timeout_s=30, key=key)
        done += 1
        failed += status != 200
    return done / seconds, failed


def lockout_case(server: Server, frame: bytes, key: str, guesses: int) -> list[object]:
    body = multipart(frame)
    before, _ = scans_per_s(server, body, key, 3.0)
    camera = Camera(server.url, body)
    camera.key, camera.pause_s = key, 0.0
    answers: dict[object, int] = {}
    camera.start()
    started = time.monotonic()
    with requests.Session() as session:
        for n in range(guesses):
            try:
                status: object = session.get(
                    server.url + "/statistics",
                    headers={"X-API-KEY": f"wrong-key-{n:06d}-0123456789abcdef"},
                    timeout=30,
                ).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            answers[status] = answers.get(status, 0) + 1
    took = time.monotonic() - started
    camera.stop()
    during = len(camera.latencies) / max(took, 1e-9)
    statuses = ", ".join(
        f"{count} x {status}" for status, count in sorted(answers.items(), key=str)
    )
    return [
        guesses,
        f"{took:.1f}",
        statuses,
        f"{before:.1f}",
        f"{during:.1f}",
        f"{len(camera.latencies) - camera.failures} of {len(camera.latencies)}",
    ]


def upload_case(server: Server, frame: bytes, size_kb: int, kbps: float) -> list[object]:
    """One scan padded to ``size_kb`` KB, sent at ``kbps`` KB/s on a raw socket."""
    padding = max(0, size_kb * 1024 - len(frame) - 400)
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="padding"\r\n\r\n'.encode()
        + b"x" * padding
        + b"\r\n"
        + multipart(frame)
    )
    head = (
        f"POST /recognize HTTP/1.1\r\nHost: x\r\nX-API-KEY: {KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    chunk = max(1, int(kbps * 1024 / 10))  # ten sends a second
    answer = b""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(head)
        try:
            for start in range(0, len(body), chunk):
                sock.sendall(body[start : start + chunk])
                time.sleep(max(0.0, started + (start + chunk) / (kbps * 1024) - time.monotonic()))
            while data := sock.recv(65536):
                answer += data
        except OSError as exc:
            answer = f"cut: {type(exc).__name__}".encode()
    took = time.monotonic() - started
    status = answer.split(b"\r\n", 1)[0].decode(errors="replace") or "closed, no answer"
    if not status.startswith("HTTP/1.1 200"):
        raise WrongAnswer(f"the slow upload answered {status!r}, expected 200")
    if b'"status":"unknown"' not in answer.replace(b" ", b""):
        raise WrongAnswer(f"the slow upload answered {answer[-200:]!r}, expected unknown")
    return [f"{len(body) / 1024:.0f}", f"{kbps:g}", status, f"{took:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=400, help="slow connections from one address")
    parser.add_argument("--frames", type=int, default=60, help="40 MP PNG frames in the burst")
    parser.add_argument("--src", default=None, help="run the server from this src folder")
    parser.add_argument("--wait", type=float, default=40.0, help="seconds to wait for closing")
    parser.add_argument(
        "--guesses", type=int, default=300, help="wrong keys from a camera's address"
    )
    parser.add_argument("--upload-kb", type=int, default=1400, help="size of the slow upload")
    parser.add_argument("--upload-kbps", type=float, default=50.0, help="its rate, KB/s")
    parser.add_argument(
        "--cases", default="pixels,slow,lockout,upload", help="which cases, comma-separated"
    )
    args = parser.parse_args()
    cases = set(args.cases.split(","))
    frame = sorted(require(FRAMES).glob("*.jpg"))[0].read_bytes()
    png = big_png(6324, 6324)  # 39.99 MP: under the 40 MP per image
    jpeg = big_jpeg(4000, 3000)
    settings = {"ATTENDANCE_WORKERS": "2", "API_SECRET_KEY": KEY}
    if args.src:
        settings["PYTHONPATH"] = os.path.abspath(args.src)
    with disk_folder("bench-abuse-") as tmp:
        (tmp / "dataset").mkdir()
        server = our_server(tmp / "dataset", tmp / "data", tmp / "server.log", settings)
        place = where(tmp)
        try:
            server.wait_ready()
            server.expect_enrolled(0)
            for _ in range(3):  # models loaded in both workers
                recognize(server.url, multipart(frame, frame))
            pixel_rows = slow_row = lockout_row = upload_row = None
            if "pixels" in cases:
                pixel_rows = [
                    pixel_case(server, "1 x 640x480 JPEG", multipart(frame), frame),
                    pixel_case(
                        server,
                        f"{args.frames} x 40 MP PNG",
                        multipart(*[png] * args.frames),
                        frame,
                        expected=413,
                    ),
                    pixel_case(server, "2 x 40 MP PNG", multipart(png, png), frame),
                    pixel_case(server, "8 x 12 MP JPEG", multipart(*[jpeg] * 8), frame),
                ]
            if "slow" in cases:
                slow_row = slow_case(server, args.slow, frame, args.wait)
            if "lockout" in cases:
                door = camera_key(server, tmp / "data", tmp / "dataset", args.src)
                lockout_row = lockout_case(server, frame, door, args.guesses)
            if "upload" in cases:
                upload_row = upload_case(server, frame, args.upload_kb, args.upload_kbps)
        finally:
            server.stop()
    source = f"server from {args.src}" if args.src else "this checkout"
    print(
        f"POST /recognize under abuse ({source}), nobody enrolled (every frame answered "
        f"unknown, checked), detection at 320 px; {place}"
    )
    print(f"Machine: {machine()}")
    if pixel_rows:
        header = [
            "request",
            "body MB",
            "answer",
            "seconds",
            "RSS before (MB)",
            "peak RSS (MB)",
            "other camera, slowest (ms)",
        ]
        print()
        print(table(header, pixel_rows))
    if slow_row:
        header = [
            "slow connections (one address)",
            "held",
            "refused",
            "real request, median (ms)",
            "last (ms)",
            "slow connections closed",
        ]
        print()
        print(table(header, [slow_row]))
    if lockout_row:
        header = [
            "wrong keys (camera's address)",
            "seconds",
            "guesser's answers",
            "camera scans/s before",
            "during",
            "camera scans answered 200",
        ]
        print()
        print(table(header, [lockout_row]))
    if upload_row:
        header = ["slow upload (KB)", "KB/s", "answer", "seconds"]
        print()
        print(table(header, [upload_row]))


if __name__ == "__main__":
    run(main)
