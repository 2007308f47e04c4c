"""A real `attendance serve` (waitress, 2 worker processes, dlib) on real faces.

Only what needs the real process or real dlib lives here; the API's rules are tested in process
(test_api.py, test_bad_input.py, test_liveness_api.py). Each test marks its own student, so no
test depends on another's mark: george_w_bush (marked once), colin_powell (concurrency),
biden and obama (group photo), donald_rumsfeld (unusual image formats).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from conftest import GROUP_BIDEN_OBAMA, NO_FACE, PROBES, STRANGERS, ServerProcess, face_bytes

pytestmark = [pytest.mark.real]

THRESHOLD = 0.47  # ATTENDANCE_MATCH_THRESHOLD's default


def _convert(
    rel: str, change: Callable[[Image.Image], Image.Image], fmt: str, **save: object
) -> bytes:
    image = Image.open(io.BytesIO(face_bytes(rel)))
    out = io.BytesIO()
    change(image).save(out, format=fmt, **save)
    return out.getvalue()


def test_health_counts_the_real_dataset_without_names(server: ServerProcess) -> None:
    response = server.get("/health", key=None)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "students": 5,
        "photos": 16,
        "skipped_photos": 0,
        "workers": 2,
        "embedder": "onnx",
    }


def test_a_real_face_is_recognised_and_marked_once(server: ServerProcess) -> None:
    probe = face_bytes(PROBES["george_w_bush"])
    first = server.recognize(probe)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["status"], body["name"], body["attendance"], body["new"]) == (
        "success",
        "george_w_bush",
        "Present",  # the server's class starts at 00:00 with a whole day's grace
        True,
    )
    [face] = body["faces"]
    assert face["name"] == "george_w_bush"
    assert face["distance"] <= THRESHOLD
    assert set(face["box"]) == {"left", "top", "right", "bottom"}
    again = server.recognize(probe).json()
    assert (again["name"], again["new"], again["time"]) == ("george_w_bush", False, body["time"])


def test_a_real_stranger_and_an_empty_photo_are_unknown(server: ServerProcess) -> None:
    body = server.recognize(face_bytes(STRANGERS[0]), camera="process-stranger").json()
    assert (body["status"], body["reason"]) == ("unknown", "unknown_face")
    [face] = body["faces"]
    assert face["name"] is None
    assert face["distance"] > THRESHOLD
    empty = server.recognize(face_bytes(NO_FACE), camera="process-stranger").json()
    assert empty == {"status": "unknown", "reason": "no_face", "faces": []}


def test_the_real_group_photo_marks_biden_and_obama(server: ServerProcess) -> None:
    body = server.recognize(face_bytes(GROUP_BIDEN_OBAMA)).json()
    assert body["status"] == "success", body
    assert sorted(f["name"] for f in body["faces"]) == ["biden", "obama"]
    assert sorted((m["name"], m["new"]) for m in body["marks"]) == [
        ("biden", True),
        ("obama", True),
    ]


def test_eight_concurrent_real_requests_mark_once(server: ServerProcess) -> None:
    probe = face_bytes(PROBES["colin_powell"])
    with ThreadPoolExecutor(max_workers=8) as pool:
        bodies = [r.json() for r in pool.map(lambda _: server.recognize(probe), range(8))]
    assert [b["name"] for b in bodies] == ["colin_powell"] * 8, bodies
    assert sum(b["new"] for b in bodies) == 1
    assert len({b["time"] for b in bodies}) == 1


def test_oversized_bodies_get_413_through_waitress(server: ServerProcess) -> None:
    big = server.recognize(b"\xff\xd8" + b"\x00" * (11 * 1024 * 1024))
    assert big.status_code == 413
    assert big.json()["status"] == "too_large"
    huge = server.recognize(b"\x00" * (40 * 1024 * 1024))  # over waitress's own limit
    assert huge.status_code == 413
    assert server.get("/health", key=None).status_code == 200


def test_unusual_but_valid_images_are_recognised(server: ServerProcess) -> None:
    rel = PROBES["donald_rumsfeld"]
    variants = {
        "alpha png": _convert(rel, lambda im: im.convert("RGBA"), "PNG"),
        "cmyk jpeg": _convert(rel, lambda im: im.convert("CMYK"), "JPEG", quality=95),
        "palette png": _convert(
            rel, lambda im: im.convert("P", palette=Image.ADAPTIVE, colors=256), "PNG"
        ),
        "webp": _convert(rel, lambda im: im, "WEBP", quality=95),
    }
    names = {}
    for label, payload in variants.items():
        response = server.recognize(payload)
        assert response.status_code == 200, (label, response.text)
        names[label] = response.json().get("name")
    assert names == dict.fromkeys(variants, "donald_rumsfeld")


def test_a_sixteen_bit_png_is_decoded_and_its_face_found(server: ServerProcess) -> None:
    grey = Image.open(io.BytesIO(face_bytes(PROBES["donald_rumsfeld"]))).convert("L")
    out = io.BytesIO()
    Image.fromarray(np.asarray(grey).astype(np.uint16) * 257).save(out, format="PNG")
    response = server.recognize(out.getvalue())
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["faces"]) == 1  # found in the image rescaled from 16 bits
    assert body.get("name") == "donald_rumsfeld", body
