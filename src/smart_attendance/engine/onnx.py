"""dlib's face descriptor network, read from its own file and rebuilt as an ONNX graph.

dlib's ``dlib_face_recognition_resnet_model_v1.dat`` is a serialized ``loss_metric`` network:
a 7x7/2 stem convolution, max pooling, 14 residual blocks (29 convolutions in all, each followed
by an affine layer, the inference form of batch norm), global average pooling and a 256->128
fully connected layer without bias. This module parses that file (dlib's serialization: compact
integers, floats as mantissa/exponent, tensors as raw little-endian float32) and emits an
equivalent ONNX graph for ONNX Runtime, with:

* the input normalisation ``(pixel - channel mean) / 256`` folded into the stem convolution
  (exact: the stem has no padding), so the graph takes raw 0-255 RGB chips, NCHW float32;
* every affine layer folded into the convolution before it;
* dlib's residual additions, including the down-sampling blocks whose skip path is a 2x2
  average pool and whose sum zero-pads the smaller tensor (channels and rows/columns) to the
  larger one, as dlib's ``add_prev`` does.

The graph is built from the installed model file on first use and cached, keyed by the file's
hash, in ``DATA_DIR/models`` (``attendance models build`` does it ahead of time). No converted
weights are shipped and nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DlibFormatError, ModelFilesError

CONVERTER_VERSION = 1
CHIP = 150
_NAME = re.compile(
    rb"\x01([\x04-\x20])(con_4|affine_|relu_|add_prev_|avg_pool_2|max_pool_2|fc_2|"
    rb"input_rgb_image_sized|loss_metric_2)"
)


class _Reader:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def int(self) -> int:
        head = self.data[self.pos]
        size = head & 0x0F
        if size > 8:
            raise DlibFormatError(f"bad integer encoding at byte {self.pos}")
        value = int.from_bytes(self.data[self.pos + 1 : self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if head & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        return float(mantissa) * 2.0**exponent

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"unknown tensor version {version} at byte {self.pos}")
        dims = [self.int() for _ in range(4)]
        count = int(np.prod(dims))
        end = self.pos + 4 * count
        if end > len(self.data):
            raise DlibFormatError("the model file is truncated")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos)
        self.pos = end
        return values.astype(np.float32).reshape(dims)


@dataclass
class Layer:
    kind: str
    params: np.ndarray | None = None
    ints: list[int] = field(default_factory=list)


@dataclass
class DlibNet:
    means: tuple[float, float, float]
    layers: list[Layer]


def read_dlib_resnet(path: Path) -> DlibNet:
    """Parse the computational layers, bottom (input) to top, with their parameters."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFilesError(f"cannot read {path}: {exc.strerror}") from None
    means: tuple[float, float, float] | None = None
    layers: list[Layer] = []
    for match in _NAME.finditer(data):
        length, name = match.group(1)[0], match.group(2)
        if length != len(name):
            continue
        reader = _Reader(data, match.end())
        kind = name.decode()
        if kind == "input_rgb_image_sized":
            means = (reader.float(), reader.float(), reader.float())
            size = (reader.int(), reader.int())
            if size != (CHIP, CHIP):
                raise DlibFormatError(f"expected a {CHIP}x{CHIP} input, found {size}")
        elif kind == "con_4":
            params = reader.tensor().reshape(-1)
            # num_filters, rows, cols, stride_y, stride_x, padding_y, padding_x
            layers.append(Layer("con", params, [reader.int() for _ in range(7)]))
        elif kind == "affine_":
            layers.append(Layer("affine", reader.tensor().reshape(-1)))
        elif kind in {"max_pool_2", "avg_pool_2"}:
            # rows, cols, stride_y, stride_x, padding_y, padding_x
            layers.append(Layer(kind[:-2], None, [reader.int() for _ in range(6)]))
        elif kind == "fc_2":
            outputs, inputs = reader.int(), reader.int()
            params = reader.tensor().reshape(-1)
            if params.size != inputs * outputs:
                raise DlibFormatError("fc layer with a bias is not supported")
            layers.append(Layer("fc", params.reshape(inputs, outputs), [outputs, inputs]))
        elif kind in {"relu_", "add_prev_"}:
            layers.append(Layer(kind[:-1]))
    if means is None or not layers:
        raise DlibFormatError(f"{path.name} is not a dlib face recognition network")
    return DlibNet(means, layers)


