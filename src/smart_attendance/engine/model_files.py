"""dlib's model files, found in the installed ``face-recognition-models`` package.

The package is located with ``importlib`` without importing it (its ``__init__`` imports
``pkg_resources``). ``prepare_embedder`` makes what an embedder needs before workers start.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from ..errors import ModelFilesError

SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"


@cache
def models_dir() -> Path:
    """The ``models/`` folder of the installed face-recognition-models package."""
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location) / "models"
        if (folder / RESNET).is_file():
            return folder
    raise ModelFilesError(
        "dlib model files not found: install the face-recognition-models package (make install)"
    )


def model_path(name: str) -> Path:
    path = models_dir() / name
    if not path.is_file():
        raise ModelFilesError(f"dlib model file missing: {path}")
    return path


@cache
def model_fingerprint() -> str:
    """Short hash of the descriptor network file: cached descriptors are only valid for it."""
    from .onnx import file_hash

    return file_hash(model_path(RESNET))[:16]


EMBEDDERS = ("onnx", "dlib")


def prepare_embedder(embedder: str, cache_dir: Path) -> Path | None:
    """Make what ``embedder`` needs before workers start: the ONNX model file (or None)."""
    if embedder not in EMBEDDERS:
        raise ModelFilesError(f"unknown embedder {embedder!r} (use onnx or dlib)")
    if embedder == "dlib":
        return None
    from .onnx import ensure_onnx_model

    return ensure_onnx_model(cache_dir, model_path(RESNET))
