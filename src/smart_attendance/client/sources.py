"""Frame sources: a video file, a stream URL, a webcam index, or a folder of images (OpenCV).

Frames come out as BGR arrays (OpenCV's order), with the source's frame rate.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import SourceError
from ..models import Box

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


def open_frames(source: str, folder_fps: float = 10.0) -> tuple[float, Iterator[np.ndarray]]:
    """``(fps, frames)`` for a video file, URL, webcam index or image folder."""
    import cv2

    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SourceError(f"no images in folder {source}")

        def from_folder() -> Iterator[np.ndarray]:
            for file in files:
                frame = cv2.imread(str(file), cv2.IMREAD_COLOR)
                if frame is not None:
                    yield frame

        return folder_fps, from_folder()
    target: str | int = int(source) if source.isdigit() else source
    if isinstance(target, str) and "://" not in target and not path.is_file():
        raise SourceError(f"video file not found: {source}")
    capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        raise SourceError(f"cannot open video source {source}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0

    def from_capture() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield frame
        finally:
            capture.release()

    return float(fps), from_capture()


def largest_face_ear(
    encoder: object, frame_bgr: np.ndarray, max_side: int = 320
) -> tuple[Box, float] | None:
    """The largest face's box and eye aspect ratio in a BGR frame, or None without a face."""
    import cv2

    from ..engine.dlib_engine import FaceEngine, eye_aspect_ratio
    from ..models import DetectParams

    assert isinstance(encoder, FaceEngine)
    grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
    boxes = encoder.detect(grey, DetectParams(max_side=max_side))
    if not boxes:
        return None
    box = max(boxes, key=lambda b: b.width * b.height)
    return box, eye_aspect_ratio(encoder.landmarks(grey, box))
