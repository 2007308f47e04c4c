"""Shared fixtures.

In-process (most tests): ``kit`` builds the real services on a real SQLite file with a scripted
analyzer (``scripted.py``) and a fixed clock, and the real Flask app on top, driven by its test
client. Real components (marked ``real``): faces from ../shared/faces, dlib in this process
(``real_analyzer``), server and CLI processes, SMTP, Xvfb, libfaketime.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import requests
from argon2 import PasswordHasher
from click.testing import Result
from flask.testing import FlaskClient
from jinja2.bccache import Bucket, BytecodeCache
from werkzeug.test import TestResponse

from pg import PostgresServer, start_server
from scripted import ScriptedAnalyzer, ScriptedFace, identity, near
from smart_attendance.app import Services, build_services
from smart_attendance.config import Settings
from smart_attendance.models import Analyzer
from smart_attendance.web import create_app

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ATTENDANCE_SHARED_DIR", ROOT.parent / "shared"))
FACES = SHARED / "faces"
BENCH_FRAMES = SHARED / "bench" / "frames"
API_KEY = "test-key-1234567890-abcdefgh"
# Slow-to-rebuild artefacts shared across runs (the ONNX model, cached descriptors).
TEST_DATA = ROOT / "tests" / ".cache"

# Students of the standard test class: photos enrolled, and unseen photos used as probes.
STUDENTS: dict[str, list[str]] = {
    "obama": ["knn/obama/1.jpg", "knn/obama/2.jpg"],
    "biden": ["knn/biden/1.jpg", "knn/biden/2.jpg"],
    "george_w_bush": [f"lfw/george_w_bush/{i}.jpg" for i in (1, 2, 3, 4)],
    "colin_powell": [f"lfw/colin_powell/{i}.jpg" for i in (1, 2, 3, 4)],
    "donald_rumsfeld": [f"lfw/donald_rumsfeld/{i}.jpg" for i in (1, 2, 3, 4)],
}
PROBES: dict[str, str] = {
    "george_w_bush": "lfw/george_w_bush/6.jpg",
    "colin_powell": "lfw/colin_powell/6.jpg",
    "donald_rumsfeld": "lfw/donald_rumsfeld/6.jpg",
}
STRANGERS = [
    "lfw/keanu_reeves/1.jpg",
    "lfw/keanu_reeves/2.jpg",
    "lfw/keanu_reeves/3.jpg",
    "lfw/keanu_reeves/4.jpg",
]
NO_FACE = "misc/_noface/1.jpg"
GROUP_BIDEN_OBAMA = "knn/_group/1.jpg"


def require_faces() -> Path:
    """The shared face folder, or skip (fail in CI, where REQUIRE_SHARED_DATA=1)."""
    if FACES.is_dir() and (FACES / "MANIFEST.tsv").is_file():
        return FACES
    reason = f"real face photos not found at {FACES} (the ../shared folder beside the repo)"
    if os.environ.get("REQUIRE_SHARED_DATA") == "1":
        pytest.fail(reason + "; REQUIRE_SHARED_DATA=1 makes this a failure")
    pytest.skip(reason)


def require_tool(found: bool, reason: str) -> None:
    """Go on if a system tool a test needs was ``found``; else skip, but fail in CI (``CI`` or
    REQUIRE_SHARED_DATA=1), where a missing tool must not pass as a skipped test."""
    if found:
        return
    if os.environ.get("CI") or os.environ.get("REQUIRE_SHARED_DATA") == "1":
        pytest.fail(f"{reason}; required in CI (REQUIRE_SHARED_DATA=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def faces() -> Path:
    return require_faces()


def face_bytes(rel: str) -> bytes:
    return (require_faces() / rel).read_bytes()


def build_dataset(folder: Path, students: dict[str, Sequence[str]] = STUDENTS) -> Path:
    """Copy the photos into ``folder/<student>/`` (a temporary folder, never the project)."""
    faces = require_faces()
    for student, photos in students.items():
        target = folder / student
        target.mkdir(parents=True, exist_ok=True)
        for rel in photos:
            shutil.copy(faces / rel, target / rel.replace("/", "_"))
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """``attendance serve`` in a real child process, on a free loopback port."""

    dataset: Path
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    prefix: Sequence[str] = ()
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120) -> ServerProcess:
        self.port = self.port or free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ATTENDANCE_") and k != "API_SECRET_KEY"
        }
        env.update(
            {
                "API_SECRET_KEY": API_KEY,
                "ATTENDANCE_DATASET_DIR": str(self.dataset),
                "ATTENDANCE_DATA_DIR": str(self.data_dir),
                "ATTENDANCE_HOST": "127.0.0.1",
                "ATTENDANCE_PORT": str(self.port),
                "ATTENDANCE_WORKERS": "2",
                "ATTENDANCE_REQUIRE_CONSENT": "0",  # tests of consent set it to 1
                # the CSV files on the request: tests read them right after a scan (the
                # background writer has tests of its own)
                "ATTENDANCE_CSV_WRITE_SECONDS": "0",
            }
        )
        env.update(self.env)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_path or self.data_dir / "server.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        cmd = [
            *self.prefix,
            sys.executable,
            "-m",
            "smart_attendance",
            "serve",
            "--env-file",
            str(self.data_dir / "none.env"),
        ]
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or busy starting
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready in {timeout_s}s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def recognize(
        self, *images: bytes, key: str = API_KEY, camera: str | None = None, **extra: str
    ) -> requests.Response:
        files = [("image", (f"frame{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]
        data = dict(extra)
        if camera:
            data["camera"] = camera
        return requests.post(
            self.url + "/recognize", files=files, data=data, headers={"X-API-KEY": key}, timeout=60
        )

    def get(self, path: str, key: str | None = API_KEY) -> requests.Response:
        headers = {"X-API-KEY": key} if key is not None else {}
        return requests.get(self.url + path, headers=headers, timeout=30)

    def joined_today(self, names: Sequence[str]) -> None:
        """The students ``names`` (enrolled when the server started, so expected only in
        the periods that begin after that) joined at the start of today: the tests' all-day
        periods count them."""
        today = self.get("/attendance").json()["date"]
        for name in names:
            answer = requests.patch(
                f"{self.url}/students/{name}",
                json={"joined": today},
                headers={"X-API-KEY": API_KEY},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server on the standard test class, class start 00:00 with a whole day's grace (1440
    minutes: nobody is Late, even in the last minute before midnight)."""
    require_faces()
    base = tmp_path_factory.mktemp("server")
    proc = ServerProcess(
        build_dataset(base / "dataset"),
        base / "data",
        env={"ATTENDANCE_CLASS_START": "00:00", "ATTENDANCE_LATE_AFTER_MINUTES": "1440"},
    ).start()
    yield proc
    proc.stop()


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 300,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`attendance ARGS` in a child process, with only the given ATTENDANCE_* settings."""
    full = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ATTENDANCE_") and k != "API_SECRET_KEY"
    }
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "smart_attendance", *args],
        env=full,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        input=input,
    )


# --- in-process: real services, scripted faces, a fixed clock ---------------------------------

PARIS = ZoneInfo("Europe/Paris")
MONDAY_0855 = datetime(2026, 11, 23, 8, 55, tzinfo=PARIS)  # class at 09:00, Late after 09:15
CLASS = ("ana_lima", "ben_ito", "cleo_park")


class FixedClock:
    """A clock that moves only when the test says."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now

    def advance(self, **delta: float) -> None:
        self.now = self.now + timedelta(**delta)


def tick_together(schedulers: Sequence[Any], when: datetime) -> None:
    """Every scheduler's ``tick(when)`` at once, from threads released together: servers
    racing for the same daily job."""
    import threading

    start = threading.Barrier(len(schedulers))
    errors: list[BaseException] = []

    def run(scheduler: Any) -> None:
        start.wait()
        try:
            scheduler.tick(when)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []


@dataclass
class Kit:
    """The product in this process: services, app and test client, and the faces of a class."""

    settings: Settings
    services: Services
    analyzer: ScriptedAnalyzer
    clock: FixedClock
    client: FlaskClient
    people: dict[str, np.ndarray]

    def probe(self, name: str, distance: float = 0.2, seed: int = 0, **face: Any) -> bytes:
        """A frame of student ``name`` (a new photo, ``distance`` from their enrolled face)."""
        data = f"probe:{name}:{distance}:{seed}:{sorted(face.items())}".encode()
        return self.analyzer.add(
            data, ScriptedFace(near(self.people[name], distance, seed), **face)
        )

    def stranger(self, seed: int = 99, **face: Any) -> bytes:
        data = f"stranger:{seed}:{sorted(face.items())}".encode()
        return self.analyzer.add(data, ScriptedFace(identity(10_000 + seed), **face))

    def frame(self, *faces: ScriptedFace, label: str = "") -> bytes:
        """A frame with several scripted faces (a group photo)."""
        return self.analyzer.add(f"frame:{label}:{id(faces)}".encode(), *faces)

    def recognize(
        self, *images: bytes, key: str | None = API_KEY, camera: str | None = None, **form: str
    ) -> TestResponse:
        data: dict[str, Any] = dict(form)
        data["image"] = [(io_bytes(image), f"frame{i}.jpg") for i, image in enumerate(images)]
        if camera:
            data["camera"] = camera
        headers = {"X-API-KEY": key} if key is not None else {}
        return self.client.post("/recognize", data=data, headers=headers)

    def get(self, path: str, key: str | None = API_KEY) -> TestResponse:
        headers = {"X-API-KEY": key} if key is not None else {}
        return self.client.get(path, headers=headers)

    @property
    def logs(self) -> Path:
        return self.settings.logs_dir


