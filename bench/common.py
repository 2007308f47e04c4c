"""Helpers shared by the benchmarks: locating shared data, starting servers, memory, tables."""

from __future__ import annotations

import http.client
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ATTENDANCE_SHARED_DIR", ROOT.parent / "shared"))
FRAMES = SHARED / "bench" / "frames"
FACES = SHARED / "faces"
KEY = "bench-key-0123456789abcdef"  # 24+ characters, as the server requires


def require(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"benchmark data not found: {path} (the ../shared folder beside the repo)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


class Server:
    def __init__(self, cmd: Sequence[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        full = {k: v for k, v in os.environ.items() if not k.startswith("ATTENDANCE_")}
        full.update(env)
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, env=full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.log = log

    def wait_ready(self, timeout_s: float = 600) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.proc.poll() is not None:
                sys.exit(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        sys.exit("server did not become ready")

    def tree_pids(self) -> list[int]:
        pids, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                todo += [int(c) for c in task.read_text().split()]
        return pids

    def peak_rss_mb(self) -> float:
        """Sum of the peak resident memory (VmHWM) of the server and its worker processes."""
        total_kb = 0
        for pid in self.tree_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total_kb += int(line.split()[1])
            except OSError:
                pass
        return total_kb / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


_local = threading.local()
BOUNDARY = "bench-boundary-7f3a9c"


def multipart(*images: bytes) -> bytes:
    """The body of one upload, the images as parts of field ``image`` (several: a burst),
    built once, not per request."""
    body = b""
    for i, data in enumerate(images):
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="{i}.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        ).encode()
        body += head + data + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def _connection(url: str) -> http.client.HTTPConnection:
    """One keep-alive connection per client thread, as a camera client keeps one.

    ``http.client`` rather than ``requests``: the load generator shares the 2 cores with the
    server, so its own CPU time (about 0.3 ms per request instead of 1.6 ms) is kept small.
    """
    connections: dict[str, http.client.HTTPConnection] = _local.__dict__.setdefault("conns", {})
    if url not in connections:
        parts = urlsplit(url)
        connections[url] = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    return connections[url]


def our_server(
    dataset: Path, data: Path, log: Path, settings: dict[str, str] | None = None
) -> Server:
    """This project's ``attendance serve`` on a free loopback port (not yet waited for), with
    ``settings`` over the bench defaults."""
    port = free_port()
    env = {
        "API_SECRET_KEY": KEY,
        "ATTENDANCE_DATASET_DIR": str(dataset),
        "ATTENDANCE_DATA_DIR": str(data),
        "ATTENDANCE_HOST": "127.0.0.1",
        "ATTENDANCE_PORT": str(port),
    }
    env.update(settings or {})
    return Server([sys.executable, "-m", "smart_attendance", "serve"], env, port, log)


def post(url: str, body: bytes) -> float:
    """POST one pre-built multipart body to ``/recognize``; seconds until the whole answer."""
    headers = {
        "X-API-KEY": KEY,
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    }
    started = time.perf_counter()
    for attempt in (1, 2):
        connection = _connection(url)
        try:
            connection.request("POST", "/recognize", body, headers)
            response = connection.getresponse()
            response.read()
            break
        except (ConnectionError, http.client.HTTPException):
            connection.close()  # the server closed an idle keep-alive connection: reconnect
            if attempt == 2:
                raise
    if response.status != 200:
        raise RuntimeError(f"/recognize answered {response.status}")
    return time.perf_counter() - started


def latency_ms(url: str, frames: list[bytes], count: int) -> tuple[float, float]:
    times = [post(url, frames[i % len(frames)]) for i in range(count)]
    times.sort()
    return statistics.median(times) * 1000, times[int(len(times) * 0.9) - 1] * 1000


def throughput(url: str, frames: list[bytes], clients: int, seconds: float) -> float:
    """Requests a second answered to ``clients`` concurrent clients, each sending frames
    back to back for ``seconds`` (the same window for a slow and a fast server)."""
    deadline = time.perf_counter() + seconds

    def client(c: int) -> int:
        sent = 0
        while time.perf_counter() < deadline:
            post(url, frames[(c * 7 + sent) % len(frames)])
            sent += 1
        return sent

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = sum(pool.map(client, range(clients)))
    return done / (time.perf_counter() - started)


# ../shared/bench/frames holds two people: frames 00-09 one, 10-24 another. Frames 00-04 and
# 10-14 enrol them (they are students of the class); the others are the probes.
ENROL_FRAMES = {"bench_person_a": range(0, 5), "bench_person_b": range(10, 15)}


def probe_frames() -> list[Path]:
    """The bench frames that are not enrolment photos (15 frames, both people)."""
    enrolled = {i for frames in ENROL_FRAMES.values() for i in frames}
    paths = sorted(require(FRAMES).glob("*.jpg"))
    return [path for i, path in enumerate(paths) if i not in enrolled]


def copy_class(dataset: Path, identities: int = 20, per_identity: int = 2) -> None:
    """A class: the two bench-frame people plus identities from shared/faces/lfw."""
    paths = sorted(require(FRAMES).glob("*.jpg"))
    for name, indices in ENROL_FRAMES.items():
        person = dataset / name
        person.mkdir(parents=True, exist_ok=True)
        for i in indices:
            shutil.copy(paths[i], person / paths[i].name)
    lfw = sorted(p for p in require(FACES / "lfw").iterdir() if not p.name.startswith("_"))
    for folder in lfw[:identities]:
        (dataset / folder.name).mkdir(exist_ok=True)
        for photo in sorted(folder.glob("*.jpg"))[:per_identity]:
            shutil.copy(photo, dataset / folder.name / photo.name)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def enrolled_gallery(
    dataset: Path, store_url: str, sealer: Any, photos: int = 10_000, per_student: int = 50
) -> None:
    """``photos`` photo files (random bytes) in ``dataset`` whose descriptors are already in the
    face cache of the database at ``store_url`` (as if enrolled before): a server started on
    them reads no photo's pixels, so its start-up time is the gallery's own."""
    import hashlib

    import numpy as np

    sys.path.insert(0, str(ROOT / "src"))
    from smart_attendance.db.store import CachedFace, Store
    from smart_attendance.people.enrolment import pipeline_key

    rng = np.random.default_rng(1)
    entries = {}
    for i in range(photos):
        folder = dataset / f"student_{i // per_student:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        blob = f"photo {i}".encode() + rng.bytes(64)
        (folder / f"{i}.jpg").write_bytes(blob)
        entries[hashlib.sha256(blob).hexdigest()] = CachedFace(
            "ok", "", rng.normal(size=128).astype(np.float32) * 0.09
        )
    store = Store(store_url, sealer)
    store.create()
    store.cache_faces(pipeline_key(), entries)
    store.close()
