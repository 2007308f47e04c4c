"""The ONNX descriptor network is equivalent to dlib's, on real faces of ../shared/faces.

The reader and its refusal run in process (they read the installed model file, no dlib); the
comparisons on real faces are ``real``. They take a fixed sample of every set (dlib's own network
needs 60 ms a face): every eighth photo for the descriptors, every fifth identity for the
decisions of the evaluation protocol. ``attendance eval`` on the whole set (test_eval.py) checks
the ONNX figures themselves."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import TEST_DATA, require_faces
from smart_attendance.cli import main as cli_main
from smart_attendance.engine import imaging
from smart_attendance.engine.dlib_engine import FaceEngine
from smart_attendance.engine.model_files import RESNET, model_path
from smart_attendance.engine.onnx import OnnxEmbedder, ensure_onnx_model, read_dlib_resnet
from smart_attendance.engine.pool import WorkerPool
from smart_attendance.errors import DlibFormatError
from smart_attendance.evaluation import Rule, decisions, describe_all, find_identities
from smart_attendance.models import ENROL_PARAMS


@pytest.fixture(scope="module")
def onnx_model() -> Path:
    return ensure_onnx_model(TEST_DATA / "models", model_path(RESNET))


def test_reader_finds_the_whole_network() -> None:
    net = read_dlib_resnet(model_path(RESNET))
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29
    assert kinds.count("add_prev") == 14 and kinds[-1] == "fc"
    assert [round(m, 3) for m in net.means] == [122.782, 117.001, 104.298]


def test_a_file_that_is_not_a_dlib_network_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.dat"
    bogus.write_bytes(b"\x01\x02hello" * 100)
    with pytest.raises(DlibFormatError, match="not a dlib face recognition network"):
        read_dlib_resnet(bogus)


@pytest.mark.real
def test_descriptors_match_dlib_on_a_sample_of_every_set(onnx_model: Path) -> None:
    faces = require_faces()
    dlib_encoder = FaceEngine(None)
    onnx = OnnxEmbedder(onnx_model)
    photos = sorted(path for paths in find_identities(faces).values() for path in paths)
    sample = photos[::8]
    assert {path.relative_to(faces).parts[0] for path in sample} == {
        "bbt",
        "knn",
        "lfw",
        "misc",
        "yale",
    }
    chips = []
    for path in sample:
        rgb = imaging.decode(path.read_bytes(), 10**8)
        boxes = dlib_encoder.detect(rgb, ENROL_PARAMS)
        if len(boxes) == 1:
            chips.append(dlib_encoder.align(rgb, boxes[0]))
    assert len(chips) >= 50
    worst = 0.0
    for start in range(0, len(chips), 32):
        batch = chips[start : start + 32]
        reference = dlib_encoder.describe_chips(batch)
        ours = onnx(batch)
        worst = max(worst, float(np.abs(reference - ours).max()))
    assert worst <= 1e-4, worst


@pytest.mark.real
def test_every_identification_decision_is_the_same() -> None:
    faces = require_faces()
    every = find_identities(faces)
    identities = {name: every[name] for name in sorted(every)[::5]}
    samples = {}
    for embedder in ("dlib", "onnx"):
        pool = WorkerPool(2, 10**8, embedder, TEST_DATA / "models")
        try:
            samples[embedder] = describe_all(identities, pool, store=None)
        finally:
            pool.close()
    rule = Rule("defaults", 0.47, 0.12)
    by_dlib = decisions(samples["dlib"], rule)
    by_onnx = decisions(samples["onnx"], rule)
    assert len(by_dlib) > 300
    assert sum(name is not None for name in by_dlib) > 50
    assert by_dlib == by_onnx


def test_models_build_command_caches_by_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("ATTENDANCE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def build() -> str:
        result = CliRunner().invoke(
            cli_main, ["models", "build"], env={"ATTENDANCE_DATA_DIR": str(tmp_path)}
        )
        assert result.exit_code == 0, result.output
        return result.stdout

    first = build()
    assert first.startswith("Built in")
    built = list((tmp_path / "models").glob("face_resnet-*.onnx"))
    assert len(built) == 1 and built[0].stat().st_size > 20_000_000
    assert build().startswith("Already built")
