"""Descriptor network alone: dlib vs ONNX Runtime, one thread, per face; GFLOP/s vs the machine.

The network's work is counted from the layers read out of dlib's model file. The machine's
practical single-core peak is measured as a large float32 matrix product (OpenBLAS, one thread).
The timed work is checked: ONNX Runtime's descriptors of the 8 face chips (150x150, aligned from
the first 8 frames of ../shared/bench/frames, detected at 320 px) must equal dlib's within
1e-4 per component, or the benchmark stops.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_descriptor.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import tempfile
import time
from pathlib import Path

import numpy as np

from common import FRAMES, WrongAnswer, machine, require, run, table
from smart_attendance.engine import imaging
from smart_attendance.engine.dlib_engine import FaceEngine
from smart_attendance.engine.model_files import RESNET, model_path
from smart_attendance.engine.onnx import OnnxEmbedder, ensure_onnx_model
from smart_attendance.models import DetectParams


def network_gflop(model: Path) -> float:
    """Multiply-adds x2 of one forward pass, from the ONNX graph's shapes."""
    import onnx
    from onnx import shape_inference

    proto = onnx.load(str(model))
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    inferred = shape_inference.infer_shapes(proto)
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in list(inferred.graph.value_info) + list(inferred.graph.output)
    }
    weights = {init.name: list(init.dims) for init in proto.graph.initializer}
    macs = 0
    for node in proto.graph.node:
        if node.op_type == "Conv":
            w, out = weights[node.input[1]], shapes[node.output[0]]
            macs += out[2] * out[3] * w[0] * w[1] * w[2] * w[3]
        elif node.op_type == "MatMul":
            w = weights[node.input[1]]
            macs += w[0] * w[1]
    return 2 * macs / 1e9


def peak_gflops(tmp: Path) -> float:
    """The machine's practical single-thread peak: a 1024^3 float32 MatMul on ONNX Runtime."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    n = 1024
    b = numpy_helper.from_array(np.random.default_rng(0).random((n, n), np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "mm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
        [b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp / "matmul.onnx"
    path.write_bytes(model.SerializeToString())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    a = np.random.default_rng(1).random((n, n), np.float32)
    ms = timed(lambda: session.run(None, {"a": a}), 30)
    return 2 * n**3 / (ms / 1000) / 1e9


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    """Milliseconds of the fastest of ``repeat`` runs: on a shared machine the least disturbed
    run is the one to compare with the peak, measured the same way."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def main() -> None:
    frames = sorted(require(FRAMES).glob("*.jpg"))
    dlib_encoder = FaceEngine(None)
    chips = []
    for path in frames[:8]:
        rgb = imaging.decode(path.read_bytes(), 10**8)
        box = dlib_encoder.detect(rgb, DetectParams())[0]
        chips.append(dlib_encoder.align(rgb, box))
    with tempfile.TemporaryDirectory() as tmp:
        model = ensure_onnx_model(Path(tmp), model_path(RESNET))
        onnx = OnnxEmbedder(model, threads=1)
        gflop = network_gflop(model)
        peak = peak_gflops(Path(tmp))
        reference, ours = dlib_encoder.describe_chips(chips), onnx(chips)
        worst = float(np.abs(reference - ours).max())
        if reference.shape != (len(chips), 128) or worst > 1e-4:
            raise WrongAnswer(f"ONNX descriptors differ from dlib's by {worst:.2g} (over 1e-4)")
        rows = []
        dlib_ms = timed(lambda: dlib_encoder.describe_chips(chips[:1]), 10)
        rows.append(["dlib", "1", f"{dlib_ms:.2f}", f"{gflop / dlib_ms * 1000:.1f}"])
        for batch in (1, 2, 8):
            ms = timed(lambda b=batch: onnx(chips[:b]), 40) / batch
            rows.append(["onnx", str(batch), f"{ms:.2f}", f"{gflop / ms * 1000:.1f}"])
    print(
        f"Descriptor network on {len(chips)} aligned 150x150 face chips (no detection), one "
        f"thread, fastest of repeated runs; ONNX equal to dlib within {worst:.1g}"
    )
    print(f"Machine: {machine()}")
    print(
        f"network: {gflop:.3f} GFLOP per face; machine peak (1024^3 MatMul, ONNX Runtime, "
        f"one thread): {peak:.1f} GFLOP/s"
    )
    for row in rows:
        row.append(f"{float(row[3]) / peak:.0%}")
    print(table(["backend", "batch", "ms per face", "GFLOP/s", "of peak"], rows))


if __name__ == "__main__":
    run(main)
