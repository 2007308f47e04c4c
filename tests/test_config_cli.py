"""Settings, the CLI's one-line errors, and docs that cover every setting and command."""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Callable
from datetime import time
from pathlib import Path

import click
import pytest
from click.testing import Result

from conftest import serve_once
from smart_attendance.cli import ensure_api_key, main
from smart_attendance.config import SPECS, Settings, load_settings
from smart_attendance.db.store import Store
from smart_attendance.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({}, env_file=None)
    # Folders are resolved once, against the working folder.
    assert settings.dataset_dir == tmp_path.resolve() / "dataset"
    assert settings.data_dir == tmp_path.resolve() / "data"
    assert settings.class_start == time(9, 0)
    assert settings.late_after_minutes == 15
    assert settings.intruder_threshold == 3
    assert settings.db_url == f"sqlite:///{tmp_path.resolve() / 'data' / 'attendance.db'}"
    assert settings.timezone  # the machine's zone


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "ATTENDANCE_CLASS_START=08:30\nAPI_SECRET_KEY=from-file\nATTENDANCE_TIMEZONE=Asia/Tokyo\n"
    )
    settings = load_settings({"API_SECRET_KEY": "from-env"}, env_file=env_file)
    assert settings.class_start == time(8, 30)
    assert settings.api_key == "from-env"
    assert settings.timezone == "Asia/Tokyo"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ATTENDANCE_CLASS_START", "9am", "ATTENDANCE_CLASS_START: expected a time as HH:MM"),
        ("ATTENDANCE_CLASS_START", "25:00", "ATTENDANCE_CLASS_START"),
        ("ATTENDANCE_LATE_AFTER_MINUTES", "-5", "ATTENDANCE_LATE_AFTER_MINUTES: expected a number"),
        ("ATTENDANCE_TIMEZONE", "Mars/Olympus", "ATTENDANCE_TIMEZONE: unknown time zone"),
        (
            "ATTENDANCE_INTRUDER_THRESHOLD",
            "three",
            "ATTENDANCE_INTRUDER_THRESHOLD: expected a whole",
        ),
        ("ATTENDANCE_MATCH_THRESHOLD", "2", "ATTENDANCE_MATCH_THRESHOLD: expected a number"),
        ("ATTENDANCE_LOG_LEVEL", "LOUD", "ATTENDANCE_LOG_LEVEL"),
        ("ATTENDANCE_TYPO", "1", "unknown setting ATTENDANCE_TYPO"),
    ],
)
def test_bad_values_name_the_setting(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings({name: value}, env_file=None)


def test_secrets_are_not_in_repr() -> None:
    settings = Settings(api_key="super-secret", sender_password="hunter2")
    assert "super-secret" not in repr(settings) and "hunter2" not in repr(settings)


def test_api_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    lines: list[str] = []
    first = ensure_api_key(Settings(data_dir=tmp_path), echo=lines.append, terminal=True)
    assert len(first.api_key) >= 32
    assert any(first.api_key in line for line in lines)
    key_file = tmp_path / "api_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    lines.clear()
    second = ensure_api_key(Settings(data_dir=tmp_path), echo=lines.append)
    assert second.api_key == first.api_key
    assert not any(first.api_key in line for line in lines)  # shown only once
    mine = "my-own-key-of-24-characters"
    assert ensure_api_key(Settings(api_key=mine, data_dir=tmp_path)).api_key == mine


def test_bad_setting_stops_the_cli_with_one_line(cli: Callable[..., Result]) -> None:
    result = cli("serve", env={"ATTENDANCE_PORT": "http"})
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "Error: ATTENDANCE_PORT: expected a whole number, got 'http'\n"


def test_a_bad_setting_in_the_env_file_is_one_line_too(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    (tmp_path / ".env").write_text("ATTENDANCE_CLASS_START=9am\n")
    result = cli("stats")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: ATTENDANCE_CLASS_START: expected a time as HH:MM (24-hour), got '9am'\n"
    )


def test_missing_dataset_is_one_line(tmp_path: Path, cli: Callable[..., Result]) -> None:
    nope = tmp_path / "nope"
    result = cli("enroll", env={"ATTENDANCE_DATASET_DIR": str(nope)})
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: dataset folder not found: {nope} "
        "(set ATTENDANCE_DATASET_DIR or create dataset/<student>/photo.jpg)\n"
    )
    assert not (tmp_path / "data").exists()  # nothing created in the working folder


