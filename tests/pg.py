"""A real PostgreSQL server for the tests: ``initdb`` into a temporary folder, started on a free
loopback port, a database per test, stopped (and its folder removed) when the session ends.

Needs Debian's ``postgresql`` package (``make install`` brings it; its programs live in
``/usr/lib/postgresql/<version>/bin``): skipped without it, a failure in CI. PostgreSQL refuses
to run as root, so as root (a container) the server runs as ``nobody`` (``setpriv``), in a
folder of its own. Durability is turned off (``fsync``, ``synchronous_commit``,
``full_page_writes``): the server is thrown away, and it starts in about a second.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PROGRAMS = ("initdb", "pg_ctl", "postgres")
SUPERUSER = "postgres"
RUN_AS = "nobody"  # when the tests run as root


def find_bin() -> Path | None:
    """The folder of initdb, pg_ctl and postgres: Debian's newest version, else on PATH."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    for folder in found:
        if all((Path(folder) / name).is_file() for name in PROGRAMS):
            return Path(folder)
    on_path = [shutil.which(name) for name in PROGRAMS]
    if all(on_path):
        return Path(str(on_path[0])).parent
    return None


def require_postgres() -> Path:
    """PostgreSQL's programs, or skip (fail in CI, where CI or REQUIRE_SHARED_DATA=1 is set)."""
    folder = find_bin()
    if folder is not None:
        return folder
    reason = "PostgreSQL not installed: no initdb/pg_ctl (make install: postgresql)"
    if os.environ.get("CI") or os.environ.get("REQUIRE_SHARED_DATA") == "1":
        pytest.fail(reason + " in CI")
    pytest.skip(reason)


def _temporary_folder() -> Path:
    """The server's folder, in memory (``/dev/shm``) when the machine has it."""
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="attendance-pg-", dir=shm))


@dataclass
class PostgresServer:
    """One throw-away PostgreSQL server; ``database()`` makes a new empty database."""

    bin_dir: Path
    port: int
    base: Path = field(default_factory=lambda: _temporary_folder())
    started_s: float = 0.0
    _names: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        return self.base / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout_s: float = 60) -> None:
        prefix: list[str] = []
        if os.geteuid() == 0:
            prefix = ["setpriv", f"--reuid={RUN_AS}", "--regid=nogroup", "--init-groups"]
        done = subprocess.run(
            [*prefix, *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            cwd=self.base,
            env={**os.environ, "LC_ALL": "C", "TZ": "UTC"},
        )
        if done.returncode != 0:
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            raise RuntimeError(
                f"{Path(args[0]).name} failed ({done.returncode}):\n{done.stdout}{done.stderr}{log}"
            )

    def start(self) -> PostgresServer:
        began = time.monotonic()
        (self.base / OWNER_FILE).write_text(str(os.getpid()))  # for reap_stale_servers
        if os.geteuid() == 0:
            user = pwd.getpwnam(RUN_AS)
            os.chown(self.base, user.pw_uid, user.pw_gid)
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--no-sync",
            "--no-locale",
            "--encoding=UTF8",
            "--no-instructions",
        )
        options = " ".join(
            (
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                f"-c unix_socket_directories={self.base}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
                "-c timezone=Pacific/Chatham",  # far from UTC and Paris: a naive/aware mix-up shows
            )
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "start",
            "-w",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
            "-o",
            options,
        )
        self.started_s = time.monotonic() - began
        return self

    def database(self, prefix: str = "t") -> str:
        """A new empty database (from ``template0``); its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drop a database made by ``database()``, whatever connections are still open."""
        name = url.rsplit("/", 1)[1]
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def execute(self, sql: str) -> None:
        """One statement in autocommit, as the superuser on the ``postgres`` database."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql.encode())

    def stop(self) -> None:
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run(
                    str(self.bin_dir / "pg_ctl"),
                    "stop",
                    "-m",
                    "immediate",
                    "-D",
                    str(self.data_dir),
                )
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


OWNER_FILE = "owner.pid"  # the test process that started the server


def reap_stale_servers(bin_dir: Path) -> None:
    """Stop and remove the servers of earlier test runs whose process is gone (a run killed
    by a timeout never reaches its teardown): they would hold memory in /dev/shm for good."""
    folders = {Path("/dev/shm"), Path(tempfile.gettempdir())}  # where _temporary_folder makes them
    for base in (b for folder in folders for b in folder.glob("attendance-pg-*")):
        try:
            owner = int((base / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(owner, 0)
            continue  # still running: a server of another run or worker
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        stale = PostgresServer(bin_dir, 0, base=base)
        with contextlib.suppress(Exception):
            stale.stop()


def start_server(free_port: int) -> PostgresServer:
    """A started server on ``free_port`` (PostgreSQL's programs found, or the test skipped)."""
    bin_dir = require_postgres()
    reap_stale_servers(bin_dir)
    server = PostgresServer(bin_dir, free_port)
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise
