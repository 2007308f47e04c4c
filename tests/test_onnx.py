"""The ONNX descriptor network is equivalent to dlib's, on every face in ../shared/faces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, require_faces
from smart_attendance import imaging
from smart_attendance.dlib_onnx import (
    DlibFormatError,
    OnnxEmbedder,
    ensure_onnx_model,
    read_dlib_resnet,
)
from smart_attendance.encoder import ENROL_PARAMS, RESNET, Encoder, EncoderPool, model_path
from smart_attendance.evaluation import Rule, decisions, describe_all, find_identities

CACHE = ROOT / "tests" / ".cache"


@pytest.fixture(scope="module")
def onnx_model() -> Path:
    return ensure_onnx_model(CACHE / "models", model_path(RESNET))


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


@pytest.mark.slow
def test_descriptors_match_dlib_on_every_face(onnx_model: Path) -> None:
    faces = require_faces()
    dlib_encoder = Encoder(None)
    onnx = OnnxEmbedder(onnx_model)
    identities = find_identities(faces)
    chips = []
    for paths in identities.values():
        for path in paths:
            rgb = imaging.decode(path.read_bytes(), 10**8)
            boxes = dlib_encoder.detect(rgb, ENROL_PARAMS)
            if len(boxes) == 1:
                chips.append(dlib_encoder.align(rgb, boxes[0]))
    assert len(chips) >= 440
    worst = 0.0
    for start in range(0, len(chips), 32):
        batch = chips[start : start + 32]
        reference = dlib_encoder.describe_chips(batch)
        ours = onnx(batch)
        worst = max(worst, float(np.abs(reference - ours).max()))
    assert worst <= 1e-4, worst


@pytest.mark.slow
def test_every_identification_decision_is_the_same(tmp_path: Path) -> None:
    faces = require_faces()
    identities = find_identities(faces)
    samples = {}
    for embedder in ("dlib", "onnx"):
        pool = EncoderPool(2, 10**8, embedder, CACHE / "models")
        try:
            samples[embedder] = describe_all(identities, pool, store=None)
        finally:
            pool.close()
    rule = Rule("defaults", 0.47, 0.12)
    by_dlib = decisions(samples["dlib"], rule)
    by_onnx = decisions(samples["onnx"], rule)
    assert len(by_dlib) > 3000
    assert by_dlib == by_onnx


def test_models_build_command_caches_by_hash(tmp_path: Path) -> None:
    def build() -> str:
        result = subprocess.run(
            [sys.executable, "-m", "smart_attendance", "models", "build"],
            env={"PATH": "/usr/bin:/bin", "ATTENDANCE_DATA_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return result.stdout

    first = build()
    assert first.startswith("Built in")
    built = list((tmp_path / "models").glob("face_resnet-*.onnx"))
    assert len(built) == 1 and built[0].stat().st_size > 20_000_000
    assert build().startswith("Already built")
