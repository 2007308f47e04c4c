"""Shared fixtures: real faces from ../shared/faces, real server processes, real SQLite files."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ATTENDANCE_SHARED_DIR", ROOT.parent / "shared"))
FACES = SHARED / "faces"
BENCH_FRAMES = SHARED / "bench" / "frames"
API_KEY = "test-key-1234567890"

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
            }
        )
        env.update(self.env)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "server.log"
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
            except requests.ConnectionError:
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
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout_s: float = 300
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
    )