def scripted_folder(kit: Kit, name: str, seed: int) -> None:
    """A new student's dataset folder with two scripted photos of the face ``identity(seed)``
    (not enrolled yet); ``kit.people[name]`` is that face, so ``kit.probe(name)`` works."""
    folder = kit.settings.dataset_dir / name
    folder.mkdir()
    for n in (1, 2):
        photo = kit.analyzer.add(
            f"photo:{name}:{n}".encode(), ScriptedFace(near(identity(seed), 0.1, n))
        )
        (folder / f"{n}.jpg").write_bytes(photo)
    kit.people[name] = identity(seed)


def io_bytes(data: bytes) -> Any:
    import io

    return io.BytesIO(data)


def make_settings(base: Path, **overrides: Any) -> Settings:
    settings = Settings(
        api_key=API_KEY,
        session_secret="test-session-signing-key",
        dataset_dir=base / "dataset",
        data_dir=base / "data",
        timezone="Europe/Paris",
        class_start=clock_time(9, 0),
        late_after_minutes=15,
        # Most tests are about other things than consent: every student may be enrolled
        # (tests/test_privacy*.py turn the product's default, 1, back on).
        require_consent=False,
        csv_write_seconds=0,  # the CSV files on the request: tests read them right after
    )
    return replace(settings, **overrides)


def make_kit(
    base: Path,
    students: Sequence[str] = CLASS,
    now: datetime = MONDAY_0855,
    analyzer: ScriptedAnalyzer | None = None,
    enrol: bool = True,
    **overrides: Any,
) -> Kit:
    """Services on a real SQLite file in ``base`` (or on ``database_url=``, a PostgreSQL
    database of ``pg_url``/``db_url``), students enrolled from a dataset folder of
    scripted photos (two each), the app and its test client."""
    settings = make_settings(base, **overrides)
    scripted = analyzer or ScriptedAnalyzer(settings.max_image_pixels)
    people = {name: identity(i) for i, name in enumerate(students)}
    for name, face in people.items():
        folder = settings.dataset_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        for n in (1, 2):
            photo = f"photo:{name}:{n}".encode()
            scripted.add(photo, ScriptedFace(near(face, 0.1, n)))
            (folder / f"{n}.jpg").write_bytes(photo)
    clock = FixedClock(now)
    if not settings.database_url:  # SQLite: a copy of an empty database (PostgreSQL: as given)
        _copy_empty_database(settings.data_dir)
    services = build_services(settings, clock=clock, analyzer=scripted)
    # Argon2id still, with the cost turned down: tests sign in hundreds of times.
    services.accounts.hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    if enrol:
        # The class was there from the start of the day: a student joins the periods that
        # begin after they were added (attendance/expected.py), so enrol at midnight.
        clock.set(now.replace(hour=0, minute=0, second=0, microsecond=0))
        services.enrolment.enroll()
        clock.set(now)
        services.files.update()
    app = create_app(services)
    app.jinja_env.bytecode_cache = TEMPLATES  # compiled once for the whole session
    return Kit(settings, services, scripted, clock, app.test_client(), people)


