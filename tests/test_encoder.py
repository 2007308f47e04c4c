"""The face engine's plumbing: detection scales, box mapping, frame choice, worker processes.

Unit tests run in process; tests on real faces use one ``FaceEngine`` (dlib in this process),
and the worker pool tests share one module-scoped ``WorkerPool`` of two real processes.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import TEST_DATA, face_bytes, require_faces
from smart_attendance.engine import imaging
from smart_attendance.engine import pool as pool_module
from smart_attendance.engine.dlib_engine import FaceEngine
from smart_attendance.engine.model_files import prepare_embedder
from smart_attendance.engine.pool import WorkerPool, _shares
from smart_attendance.errors import ImageError, WorkerCrashedError
from smart_attendance.models import Box, DetectParams

HUGE_PAGES = "glibc.malloc.hugetlb=1"


def test_box_scaled_maps_and_clamps() -> None:
    box = Box(10, 20, 110, 140)
    assert box.scaled(2.0, 1000, 1000) == Box(20, 40, 220, 280)
    assert box.scaled(0.5, 1000, 1000) == Box(5, 10, 55, 70)
    # A detection reaching past the image edge is clamped to it.
    assert Box(-8, -4, 90, 90).scaled(2.0, 150, 170) == Box(0, 0, 170, 150)


def test_a_burst_is_shared_between_workers_in_proportion() -> None:
    assert _shares(4, [12, 13]) == [2, 2] and _shares(2, [1, 1, 1]) == [1, 1, 0]
    assert _shares(2, [2, 3]) == [1, 1] and _shares(None, [3]) == [None]
    assert _shares(9, [2, 3]) == [None, None]


def test_workers_are_started_with_huge_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    pool_module._huge_pages_for_children()
    assert os.environ["GLIBC_TUNABLES"] == HUGE_PAGES
    # Other tunables are kept; an administrator's own hugetlb choice wins.
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    pool_module._huge_pages_for_children()
    assert os.environ["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:" + HUGE_PAGES
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=0")
    pool_module._huge_pages_for_children()
    assert os.environ["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=0"


# --- one face engine in this process -----------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    require_faces()
    return FaceEngine(prepare_embedder("onnx", TEST_DATA / "models"))


@pytest.mark.real
def test_detection_on_a_downscaled_copy_reports_original_pixels(engine: FaceEngine) -> None:
    rgb = imaging.decode(face_bytes("knn/obama/1.jpg"), 10**8)
    height, width = rgb.shape[:2]
    assert max(height, width) > 320  # so the 320 px search really works on a smaller copy
    (small,) = engine.detect(rgb, DetectParams(max_side=320))
    (full,) = engine.detect(rgb, DetectParams(max_side=0))
    assert small.iou(full) > 0.6, (small, full)
    assert 0 <= small.left < small.right <= width and 0 <= small.top < small.bottom <= height
    # A greyscale array is accepted as it is (the camera client passes one).
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    assert engine.detect(grey, DetectParams(max_side=320)) == [small]


@pytest.mark.real
def test_a_small_face_is_found_by_the_second_search(engine: FaceEngine) -> None:
    # A 250 px LFW face pasted small into a large empty frame: too small for the HOG window at
    # the first (downscaled) search, found by the second at twice the scale.
    face = imaging.decode(face_bytes("lfw/colin_powell/1.jpg"), 10**8)
    canvas = np.full((960, 1280, 3), 128, np.uint8)
    canvas[300 : 300 + face.shape[0], 500 : 500 + face.shape[1]] = face
    params = DetectParams(max_side=320)
    assert engine._detect_at(cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY), 0.25, 0) == []
    (box,) = engine.detect(canvas, params)
    assert box.left >= 500 and box.right <= 500 + face.shape[1]


@pytest.mark.real
def test_frame_quality_prefers_more_faces(engine: FaceEngine) -> None:
    group = imaging.decode(face_bytes("knn/_group/1.jpg"), 10**8)
    single = imaging.decode(face_bytes("knn/obama/1.jpg"), 10**8)
    frames = engine.analyze_arrays([single, group, single], DetectParams(), 1)
    assert [len(f.faces) for f in frames] == [1, 2, 1]
    described = [i for i, f in enumerate(frames) if all(x.descriptor is not None for x in f.faces)]
    assert described == [1]


# --- one pool of real worker processes, shared by the module ------------------------------------


@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    require_faces()
    with pytest.MonkeyPatch.context() as env:
        env.delenv("GLIBC_TUNABLES", raising=False)  # the pool sets it for its workers
        workers = WorkerPool(2, 10**8, "onnx", TEST_DATA / "models")
        try:
            workers.warm_up()
            yield workers
        finally:
            processes = [worker.process for worker in workers._all]
            workers.close()
    assert not any(process.is_alive() for process in processes)


def _environ(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


@pytest.mark.real
def test_worker_processes_see_the_tunable(pool: WorkerPool) -> None:
    pids = [worker.process.pid for worker in pool._all]
    assert len(pids) == 2
    for pid in pids:
        assert b"GLIBC_TUNABLES=" + HUGE_PAGES.encode() in _environ(pid)


@pytest.mark.real
def test_a_burst_keeps_its_order_and_a_bad_image_fails_alone(pool: WorkerPool) -> None:
    group, single = face_bytes("knn/_group/1.jpg"), face_bytes("knn/obama/1.jpg")
    frames = pool.analyze([group, single, group], DetectParams())
    assert [len(f.faces) for f in frames] == [2, 1, 2]
    with pytest.raises(ImageError):
        pool.analyze([single, b"not an image", single], DetectParams())
    # No answer of the failed burst is left behind in a worker's pipe.
    for _ in range(3):
        assert [len(f.faces) for f in pool.analyze([single, group], DetectParams())] == [1, 2]


@pytest.mark.real
def test_a_burst_describes_only_its_best_frames(pool: WorkerPool) -> None:
    no_face, single = face_bytes("misc/_noface/1.jpg"), face_bytes("knn/obama/1.jpg")
    group = face_bytes("knn/_group/1.jpg")
    burst = [no_face, single, group, single, no_face]
    frames = pool.analyze(burst, DetectParams(), describe=2)
    assert [len(f.faces) for f in frames] == [0, 1, 2, 1, 0]  # every frame searched, in order
    described = [i for i, f in enumerate(frames) if any(x.descriptor is not None for x in f.faces)]
    # One per worker's half of the burst: the group photo (most faces) in its half, the
    # single face in the other; faces of other frames are aligned (eye ratio) but skipped.
    assert 2 in described and len(described) == 2
    for i, frame in enumerate(frames):
        for face in frame.faces:
            assert face.ear is not None
            assert face.skipped == (i not in described)
            assert (face.chip is not None) == (i in described)
    everything = pool.analyze(burst, DetectParams())
    assert all(x.descriptor is not None for f in everything for x in f.faces)


@pytest.mark.real
def test_a_dead_worker_is_replaced(pool: WorkerPool) -> None:
    single = face_bytes("knn/obama/1.jpg")
    victim, survivor = pool._all
    os.kill(victim.process.pid, signal.SIGKILL)
    victim.process.join(5)
    with pytest.raises(WorkerCrashedError):
        pool.analyze([single, single], DetectParams())  # one run for each worker
    assert len(pool._all) == 2 and survivor in pool._all and victim not in pool._all
    (replacement,) = [worker for worker in pool._all if worker is not survivor]
    assert replacement.process.pid != victim.process.pid
    # The replacement works (and, started by the pool, has the tunable too).
    frames = pool.analyze([single, single], DetectParams())
    assert all(len(f.faces) == 1 and f.faces[0].descriptor is not None for f in frames)
    assert b"GLIBC_TUNABLES=" + HUGE_PAGES.encode() in _environ(replacement.process.pid)
