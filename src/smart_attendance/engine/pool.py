"""``WorkerPool``: the production ``Analyzer``, face engines in worker processes.

dlib holds the GIL, so the work needs processes. Each worker has its own pipe; the calling
thread borrows idle workers, sends a typed call (``AnalyzeBurst``, ``AnalyzePhoto``,
``DescribeMirrored``, ``Ping``), and reads the answer itself: no queue threads between a
request and its worker. Workers decode the uploaded bytes too, a burst's frames one at a time,
each shrunk to at most ``WORK_MAX_SIDE`` pixels as it is decoded. A worker that dies is replaced
and its call fails with ``WorkerCrashedError``; a call that takes longer than the pool's
``timeout_s`` kills its worker (replaced) and fails with ``WorkerTimeoutError``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..errors import WorkerCrashedError, WorkerTimeoutError
from ..models import DetectParams, Frame
from . import imaging
from .dlib_engine import FaceEngine
from .model_files import models_dir, prepare_embedder

log = logging.getLogger(__name__)

Tag = TypeVar("Tag")

# A burst's frames are analysed at most this large (longer side, pixels): a full HD camera frame
# is untouched. Detection works on a copy of at most ``ATTENDANCE_DETECT_MAX_SIDE`` (320) or
# twice that, so it finds the same faces; alignment still has several times the 150 px chip.
WORK_MAX_SIDE = 1920


# --- the messages a worker answers ------------------------------------------------------------


@dataclass(frozen=True)
class AnalyzeBurst:
    """Decode and analyse a run of a burst; describe at most ``describe`` frames."""

    images: list[bytes]
    params: DetectParams
    max_pixels: int
    describe: int | None


@dataclass(frozen=True)
class AnalyzePhoto:
    """Decode and analyse one photo, every face described (enrolment, evaluation)."""

    image: bytes
    params: DetectParams
    max_pixels: int


@dataclass(frozen=True)
class DescribeMirrored:
    """Descriptors of the mirror images of aligned chips (the second look)."""

    chips: list[np.ndarray]


@dataclass(frozen=True)
class Ping:
    """Answered once the worker's models are loaded."""


Call = AnalyzeBurst | AnalyzePhoto | DescribeMirrored | Ping


def analyze_burst(engine: FaceEngine, call: AnalyzeBurst) -> list[Frame]:
    """A burst's frames, decoded one at a time as the engine asks for them (a JPEG at a
    reduced scale by its codec), each at most ``WORK_MAX_SIDE``; the faces' boxes and the
    frames' sizes are answered in the images' own pixels."""
    sizes: list[tuple[int, int]] = []

    def frames() -> Iterator[np.ndarray]:
        for data in call.images:
            array, size = imaging.decode_sized(data, call.max_pixels, WORK_MAX_SIDE)
            sizes.append(size)
            yield array

    found = engine.analyze_arrays(frames(), call.params, call.describe)
    return [_at_size(frame, size) for frame, size in zip(found, sizes, strict=True)]


def _at_size(frame: Frame, size: tuple[int, int]) -> Frame:
    """``frame`` (analysed on a shrunk copy) in the pixels of an image of ``size``."""
    width, height = size
    if (frame.width, frame.height) == size:
        return frame
    factor = width / frame.width
    faces = tuple(replace(f, box=f.box.scaled(factor, height, width)) for f in frame.faces)
    return Frame(width=width, height=height, faces=faces)


def answer(engine: FaceEngine, call: Call) -> Any:
    """What a face engine answers to ``call`` (in a worker, or in the calling process)."""
    if isinstance(call, AnalyzeBurst):
        return analyze_burst(engine, call)
    if isinstance(call, AnalyzePhoto):
        return engine.analyze_arrays([imaging.decode(call.image, call.max_pixels)], call.params)[0]
    if isinstance(call, DescribeMirrored):
        return engine.describe_chips([np.ascontiguousarray(c[:, ::-1]) for c in call.chips])
    return True  # Ping


# --- worker processes ---------------------------------------------------------------------------


def _worker_main(conn: Connection, onnx_model: Path | None) -> None:
    """A worker process: load the models, then answer typed calls until ``None``.

    Each answer is ``(True, result)`` or ``(False, exception)``; one call at a time, so the
    pool's connection to a worker never holds more than one answer.
    """
    # One BLAS/OpenMP thread per worker process: the pool itself is the parallelism.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    engine = FaceEngine(onnx_model)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        try:
            reply: tuple[bool, Any] = (True, answer(engine, message))
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
        self.kill(timeout_s)

    def kill(self, timeout_s: float = 5.0) -> None:
        """Stop the process now, whatever it is doing (a stuck call)."""
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout_s)
        self.conn.close()


