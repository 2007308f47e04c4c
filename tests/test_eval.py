"""`attendance eval` on ../shared/faces meets the open-set targets (the descriptors are cached
in tests/.cache between runs, keyed by file content and pipeline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT, require_faces, run_cli

CACHE = ROOT / "tests" / ".cache"


@pytest.mark.slow
def test_open_set_targets_on_shared_faces() -> None:
    faces = require_faces()
    CACHE.mkdir(parents=True, exist_ok=True)
    result = run_cli(
        "eval",
        str(faces),
        "--json",
        env={"ATTENDANCE_DATA_DIR": str(CACHE / "eval")},
        timeout_s=900,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["photos"] >= 400
    ours, original = report["results"]
    assert ours["rule"] == "this system" and original["rule"] == "original rule"
    assert ours["fpir"] <= 0.01, ours
    assert ours["dir"] >= 0.95, ours
    # The original rule (0.6, no margin) names strangers as students far more often.
    assert original["fpir"] > 0.3
    assert ours["genuine_probes"] > 1000 and ours["stranger_probes"] > 2000


def test_eval_table_on_a_small_tree(tmp_path: Path) -> None:
    faces = require_faces()
    tree = tmp_path / "tree"
    for identity in ("obama", "biden", "kit_harington"):
        (tree / identity).mkdir(parents=True)
        for photo in sorted((faces / "knn" / identity).glob("*.jpg")):
            (tree / identity / photo.name).write_bytes(photo.read_bytes())
    result = run_cli(
        "eval",
        str(tree),
        "--folds",
        "3",
        env={"ATTENDANCE_DATA_DIR": str(tmp_path / "data")},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Open-set evaluation:") and "of 3 identities, 3 splits" in lines[0]
    assert lines[1].split() == [
        "rule",
        "threshold",
        "margin",
        "DIR",
        "FPIR",
        "genuine",
        "strangers",
    ]
    assert lines[2].startswith("this system") and lines[3].startswith("original rule")
    assert lines[2].split()[-4].endswith("%")
