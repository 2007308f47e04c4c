"""Hostile and broken uploads get a 4xx JSON answer; the app stays up and keeps working.

In process, on a scripted analyzer that decodes every image nobody scripted with the product's
own ``imaging.decode`` (what the real workers do), so refused uploads get the real errors. The
formats that need real dlib to find a face (alpha, CMYK, palette, WebP, 16-bit) are recognised
end to end in test_server_process.py.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.test import TestResponse, encode_multipart

from conftest import API_KEY, Kit, make_kit
from scripted import ScriptedAnalyzer
from smart_attendance.engine import imaging
from smart_attendance.models import DetectParams, Frame

MONDAY = date(2026, 11, 23)


class DecodingAnalyzer(ScriptedAnalyzer):
    """Scripted faces; any other bytes are decoded in full, as the real workers do."""

    def _frame(self, data: bytes, params: DetectParams, describe: bool) -> Frame:
        if data not in self.script:
            imaging.decode(data, self.max_pixels)
        return super()._frame(data, params, describe)


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Kit]:
    made = make_kit(tmp_path, analyzer=DecodingAnalyzer())
    yield made
    made.services.close()


def _photo() -> bytes:
    """A real 250x250 JPEG, the size of the LFW photos."""
    y, x = np.mgrid[0:250, 0:250]
    noise = np.random.default_rng(7).integers(0, 60, (250, 250, 3))
    pixels = np.stack([x, y, (x + y) // 2], axis=-1) % 200 + noise
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def _convert(change: Callable[[Image.Image], Image.Image], fmt: str, **save: Any) -> bytes:
    out = io.BytesIO()
    change(Image.open(io.BytesIO(_photo()))).save(out, format=fmt, **save)
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
    grey = Image.open(io.BytesIO(_photo())).convert("L")
    out = io.BytesIO()
    Image.fromarray(np.asarray(grey).astype(np.uint16) * 257).save(out, format="PNG")
    return out.getvalue()


REFUSED: dict[str, tuple[Callable[[], bytes], int, str]] = {
    "empty": (lambda: b"", 400, "bad_image"),
    "truncated jpeg": (lambda: _photo()[:3000], 400, "bad_image"),
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
    "jpeg header then garbage": (lambda: _photo()[:200] + b"\x00" * 4000, 400, "bad_image"),
}


def _post(kit: Kit, **kwargs: Any) -> TestResponse:
    return kit.client.post("/recognize", headers={"X-API-KEY": API_KEY}, **kwargs)


@pytest.mark.parametrize("label", sorted(REFUSED))
def test_bad_image_gets_a_clear_4xx(kit: Kit, label: str) -> None:
    make, code, status = REFUSED[label]
    response = kit.recognize(make())
    assert response.status_code == code, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"status", "error"}
    assert body["status"] == status
    assert body["error"] and "Traceback" not in body["error"]


def test_one_bad_frame_refuses_the_whole_burst(kit: Kit) -> None:
    response = kit.recognize(kit.probe("ana_lima"), b"not an image, the second frame")
    assert response.status_code == 415
    assert response.get_json()["status"] == "unsupported_image"
    assert kit.services.store.marks_on(MONDAY) == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: _convert(lambda im: im.convert("RGBA"), "PNG"),
        lambda: _convert(lambda im: im.convert("CMYK"), "JPEG", quality=95),
        lambda: _convert(lambda im: im.convert("P", palette=Image.ADAPTIVE, colors=256), "PNG"),
        lambda: _convert(lambda im: im, "WEBP", quality=95),
        lambda: _convert(lambda im: im, "BMP"),
        _sixteen_bit_png,
    ],
    ids=["alpha png", "cmyk jpeg", "palette png", "webp", "bmp", "16-bit png"],
)
def test_unusual_but_valid_images_are_decoded_not_refused(
    kit: Kit, make: Callable[[], bytes]
) -> None:
    response = kit.recognize(make())
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"status": "unknown", "reason": "no_face", "faces": []}


def _post_large(kit: Kit, payload: bytes) -> TestResponse:
    """One ``image`` part, encoded in memory (the test client's own encoder spools a large body
    to a temporary file it never closes)."""
    boundary, body = encode_multipart({"image": FileStorage(io.BytesIO(payload), "f.jpg")})
    return _post(kit, data=body, content_type=f"multipart/form-data; boundary={boundary}")


def test_oversized_upload_gets_413_json(kit: Kit) -> None:
    big = _post_large(kit, b"\xff\xd8" + b"\x00" * (11 * 1024 * 1024))
    assert big.status_code == 413
    assert big.get_json() == {"status": "too_large", "error": "upload larger than 10 MB"}
    under = _post_large(kit, b"\xff\xd8" + b"\x00" * (9 * 1024 * 1024))  # judged on content
    assert under.status_code == 415
    assert under.get_json()["status"] == "unsupported_image"


def test_missing_misnamed_and_broken_fields(kit: Kit) -> None:
    missing = _post(kit, data={"camera": "x"})
    assert missing.status_code == 400
    assert missing.get_json() == {
        "status": "bad_request",
        "error": "send the image as multipart field 'image'",
    }
    misnamed = _post(kit, data={"file": (io.BytesIO(kit.probe("ana_lima")), "f.jpg")})
    assert misnamed.status_code == 400
    assert misnamed.get_json() == {
        "status": "bad_request",
        "error": "send the image as multipart field 'image' (got file fields: file)",
    }
    broken = _post(
        kit,
        data=b'--xyz\r\nContent-Disposition: form-data; name="image"\r\n',
        content_type="multipart/form-data; boundary=xyz",
    )
    assert broken.status_code == 400
    assert broken.get_json()["status"] == "bad_request"
    no_boundary = _post(kit, data=b"abc", content_type="multipart/form-data")
    assert no_boundary.status_code == 400
    assert no_boundary.get_json()["status"] == "bad_request"
    assert kit.analyzer.calls == 0


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("camera", "../../etc", "camera id must be"),
        ("camera", "x" * 65, "camera id must be"),
        ("event_id", "a b", "event id must be"),
        ("fps", "fast", "fps must be a number"),
        ("fps", "0.5", "fps must be a number from 1 to 240"),
        ("captured_at", "2026-11-23T08:50:00", "captured_at needs a UTC offset"),
        ("captured_at", "yesterday", "captured_at must be an ISO 8601 time"),
    ],
)
def test_a_bad_field_is_refused_before_any_mark(
    kit: Kit, field: str, value: str, error: str
) -> None:
    response = kit.recognize(kit.probe("ana_lima"), **{field: value})
    assert response.status_code == 400
    body = response.get_json()
    assert body["status"] == "bad_request"
    assert body["error"].startswith(error), body
    assert kit.services.store.marks_on(MONDAY) == []


def test_a_burst_has_at_most_60_frames(kit: Kit) -> None:
    frames = [kit.probe("ana_lima", seed=i) for i in range(61)]
    response = kit.recognize(*frames)
    assert response.status_code == 400
    assert response.get_json() == {
        "status": "bad_request",
        "error": "a burst has at most 60 frames",
    }
    assert kit.analyzer.calls == 0


def test_the_app_survives_and_still_recognises(kit: Kit) -> None:
    for make, code, _status in REFUSED.values():
        assert kit.recognize(make()).status_code == code
    assert kit.services.store.marks_on(MONDAY) == []
    assert kit.get("/health", key=None).get_json()["status"] == "ok"
    body = kit.recognize(kit.probe("ana_lima")).get_json()
    assert (body["status"], body["name"], body["new"]) == ("success", "ana_lima", True)


def json_routes() -> list[tuple[str, str]]:
    """(method, path) of every route of the OpenAPI document that takes a JSON body, a
    student's name filled in."""
    from smart_attendance.web.openapi import document

    found = []
    for path, operations in document()["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":  # shared by the path's operations
                continue
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                found.append((method.upper(), path.replace("{name}", "ana_lima")))
    return sorted(found)


def test_deeply_nested_json_is_a_400_on_every_json_route(kit: Kit) -> None:
    routes = json_routes()
    assert ("POST", "/attendance/corrections") in routes and ("POST", "/checkin") in routes
    deep = "[" * 100_000 + "]" * 100_000
    for method, path in routes:
        answer = kit.client.open(
            path,
            method=method,
            data=deep,
            headers={"X-API-KEY": API_KEY, "Content-Type": "application/json"},
        )
        assert (method, path, answer.status_code) == (method, path, 400)
        assert answer.get_json() == {
            "status": "bad_request",
            "error": "the JSON body is nested too deeply",
        }
    assert kit.get("/health", key=None).status_code == 200
