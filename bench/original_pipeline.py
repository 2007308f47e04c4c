"""The original project's recognition pipeline, rebuilt for a fair comparison (bench only).

What SJ-006/Smart-Attendance-System does per request, through `face_recognition`: decode the
upload, run dlib's HOG detector on the full frame with one upsampling step, 5-point landmarks,
the ResNet descriptor (``face_encodings``), then compare with every known descriptor in a
linear scan at tolerance 0.6 and take the nearest.

Two ways to serve it: with worker processes (``workers`` > 0) it runs in the same HTTP server
with the same number of worker processes as ours, so only the pipeline differs; with 0 it
runs as the original project serves it, in the Flask development server's one process
(``app.run()``, threaded), where dlib's calls share one interpreter.
"""

from __future__ import annotations

import io
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from flask import Flask, jsonify, request
from PIL import Image

from smart_attendance.engine.model_files import RESNET, SHAPE_5, model_path

_models: Any = None


def _init() -> None:
    global _models
    import dlib

    _models = (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(model_path(SHAPE_5))),
        dlib.face_recognition_model_v1(str(model_path(RESNET))),
    )


def _encodings(data: bytes) -> list[np.ndarray]:
    detector, shape, net = _models
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    boxes = detector(rgb, 1)  # face_recognition's default: upsample once, full frame
    return [np.asarray(net.compute_face_descriptor(rgb, shape(rgb, box), 1)) for box in boxes]


def create_original_app(dataset: Path, workers: int) -> Flask:
    pool: ProcessPoolExecutor | None = None
    if workers > 0:
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init)
    else:
        _init()

    def encodings_of(data: bytes) -> list[np.ndarray]:
        return pool.submit(_encodings, data).result() if pool else _encodings(data)

    known: list[np.ndarray] = []
    names: list[str] = []
    photos = sorted(p for p in dataset.glob("*/*") if p.suffix.lower() in {".jpg", ".png"})
    datas = [p.read_bytes() for p in photos]
    found_all = list(pool.map(_encodings, datas)) if pool else [_encodings(d) for d in datas]
    for path, found in zip(photos, found_all, strict=True):
        if found:
            known.append(found[0])
            names.append(path.parent.name)
    app = Flask(__name__)

    @app.post("/recognize")
    def recognize() -> Any:
        encodings = encodings_of(request.files["image"].read())
        if not encodings:
            return jsonify({"status": "unknown"})
        distances = [float(np.linalg.norm(k - encodings[0])) for k in known]  # linear scan
        if distances and min(distances) <= 0.6:
            return jsonify({"status": "success", "name": names[int(np.argmin(distances))]})
        return jsonify({"status": "unknown"})

    @app.get("/health")
    def health() -> Any:  # the counts a benchmark checks before it starts (as ours reports)
        return jsonify({"status": "ok", "students": len(set(names)), "photos": len(known)})

    return app


if __name__ == "__main__":
    import sys

    from waitress import serve

    dataset_dir, port, worker_count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    app = create_original_app(dataset_dir, worker_count)
    if worker_count > 0:
        serve(app, host="127.0.0.1", port=port, threads=8, _quiet=True)
    else:
        app.run(host="127.0.0.1", port=port, threaded=True)  # as the original project does
