"""Face detection, landmark alignment and 128-d descriptors with dlib (the only dlib importer).

``Encoder`` works in the calling process; ``EncoderPool`` runs encoders in worker processes
(dlib holds the GIL, so threads would not use a second core) and decodes the uploaded bytes
there too. Model files come from the ``face-recognition-models`` package, located with
``importlib`` without importing that package (its ``__init__`` imports ``pkg_resources``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import multiprocessing
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from . import imaging
from .errors import ModelFilesError, WorkerCrashedError
from .liveness import eye_aspect_ratio
from .models import Box, Face, Frame

SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"
CHIP_SIZE = 150
CHIP_PADDING = 0.25
# Bump when detection or alignment changes in a way that changes descriptors: cached
# descriptors are keyed by it and recomputed.
PIPELINE_VERSION = 6

log = logging.getLogger(__name__)


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
    from .dlib_onnx import file_hash

    return file_hash(model_path(RESNET))[:16]


@dataclass(frozen=True)
class DetectParams:
    """How to look for faces and describe them.

    ``max_side`` 0 means the full image; ``upsample`` is dlib's. ``mirror`` averages each
    descriptor with the one of the mirrored face (steadier, twice the network time).
    """

    max_side: int = 320
    upsample: int = 0
    min_face_px: int = 60
    # Photos smaller than this (long side) are scaled up (at most 2x) before detection, so
    # small enrolment photos (150-250 px) still have faces the 80 px HOG window can find.
    min_side: int = 0
    mirror: bool = False

    def key(self) -> str:
        flags = "-mirror" if self.mirror else ""
        return (
            f"v{PIPELINE_VERSION}-s{self.max_side}-u{self.upsample}-m{self.min_face_px}"
            f"-n{self.min_side}{flags}"
        )


# Enrolment photos: large phone photos scaled to 1024 px, small crops up to 640 px; mirrored.
ENROL_PARAMS = DetectParams(max_side=640, upsample=0, min_face_px=60, min_side=640, mirror=True)


EMBEDDERS = ("onnx", "dlib")


def prepare_embedder(embedder: str, cache_dir: Path) -> Path | None:
    """Make what ``embedder`` needs before workers start: the ONNX model file (or None)."""
    if embedder not in EMBEDDERS:
        raise ModelFilesError(f"unknown embedder {embedder!r} (use onnx or dlib)")
    if embedder == "dlib":
        return None
    from .dlib_onnx import ensure_onnx_model

    return ensure_onnx_model(cache_dir, model_path(RESNET))


class Encoder:
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
            from .dlib_onnx import OnnxEmbedder

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
        return self.align_with_ear(rgb, box)[0]

    def align_with_ear(self, rgb: np.ndarray, box: Box) -> tuple[np.ndarray, float]:
        """The face chip and the eye aspect ratio, from one landmark pass."""
        dlib = self._dlib
        rect = dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
        shape = self._shape(rgb, rect)
        chip = dlib.get_face_chip(rgb, shape, CHIP_SIZE, CHIP_PADDING)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        return np.ascontiguousarray(chip, dtype=np.uint8), eye_aspect_ratio(points)

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

    def analyze(self, rgb: np.ndarray, params: DetectParams) -> Frame:
        """Every face in the image, each with a descriptor unless it is too small to trust.

        Without ``params.mirror`` each face keeps its chip, so a borderline decision can ask
        for the mirrored descriptor later (``describe_mirrored``).
        """
        return self.analyze_burst([rgb], params)[0]

    def analyze_burst(
        self, images: Sequence[np.ndarray], params: DetectParams, describe: int | None = None
    ) -> list[Frame]:
        """Find and align the faces of every image; describe those of at most ``describe``
        images (all when None), in one network call.

        A burst around a blink needs every frame's faces and eye ratios to see the blink, but
        only a few good frames to know who it is: those with the most faces, eyes the most
        open, faces the largest. The other frames' faces come back ``skipped``.
        """
        found = []
        for rgb in images:
            boxes = self.detect(rgb, params)
            usable = [box for box in boxes if min(box.width, box.height) >= params.min_face_px]
            found.append((boxes, {box: self.align_with_ear(rgb, box) for box in usable}))
        chosen = set(range(len(images)))
        if describe is not None and describe < len(images):
            ranked = sorted(range(len(images)), key=lambda i: _frame_quality(found[i][1]))
            chosen = set(ranked[-describe:])
        chips = [
            (i, box, chip)
            for i, (_boxes, aligned) in enumerate(found)
            if i in chosen
            for box, (chip, _ear) in aligned.items()
        ]
        vectors = self.describe_chips([chip for _, _, chip in chips], params.mirror)
        vector_of = {(i, box): vectors[n] for n, (i, box, _chip) in enumerate(chips)}
        frames = []
        for i, (rgb, (boxes, aligned)) in enumerate(zip(images, found, strict=True)):
            faces = []
            for box in boxes:
                chip, ear = aligned.get(box, (None, None))
                keep_chip = chip is not None and i in chosen and not params.mirror
                faces.append(
                    Face(
                        box,
                        vector_of.get((i, box)),
                        chip if keep_chip else None,
                        ear,
                        skipped=chip is not None and i not in chosen,
                    )
                )
            height, width = rgb.shape[:2]
            frames.append(Frame(width=width, height=height, faces=tuple(faces)))
        return frames


def _frame_quality(aligned: dict[Box, tuple[np.ndarray, float]]) -> tuple[int, float, int]:
    """How good a frame is to name its faces: more usable faces, then eyes more open (the
    least open of its faces), then larger faces."""
    if not aligned:
        return (0, 0.0, 0)
    ears = [ear for _chip, ear in aligned.values()]
    return (len(aligned), min(ears), max(box.width * box.height for box in aligned))


# --- worker processes -------------------------------------------------------------------------

_worker_encoder: Encoder | None = None


def _worker_init(onnx_model: Path | None) -> None:
    global _worker_encoder
    # One BLAS/OpenMP thread per worker process: the pool itself is the parallelism.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _worker_encoder = Encoder(onnx_model)


def _worker_analyze(data: bytes, params: DetectParams, max_pixels: int) -> Frame:
    assert _worker_encoder is not None, "worker not initialised"
    return _worker_encoder.analyze(imaging.decode(data, max_pixels), params)


def _worker_burst(
    images: list[bytes], params: DetectParams, max_pixels: int, describe: int | None
) -> list[Frame]:
    assert _worker_encoder is not None, "worker not initialised"
    decoded = [imaging.decode(data, max_pixels) for data in images]
    return _worker_encoder.analyze_burst(decoded, params, describe)


def _worker_mirrored(chips: list[np.ndarray]) -> np.ndarray:
    assert _worker_encoder is not None, "worker not initialised"
    return _worker_encoder.describe_chips([np.ascontiguousarray(c[:, ::-1]) for c in chips])


def _worker_ping() -> bool:
    return _worker_encoder is not None


_WORKER_CALLS: dict[str, Callable[..., Any]] = {
    "analyze": _worker_analyze,
    "burst": _worker_burst,
    "mirrored": _worker_mirrored,
    "ping": _worker_ping,
}


def _worker_main(conn: Connection, onnx_model: Path | None) -> None:
    """A worker process: load the models, then answer ``(name, args)`` calls until ``None``.

    Each answer is ``(True, result)`` or ``(False, exception)``; one call at a time, so the
    pool's connection to a worker never holds more than one answer.
    """
    _worker_init(onnx_model)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        name, args = message
        try:
            reply: tuple[bool, Any] = (True, _WORKER_CALLS[name](*args))
        except Exception as exc:  # sent back and raised in the server, per image
            reply = (False, exc)
        try:
            conn.send(reply)
        except (OSError, ValueError):  # the pool is gone
            return
        except Exception as exc:  # an answer that cannot be pickled
            conn.send((False, RuntimeError(f"unsendable answer: {type(exc).__name__}")))


def _huge_pages_for_children() -> None:
    """Ask glibc in the worker processes to back their heaps with transparent huge pages.

    The 68-point landmark model (100 MB of regression trees, read at random) and the
    network's weights miss the TLB on most reads with 4 KB pages; with 2 MB pages landmarks
    take 0.5-0.8 ms instead of 0.6-2.3 ms here. Only children started after this call see it;
    a ``glibc.malloc.hugetlb`` the administrator set is kept, and other C libraries ignore it.
    """
    current = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" not in current:
        tunable = "glibc.malloc.hugetlb=1"
        os.environ["GLIBC_TUNABLES"] = f"{current}:{tunable}" if current else tunable


def _shares(describe: int | None, lengths: list[int]) -> list[int | None]:
    """How many frames each run of a burst describes: ``describe`` in all, in proportion to
    the runs' lengths (largest remainders first); None (all) when ``describe`` is None."""
    total = sum(lengths)
    if describe is None or describe >= total:
        return [None] * len(lengths)
    exact = [describe * n / total for n in lengths]
    shares = [int(x) for x in exact]
    by_remainder = sorted(range(len(lengths)), key=lambda r: shares[r] - exact[r])
    for r in by_remainder[: describe - sum(shares)]:
        shares[r] += 1
    return list(shares)