# --- ONNX graph --------------------------------------------------------------------------------


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, array: np.ndarray, prefix: str = "w") -> str:
        from onnx import numpy_helper

        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        from onnx import helper

        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out


@dataclass
class _Tensor:
    name: str
    channels: int
    size: int  # square feature maps


def _conv(
    g: _Graph,
    x: _Tensor,
    conv: Layer,
    affine: Layer,
    means: tuple[float, float, float] | None = None,
) -> _Tensor:
    filters, rows, cols, stride_y, stride_x, pad_y, pad_x = conv.ints
    assert conv.params is not None and affine.params is not None
    per_filter = (conv.params.size - filters) // filters
    in_channels = per_filter // (rows * cols)
    weights = conv.params[: filters * per_filter].reshape(filters, in_channels, rows, cols)
    bias = conv.params[filters * per_filter :].astype(np.float64)
    gamma = affine.params[:filters].astype(np.float64)
    beta = affine.params[filters:].astype(np.float64)
    w = weights.astype(np.float64)
    if means is not None:  # fold (pixel - mean) / 256 into the stem (it has no padding)
        if pad_y or pad_x:
            raise DlibFormatError("cannot fold the input normalisation into a padded stem")
        mean = np.asarray(means, np.float64).reshape(1, 3, 1, 1)
        bias = bias - (w / 256.0 * mean).sum(axis=(1, 2, 3))
        w = w / 256.0
    w = w * gamma.reshape(-1, 1, 1, 1)
    b = bias * gamma + beta
    out = g.node(
        "Conv",
        [x.name, g.const(w.astype(np.float32)), g.const(b.astype(np.float32))],
        kernel_shape=[rows, cols],
        strides=[stride_y, stride_x],
        pads=[pad_y, pad_x, pad_y, pad_x],
    )
    size = (x.size + 2 * pad_y - rows) // stride_y + 1
    return _Tensor(out, filters, size)


def _pad_to(g: _Graph, x: _Tensor, channels: int, size: int) -> _Tensor:
    extra_c, extra_s = channels - x.channels, size - x.size
    if extra_c == 0 and extra_s == 0:
        return x
    pads = np.array([0, 0, 0, 0, 0, extra_c, extra_s, extra_s], np.int64)
    out = g.node("Pad", [x.name, g.const(pads, "pads")], mode="constant")
    return _Tensor(out, channels, size)


