"""Hostile and broken uploads get a 4xx JSON answer; the server stays up and keeps working."""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable

import numpy as np
import pytest
import requests
from PIL import Image

from conftest import API_KEY, PROBES, ServerProcess, face_bytes


def _jpeg_to(mode_fn: Callable[[Image.Image], Image.Image], fmt: str, **save: object) -> bytes:
    image = Image.open(io.BytesIO(face_bytes(PROBES["george_w_bush"])))
    out = io.BytesIO()
    mode_fn(image).save(out, format=fmt, **save)
    return out.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    row = b"\x00" + b"\x00" * width
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(64)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (64, 64)).save(out, format="GIF")
    return out.getvalue()


def _sixteen_bit_png() -> bytes:
    image = Image.open(io.BytesIO(face_bytes(PROBES["george_w_bush"]))).convert("L")
    wide = np.asarray(image).astype(np.uint16) * 257
    out = io.BytesIO()
    Image.fromarray(wide).save(out, format="PNG")
    return out.getvalue()


REFUSED = {
    "empty": (lambda: b"", 400, "bad_image"),
    "truncated jpeg": (lambda: face_bytes(PROBES["george_w_bush"])[:3000], 400, "bad_image"),
    "text": (lambda: b"hello, this is not an image\n" * 10, 415, "unsupported_image"),
    "svg": (
        lambda: (
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
            b'<rect width="10" height="10"/></svg>'
        ),
        415,
        "unsupported_image",
    ),
    "pdf": (lambda: b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", 415, "unsupported_image"),
    "gif": (_gif, 415, "unsupported_image"),
    "bomb over the limit": (lambda: _png_header_only(10_000, 10_000), 413, "too_large"),
    "bomb over Pillow's limit": (lambda: _png_header_only(20_000, 20_000), 413, "too_large"),
    "random bytes": (lambda: np.random.default_rng(1).bytes(5000), 415, "unsupported_image"),
    "jpeg header then garbage": (
        lambda: face_bytes(PROBES["george_w_bush"])[:200] + b"\x00" * 4000,
        400,
        "bad_image",
    ),
}


@pytest.mark.parametrize("label", sorted(REFUSED))
def test_bad_image_gets_a_clear_4xx(server: ServerProcess, label: str) -> None:
    make, code, status = REFUSED[label]
    response = server.recognize(make())
    assert response.status_code == code, response.text
    body = response.json()
    assert body["status"] == status
    assert body["error"] and "Traceback" not in body["error"]


@pytest.mark.parametrize("label", ["alpha png", "cmyk jpeg", "palette png", "webp"])
def test_unusual_but_valid_images_are_recognised(server: ServerProcess, label: str) -> None:
    payload = {
        "alpha png": lambda: _jpeg_to(lambda im: im.convert("RGBA"), "PNG"),
        "cmyk jpeg": lambda: _jpeg_to(lambda im: im.convert("CMYK"), "JPEG", quality=95),
        "palette png": lambda: _jpeg_to(
            lambda im: im.convert("P", palette=Image.ADAPTIVE, colors=256), "PNG"
        ),
        "webp": lambda: _jpeg_to(lambda im: im, "WEBP", quality=95),
    }[label]()
    response = server.recognize(payload)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "george_w_bush"


def test_sixteen_bit_png_is_decoded_not_refused(server: ServerProcess) -> None:
    response = server.recognize(_sixteen_bit_png())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] in {"success", "unknown"}
    assert len(body["faces"]) == 1  # the face is found in the rescaled 16-bit image


def test_oversized_upload_gets_413(server: ServerProcess) -> None:
    big = b"\xff\xd8" + b"\x00" * (11 * 1024 * 1024)
    response = server.recognize(big)
    assert response.status_code == 413
    assert response.json()["status"] == "too_large"
    huge = server.recognize(b"\x00" * (40 * 1024 * 1024))  # refused before it is read
    assert huge.status_code == 413


def _post(server: ServerProcess, **kwargs: object) -> requests.Response:
    headers = {"X-API-KEY": API_KEY, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return requests.post(server.url + "/recognize", headers=headers, timeout=30, **kwargs)


def test_missing_misnamed_and_broken_fields(server: ServerProcess) -> None:
    missing = _post(server, data={"camera": "x"})
    assert missing.status_code == 400
    assert "image" in missing.json()["error"]
    misnamed = _post(server, files={"file": face_bytes(PROBES["george_w_bush"])})
    assert misnamed.status_code == 400
    assert "file" in misnamed.json()["error"]
    broken = _post(
        server,
        data=b'--xyz\r\nContent-Disposition: form-data; name="image"\r\n',
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert broken.status_code == 400
    assert broken.json()["status"] == "bad_request"
    no_boundary = _post(server, data=b"abc", headers={"Content-Type": "multipart/form-data"})
    assert no_boundary.status_code == 400
    bad_camera = server.recognize(face_bytes(PROBES["george_w_bush"]), camera="../../etc")
    assert bad_camera.status_code == 400
    assert bad_camera.json()["status"] == "bad_request"


def test_unknown_route_and_method_are_json(server: ServerProcess) -> None:
    assert server.get("/nope").json()["status"] == "not_found"
    response = server.get("/recognize")
    assert response.status_code == 405
    assert response.json()["status"] == "method_not_allowed"


def test_server_survives_and_still_recognises(server: ServerProcess) -> None:
    for make, _code, _status in REFUSED.values():
        server.recognize(make())
    assert server.get("/health", key=None).status_code == 200
    body = server.recognize(face_bytes(PROBES["george_w_bush"])).json()
    assert body["name"] == "george_w_bush"