# waitress leaves the socket of a server it could not bind to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_port_in_use_is_one_line(
    tmp_path: Path, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve`` in this process with a scripted face engine (no worker to start): the busy
    port is one line, and the services it built are closed again."""
    import gc
    import socket

    from scripted import ScriptedAnalyzer
    from smart_attendance import app as app_module

    closed: list[bool] = []

    class Engine(ScriptedAnalyzer):
        def close(self) -> None:
            closed.append(True)

    monkeypatch.setattr(app_module, "make_analyzer", lambda settings, kind: Engine())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli(
            "serve",
            env={
                "ATTENDANCE_HOST": "127.0.0.1",
                "ATTENDANCE_PORT": str(port),
                "API_SECRET_KEY": "k" * 24,
                "ATTENDANCE_DATASET_DIR": str(tmp_path),
                "ATTENDANCE_DATA_DIR": str(tmp_path / "d"),
            },
        )
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith(f"Error: cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in result.output
    assert closed == [True]
    del result  # its traceback holds waitress's half-made server
    gc.collect()  # whose leftovers are collected here, under this test's filter


def test_stats_without_a_database_says_so_and_creates_nothing(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    dataset, data = tmp_path / "dataset", tmp_path / "d"
    for name in ("ben", "ana"):
        (dataset / name).mkdir(parents=True)
    env = {"ATTENDANCE_DATA_DIR": str(data), "ATTENDANCE_DATASET_DIR": str(dataset)}
    result = cli("stats", env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == (
        f"Note: no database at {data / 'attendance.db'}: nothing has been recorded in this data "
        "folder. Run the command in the folder the server runs in, or set ATTENDANCE_DATA_DIR.\n"
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "0 day(s) on record"
    assert [line.split() for line in lines[2:]] == [
        ["ana", "0", "0", "0", "-", "-"],  # no period expected: nothing to count
        ["ben", "0", "0", "0", "-", "-"],
    ]
    as_json = cli("stats", "--json", env=env)
    assert as_json.exit_code == 0
    assert [row["name"] for row in json.loads(as_json.stdout)] == ["ana", "ben"]
    assert not data.exists()


def test_stats_on_an_empty_database(tmp_path: Path, cli: Callable[..., Result]) -> None:
    data = tmp_path / "d"
    Store(Settings(data_dir=data).db_url).create()
    result = cli("stats", env={"ATTENDANCE_DATA_DIR": str(data)})
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[0] == "0 day(s) on record"


def _commands(group: click.Group, prefix: str = "attendance") -> list[str]:
    names = []
    for name, command in group.commands.items():
        full = f"{prefix} {name}"
        names.append(full)
        if isinstance(command, click.Group):
            names += _commands(command, full)
    return names


def test_every_setting_is_documented() -> None:
    config_doc = (ROOT / "docs" / "configuration.md").read_text()
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for spec in SPECS:
        assert f"`{spec.env}`" in config_doc, spec.env
        assert re.search(rf"^#?\s*{spec.env}=", example, re.M), spec.env
        assert spec.env in readme, spec.env


def test_every_command_is_documented() -> None:
    cli_doc = (ROOT / "docs" / "cli.md").read_text()
    for command in _commands(main):
        assert f"`{command}" in cli_doc, command


def test_unreachable_database_stops_serve_with_one_line(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    result = cli(
        "serve",
        env={
            "API_SECRET_KEY": "k" * 24,
            "ATTENDANCE_DATA_DIR": str(tmp_path / "d"),
            "ATTENDANCE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x",
        },
    )
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()[2:]  # after the data and dataset folders
    assert line.startswith("Error: ") and "database" in line
    assert "Traceback" not in result.stderr


def test_the_servers_hints_name_the_command_as_it_was_run(
    tmp_path: Path, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``make run`` runs .venv/bin/attendance, not on PATH: the hints say that path, as the
    README does; once the virtualenv is active (on PATH), plain ``attendance``."""
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "attendance").write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "argv", [str(venv / "attendance"), "serve"])
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    env = {"ATTENDANCE_DATA_DIR": str(tmp_path / "data"), "ATTENDANCE_DATASET_DIR": "nope"}
    result = serve_once(cli, monkeypatch, env)
    assert result.exit_code == 0, result.output
    assert (
        "No dashboard account yet: create the first admin with "
        "`.venv/bin/attendance users add NAME --role admin`." in result.stdout.splitlines()
    )
    assert "(or run `.venv/bin/attendance enroll`)" in result.stderr
    monkeypatch.setattr(shutil, "which", lambda _name: str(venv / "attendance"))
    result = serve_once(cli, monkeypatch, env)
    assert "`attendance users add NAME --role admin`." in result.stdout
    assert ".venv/bin" not in result.output