def build_onnx(net: DlibNet) -> Any:
    """The ONNX ModelProto of ``net``: input ``chips`` (N,3,150,150) 0-255 RGB float32."""
    from onnx import TensorProto, checker, helper

    g = _Graph()
    layers = list(net.layers)
    pos = 0

    def take(*kinds: str) -> list[Layer]:
        nonlocal pos
        got = layers[pos : pos + len(kinds)]
        if [layer.kind for layer in got] != list(kinds):
            raise DlibFormatError(
                f"unexpected layer sequence at layer {pos}: {[la.kind for la in got]}"
            )
        pos += len(kinds)
        return got

    x = _Tensor("chips", 3, CHIP)
    con, aff, _relu, pool = take("con", "affine", "relu", "max_pool")
    x = _conv(g, x, con, aff, net.means)
    x = _Tensor(g.node("Relu", [x.name]), x.channels, x.size)
    rows, cols, sy, sx, py, px = pool.ints
    x = _Tensor(
        g.node(
            "MaxPool", [x.name], kernel_shape=[rows, cols], strides=[sy, sx], pads=[py, px, py, px]
        ),
        x.channels,
        (x.size + 2 * py - rows) // sy + 1,
    )
    while layers[pos].kind == "con":
        block_input = x
        con1, aff1, _r, con2, aff2 = take("con", "affine", "relu", "con", "affine")
        y = _conv(g, x, con1, aff1)
        y = _Tensor(g.node("Relu", [y.name]), y.channels, y.size)
        y = _conv(g, y, con2, aff2)
        if layers[pos].kind == "avg_pool":
            (pool,) = take("avg_pool")
            rows, cols, sy, sx, py, px = pool.ints
            skip = _Tensor(
                g.node(
                    "AveragePool",
                    [block_input.name],
                    kernel_shape=[rows, cols],
                    strides=[sy, sx],
                    pads=[py, px, py, px],
                ),
                block_input.channels,
                (block_input.size + 2 * py - rows) // sy + 1,
            )
        else:
            skip = block_input
        take("add_prev", "relu")
        channels, size = max(skip.channels, y.channels), max(skip.size, y.size)
        skip, y = _pad_to(g, skip, channels, size), _pad_to(g, y, channels, size)
        summed = g.node("Add", [skip.name, y.name])
        x = _Tensor(g.node("Relu", [summed]), channels, size)
    pool, fc = take("avg_pool", "fc")
    if pool.ints[:2] != [0, 0] or pos != len(layers):
        raise DlibFormatError("expected global average pooling and one fc layer at the top")
    pooled = g.node("GlobalAveragePool", [x.name])
    flat = g.node("Flatten", [pooled], axis=1)
    assert fc.params is not None
    out = g.node("MatMul", [flat, g.const(fc.params.astype(np.float32))])
    g.nodes[-1].output[0] = "descriptors"
    del out
    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chips", TensorProto.FLOAT, ["n", 3, CHIP, CHIP])],
        [helper.make_tensor_value_info("descriptors", TensorProto.FLOAT, ["n", 128])],
        g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="smart-attendance"
    )
    model.ir_version = 8
    checker.check_model(model)
    return model


def file_hash(path: Path) -> str:
    """SHA-256 of a file, computed once per process for a given size and modification time."""
    stat = path.stat()
    return _file_hash(str(path), stat.st_size, stat.st_mtime_ns)


@cache
def _file_hash(path: str, _size: int, _mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def onnx_model_path(cache_dir: Path, dat_path: Path) -> Path:
    return cache_dir / f"face_resnet-{file_hash(dat_path)[:16]}-c{CONVERTER_VERSION}.onnx"


def ensure_onnx_model(cache_dir: Path, dat_path: Path) -> Path:
    """The cached ONNX file for ``dat_path``, converted now if missing (atomic write)."""
    target = onnx_model_path(cache_dir, dat_path)
    if target.is_file():
        return target
    model = build_onnx(read_dlib_resnet(dat_path))
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".face_resnet.", dir=cache_dir)
        with os.fdopen(fd, "wb") as handle:
            handle.write(model.SerializeToString())
        os.replace(tmp, target)
    except OSError as exc:
        raise ModelFilesError(
            f"cannot write the ONNX model to {cache_dir}: {exc.strerror}"
        ) from None
    return target


class OnnxEmbedder:
    """Descriptors of aligned 150x150 RGB chips with ONNX Runtime (one thread by default)."""

    def __init__(self, model: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self._buffer = np.empty((8, 3, CHIP, CHIP), np.float32)

    def __call__(self, chips: list[np.ndarray]) -> np.ndarray:
        n = len(chips)
        if n == 0:
            return np.zeros((0, 128), np.float32)
        if n > len(self._buffer):
            self._buffer = np.empty((n, 3, CHIP, CHIP), np.float32)
        batch = self._buffer[:n]
        for i, chip in enumerate(chips):
            batch[i] = np.transpose(chip, (2, 0, 1))
        out = self.session.run(["descriptors"], {"chips": batch})[0]
        return np.asarray(out, np.float32)
