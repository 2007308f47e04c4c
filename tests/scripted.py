"""A scripted ``Analyzer`` for in-process tests: the test chooses the faces of each image.

Images are bytes. Bytes registered with ``ScriptedAnalyzer.add`` come back as the faces the
test chose (boxes, descriptors, eye ratios, sharpness, yaw); any other bytes go through the
product's real header checks (``imaging.probe``), so a broken or hostile upload gets the real
error, and a valid image nobody scripted has no face. A face's "chip" is its mirrored
descriptor, so the second look is scripted too. This fake lives in the tests only, never in the
product.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from smart_attendance.engine import imaging
from smart_attendance.errors import AttendanceError
from smart_attendance.models import Box, DetectParams, Face, Frame

Tag = TypeVar("Tag")

BOX = Box(200, 120, 360, 280)  # a 160 px face in a 640x480 frame
OPEN_EAR = 0.30
SHARP = 120.0  # a face's sharpness (Laplacian variance of its chip), well above the blurry ones


@dataclass(frozen=True)
class ScriptedFace:
    descriptor: np.ndarray
    box: Box = BOX
    ear: float = OPEN_EAR
    mirrored: np.ndarray | None = None  # the mirrored face's descriptor (default: the same)
    sharpness: float = SHARP  # low: a blurry photo
    yaw: float = 0.0  # far from 0: a face turned away (``models.Face.yaw``)


def identity(seed: int) -> np.ndarray:
    """A person's descriptor: people are about 1.0 apart, like dlib's."""
    vector = np.random.default_rng(seed).normal(size=128)
    return (vector / np.linalg.norm(vector) * 0.7).astype(np.float32)


def near(base: np.ndarray, distance: float, seed: int = 0) -> np.ndarray:
    """A descriptor ``distance`` away from ``base`` (another photo of the same person)."""
    step = np.random.default_rng(1000 + seed).normal(size=base.shape)
    return (base + step / np.linalg.norm(step) * distance).astype(np.float32)


class ScriptedAnalyzer:
    workers = 2
    embedder = "scripted"

    def __init__(self, max_pixels: int = 40_000_000) -> None:
        self.max_pixels = max_pixels
        self.script: dict[bytes, tuple[ScriptedFace, ...]] = {}
        self.calls = 0

    def add(self, data: bytes, *faces: ScriptedFace) -> bytes:
        self.script[data] = faces
        return data

    def _frame(self, data: bytes, params: DetectParams, describe: bool) -> Frame:
        faces = self.script.get(data)
        if faces is None:  # the real checks, and no face in a real image nobody scripted
            info = imaging.probe(data, self.max_pixels)
            return Frame(info.width, info.height, ())
        out = []
        for face in faces:
            usable = min(face.box.width, face.box.height) >= params.min_face_px
            mirrored = face.descriptor if face.mirrored is None else face.mirrored
            out.append(
                Face(
                    face.box,
                    face.descriptor if usable and describe else None,
                    mirrored if usable and describe else None,
                    face.ear if usable else None,
                    skipped=usable and not describe,
                    sharpness=face.sharpness if usable else None,
                    yaw=face.yaw if usable else None,
                )
            )
        return Frame(640, 480, tuple(out))

    def analyze(
        self, images: Sequence[bytes], params: DetectParams, describe: int | None = None
    ) -> list[Frame]:
        self.calls += 1
        described = set(range(len(images)))
        if describe is not None and describe < len(images):
            # The best frames, as the engine ranks them: most faces, eyes most open.
            def quality(i: int) -> tuple[int, float]:
                faces = self.script.get(images[i], ())
                return (len(faces), min((f.ear for f in faces), default=0.0))

            described = set(sorted(range(len(images)), key=quality)[-describe:])
        return [self._frame(data, params, i in described) for i, data in enumerate(images)]

    def analyze_many(
        self, items: Iterable[tuple[Tag, bytes]], params: DetectParams
    ) -> Iterator[tuple[Tag, Frame | Exception]]:
        for tag, data in items:
            try:
                yield tag, self._frame(data, params, True)
            except AttendanceError as exc:
                yield tag, exc

    def describe_mirrored(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([np.asarray(chip, np.float32) for chip in chips])

    def warm_up(self) -> None:
        pass

    def close(self) -> None:
        pass