_EMPTY_DB: list[bytes] = []


def _copy_empty_database(data_dir: Path) -> None:
    """Start the kit's SQLite file as a copy of an empty database at the head revision, made
    once per session (running the schema's creation for every test costs seconds in all).
    The store still checks the revision as it opens it."""
    if not _EMPTY_DB:
        import tempfile

        from smart_attendance.db.store import Store

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "empty.db"
            store = Store(f"sqlite:///{path}")
            store.create()
            store.close()
            _EMPTY_DB.append(path.read_bytes())
    target = data_dir / "attendance.db"
    if not target.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_EMPTY_DB[0])


class _SessionTemplates(BytecodeCache):
    """Compiled page templates shared by every kit's app in this test session (each app has
    its own Jinja environment, which would compile every template again)."""

    def __init__(self) -> None:
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


TEMPLATES = _SessionTemplates()


def _lazy_url_builders() -> None:
    """Werkzeug compiles two URL builders per route when an app is made (about 20 ms for
    this app); the tests make hundreds of apps and build URLs with few routes. Compile each
    builder on its first use instead: the same function, the same URLs."""
    from werkzeug.routing.rules import Rule

    compile_builder = Rule._compile_builder

    def lazy(rule: Rule, append_unknown: bool = True) -> Callable[..., tuple[str, str]]:
        built: list[Callable[..., tuple[str, str]]] = []

        def build(self: Rule, *args: Any, **kwargs: Any) -> tuple[str, str]:
            if not built:
                built.append(compile_builder(self, append_unknown).__get__(self, None))
            return built[0](*args, **kwargs)

        return build

    Rule._compile_builder = lazy  # type: ignore[method-assign]


_lazy_url_builders()


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Kit]:
    made = make_kit(tmp_path)
    yield made
    made.services.close()


# --- real components ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for this session (or this xdist worker), stopped at its end;
    skipped without PostgreSQL, a failure in CI (``tests/pg.py``)."""
    server = start_server(free_port())
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg: PostgresServer) -> Iterator[str]:
    """A new empty database on the session's PostgreSQL server, dropped after the test."""
    url = pg.database()
    yield url
    pg.drop(url)


# Tests of the database run on both: ``db_url`` (the PostgreSQL half is marked ``real``).
BACKENDS = ("sqlite", pytest.param("postgresql", marks=pytest.mark.real))


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a new SQLite file in ``tmp_path``, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'attendance.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="session")
def real_analyzer() -> Iterator[Analyzer]:
    """dlib and the ONNX network in this process, loaded once for the session (the ONNX model
    is built once and kept in tests/.cache)."""
    from smart_attendance.engine.local import InProcessAnalyzer

    analyzer = InProcessAnalyzer(40_000_000, "onnx", TEST_DATA / "models")
    yield analyzer
    analyzer.close()


def real_services(
    base: Path,
    analyzer: Analyzer,
    students: dict[str, Sequence[str]] = STUDENTS,
    now: datetime = MONDAY_0855,
    **overrides: Any,
) -> tuple[Services, FixedClock]:
    """Services on real faces: the standard class enrolled with the real analyzer."""
    build_dataset(base / "dataset", students)
    settings = make_settings(base, **overrides)
    clock = FixedClock(now)
    services = build_services(settings, clock=clock, analyzer=analyzer)
    services.enrolment.enroll()
    services.files.update()
    return services, clock


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Result]:
    """``attendance ARGS`` in this process, with only the given settings in the environment,
    in ``tmp_path`` (so no ``.env`` file is read)."""
    from click.testing import CliRunner

    from smart_attendance.cli import main
    from smart_attendance.config import SPECS

    for name in list(os.environ):
        if name.startswith("ATTENDANCE_") or name in {spec.env for spec in SPECS}:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
        with monkeypatch.context() as scoped:
            for name, value in (env or {}).items():
                scoped.setenv(name, value)
            return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)

    return run


