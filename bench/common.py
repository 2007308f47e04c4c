"""Helpers shared by the benchmarks: locating shared data, a folder on disk, starting servers
in a clean environment, checking every answer they time, memory, tables.

A benchmark checks the work it times: the number of students a server has enrolled before it
starts, and the name (or unknown) in every answer it times. A wrong answer raises
``WrongAnswer``; ``run`` turns it into a one-line stop with the reason and a non-zero exit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ATTENDANCE_SHARED_DIR", ROOT.parent / "shared"))
FRAMES = SHARED / "bench" / "frames"
FACES = SHARED / "faces"
KEY = "bench-key-0123456789abcdef"  # 24+ characters, as the server requires


# The only variables of the developer's environment a benchmark server sees: what it needs to
# run (the interpreter's path, locale, time zone), never an ATTENDANCE_* setting, a key or
# an SMTP password. Its settings are the benchmark's own, over an empty settings file.
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "VIRTUAL_ENV")
MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs", "devtmpfs"})


class WrongAnswer(RuntimeError):
    """A benchmark's server answered something else than expected: the figures would be
    those of other work, so the benchmark stops."""


def run(main: Callable[[], object]) -> None:
    """Run a benchmark's ``main``; a wrong answer stops it with one line and exit code 1."""
    try:
        main()
    except WrongAnswer as exc:
        sys.exit(f"benchmark stopped, a wrong answer: {exc}")


def require(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"benchmark data not found: {path} (the ../shared folder beside the repo)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """The machine and the moment: CPU model, cores, Python, date and time (UTC), and the load
    average when the benchmark started (other work on a shared machine slows every figure)."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{now}, load average {load:.1f}"
    )


def filesystem(path: Path) -> str:
    """The type of the file system ``path`` is on (``ext4``, ``tmpfs``...), from the mount
    table: the longest mount point that holds it."""
    best, kind = "", "unknown"
    target = str(path.resolve())
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            point = parts[1].replace("\\040", " ")
            inside = target == point or target.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, parts[2]
    return kind


def disk_base() -> Path:
    """Where benchmarks keep their servers' folders: ``BENCH_DIR``, else /var/tmp (on disk on
    most systems, unlike /tmp and /dev/shm, which are often in memory, where a write or an fsync
    costs next to nothing and the write path would look free)."""
    return Path(os.environ.get("BENCH_DIR") or "/var/tmp")


@contextlib.contextmanager
def disk_folder(prefix: str = "bench-") -> Iterator[Path]:
    """A fresh folder on a real disk, removed afterwards; stops if it would be in memory."""
    base = disk_base()
    base.mkdir(parents=True, exist_ok=True)
    kind = filesystem(base)
    if kind in MEMORY_FILESYSTEMS:
        sys.exit(
            f"{base} is on {kind} (in memory): set BENCH_DIR to a folder on disk, "
            "or the write path's disk writes are not measured"
        )
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def where(folder: Path) -> str:
    return f"servers' folders on {filesystem(folder)} ({folder.parent})"


def clean_env(settings: dict[str, str]) -> dict[str, str]:
    """The environment of a benchmark server: ``PASSED_THROUGH`` and ``settings``, nothing
    else of the caller's environment."""
    env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
    env.update(settings)
    return env


class Server:
    """A server process in a clean environment (``clean_env``), started in an empty working
    folder beside its log: no ``./.env`` of the developer's is found by it."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.cwd = log.with_suffix(".cwd")
        self.cwd.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                env=clean_env(env),
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.log = log

    def wait_ready(self, timeout_s: float = 600) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.proc.poll() is not None:
                sys.exit(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                answer = requests.get(self.url + "/health", timeout=2)
                if answer.status_code == 200:
                    return time.monotonic() - started
                if answer.json().get("status") == "error":  # enrolment failed: it never will be
                    sys.exit(f"server not ready: {answer.json().get('error')} (log: {self.log})")
            except (requests.ConnectionError, ValueError):
                pass
            time.sleep(0.05)
        sys.exit(f"server did not become ready in {timeout_s:.0f} s (log: {self.log})")

    def health(self) -> dict[str, Any]:
        answer = requests.get(self.url + "/health", timeout=10)
        body: dict[str, Any] = answer.json()
        return body

    def expect_enrolled(self, students: int, photos: int | None = None) -> None:
        """Stop unless the server has ``students`` enrolled (and ``photos``, if given): a
        gallery short of its students answers unknown to everyone, faster."""
        health = self.health()
        if health.get("students") != students or photos not in (None, health.get("photos")):
            raise WrongAnswer(
                f"{self.url}: {health.get('students')} students and {health.get('photos')} "
                f"photos enrolled, expected {students}"
                + (f" and {photos}" if photos is not None else "")
                + f" (health: {health})"
            )

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


def multipart(*images: bytes, fields: dict[str, str] | None = None) -> bytes:
    """The body of one upload, the images as parts of field ``image`` (several: a burst) after
    the form ``fields``, built once, not per request."""
    body = b""
    for name, value in (fields or {}).items():
        body += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
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
    settings_file = log.with_suffix(".env")
    settings_file.write_text("")  # an explicit, empty settings file: never a developer's .env
    command = [sys.executable, "-m", "smart_attendance", "serve", "--env-file", str(settings_file)]
    return Server(command, env, port, log)


@dataclass(frozen=True)
class Probe:
    """One request a benchmark times: its pre-built body and the name every answer must give
    (``None``: unknown)."""

    label: str
    body: bytes
    expected: str | None


@dataclass(frozen=True)
class Answer:
    seconds: float
    name: str | None
    new: bool | None  # this server's answers: a new mark (True) or already marked (False)


def check(answer: dict[str, Any], probe: Probe, url: str) -> Answer:
    """The name of ``answer`` (None: unknown), or ``WrongAnswer`` if it is not the expected."""
    status = answer.get("status")
    name = answer.get("name") if status == "success" else None
    if status not in ("success", "unknown") or name != probe.expected:
        shown = {k: answer.get(k) for k in ("status", "name", "reason") if k in answer}
        raise WrongAnswer(f"{url} answered {probe.label} with {shown}, expected {probe.expected}")
    new = answer.get("new")
    return Answer(0.0, name, None if new is None else bool(new))


def post(url: str, probe: Probe) -> Answer:
    """POST one probe to ``/recognize``; the seconds until the whole answer, which must name
    the probe's expected student (``WrongAnswer`` otherwise)."""
    headers = {
        "X-API-KEY": KEY,
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    }
    body = probe.body
    started = time.perf_counter()
    for attempt in (1, 2):
        connection = _connection(url)
        try:
            connection.request("POST", "/recognize", body, headers)
            response = connection.getresponse()
            raw = response.read()
            break
        except (ConnectionError, http.client.HTTPException):
            connection.close()  # the server closed an idle keep-alive connection: reconnect
            if attempt == 2:
                raise
    seconds = time.perf_counter() - started
    if response.status != 200:
        raise WrongAnswer(
            f"{url} answered {probe.label} with HTTP {response.status}: {raw[:200]!r}"
        )
    try:
        answer = json.loads(raw)
    except ValueError:
        raise WrongAnswer(f"{url} answered {probe.label} with no JSON: {raw[:200]!r}") from None
    checked = check(answer, probe, url)
    return Answer(seconds, checked.name, checked.new)


def latency_ms(url: str, probes: Sequence[Probe], count: int) -> tuple[float, float]:
    """Median and p90 ms of ``count`` sequential requests, each answer checked."""
    times = [post(url, probes[i % len(probes)]).seconds for i in range(count)]
    times.sort()
    return statistics.median(times) * 1000, times[max(0, int(len(times) * 0.9) - 1)] * 1000


def throughput(url: str, probes: Sequence[Probe], clients: int, seconds: float) -> float:
    """Requests a second answered to ``clients`` concurrent clients, each sending probes
    back to back for ``seconds`` (the same window for a slow and a fast server); every answer
    checked."""
    deadline = time.perf_counter() + seconds

    def client(c: int) -> int:
        sent = 0
        while time.perf_counter() < deadline:
            post(url, probes[(c * 7 + sent) % len(probes)])
            sent += 1
        return sent

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = sum(pool.map(client, range(clients)))
    return done / (time.perf_counter() - started)


# ../shared/bench/frames holds three people: frames 00-09 one, 10-20 another, 21-24 a third.
# Frames 00-04 and 10-14 enrol the first two (students of the class); the others are the probes,
# the third person's a stranger's (answered unknown).
ENROL_FRAMES = {"bench_person_a": range(0, 5), "bench_person_b": range(10, 15)}


# Who each frame shows (None: the stranger).
FRAME_PEOPLE = (("bench_person_a", range(0, 10)), ("bench_person_b", range(10, 21)))


def frame_person(index: int) -> str | None:
    return next((name for name, indices in FRAME_PEOPLE if index in indices), None)


def probe_frames() -> list[Path]:
    """The bench frames that are not enrolment photos (15 frames: 5 of the first student, 6
    of the second, 4 of the stranger)."""
    enrolled = {i for frames in ENROL_FRAMES.values() for i in frames}
    paths = sorted(require(FRAMES).glob("*.jpg"))
    return [path for i, path in enumerate(paths) if i not in enrolled]


def probes(fields: dict[str, str] | None = None) -> list[Probe]:
    """The 15 probe frames as single-frame requests, each expecting its person's name (the
    stranger's: unknown)."""
    paths = sorted(require(FRAMES).glob("*.jpg"))
    return [
        Probe(
            path.name, multipart(path.read_bytes(), fields=fields), frame_person(paths.index(path))
        )
        for path in probe_frames()
    ]


CLASS_IDENTITIES = 20  # LFW identities beside the two bench-frame people


def class_size(identities: int = CLASS_IDENTITIES, per_identity: int = 2) -> tuple[int, int]:
    """(students, photos) that ``copy_class`` enrols."""
    lfw = sorted(p for p in require(FACES / "lfw").iterdir() if not p.name.startswith("_"))
    photos = sum(len(ENROL_FRAMES[n]) for n in ENROL_FRAMES)
    photos += sum(min(per_identity, len(list(f.glob("*.jpg")))) for f in lfw[:identities])
    return len(ENROL_FRAMES) + len(lfw[:identities]), photos


def copy_class(dataset: Path, identities: int = CLASS_IDENTITIES, per_identity: int = 2) -> None:
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


def clear_marks(data: Path) -> None:
    """Delete every mark from the SQLite database of the server whose data folder is ``data``
    (a server keeps no mark in memory): the next scan of any student is a first scan."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(data / "attendance.db", timeout=30)) as db, db:
        db.execute("DELETE FROM marks")


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
