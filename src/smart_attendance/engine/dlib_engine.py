"""Face detection, landmark alignment and 128-d descriptors with dlib, in the calling process.

``FaceEngine`` is the only dlib user: dlib's HOG detector, its 68-point shape predictor and its
ResNet descriptor network, run by ONNX Runtime (the default, same descriptors, about 20x
faster) or by dlib itself. It works on decoded arrays; the ``Analyzer`` implementations
(``pool.WorkerPool``, ``local.InProcessAnalyzer``) feed it uploaded bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from ..models import Box, DetectParams, Face, Frame
from .model_files import RESNET, SHAPE_68, model_path

CHIP_SIZE = 150
CHIP_PADDING = 0.25

LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
OUTER_EYE_CORNERS = (36, 45)  # on the image's left and right
NOSE_TIP = 30
# The centre of a chip measured for sharpness: 30 px off each side of the 150 px chip leaves the
# eyes, nose and mouth (90x90 px), not the hair, ears or background around them.
SHARPNESS_MARGIN = 30


def eye_aspect_ratio(points: np.ndarray) -> float:
    """Mean eye aspect ratio of both eyes from a (68, 2) landmark array:
    (|p2-p6| + |p3-p5|) / (2 |p1-p4|) per eye (Soukupova and Cech, 2016)."""

    def one(eye: np.ndarray) -> float:
        vertical = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
        horizontal = 2.0 * np.linalg.norm(eye[0] - eye[3])
        return float(vertical / horizontal) if horizontal > 0 else 0.0

    return (one(points[LEFT_EYE]) + one(points[RIGHT_EYE])) / 2.0


def yaw_ratio(points: np.ndarray) -> float:
    """How far a face is turned, from a (68, 2) landmark array: the nose tip's position along
    the line between the outer eye corners, 0 at their midpoint (facing the camera), +-1 level
    with one corner (turned well away), positive towards the image's right. It grows with
    the turn (faster than the angle: a quarter turn would be far past 1)."""
    left, right = points[OUTER_EYE_CORNERS[0]], points[OUTER_EYE_CORNERS[1]]
    span = right - left
    length = float(np.dot(span, span))
    if length <= 0:
        return 0.0
    along = float(np.dot(points[NOSE_TIP] - left, span)) / length
    return 2.0 * along - 1.0


def chip_sharpness(chip: np.ndarray) -> float:
    """The variance of the Laplacian of an aligned face chip's centre, in grey levels squared:
    the fine detail left in the face the descriptor network sees (every face is scaled to the
    same chip, so large and small faces compare). Higher is sharper; blur or motion lowers it."""
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY) if chip.ndim == 3 else chip
    m = SHARPNESS_MARGIN
    centre = grey[m:-m, m:-m] if min(grey.shape[:2]) > 2 * m + 2 else grey
    return float(cv2.Laplacian(centre, cv2.CV_64F).var())


class Aligned(NamedTuple):
    """One face's chip and what its landmarks tell."""

    chip: np.ndarray
    ear: float
    yaw: float