class _Worker:
    """One worker process and the pool's end of its pipe."""

    def __init__(self, context: Any, onnx_model: Path | None) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_worker_main, args=(child, onnx_model), name="recognition-worker", daemon=True
        )
        self.process.start()
        child.close()

    def stop(self, timeout_s: float = 5.0) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.process.join(timeout_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout_s)
        self.conn.close()


class EncoderPool:
    """Worker processes, each with its own ``Encoder``, that decode and analyse images.

    dlib holds the GIL, so the work needs processes. Each worker has its own pipe; the
    calling thread borrows idle workers, sends, and reads the answers itself: no queue
    threads between a request and its worker (ProcessPoolExecutor's cost about 0.7 ms of
    server CPU a request). A worker that dies is replaced and its call fails with
    ``WorkerCrashedError``.
    """

    def __init__(
        self,
        workers: int,
        max_pixels: int,
        embedder: str = "dlib",
        cache_dir: Path | None = None,
    ) -> None:
        models_dir()  # fail early, in the parent, with a clear message
        self.embedder = embedder
        self._onnx_model = prepare_embedder(embedder, cache_dir or Path("data/models"))
        self._max_pixels = max_pixels
        self.workers = max(1, workers)
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._closed = False
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all: list[_Worker] = []
        _huge_pages_for_children()
        for _ in range(self.workers):
            self._start_worker()

    def _start_worker(self) -> None:
        worker = _Worker(self._context, self._onnx_model)
        with self._lock:
            self._all.append(worker)
        self._idle.put(worker)

    def _acquire(self, block: bool) -> _Worker | None:
        while not self._closed:
            try:
                return self._idle.get(block=block, timeout=0.5 if block else None)
            except queue.Empty:
                if not block:
                    return None
        raise WorkerCrashedError("the recognition workers are shutting down; retry")

    def _replace(self, worker: _Worker) -> None:
        log.error("a recognition worker died; starting a new one")
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
        worker.stop(timeout_s=1.0)
        if not self._closed:
            self._start_worker()

    def _stream(
        self, calls: Iterable[tuple[Any, tuple[str, tuple[Any, ...]]]]
    ) -> Iterator[tuple[Any, bool, Any]]:
        """Run ``(tag, (name, args))`` calls on as many idle workers as there are (at least
        one), yielding ``(tag, ok, result or exception)`` as each finishes.

        ``calls`` is read lazily; a worker goes back to the pool after each answer, so a
        long enrolment and live requests share the workers.
        """
        source = iter(calls)
        busy: dict[Connection, tuple[_Worker, Any]] = {}
        exhausted = False
        try:
            while True:
                while not exhausted:
                    worker = self._acquire(block=not busy)
                    if worker is None:
                        break
                    item = next(source, None)
                    if item is None:
                        exhausted = True
                        self._idle.put(worker)
                        break
                    tag, call = item
                    try:
                        worker.conn.send(call)
                    except (OSError, ValueError):
                        self._replace(worker)
                        yield tag, False, self._crashed()
                        continue
                    busy[worker.conn] = (worker, tag)
                if not busy:
                    return
                for conn in wait(list(busy)):
                    worker, tag = busy.pop(conn)  # type: ignore[call-overload]
                    ok, value = self._receive(worker)
                    yield tag, ok, value
        finally:  # stopped early: collect the answers still due, so no pipe holds a stale one
            for worker, _tag in busy.values():
                self._receive(worker)

    def _receive(self, worker: _Worker) -> tuple[bool, Any]:
        try:
            ok, value = worker.conn.recv()
        except (EOFError, OSError):
            self._replace(worker)
            return False, self._crashed()
        self._idle.put(worker)
        return ok, value

    @staticmethod
    def _crashed() -> WorkerCrashedError:
        return WorkerCrashedError("the recognition worker stopped unexpectedly; retry")

    def _call(self, name: str, *args: Any) -> Any:
        ((_tag, ok, value),) = list(self._stream([(0, (name, args))]))
        if not ok:
            raise value
        return value

    def warm_up(self) -> None:
        """Wait until every worker has loaded its models (they start loading at once)."""
        try:
            list(self._stream((i, ("ping", ())) for i in range(self.workers)))
        except WorkerCrashedError as exc:  # closed meanwhile
            log.debug("worker warm-up stopped: %s", exc)

    def analyze(
        self, images: Sequence[bytes], params: DetectParams, describe: int | None = None
    ) -> list[Frame]:
        """The frames of ``images``, in order; faces of at most ``describe`` of them (all when
        None) described, as ``Encoder.analyze_burst`` chooses.

        A burst is cut into one consecutive run of frames per worker, each run analysed
        with one network call for its chosen frames. Raises the first image's error (an
        ``ImageError`` for a refused upload) after every answer is in.
        """
        if not images:
            return []
        runs = min(self.workers, len(images), describe or len(images))
        bounds = [round(len(images) * r / runs) for r in range(runs + 1)]
        lengths = [bounds[r + 1] - bounds[r] for r in range(runs)]
        shares = _shares(describe, lengths)
        calls = [
            (r, ("burst", (list(images[bounds[r] : bounds[r + 1]]), params, self._max_pixels, n)))
            for r, n in enumerate(shares)
        ]
        answers = {tag: (ok, value) for tag, ok, value in self._stream(calls)}
        frames: list[Frame] = []
        for r in range(runs):
            ok, value = answers[r]
            if not ok:
                raise value
            frames.extend(value)
        return frames

    def describe_mirrored(self, chips: list[np.ndarray]) -> np.ndarray:
        """Descriptors of the mirrored chips, ``(n, 128)``."""
        result: np.ndarray = self._call("mirrored", chips)
        return result

    def analyze_many(
        self, items: Iterable[tuple[Any, bytes]], params: DetectParams
    ) -> Iterator[tuple[Any, Frame | Exception]]:
        """Analyse many images in parallel; yields ``(tag, frame or error)`` as each finishes.

        ``items`` is consumed lazily (at most one image per worker in flight).
        """
        calls = ((tag, ("analyze", (data, params, self._max_pixels))) for tag, data in items)
        for tag, _ok, value in self._stream(calls):
            yield tag, value

    def close(self) -> None:
        self._closed = True
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.stop()
