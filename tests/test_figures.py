"""Figures you can trust (in process, fast): the README's speed figures are those of the
committed results file of ``make bench``; the benchmarks' servers see no developer setting and
keep their folders on disk; a wrong answer stops a benchmark; the tools CI needs fail, not skip,
when missing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, require_tool

sys.path.insert(0, str(ROOT / "bench"))
import common  # bench/common.py
import run_all  # bench/run_all.py

README = ROOT / "README.md"
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def _speed_block() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index(run_all.BEGIN) + len(run_all.BEGIN) : text.index(run_all.END)]


def test_every_number_of_the_readme_speed_figures_is_in_the_results_file() -> None:
    results = run_all.RESULTS.read_text(encoding="utf-8")
    block = _speed_block()
    numbers = NUMBER.findall(block)
    assert len(numbers) > 40, "the README's speed figures are missing"
    missing = [n for n in numbers if n not in results]
    assert missing == [], f"README figures not in {run_all.RESULTS.name}: {missing}"


def test_the_readme_speed_figures_are_the_ones_make_bench_writes() -> None:
    results = run_all.RESULTS.read_text(encoding="utf-8")
    assert _speed_block().strip() == run_all.readme_block(results).strip(), (
        "README.md's speed figures differ from bench/results/latest.md: run `make bench` "
        "(or bench/run_all.py), never edit them by hand"
    )
    for name in run_all.IN_README:
        assert f"`bench/{name}`" in _speed_block()


def test_the_results_file_says_where_and_when_and_covers_every_benchmark() -> None:
    results = run_all.RESULTS.read_text(encoding="utf-8")
    head = results.split("\n## ", 1)[0]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", head), head  # the date
    assert re.search(r"\d+ cores", head) and "commit" in head, head  # the machine, the commit
    assert "tmpfs" not in head and "Servers' folders on " in head
    scripts = sorted(
        p.name for p in (ROOT / "bench").glob("bench_*.py") if p.name not in run_all.OWN_RESULTS
    )
    assert sorted(run_all.sections(results)) == scripts == sorted(b[0] for b in run_all.BENCHES)
    recognize = run_all.sections(results)["bench_recognize.py"]
    for needed in ("first scan ms", "repeat ms", "detection", "ATTENDANCE_DETECT_UPSAMPLE=1"):
        assert needed in recognize


def test_no_speed_figure_outside_the_generated_block_of_the_readme() -> None:
    """The opening paragraph once said 17.5 ms and 8.7x while the table said 15.1 ms and 9.7x:
    speed figures live in the generated block only."""
    text = README.read_text(encoding="utf-8")
    outside = text.replace(_speed_block(), "")
    assert re.findall(r"\d+(?:\.\d+)? ?ms\b|\d+(?:\.\d+)?x (?:faster|slower)", outside) == []


def test_docs_speak_of_the_database_read_not_of_memory() -> None:
    recognition = (ROOT / "docs" / "recognition.md").read_text(encoding="utf-8")
    assert "answered from memory" not in recognition
    assert "never the wrong name" not in README.read_text(encoding="utf-8").lower()


# --- the benchmarks' servers and checks ---------------------------------------------------------


def test_a_benchmark_server_sees_no_developer_setting_and_no_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATTENDANCE_MATCH_THRESHOLD", "0.9")
    monkeypatch.setenv("SENDER_PASSWORD", "the developer's password")
    monkeypatch.setenv("API_SECRET_KEY", "the developer's key")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("ATTENDANCE_REQUIRE_CONSENT=1\n")  # the developer's .env
    dump = (
        "import json, os, pathlib; print(json.dumps({'cwd': os.getcwd(), "
        "'env': dict(os.environ), 'files': sorted(os.listdir())}))"
    )
    log = tmp_path / "servers" / "dump.log"
    log.parent.mkdir()
    server = common.Server(
        [sys.executable, "-c", dump], {"ATTENDANCE_WORKERS": "1"}, common.free_port(), log
    )
    server.proc.wait(timeout=30)
    import json

    seen = json.loads(log.read_text())
    assert seen["env"]["ATTENDANCE_WORKERS"] == "1"
    leaked = [k for k in seen["env"] if k.startswith("ATTENDANCE_") and k != "ATTENDANCE_WORKERS"]
    assert leaked == [] and "SENDER_PASSWORD" not in seen["env"]
    assert "API_SECRET_KEY" not in seen["env"]
    assert Path(seen["cwd"]) != tmp_path and seen["files"] == []  # no ./.env where it runs


def test_our_server_reads_an_explicit_empty_settings_file(tmp_path: Path) -> None:
    server = common.our_server(tmp_path / "dataset", tmp_path / "data", tmp_path / "s.log")
    try:
        command = server.proc.args
        assert isinstance(command, list)
        settings_file = Path(command[command.index("--env-file") + 1])
        assert settings_file.read_text() == ""
    finally:
        server.stop()


def _probe(expected: str | None) -> common.Probe:
    return common.Probe("05.jpg", b"", expected)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"status": "unknown", "reason": "unknown_face"}, "bench_person_a"),  # an empty gallery
        ({"status": "success", "name": "bench_person_b", "new": True}, "bench_person_a"),
        ({"status": "success", "name": "bench_person_a", "new": False}, None),  # a stranger
        ({"status": "starting"}, "bench_person_a"),
    ],
)
def test_a_wrong_answer_stops_the_benchmark(answer: dict[str, object], expected: str) -> None:
    with pytest.raises(common.WrongAnswer, match="expected"):
        common.check(answer, _probe(expected), "http://server")


def test_the_expected_answers_pass() -> None:
    named = common.check(
        {"status": "success", "name": "bench_person_a", "new": True},
        _probe("bench_person_a"),
        "http://server",
    )
    assert (named.name, named.new) == ("bench_person_a", True)
    unknown = common.check({"status": "unknown"}, _probe(None), "http://server")
    assert (unknown.name, unknown.new) == (None, None)


def test_run_turns_a_wrong_answer_into_a_one_line_stop() -> None:
    def main() -> None:
        raise common.WrongAnswer("05.jpg answered unknown, expected bench_person_a")

    with pytest.raises(SystemExit) as stopped:
        common.run(main)
    assert str(stopped.value.code).startswith("benchmark stopped, a wrong answer: 05.jpg")


def test_the_bench_frames_people_and_the_stranger() -> None:
    assert common.frame_person(0) == common.frame_person(9) == "bench_person_a"
    assert common.frame_person(10) == common.frame_person(20) == "bench_person_b"
    assert common.frame_person(21) is None and common.frame_person(24) is None


def test_a_benchmark_folder_in_memory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_DIR", str(tmp_path))
    monkeypatch.setattr(common, "filesystem", lambda _path: "tmpfs")
    with pytest.raises(SystemExit, match="in memory"), common.disk_folder():
        pass


def test_the_file_system_of_a_folder_is_read_from_the_mount_table() -> None:
    if not Path("/proc/self/mounts").is_file():
        pytest.skip("no /proc/self/mounts")
    assert common.filesystem(Path("/proc")) == "proc"
    if Path("/dev/shm").is_dir():
        assert common.filesystem(Path("/dev/shm")) == "tmpfs"


# --- CI: what it needs must be there -------------------------------------------------------------


def test_a_missing_tool_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("REQUIRE_SHARED_DATA", "1")
    with pytest.raises(pytest.fail.Exception, match="Xvfb not installed"):
        require_tool(False, "Xvfb not installed")
    require_tool(True, "never shown")
    monkeypatch.delenv("REQUIRE_SHARED_DATA")
    with pytest.raises(pytest.skip.Exception):
        require_tool(False, "Xvfb not installed")


def test_make_stops_when_apt_get_fails_as_root(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, body in (("id", "echo 0"), ("apt-get", "exit 100")):
        (fake / name).write_text(f"#!/bin/sh\n{body}\n")
        (fake / name).chmod(0o755)
    done = subprocess.run(
        ["make", "--no-print-directory", "system-deps", "SYSTEM_COMMANDS=no-such-command-x"],
        cwd=ROOT,
        env={**os.environ, "PATH": f"{fake}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0, done.stdout + done.stderr
    assert "apt-get could not install" in done.stderr


def test_the_security_tested_by_column_names_tests_that_exist() -> None:
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    section = text.split("## Abuse and faults", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]  # no header
    defined = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(), re.M))
    assert len(rows) >= 10
    for row in rows:
        tested_by = row.rstrip(" |").rsplit(" | ", 1)[1]
        named = re.findall(r"`(?:\w+\.py::)?(test_\w+)`", tested_by)
        files = re.findall(r"`(?:tests/)?(test_\w+\.py)", tested_by)
        assert named or files, f"no test named for: {row[:60]}"
        assert set(named) <= defined, set(named) - defined
        assert all((ROOT / "tests" / f).is_file() for f in files), files


def test_the_readme_year_table_is_the_one_bench_history_wrote() -> None:
    import bench_history

    results = bench_history.RESULTS.read_text(encoding="utf-8")
    text = README.read_text(encoding="utf-8")
    block = text.split(bench_history.BEGIN, 1)[1].split(bench_history.END, 1)[0]
    assert block.strip() == bench_history.readme_block(results)
    assert "1000 x 180 days" in block and "postgresql" in block