def command_on(
    kit: Kit, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """``attendance ARGS`` on ``kit``'s data folder, on its clock, as OS user ``teacher1``."""
    from smart_attendance import app as app_module

    build = app_module.build_services

    def on_the_clock(*args: Any, **kwargs: Any) -> Any:
        kwargs["clock"] = kit.clock
        return build(*args, **kwargs)

    monkeypatch.setattr(app_module, "build_services", on_the_clock)
    monkeypatch.setattr("getpass.getuser", lambda: "teacher1")
    settings = kit.settings
    env = {
        "API_SECRET_KEY": API_KEY,
        "ATTENDANCE_DATA_DIR": str(settings.data_dir),
        "ATTENDANCE_DATASET_DIR": str(settings.dataset_dir),
        "ATTENDANCE_TIMEZONE": "Europe/Paris",
        "ATTENDANCE_TIMETABLE": str(settings.timetable),
        "ATTENDANCE_DATABASE_URL": settings.database_url,
    }

    def run(*args: str) -> Result:
        return cli(*args, env=env)

    return run


def serve_once(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> Result:
    """``attendance serve`` in this process (``cli``), stopped as soon as it would start
    serving: what it says at start, with the scripted engine and no socket."""
    from smart_attendance import app as app_module
    from smart_attendance.web import serving

    class Stopped:
        def run(self) -> None:
            raise KeyboardInterrupt  # Ctrl-C at once

    monkeypatch.setattr(app_module, "make_analyzer", lambda *_args: ScriptedAnalyzer())
    monkeypatch.setattr(serving, "make_server", lambda *_args, **_kwargs: Stopped())
    return cli("serve", env={"API_SECRET_KEY": "k" * 24, **env})


def pytest_configure(config: pytest.Config) -> None:
    """The garbage collector runs less often: every test builds a whole app (thousands of
    short-lived objects), and the default thresholds made the collector's passes over the
    session's long-lived objects (modules, compiled templates and rules) a third of the
    in-process tests' time. Those objects are frozen out of its way once collected.

    Temporary folders in memory (``/dev/shm``) when the machine has it: the product syncs
    every record to disk (``os.fsync``), which costs ~10 ms a write on a real disk and adds a
    minute to the suite; on tmpfs the same calls are made and cost nothing. ``--basetemp``
    still wins; the workers of pytest-xdist get subfolders of this one."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    if config.option.basetemp or hasattr(config, "workerinput"):
        return
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        import tempfile

        config.option.basetemp = tempfile.mkdtemp(prefix="smart-attendance-tests-", dir=shm)


def pytest_unconfigure(config: pytest.Config) -> None:
    """The in-memory temporary folders go when the run ends (they hold memory, not disk)."""
    base = str(config.option.basetemp or "")
    if not hasattr(config, "workerinput") and base.startswith("/dev/shm/smart-attendance-tests-"):
        shutil.rmtree(base, ignore_errors=True)


def json_response(request: Any, status: int, body: Any) -> Any:
    """A ``requests.Response`` with a JSON body, answering ``request``: what a fake transport
    adapter (a server in trouble, a challenge) returns to the camera client."""
    import requests
    from requests.structures import CaseInsensitiveDict

    response = requests.Response()
    response.status_code = status
    response.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
    response._content = json.dumps(body).encode()
    response.request = request
    return response


# A challenge as the server hands it out (GET /liveness/challenge), for the client's tests.
TURN_THEN_BLINK = {
    "mode": "challenge",
    "nonce": "n-0123",
    "actions": ["turn_left", "blink"],
    "prompts": ["Turn your head to your left", "Blink"],
    "expires_in": 20.0,
    "expires_at": "2026-11-23T08:00:20+00:00",
}
