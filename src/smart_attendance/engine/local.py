"""``InProcessAnalyzer``: the ``Analyzer`` with one face engine in the calling process.

For commands that do not serve (``attendance enroll`` and ``eval`` with one worker) and for tests
on real faces: no worker process to start, the models loaded once. Same answers as the
``WorkerPool``, one image at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..errors import AttendanceError
from ..models import DetectParams, Frame
from . import imaging
from .dlib_engine import FaceEngine
from .model_files import prepare_embedder
from .pool import AnalyzeBurst, analyze_burst

Tag = TypeVar("Tag")


class InProcessAnalyzer:
    def __init__(self, max_pixels: int, embedder: str = "onnx", cache_dir: Path | None = None):
        self.embedder = embedder
        self.workers = 1
        self._max_pixels = max_pixels
        onnx_model = prepare_embedder(embedder, cache_dir or Path("data/models"))
        self._engine = FaceEngine(onnx_model)

    def analyze(
        self, images: Sequence[bytes], params: DetectParams, describe: int | None = None
    ) -> list[Frame]:
        # Like a worker: one frame decoded at a time, shrunk as it is decoded.
        call = AnalyzeBurst(list(images), params, self._max_pixels, describe)
        return analyze_burst(self._engine, call)

    def analyze_many(
        self, items: Iterable[tuple[Tag, bytes]], params: DetectParams
    ) -> Iterator[tuple[Tag, Frame | Exception]]:
        for tag, data in items:
            try:
                image = imaging.decode(data, self._max_pixels)
            except AttendanceError as exc:
                yield tag, exc
                continue
            yield tag, self._engine.analyze_arrays([image], params)[0]

    def describe_mirrored(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        return self._engine.describe_chips([np.ascontiguousarray(c[:, ::-1]) for c in chips])

    def warm_up(self) -> None:
        """The models are loaded in the constructor."""

    def close(self) -> None:
        """Nothing to release: the models go with the object."""
