"""Scale-out: POST /recognize through nginx (TLS, deploy/nginx/smart-attendance-lb.conf) in
front of 1 server on SQLite, 1 server on PostgreSQL and 2 servers on PostgreSQL, with 4 and 16
concurrent cameras; the CPU of the database (and of the servers, nginx, the cameras) per
request; the cost of one mark write on each store; the start-up of a server joining with
10,000 enrolled photos in PostgreSQL; and what N servers on N machines would sustain.

    .venv/bin/python bench/bench_scale.py

Needs Debian's nginx and PostgreSQL (``make install``), and ../shared (faces, bench frames).
One PostgreSQL server with its durable defaults (fsync, synchronous_commit and
full_page_writes on, unlike the tests' throw-away server) on disk (/var/tmp), used by every
PostgreSQL measurement. The 2-core machine is shared by nginx, the servers, PostgreSQL and
the camera threads: the throughput figures are this machine's, the per-request CPU costs are
what carries over to other machines.

The work is checked: each server must report the class enrolled before it is measured, and
every answer must name the student of its frame; a wrong answer stops the benchmark. Detection
at the default 320 px.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

from common import (
    FACES,
    FRAMES,
    KEY,
    ROOT,
    Server,
    WrongAnswer,
    disk_base,
    enrolled_gallery,
    filesystem,
    free_port,
    machine,
    our_server,
    require,
    run,
    table,
)

sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
from pg import PostgresServer, find_bin
from smart_attendance.config import Settings
from smart_attendance.db.store import Store
from smart_attendance.models import Mark
from smart_attendance.privacy.sealing import load_sealer

NGINX = "/usr/sbin/nginx"
LB_SITE = ROOT / "deploy" / "nginx" / "smart-attendance-lb.conf"
RUN_S = float(os.environ.get("BENCH_SCALE_SECONDS", "8"))  # each measured run
CAMERAS = (4, 16)
DAYS = 7  # a capture time up to 6 days back: ATTENDANCE_CLOCK_WINDOW_HOURS=168 (its maximum)
TICK = os.sysconf("SC_CLK_TCK")
DATA_KEY = __import__("cryptography.fernet", fromlist=["Fernet"]).Fernet.generate_key().decode()


# --- CPU accounting (/proc) ----------------------------------------------------------------


def _stat(pid: int) -> tuple[float, float]:
    """(own CPU s, CPU s of waited-for children that exited) of one process; 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return (int(fields[11]) + int(fields[12])) / TICK, (int(fields[13]) + int(fields[14])) / TICK


def _tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in task.read_text().split()]
    return pids


def tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds per process of ``root``'s tree; the root's entry includes its exited
    children (a PostgreSQL backend that closed, a replaced worker)."""
    out = {}
    for pid in _tree(root):
        own, children = _stat(pid)
        out[pid] = own + (children if pid == root else 0.0)
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


# --- PostgreSQL with its durable defaults, on disk -------------------------------------------


class DurablePostgres(PostgresServer):
    """tests/pg.py's server, but with PostgreSQL's defaults for durability (fsync,
    synchronous_commit, full_page_writes on) and its folder on disk, as a real one."""

    def start(self) -> DurablePostgres:
        began = time.monotonic()
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("nobody")
            os.chown(self.base, user.pw_uid, user.pw_gid)
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
            "--auth=trust", "--no-locale", "--encoding=UTF8", "--no-instructions",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.base} -c max_connections=200"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"), "start", "-w", "-D", str(self.data_dir),
            "-l", str(self.log_path), "-o", options,
        )  # fmt: skip
        self.started_s = time.monotonic() - began
        return self

    def postmaster(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])


def start_postgres() -> DurablePostgres:
    bin_dir = find_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL not installed (make install: postgresql)")
    base = Path(tempfile.mkdtemp(prefix="attendance-bench-pg-", dir=disk_base()))
    server = DurablePostgres(bin_dir, free_port(), base=base)
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise


# --- nginx with the shipped load-balancing file ----------------------------------------------


def self_signed(folder: Path) -> Path:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return folder / "cert.pem"


def render_lb(https_port: int, http_port: int, upstreams: list[int], folder: Path) -> str:
    """The shipped file with this run's ports, certificate and servers; the per-address
    request rates raised (see RATE_NOTE)."""
    text = LB_SITE.read_text(encoding="utf-8")
    servers = "".join(
        f"    server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;\n" for p in upstreams
    )
    lines = [ln for ln in text.splitlines(keepends=True) if "listen [::]:" not in ln]
    text = "".join(ln for ln in lines if not ln.strip().startswith("server 127.0.0.1:500")).replace(
        "    least_conn;\n", "    least_conn;\n" + servers
    )
    for old, new in {
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "/etc/letsencrypt/live/attendance.example.org/fullchain.pem": str(folder / "cert.pem"),
        "/etc/letsencrypt/live/attendance.example.org/privkey.pem": str(folder / "key.pem"),
        "rate=20r/s": "rate=100000r/s",
        "rate=5r/s": "rate=100000r/s",
    }.items():
        if old not in text:
            raise RuntimeError(f"{old!r} no longer in {LB_SITE.name}: update bench_scale.py")
        text = text.replace(old, new)
    return text


RATE_NOTE = (
    "nginx: the shipped smart-attendance-lb.conf, 1 worker process, TLS 1.3, keep-alive; its "
    "per-address limits (20 r/s, scans 5 r/s burst 10) raised to 100000 r/s here, as the "
    "benchmark measures the servers, not one door's allowance (each camera connects from its "
    "own address, 127.0.0.(10+i))"
)


class Nginx:
    def __init__(self, folder: Path, upstreams: list[int]) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.cert = self_signed(folder)
        self.port, http_port = free_port(), free_port()
        site = folder / "site.conf"
        site.write_text(render_lb(self.port, http_port, upstreams, folder))
        temp = "".join(
            f"    {k}_temp_path {folder / k};\n"
            for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = folder / "nginx.conf"
        conf.write_text(
            f"{user}worker_processes 1;\nerror_log {folder / 'error.log'} warn;\n"
            "events { worker_connections 512; }\n"
            f"http {{\n    access_log off;\n{temp}    include {site};\n}}\n"
        )
        cmd = [NGINX, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(conf)]
        pid = f"pid {folder / 'nginx.pid'};"
        checked = subprocess.run(
            [*cmd, "-t", "-g", pid], capture_output=True, text=True, check=False
        )
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t: {checked.stderr}")
        self.proc = subprocess.Popen(
            [*cmd, "-g", f"daemon off; {pid}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        import socket

        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("nginx did not start") from None
                time.sleep(0.1)
        self.url = f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- the class and the cameras ----------------------------------------------------------------


def camera_frame(path: Path) -> bytes:
    """A photo as a door camera's 640x480 frame: scaled to 360 px high on a grey frame, JPEG
    quality 90 (the shared photos are 250x250 crops; the camera frames of shared/bench are
    640x480)."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = 360 / image.height
        image = image.resize((round(image.width * scale), 360))
    canvas = Image.new("RGB", (640, 480), (128, 128, 128))
    canvas.paste(image, ((640 - image.width) // 2, 60))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=90)
    return out.getvalue()


# Enrolled, but with no probe: the default rule answers their third photo unknown (a margin
# to the next student under 0.12), and every request here is to name a student.
NOT_NAMED = frozenset({"lleyton_hewitt", "yale_s04", "yale_s06", "yale_s07"})


def build_class(dataset: Path) -> list[tuple[str, bytes]]:
    """Enrol 2 photos of each identity of shared/faces lfw and yale and the two people of
    shared/bench/frames; one other photo of each is its probe (a camera frame), but for
    ``NOT_NAMED``. The (student, probe frame) list."""
    probes: list[tuple[str, bytes]] = []
    frames = sorted(require(FRAMES).glob("*.jpg"))
    for name, enrol, probe in (("bench_person_a", (0, 2), 7), ("bench_person_b", (10, 12), 20)):
        (dataset / name).mkdir(parents=True)
        for i in enrol:
            shutil.copy(frames[i], dataset / name / frames[i].name)
        probes.append((name, frames[probe].read_bytes()))
    for kind in ("lfw", "yale"):
        for folder in sorted(p for p in require(FACES / kind).iterdir() if p.is_dir()):
            photos = sorted(folder.glob("*.jpg"))
            if folder.name.startswith("_") or len(photos) < 3:
                continue
            (dataset / folder.name).mkdir()
            for photo in photos[:2]:
                shutil.copy(photo, dataset / folder.name / photo.name)
            if folder.name not in NOT_NAMED:
                probes.append((folder.name, camera_frame(photos[2])))
    return probes


class SourceAdapter(HTTPAdapter):
    """Connections from one loopback address: each camera is its own client to nginx."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__(pool_connections=1, pool_maxsize=1)

    def init_poolmanager(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["source_address"] = (self.source, 0)
        return super().init_poolmanager(*args, **kwargs)


@dataclass
class RunResult:
    latencies: list[float] = field(default_factory=list)
    new: int = 0
    already: int = 0
    unknown: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)  # answers that did not name the student
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies)


def run_cameras(
    proxy: Nginx, probes: list[tuple[str, bytes]], cameras: int, seconds: float, limit: int | None
) -> tuple[RunResult, int]:
    """``cameras`` threads, each a door camera (its own requests.Session, address and camera
    id), sending one frame per request back to back for ``seconds``. Request k (a counter
    over all cameras) shows student k % S with a capture time k // S days back: distinct
    (student, day) pairs, so every request marks, up to S * DAYS requests. With ``limit``,
    k wraps at it: a replay of a previous run's pairs, every request already marked. The
    result and the number of distinct k used."""
    result = RunResult()
    lock = threading.Lock()
    counter = iter(range(10**9))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    deadline = time.perf_counter() + seconds
    used = [0]

    def camera(c: int) -> None:
        session = requests.Session()
        session.mount("https://", SourceAdapter(f"127.0.0.{10 + c}"))
        while time.perf_counter() < deadline:
            with lock:
                k = next(counter)
                if limit:
                    k %= limit
                used[0] = max(used[0], k + 1)
            name, frame = probes[k % len(probes)]
            days_back = (k // len(probes)) % DAYS
            captured = (now - timedelta(days=days_back, seconds=k % 60)).isoformat()
            started = time.perf_counter()
            try:
                answer = session.post(
                    proxy.url + "/recognize",
                    files=[("image", ("frame.jpg", frame, "image/jpeg"))],
                    data={"camera": f"door-{c}", "captured_at": captured.replace("+00:00", "Z")},
                    headers={"X-API-KEY": KEY},
                    verify=str(proxy.cert),
                    timeout=120,
                )
                elapsed = time.perf_counter() - started
                body = (
                    answer.json()
                    if answer.headers.get("Content-Type", "").startswith("application/json")
                    else {}
                )
                kind = None
                if answer.status_code != 200:
                    kind = f"{answer.status_code} {body.get('status', '')}".strip()
            except (requests.RequestException, ValueError) as exc:
                elapsed, body, kind = time.perf_counter() - started, {}, type(exc).__name__
            with lock:
                if kind is not None:
                    result.errors[kind] = result.errors.get(kind, 0) + 1
                    continue
                result.latencies.append(elapsed)
                if body.get("name") != name:
                    result.wrong.append(f"{name}'s frame answered {body.get('status')} "
                                        f"{body.get('name') or body.get('reason')}")  # fmt: skip
                if body.get("status") == "success":
                    if body.get("new"):
                        result.new += 1
                    else:
                        result.already += 1
                else:
                    result.unknown += 1
        session.close()

    threads = [threading.Thread(target=camera, args=(c,)) for c in range(cameras)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - started
    if result.wrong:
        raise WrongAnswer(f"{len(result.wrong)} wrong answer(s), e.g. {result.wrong[0]}")
    return result, used[0]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def clear_marks(url: str) -> None:
    store = Store(url)
    try:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM marks")
    finally:
        store.close()


@dataclass
class Config:
    label: str
    url: str | None  # None: SQLite in the data folder
    servers: int
    workers: int


def measure_config(
    cfg: Config, tmp: Path, pg: DurablePostgres | None, probes: list[tuple[str, bytes]],
    dataset: Path, tput: list[list[object]], cpu: list[list[object]], costs: dict[str, float],
    students: int,
) -> None:  # fmt: skip
    data = tmp / f"data-{cfg.label.replace(' ', '-')}"
    data.mkdir()
    settings = {
        "ATTENDANCE_DATA_KEY": DATA_KEY,
        "ATTENDANCE_PROXY_HOPS": "1",
        "ATTENDANCE_KEY_FAILURES_PER_MINUTE": "10000",
        "ATTENDANCE_REQUIRE_CONSENT": "0",
        "ATTENDANCE_CLOCK_WINDOW_HOURS": "168",
        "ATTENDANCE_TRUST_CLIENT_CLOCK": "1",
        "ATTENDANCE_WORKERS": str(cfg.workers),
    }
    if cfg.url:
        settings["ATTENDANCE_DATABASE_URL"] = cfg.url
    url = cfg.url or f"sqlite:///{(data / 'attendance.db').resolve()}"
    servers: list[Server] = []
    proxy = None
    try:
        for i in range(cfg.servers):  # one after the other: the second joins the first
            server = our_server(dataset, data, tmp / f"{data.name}-{i}.log", settings)
            servers.append(server)
            try:
                server.wait_ready(300)
            except SystemExit as exc:
                raise RuntimeError(f"server {i + 1} did not start: {exc}") from None
            server.expect_enrolled(students)
        proxy = Nginx(tmp / f"nginx-{data.name}", [s.port for s in servers])
        run_cameras(proxy, probes, 2, 2.0, None)  # warm up: connections, workers, caches
        for cameras in CAMERAS:
            clear_marks(url)
            used = 0
            for mode in ("mark", "already"):
                snap = lambda: (  # noqa: E731
                    [tree_cpu(s.proc.pid) for s in servers],
                    tree_cpu(pg.postmaster()) if pg and cfg.url else {},
                    tree_cpu(proxy.proc.pid),
                    own_cpu(),
                )
                before = snap()
                res, k = run_cameras(
                    proxy, probes, cameras, RUN_S, used if mode == "already" else None
                )
                after = snap()
                used = used or k
                n = max(res.requests, 1)
                srv = sum(cpu_delta(b, a) for b, a in zip(before[0], after[0], strict=True))
                db = cpu_delta(before[1], after[1])
                ngx = cpu_delta(before[2], after[2])
                cli = after[3] - before[3]
                errors = ", ".join(f"{v} x {k}" for k, v in res.errors.items()) or "0"
                tput.append([
                    cfg.label, cameras, mode, res.requests, f"{res.requests / res.seconds:.1f}",
                    f"{statistics.median(res.latencies) * 1000:.0f}" if res.latencies else "-",
                    f"{pct(res.latencies, 0.95) * 1000:.0f}" if res.latencies else "-",
                    f"{res.new}/{res.already}/{res.unknown}", errors,
                ])  # fmt: skip
                cpu.append([
                    cfg.label, cameras, mode, f"{srv / n * 1000:.1f}",
                    f"{db / n * 1000:.2f}" if cfg.url else "(in server)",
                    f"{db / max(res.new, 1) * 1000:.2f}" if cfg.url and mode == "mark" else "",
                    f"{ngx / n * 1000:.2f}", f"{cli / n * 1000:.1f}",
                    f"{(srv + db + ngx + cli) / res.seconds / (os.cpu_count() or 1) * 100:.0f}%",
                ])  # fmt: skip
                costs[f"{cfg.label}|{cameras}|{mode}|srv"] = srv / n
                costs[f"{cfg.label}|{cameras}|{mode}|db"] = db / n
                costs[f"{cfg.label}|{cameras}|{mode}|ngx"] = ngx / n
                costs[f"{cfg.label}|{cameras}|{mode}|rps"] = res.requests / res.seconds
    finally:
        if proxy:
            proxy.stop()
        for server in servers:
            server.stop()


# --- the cost of one mark write ------------------------------------------------------------


def mark_writes(url: str, pg: DurablePostgres | None, count: int = 300) -> list[object]:
    store = Store(url)
    store.create()
    try:
        seen = datetime.now(timezone.utc)

        def mark(i: int) -> Mark:
            return Mark(f"student_{i % 50:02d}", date(2024, 1, 1) + timedelta(days=i // 50),
                        seen, "Present", "door-1")  # fmt: skip

        store.record_mark(mark(count + 1000))  # connect, warm the pool
        rows = []
        for dup in (False, True):
            db_before = tree_cpu(pg.postmaster()) if pg else {}
            cpu_before = time.process_time()
            times = []
            for i in range(count):
                started = time.perf_counter()
                outcome = store.record_mark(mark(i))
                times.append(time.perf_counter() - started)
                assert outcome.new is not dup
            own = (time.process_time() - cpu_before) / count
            db = cpu_delta(db_before, tree_cpu(pg.postmaster())) / count if pg else None
            rows.append((times, own, db))
        (new_t, new_own, new_db), (dup_t, dup_own, dup_db) = rows
        return [
            f"{statistics.median(new_t) * 1000:.2f}", f"{pct(new_t, 0.95) * 1000:.2f}",
            f"{new_own * 1000:.2f}", "-" if new_db is None else f"{new_db * 1000:.2f}",
            f"{statistics.median(dup_t) * 1000:.2f}",
            f"{dup_own * 1000:.2f}", "-" if dup_db is None else f"{dup_db * 1000:.2f}",
        ]  # fmt: skip
    finally:
        store.close()


# --- start-up with 10,000 enrolled photos ------------------------------------------------------


def startup(tmp: Path, url: str, photos: int = 10_000, per_student: int = 50) -> list[list[object]]:
    """bench_gallery.py's approach: 10,000 photo files (random bytes) whose descriptors are
    already in PostgreSQL's face cache (as if enrolled before), then servers started on it."""
    dataset, data = tmp / "gallery-dataset", tmp / "gallery-data"
    data.mkdir()
    sealer = load_sealer(Settings(data_dir=data, data_key=DATA_KEY))
    enrolled_gallery(dataset, url, sealer, photos, per_student)
    env = {
        "ATTENDANCE_DATA_KEY": DATA_KEY,
        "ATTENDANCE_DATABASE_URL": url,
        "ATTENDANCE_WORKERS": "1",
        "ATTENDANCE_REQUIRE_CONSENT": "0",
        "ATTENDANCE_PROXY_HOPS": "1",
    }
    rows: list[list[object]] = []
    running: list[Server] = []
    try:
        for label in (
            "first server (empty photo table: reads and hashes every file)",
            "second server joining (first running)",
            "third server joining (two running)",
        ):
            server = our_server(dataset, data, tmp / f"gallery-{len(running)}.log", env)
            running.append(server)
            try:
                ready = server.wait_ready(300)
            except SystemExit as exc:
                rows.append([label, f"{photos:,}", f"failed: {str(exc)[-200:]}", ""])
                continue
            server.expect_enrolled(photos // per_student, photos)
            health = requests.get(server.url + "/health", timeout=5).json()
            rows.append([label, f"{health.get('photos', '?'):,}", f"{ready:.2f}",
                         f"{server.peak_rss_mb():.0f}"])  # fmt: skip
    finally:
        for server in running:
            server.stop()
    return rows


# --- the report --------------------------------------------------------------------------------


def verdict(costs: dict[str, float], pg_label: str, sqlite_label: str) -> str:
    key = f"{pg_label}|16|mark"
    if f"{key}|srv" not in costs:
        return "No PostgreSQL figures: no estimate for N servers."
    srv, db, ngx = costs[f"{key}|srv"], costs[f"{key}|db"], costs[f"{key}|ngx"]
    already_db = costs.get(f"{pg_label}|16|already|db", float("nan"))
    cores = os.cpu_count() or 2
    per_machine = cores / srv
    db_limit = cores / db if db > 0 else float("inf")
    crossover = db_limit / per_machine
    nginx_limit = 1 / ngx if ngx > 0 else float("inf")
    lines = [
        f"From the measured per-request CPU (1 server on PostgreSQL, 16 cameras, every request "
        f"a new mark): a server spends {srv * 1000:.0f} ms of CPU per /recognize (HTTP, "
        f"decoding, detection, descriptor, matching, the mark and the day's CSV), PostgreSQL "
        f"{db * 1000:.1f} ms ({already_db * 1000:.1f} ms when the student is already marked), "
        f"nginx {ngx * 1000:.2f} ms (TLS, proxying).",
        f"A {cores}-core server machine therefore sustains about {per_machine:.0f} requests/s "
        f"at full CPU (this machine, sharing its cores with PostgreSQL, nginx and the cameras, "
        f"measured {costs[f'{key}|rps']:.0f}); N servers on N such machines about "
        f"{per_machine:.0f} x N requests/s, as the servers share nothing but the database "
        f"(the face gallery is in each server's memory). The mark itself is one INSERT (table "
        f"3: under 1 ms of PostgreSQL CPU); most of the database's share of a marking request "
        f"is the day's CSV and statistics refresh the server runs after every new mark.",
        f"A {cores}-core database machine saturates at about {cores} / {db * 1000:.1f} ms = "
        f"{db_limit:,.0f} requests/s, i.e. after about N = {crossover:.0f} servers; one nginx "
        f"worker process saturates at about {nginx_limit:,.0f} requests/s (more workers "
        f"or a second proxy beyond that). Below those, the database is not the limit: "
        f"recognition is.",
        f"On this 2-core machine 2 servers cannot be faster than one (they share the same 2 "
        f"cores with one worker each); differences between rows beyond that are the noise of a "
        f"shared machine (load average {os.getloadavg()[0]:.1f} at the end of the run). SQLite "
        f"cannot be shared by servers on several machines at all.",
    ]
    if f"{sqlite_label}|16|mark|rps" in costs:
        lines.append(
            f"For comparison, 1 server on SQLite: {costs[f'{sqlite_label}|16|mark|rps']:.0f} "
            f"requests/s, {costs[f'{sqlite_label}|16|mark|srv'] * 1000:.0f} ms server CPU per "
            f"request (its database work inside the server process)."
        )
    return "\n".join(lines)


def main() -> None:
    print("Scale-out (detection at the default 320 px; every answer checked)")
    print(f"Machine: {machine()}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=disk_base()))
    print(f"Folders on {filesystem(tmp)} ({tmp.parent})")
    pg = None
    try:
        try:
            pg = start_postgres()
            print(f"PostgreSQL {pg.bin_dir.parent.name} on disk ({pg.base}), fsync, "
                  f"synchronous_commit and full_page_writes on (its defaults)")  # fmt: skip
        except Exception as exc:
            print(f"PostgreSQL could not start, its rows are left out: {exc}")
        dataset = tmp / "dataset"
        probes = build_class(dataset)
        students = len([p for p in dataset.iterdir() if p.is_dir()])
        print(f"Class: {students} students (shared/faces lfw and yale, 2 photos each, and the "
              f"2 people of shared/bench/frames); each request one 640x480 JPEG frame of one "
              f"of {len(probes)} of them (a photo not enrolled)")  # fmt: skip
        print(RATE_NOTE)
        configs = [Config("1 server, SQLite", None, 1, 2)]
        if pg:
            shared = pg.database("scale")
            configs += [
                Config("1 server, PostgreSQL", shared, 1, 2),
                Config("2 servers, PostgreSQL", shared, 2, 1),
            ]
        tput: list[list[object]] = []
        cpu: list[list[object]] = []
        costs: dict[str, float] = {}
        for cfg in configs:
            try:
                measure_config(cfg, tmp, pg, probes, dataset, tput, cpu, costs, students)
            except WrongAnswer:
                raise
            except Exception as exc:
                print(f"{cfg.label}: failed: {exc}")
                traceback.print_exc(limit=3)
        print()
        print(f"1. POST /recognize through nginx (TLS), {RUN_S:.0f} s per run. 1-server rows: "
              "ATTENDANCE_WORKERS=2; 2-server rows: ATTENDANCE_WORKERS=1 each (the 2 cores "
              "shared fairly), nginx least_conn. mode 'mark': every request a new mark (distinct "
              "student and capture day, captured_at up to 6 days back); 'already': the same "
              "requests replayed, every student already marked that day.")  # fmt: skip
        print(table(
            ["configuration", "cameras", "mode", "requests", "req/s", "median ms", "p95 ms",
             "new/already/unknown", "errors"], tput,
        ))  # fmt: skip
        print()
        print("2. CPU per request (ms of CPU over the run / requests answered): the server "
              "processes (waitress + recognition workers), PostgreSQL (postmaster and all its "
              "processes), nginx, the camera threads (this process); busy: all of them over "
              "the machine's cores.")  # fmt: skip
        print(table(
            ["configuration", "cameras", "mode", "server ms", "PostgreSQL ms",
             "PostgreSQL ms per new mark", "nginx ms", "cameras ms", "busy"], cpu,
        ))  # fmt: skip
        print()
        print(
            "3. One mark write, Store.record_mark from this process, 300 marks (new: an "
            "INSERT; already marked: the INSERT's unique conflict, then the existing mark "
            f"read). SQLite: a file on {filesystem(tmp)} ({tmp.parent}), WAL, "
            "synchronous=NORMAL (the product's pragmas); PostgreSQL: local TCP, fsync and "
            "synchronous_commit on."
        )
        rows = []
        for label, url, server in (
            ("SQLite", f"sqlite:///{tmp / 'marks.db'}", None),
            *((("PostgreSQL", pg.database("marks"), pg),) if pg else ()),
        ):
            try:
                rows.append([label, *mark_writes(url, server)])
            except Exception as exc:
                rows.append([label, f"failed: {exc}", "", "", "", "", "", ""])
        print(table(
            ["store", "new: median ms", "new: p95 ms", "new: client CPU ms",
             "new: PostgreSQL CPU ms", "already: median ms", "already: client CPU ms",
             "already: PostgreSQL CPU ms"], rows,
        ))  # fmt: skip
        print()
        print(
            "4. Start-up with 10,000 enrolled photos (descriptors in PostgreSQL's face "
            "cache, 200 students x 50), ATTENDANCE_WORKERS=1, time from launch to /health "
            "200; peak MB of server + worker."
        )
        if pg:
            try:
                print(table(["server", "photos", "ready s", "peak MB"],
                            startup(tmp, pg.database("gallery"))))  # fmt: skip
            except WrongAnswer:
                raise
            except Exception as exc:
                print(f"failed: {exc}")
        else:
            print("no PostgreSQL: left out")
        print()
        print("5. " + verdict(costs, "1 server, PostgreSQL", "1 server, SQLite"))
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main)