class WorkerPool:
    """Worker processes, each with its own ``FaceEngine``, that decode and analyse images.

    dlib holds the GIL, so the work needs processes. Each worker has its own pipe; the
    calling thread borrows idle workers, sends, and reads the answers itself: no queue
    threads between a request and its worker (ProcessPoolExecutor's cost about 0.7 ms of
    server CPU a request). A worker that dies is replaced and its call fails with
    ``WorkerCrashedError``. A call that takes longer than ``timeout_s`` (None: no limit)
    fails with ``WorkerTimeoutError``: its worker is killed and replaced, so a request that
    would hold a worker for minutes (huge images, a hung native library) gives it back.
    """

    def __init__(
        self,
        workers: int,
        max_pixels: int,
        embedder: str = "dlib",
        cache_dir: Path | None = None,
        timeout_s: float | None = None,
    ) -> None:
        models_dir()  # fail early, in the parent, with a clear message
        self.embedder = embedder
        self.timeout_s = timeout_s
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

    def _start_worker(self, loaded_first: bool = False) -> None:
        """Start a worker; it takes calls at once, or (``loaded_first``: a replacement) once
        its models are loaded, so that no call's time limit pays for the loading."""
        worker = _Worker(self._context, self._onnx_model)
        with self._lock:
            self._all.append(worker)
        if not loaded_first:
            self._idle.put(worker)
            return
        threading.Thread(
            target=self._enlist_when_loaded, args=(worker,), name="worker-start", daemon=True
        ).start()

    def _enlist_when_loaded(self, worker: _Worker) -> None:
        try:
            worker.conn.send(Ping())
            ok, _value = worker.conn.recv()
        except (EOFError, OSError, ValueError):
            ok = False
        if self._closed:
            return
        if ok:
            self._idle.put(worker)
            return
        log.error("a new recognition worker did not start; trying again")
        time.sleep(1.0)
        self._replace(worker)

    def _acquire(self, block: bool) -> _Worker | None:
        while not self._closed:
            try:
                return self._idle.get(block=block, timeout=0.5 if block else None)
            except queue.Empty:
                if not block:
                    return None
        raise WorkerCrashedError("the recognition workers are shutting down; retry")

    def _replace(self, worker: _Worker, stuck: bool = False) -> None:
        if stuck:
            log.error(
                "a recognition worker call took longer than %g s; stopping it and starting "
                "a new worker (ATTENDANCE_WORKER_TIMEOUT_S)",
                self.timeout_s,
            )
        else:
            log.error("a recognition worker died; starting a new one")
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
        if stuck:
            worker.kill()
        else:
            worker.stop(timeout_s=1.0)
        if not self._closed:
            self._start_worker(loaded_first=True)

    def _deadline(self, call: Call) -> float | None:
        """When ``call``, sent now, is given up (monotonic seconds); None: never (a worker
        loading its models answers ``Ping`` when it is done, however long that takes)."""
        if self.timeout_s is None or isinstance(call, Ping):
            return None
        return time.monotonic() + self.timeout_s

    @staticmethod
    def _left(deadline: float | None) -> float | None:
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def _stream(self, calls: Iterable[tuple[Tag, Call]]) -> Iterator[tuple[Tag, bool, Any]]:
        """Run ``(tag, call)`` pairs on as many idle workers as there are (at least
        one), yielding ``(tag, ok, result or exception)`` as each finishes.

        ``calls`` is read lazily; a worker goes back to the pool after each answer, so a
        long enrolment and live requests share the workers.
        """
        source = iter(calls)
        busy: dict[Connection, tuple[_Worker, Tag, float | None]] = {}  # with its deadline
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
                    busy[worker.conn] = (worker, tag, self._deadline(call))
                if not busy:
                    return
                deadlines = [d for _w, _t, d in busy.values() if d is not None]
                timeout = self._left(min(deadlines)) if deadlines else None
                for conn in wait(list(busy), timeout):
                    worker, tag, _deadline = busy.pop(conn)  # type: ignore[call-overload]
                    ok, value = self._receive(worker)
                    yield tag, ok, value
                now = time.monotonic()
                for conn in [c for c, (_w, _t, d) in busy.items() if d is not None and d <= now]:
                    worker, tag, _deadline = busy.pop(conn)
                    if conn.poll():  # answered at the last moment
                        ok, value = self._receive(worker)
                        yield tag, ok, value
                        continue
                    self._replace(worker, stuck=True)
                    yield tag, False, self._timed_out()
        finally:  # stopped early: collect the answers still due, so no pipe holds a stale one
            for worker, _tag, deadline in busy.values():
                if worker.conn.poll(self._left(deadline)):
                    self._receive(worker)
                else:
                    self._replace(worker, stuck=True)

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

    def _timed_out(self) -> WorkerTimeoutError:
        return WorkerTimeoutError(
            f"recognition took longer than {self.timeout_s:g} s and was stopped "
            "(ATTENDANCE_WORKER_TIMEOUT_S); send fewer or smaller frames, or retry"
        )

    def _call(self, call: Call) -> Any:
        ((_tag, ok, value),) = list(self._stream([(0, call)]))
        if not ok:
            raise value
        return value

    def warm_up(self) -> None:
        """Wait until every worker has loaded its models (they start loading at once)."""
        try:
            list(self._stream((i, Ping()) for i in range(self.workers)))
        except WorkerCrashedError as exc:  # closed meanwhile
            log.debug("worker warm-up stopped: %s", exc)

    def analyze(
        self, images: Sequence[bytes], params: DetectParams, describe: int | None = None
    ) -> list[Frame]:
        """The frames of ``images``, in order; faces of at most ``describe`` of them (all when
        None) described, as ``FaceEngine.analyze_arrays`` chooses.

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
            (r, AnalyzeBurst(list(images[bounds[r] : bounds[r + 1]]), params, self._max_pixels, n))
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

    def describe_mirrored(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """Descriptors of the mirrored chips, ``(n, 128)``."""
        result: np.ndarray = self._call(DescribeMirrored(list(chips)))
        return result

    def analyze_many(
        self, items: Iterable[tuple[Tag, bytes]], params: DetectParams
    ) -> Iterator[tuple[Tag, Frame | Exception]]:
        """Analyse many images in parallel; yields ``(tag, frame or error)`` as each finishes.

        ``items`` is consumed lazily (at most one image per worker in flight).
        """
        calls = ((tag, AnalyzePhoto(data, params, self._max_pixels)) for tag, data in items)
        for tag, _ok, value in self._stream(calls):
            yield tag, value

    def close(self) -> None:
        self._closed = True
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.stop()