class FaceEngine:
    """dlib's HOG detector and 68-point shape predictor, and the ResNet descriptor network
    run by ONNX Runtime (``onnx_model`` given) or by dlib itself."""

    def __init__(self, onnx_model: Path | None = None, describe: bool = True) -> None:
        import dlib

        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(model_path(SHAPE_68)))
        self._onnx: Any = None
        self._net: Any = None
        if not describe:  # detection and landmarks only (blink detection)
            self.embedder = "none"
            return
        if onnx_model is not None:
            from .onnx import OnnxEmbedder

            self._onnx = OnnxEmbedder(onnx_model)
            self._net = None
        else:
            self._net = dlib.face_recognition_model_v1(str(model_path(RESNET)))
        self.embedder = "onnx" if self._onnx is not None else "dlib"

    def _describe(self, chips: list[np.ndarray]) -> np.ndarray:
        if self._onnx is not None:
            result: np.ndarray = self._onnx(chips)
            return result
        assert self._net is not None
        vectors = self._net.compute_face_descriptor(chips)
        return np.asarray(vectors, np.float32).reshape(-1, 128)

    def detect(self, image: np.ndarray, params: DetectParams) -> list[Box]:
        """Face boxes in ``image`` pixels (RGB or greyscale array), searched on a rescaled
        greyscale copy as ``params`` says.

        When a downscaled image shows no face, it is searched once more at twice the scale
        (at most full size): a large photo with a smallish face is still found, and frames
        with a face, the common case, pay for one small pass only.
        """
        scale = self._scale(image.shape[1], image.shape[0], params)
        # HOG on one channel: a third of the work, same faces.
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        boxes = self._detect_at(grey, scale, params.upsample)
        if not boxes and scale < 1.0:
            boxes = self._detect_at(grey, min(1.0, scale * 2), params.upsample)
        return boxes

    @staticmethod
    def _scale(width: int, height: int, params: DetectParams) -> float:
        long_side = max(width, height)
        if params.max_side and long_side > params.max_side:
            return params.max_side / long_side
        if params.min_side and long_side < params.min_side:
            # At most 2x (dlib's one upsampling step): more blurs faces past the HOG's reach.
            return min(params.min_side / long_side, 2.0)
        return 1.0

    def _detect_at(self, grey: np.ndarray, scale: float, upsample: int) -> list[Box]:
        height, width = grey.shape
        work = grey
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            # Area averaging to shrink (no aliasing, and a fraction of the cost of PIL's
            # resampling); bilinear to enlarge small enrolment photos.
            interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            work = cv2.resize(grey, size, interpolation=interpolation)
        rects = self._detector(work, upsample)
        boxes = []
        for rect in rects:
            box = Box(rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)
            box = box.scaled(1 / scale, height, width)
            if box.right > box.left and box.bottom > box.top:
                boxes.append(box)
        return boxes

    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray:
        """The 68 landmarks ``(68, 2)`` of the face in ``box`` (RGB or greyscale image)."""
        rect = self._dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
        shape = self._shape(image, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def align(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """The 150x150 face chip dlib's network expects (68-point alignment, 0.25 padding)."""
        return self.align_face(rgb, box).chip

    def align_face(self, rgb: np.ndarray, box: Box) -> Aligned:
        """The face chip, the eye aspect ratio and the yaw ratio, from one landmark pass."""
        dlib = self._dlib
        rect = dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
        shape = self._shape(rgb, rect)
        chip = dlib.get_face_chip(rgb, shape, CHIP_SIZE, CHIP_PADDING)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        return Aligned(
            np.ascontiguousarray(chip, dtype=np.uint8),
            eye_aspect_ratio(points),
            yaw_ratio(points),
        )

    def describe_chips(self, chips: list[np.ndarray], mirror: bool = False) -> np.ndarray:
        """Descriptors ``(n, 128)`` of aligned chips; with ``mirror``, averaged with the flip."""
        if not chips:
            return np.zeros((0, 128), np.float32)
        if mirror:  # one network call for the chips and their mirror images
            flipped = [np.ascontiguousarray(chip[:, ::-1]) for chip in chips]
            both = self._describe(list(chips) + flipped)
            n = len(chips)
            averaged: np.ndarray = ((both[:n] + both[n:]) / 2).astype(np.float32)
            return averaged
        return self._describe(list(chips))

    def analyze_arrays(
        self, images: Iterable[np.ndarray], params: DetectParams, describe: int | None = None
    ) -> list[Frame]:
        """Find and align the faces of every RGB image; describe those of at most
        ``describe`` images (all when None), in one network call. A face too small to trust
        has no descriptor. Without ``params.mirror`` each described face keeps its chip, so
        a borderline decision can ask for the mirrored descriptor later.

        ``images`` is read once, in order, and no image is kept after its faces are aligned:
        a generator that decodes each frame when asked holds one decoded frame at a time.

        A burst around a blink needs every frame's faces and eye ratios to see the blink, but
        only a few good frames to know who it is: those with the most faces, eyes the most
        open, faces the largest. The other frames' faces come back ``skipped``.
        """
        found = []
        sizes = []
        for rgb in images:
            boxes = self.detect(rgb, params)
            usable = [box for box in boxes if min(box.width, box.height) >= params.min_face_px]
            found.append((boxes, {box: self.align_face(rgb, box) for box in usable}))
            sizes.append((rgb.shape[1], rgb.shape[0]))
            del rgb  # the next frame is decoded only now
        chosen = set(range(len(found)))
        if describe is not None and describe < len(found):
            ranked = sorted(range(len(found)), key=lambda i: _frame_quality(found[i][1]))
            chosen = set(ranked[-describe:])
        chips = [
            (i, box, chip)
            for i, (_boxes, aligned) in enumerate(found)
            if i in chosen
            for box, (chip, _ear, _yaw) in aligned.items()
        ]
        vectors = self.describe_chips([chip for _, _, chip in chips], params.mirror)
        vector_of = {(i, box): vectors[n] for n, (i, box, _chip) in enumerate(chips)}
        frames = []
        for i, ((width, height), (boxes, aligned)) in enumerate(zip(sizes, found, strict=True)):
            faces = []
            for box in boxes:
                face = aligned.get(box)
                if face is None:  # too small to align
                    faces.append(Face(box))
                    continue
                keep_chip = i in chosen and not params.mirror
                faces.append(
                    Face(
                        box,
                        vector_of.get((i, box)),
                        face.chip if keep_chip else None,
                        face.ear,
                        skipped=i not in chosen,
                        sharpness=chip_sharpness(face.chip),
                        yaw=face.yaw,
                    )
                )
            frames.append(Frame(width=width, height=height, faces=tuple(faces)))
        return frames


def _frame_quality(aligned: dict[Box, Aligned]) -> tuple[int, float, int]:
    """How good a frame is to name its faces: more usable faces, then eyes more open (the
    least open of its faces), then larger faces."""
    if not aligned:
        return (0, 0.0, 0)
    ears = [face.ear for face in aligned.values()]
    return (len(aligned), min(ears), max(box.width * box.height for box in aligned))
