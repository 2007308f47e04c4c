"""`attendance eval` on real photos (``real``): the open-set targets on all of ../shared/faces
(``slow``; descriptors kept in tests/.cache/eval between runs with ``--cache``), and the table on a
small tree with dlib in this process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import TEST_DATA, run_cli
from smart_attendance import app as app_module
from smart_attendance.cli import main as cli_main
from smart_attendance.models import Analyzer

pytestmark = pytest.mark.real

EVAL_CACHE = TEST_DATA / "eval"
HEADER = ["rule", "threshold", "margin", "DIR", "FPIR", "wrong", "genuine", "strangers"]


def _table(stdout: str) -> dict[str, list[str]]:
    """The rows of the results table, by rule: threshold, margin, DIR, FPIR, wrong, counts."""
    lines = stdout.splitlines()
    assert lines[0].startswith("Open-set evaluation:"), stdout
    assert lines[1].split() == HEADER
    rows = {}
    for line in lines[2:4]:
        label, values = line[:16].strip(), line[16:].split()
        assert len(values) == 7, line
        rows[label] = values
    assert list(rows) == ["this system", "original rule"]
    return rows


@pytest.mark.slow
def test_open_set_targets_on_shared_faces(faces: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"  # the server's data folder: eval must leave no database in it
    result = run_cli(
        "eval",
        str(faces),
        "--cache",
        str(EVAL_CACHE),
        env={"ATTENDANCE_DATA_DIR": str(data)},
        cwd=tmp_path,
        timeout_s=900,
    )
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    photos = int(first.split(":")[1].split()[0])
    assert photos >= 400, first
    rows = _table(result.stdout)
    ours, original = rows["this system"], rows["original rule"]
    # DIR, FPIR, and students given another student's name (docs/recognition.md quotes them)
    assert ours[2:5] == ["95.52%", "0.92%", "0.00%"], result.stdout
    assert int(ours[5]) > 1000 and int(ours[6]) > 2000  # genuine and stranger probes
    # The original rule (0.6, no margin) names strangers as students far more often.
    assert float(original[3].rstrip("%")) > 30
    assert not (data / "attendance.db").exists()
    assert list(data.glob("*.db")) == []
    assert (EVAL_CACHE / "eval-descriptors.db").is_file()


class Borrowed:
    """The session's analyzer, lent to a command that closes what it is given."""

    def __init__(self, analyzer: Analyzer) -> None:
        self._analyzer = analyzer

    def __getattr__(self, name: str) -> object:
        return getattr(self._analyzer, name)

    def close(self) -> None:
        """Kept open for the other tests."""


def test_eval_table_on_a_small_tree(
    faces: Path, tmp_path: Path, real_analyzer: Analyzer, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "tree"
    for identity in ("obama", "biden", "kit_harington"):
        (tree / identity).mkdir(parents=True)
        for photo in sorted((faces / "knn" / identity).glob("*.jpg")):
            (tree / identity / photo.name).write_bytes(photo.read_bytes())
    monkeypatch.setattr(app_module, "make_analyzer", lambda *_args: Borrowed(real_analyzer))
    for name in [n for n in os.environ if n.startswith("ATTENDANCE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    result = CliRunner().invoke(
        cli_main, ["eval", str(tree), "--folds", "3"], env={"ATTENDANCE_DATA_DIR": str(data)}
    )
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert "of 3 identities, 3 splits" in first
    rows = _table(result.stdout)
    assert all(value.endswith("%") for row in rows.values() for value in row[2:5])
    assert not data.exists() or list(data.glob("*.db")) == []  # a temporary store only
