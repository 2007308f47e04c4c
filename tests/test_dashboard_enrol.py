"""The Enrol pages of the dashboard, in this process: adding a student (classes from the
timetable); photos uploaded with each check answered (a scripted good photo enrolled and
recognised at once; blurry, turned-away, faceless, tiny and crowded photos refused with their
reasons); thumbnails; removing a photo (its file gone, its face no longer recognised); who may
enrol (admin and office; a teacher gets 403); path tricks and CSRF; no inline script or style.
Once on real faces (``real``): a sharp frontal photo passes every check and a blurred copy is
refused as blurry. The measures themselves (sharpness, yaw) are checked on drawn images."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFilter
from werkzeug.test import TestResponse

from conftest import STUDENTS, Kit, face_bytes, real_services
from dashboard_kit import csrf_token, post_form, sign_in
from scripted import ScriptedAnalyzer, ScriptedFace, identity, near
from smart_attendance.engine.dlib_engine import chip_sharpness, yaw_ratio
from smart_attendance.models import Analyzer, Box
from smart_attendance.people.enrolment import MAX_YAW, MIN_SHARPNESS
from smart_attendance.people.service import GALLERY_VERSION
from smart_attendance.web import create_app
from test_register import school as school  # the register's fixture, used here
from test_students import png

FETCH = {"X-Requested-With": "fetch"}
CHECKS = ["one_face", "big_enough", "sharp", "facing"]


def send_photos(
    kit: Kit, token: str, name: str, *photos: tuple[str, bytes], fetch: bool = True
) -> TestResponse:
    data: dict[str, Any] = {"csrf_token": token}
    data["photo"] = [(io.BytesIO(content), file) for file, content in photos]
    return kit.client.post(f"/enrol/{name}/photos", data=data, headers=FETCH if fetch else {})


def verdicts(photo: dict[str, Any]) -> dict[str, bool | None]:
    return {check["name"]: check["passed"] for check in photo["checks"]}


def add_dan(kit: Kit, token: str) -> np.ndarray:
    response = post_form(kit, "/enrol/students", token, name="dan_roe", display_name="Dan Roe")
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    kit.people["dan_roe"] = identity(77)
    return kit.people["dan_roe"]


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def test_the_office_adds_a_student_with_classes_from_the_timetable(school: Kit) -> None:
    token = sign_in(school, "olga", "office")
    page = school.client.get("/enrol")
    assert page.status_code == 200
    html = text(page)
    assert '<label for="new-name">Name</label>' in html and 'id="new-name" name="name"' in html
    assert '<label for="new-display">Display name' in html
    assert "<legend>Classes</legend>" in html
    assert 'name="classes" value="math-7b"' in html and 'name="classes" value="art"' in html
    assert 'href="/enrol/ana_lima"' in html  # each student links to their photos

    response = post_form(
        school,
        "/enrol/students",
        token,
        name=" dan_roe ",  # a stray space typed around the name is not kept
        display_name="Dan Roe",
        classes=["art", "math-7b"],
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/enrol/dan_roe")
    row = school.services.store.student("dan_roe")
    assert row is not None
    assert (row.display_name, row.classes) == ("Dan Roe", ("art", "math-7b"))
    assert (school.settings.dataset_dir / "dan_roe").is_dir()

    page = school.client.get("/enrol/dan_roe")
    html = text(page)
    assert page.status_code == 200
    assert "Dan Roe added. Now add their photos." in html  # the display name
    assert "No photo yet." in html and "0 photos enrolled" in html
    assert "Classes: art, math-7b" in html
    assert 'type="file" name="photo" multiple accept="image/jpeg,image/png"' in html
    assert "Start camera" in html and "Take photo" in html and 'aria-live="polite"' in html
    assert html.count('name="csrf_token"') >= 2  # the upload form and sign-out
    listing = text(school.client.get("/enrol"))
    assert re.search(r"dan_roe</span><br><span class=\"muted\">Dan Roe", listing)

    # Refusals come back on the form with what was typed.
    again = post_form(school, "/enrol/students", token, name="dan_roe", display_name="Dan Again")
    assert again.status_code == 409
    assert "already exists" in text(again) and 'value="Dan Again"' in text(again)
    unknown = post_form(school, "/enrol/students", token, name="eve", classes=["chemistry"])
    assert unknown.status_code == 400 and "unknown class" in text(unknown)
    tricky = post_form(school, "/enrol/students", token, name="../eve")
    assert tricky.status_code == 400 and "bad student name" in text(tricky)
    assert school.services.store.student("eve") is None
    assert not (school.settings.dataset_dir.parent / "eve").exists()


def test_a_good_photo_is_enrolled_and_recognised_at_once(kit: Kit) -> None:
    token = sign_in(kit)
    dan = add_dan(kit, token)
    assert kit.recognize(kit.probe("dan_roe")).get_json()["status"] == "unknown"
    version = kit.services.store.meta_number(GALLERY_VERSION)

    good = kit.analyzer.add(png(1), ScriptedFace(near(dan, 0.1, 1)))
    response = send_photos(kit, token, "dan_roe", ("camera-101500.jpg", good))
    assert response.status_code == 201
    body = response.get_json()
    assert (body["enrolled"], body["refused"], body["total"]) == (1, 0, 1)
    photo = body["photos"][0]
    assert photo["status"] == "enrolled"
    assert [c["name"] for c in photo["checks"]] == CHECKS
    assert [c["label"] for c in photo["checks"]] == [
        "one face found",
        "big enough",
        "sharp",
        "facing the camera",
    ]
    assert all(c["passed"] is True for c in photo["checks"])
    kept = sorted(p.name for p in (kit.settings.dataset_dir / "dan_roe").iterdir())
    assert kept == [photo["filename"]] and kept[0].endswith(".png")
    assert photo["thumbnail"] == f"/enrol/dan_roe/photos/{kept[0]}"
    assert photo["remove"] == f"/enrol/dan_roe/photos/{kept[0]}/remove"
    assert kit.services.store.meta_number(GALLERY_VERSION) == version + 1

    scan = kit.recognize(kit.probe("dan_roe")).get_json()
    assert (scan["status"], scan["name"]) == ("success", "dan_roe")

    thumb = kit.client.get(photo["thumbnail"])
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    assert thumb.headers["Cache-Control"] == "no-store"
    assert Image.open(io.BytesIO(thumb.data)).size == (64, 48)
    page = text(kit.client.get("/enrol/dan_roe"))
    assert f'src="{photo["thumbnail"]}"' in page and "Enrolled" in page
    assert "1 photo enrolled" in page

    # A plain form (no JavaScript) comes back to the page with a message per photo.
    again = send_photos(kit, token, "dan_roe", ("again.png", good), fetch=False)
    assert again.status_code == 303 and again.headers["Location"].endswith("/enrol/dan_roe")
    assert "again.png: enrolled." in text(kit.client.get("/enrol/dan_roe"))
    assert len(list((kit.settings.dataset_dir / "dan_roe").iterdir())) == 1


def test_blurry_turned_faceless_tiny_and_crowded_photos_are_refused_with_reasons(
    kit: Kit,
) -> None:
    token = sign_in(kit, "olga", "office")
    dan = add_dan(kit, token)
    version = kit.services.store.meta_number(GALLERY_VERSION)
    add = kit.analyzer.add
    blurry = add(png(2), ScriptedFace(near(dan, 0.1, 2), sharpness=MIN_SHARPNESS / 3))
    turned = add(png(3), ScriptedFace(near(dan, 0.1, 3), yaw=-(MAX_YAW + 0.3)))
    both = add(png(4), ScriptedFace(near(dan, 0.1, 4), sharpness=2.0, yaw=MAX_YAW + 0.5))
    tiny = add(png(5), ScriptedFace(near(dan, 0.1, 5), Box(10, 10, 50, 50)))
    crowd = add(
        png(6),
        ScriptedFace(near(dan, 0.1, 6), Box(40, 100, 200, 260)),
        ScriptedFace(identity(51), Box(400, 100, 560, 260)),
    )
    response = send_photos(
        kit,
        token,
        "dan_roe",
        ("blurry.png", blurry),
        ("turned.png", turned),
        ("both.png", both),
        ("wall.png", png(7)),  # a real image nobody scripted: no face
        ("tiny.png", tiny),
        ("crowd.png", crowd),
        ("notes.txt", b"not an image at all"),
    )
    assert response.status_code == 201
    body = response.get_json()
    assert (body["enrolled"], body["refused"], body["total"]) == (0, 7, 0)
    photos = {p["file"]: p for p in body["photos"]}
    assert {f: (p["status"], p["reason"]) for f, p in photos.items()} == {
        "blurry.png": ("refused", "blurry"),
        "turned.png": ("refused", "turned_away"),
        "both.png": ("refused", "blurry"),
        "wall.png": ("refused", "no_face"),
        "tiny.png": ("refused", "too_small"),
        "crowd.png": ("refused", "many_faces"),
        "notes.txt": ("refused", "unreadable"),
    }
    assert photos["blurry.png"]["detail"].startswith("blurry: hold still")
    assert photos["turned.png"]["detail"] == "turned away: face the camera"
    assert verdicts(photos["blurry.png"]) == dict(
        zip(CHECKS, [True, True, False, True], strict=True)
    )
    sharp = next(c for c in photos["blurry.png"]["checks"] if c["name"] == "sharp")
    assert sharp["detail"] == f"sharpness 3 (at least {MIN_SHARPNESS:.0f})"
    assert verdicts(photos["turned.png"]) == dict(
        zip(CHECKS, [True, True, True, False], strict=True)
    )
    facing = next(c for c in photos["turned.png"]["checks"] if c["name"] == "facing")
    assert facing["detail"] == f"turned {MAX_YAW + 0.3:.2f} (at most {MAX_YAW:.2f})"
    assert verdicts(photos["both.png"]) == dict(
        zip(CHECKS, [True, True, False, False], strict=True)
    )
    assert verdicts(photos["wall.png"]) == dict(zip(CHECKS, [False, None, None, None], strict=True))
    assert photos["wall.png"]["checks"][0]["detail"] == "no face found"
    assert verdicts(photos["tiny.png"]) == dict(zip(CHECKS, [True, False, None, None], strict=True))
    assert verdicts(photos["crowd.png"]) == dict(
        zip(CHECKS, [False, None, None, None], strict=True)
    )
    assert photos["crowd.png"]["detail"] == "2 faces found, need exactly one"
    assert photos["notes.txt"]["checks"] == []

    assert list((kit.settings.dataset_dir / "dan_roe").iterdir()) == []
    assert kit.services.store.meta_number(GALLERY_VERSION) == version
    assert kit.recognize(kit.probe("dan_roe")).get_json()["status"] == "unknown"

    # Without JavaScript: one message per photo, with the reason.
    send_photos(kit, token, "dan_roe", ("blurry.png", blurry), fetch=False)
    page = text(kit.client.get("/enrol/dan_roe"))
    assert "blurry.png: not enrolled, blurry: hold still" in page
    nothing = send_photos(kit, token, "dan_roe")
    assert nothing.status_code == 400
    assert "choose one or more photos" in nothing.get_json()["error"]


def test_removing_a_photo_deletes_it_and_the_face_is_no_longer_recognised(kit: Kit) -> None:
    token = sign_in(kit)
    dan = add_dan(kit, token)
    good = kit.analyzer.add(png(1), ScriptedFace(near(dan, 0.1, 1)))
    filename = send_photos(kit, token, "dan_roe", ("a.png", good)).get_json()["photos"][0][
        "filename"
    ]
    assert kit.recognize(kit.probe("dan_roe")).get_json()["name"] == "dan_roe"
    version = kit.services.store.meta_number(GALLERY_VERSION)

    response = post_form(kit, f"/enrol/dan_roe/photos/{filename}/remove", token)
    assert response.status_code == 303 and response.headers["Location"].endswith("/enrol/dan_roe")
    assert not (kit.settings.dataset_dir / "dan_roe" / filename).exists()
    assert kit.services.store.meta_number(GALLERY_VERSION) == version + 1
    assert kit.recognize(kit.probe("dan_roe")).get_json()["status"] == "unknown"
    page = text(kit.client.get("/enrol/dan_roe"))
    assert f"Photo {filename} removed; Dan Roe has 0 photos enrolled." in page
    assert "No photo yet." in page and filename not in page.split("No photo yet.")[1]

    # One photo of two removed by fetch: the other still recognises ana.
    gone = kit.client.post(
        "/enrol/ana_lima/photos/1.jpg/remove", data={"csrf_token": token}, headers=FETCH
    )
    assert gone.status_code == 200
    assert gone.get_json()["message"] == "Photo 1.jpg removed; ana_lima has 1 photo enrolled."
    assert sorted(p.name for p in (kit.settings.dataset_dir / "ana_lima").iterdir()) == ["2.jpg"]
    assert kit.recognize(kit.probe("ana_lima")).get_json()["name"] == "ana_lima"
    missing = kit.client.post(
        "/enrol/ana_lima/photos/1.jpg/remove", data={"csrf_token": token}, headers=FETCH
    )
    assert missing.status_code == 404


def test_a_teacher_cannot_enrol(kit: Kit) -> None:
    token = sign_in(kit, "tom", "teacher", classes=["default"])
    assert 'href="/enrol"' not in text(kit.client.get("/"))
    for path in ("/enrol", "/enrol/ana_lima", "/enrol/ana_lima/photos/1.jpg"):
        response = kit.client.get(path)
        assert response.status_code == 403, path
        assert "cannot open enrolment" in text(response)
    good = kit.analyzer.add(png(1), ScriptedFace(near(kit.people["ana_lima"], 0.1, 1)))
    refused = [
        post_form(kit, "/enrol/students", token, name="dan_roe"),
        send_photos(kit, token, "ana_lima", ("a.png", good)),
        post_form(kit, "/enrol/ana_lima/photos/1.jpg/remove", token),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert kit.services.store.student("dan_roe") is None
    assert sorted(p.name for p in (kit.settings.dataset_dir / "ana_lima").iterdir()) == [
        "1.jpg",
        "2.jpg",
    ]
    kit.client.post("/logout", data={"csrf_token": token})
    signed_out = kit.client.get("/enrol")
    assert signed_out.status_code == 302 and "/login" in signed_out.headers["Location"]


def test_path_tricks_are_refused(kit: Kit, tmp_path: Path) -> None:
    token = sign_in(kit)
    root = kit.settings.dataset_dir
    Image.open(io.BytesIO(png(9))).save(root / "ana_lima" / ".hidden.png")
    (root / "ana_lima" / "notes.txt").write_text("not a photo")
    outside = tmp_path / "outside.png"
    outside.write_bytes(png(8))
    (root / "ana_lima" / "away.png").symlink_to(outside)
    (root / "ana_lima" / "bens.jpg").symlink_to(root / "ben_ito" / "1.jpg")

    for path in (
        "/enrol/ana_lima/photos/..%2F..%2Foutside.png",
        "/enrol/ana_lima/photos/.hidden.png",
        "/enrol/ana_lima/photos/notes.txt",
        "/enrol/ana_lima/photos/away.png",  # a link out of the dataset
        "/enrol/ana_lima/photos/bens.jpg",  # a link to another student's photo
        "/enrol/ana_lima/photos/..",
        "/enrol/..%2Fana_lima/photos/1.jpg",
        "/enrol/ben_ito/photos/..%2Fana_lima%2F1.jpg",
    ):
        assert kit.client.get(path).status_code == 404, path

    def remove(name: str, filename: str) -> TestResponse:
        url = f"/enrol/{name}/photos/{filename}/remove"
        return kit.client.post(url, data={"csrf_token": token}, headers=FETCH)

    assert remove("ana_lima", ".hidden.png").status_code == 400
    assert remove("ana_lima", "notes.txt").status_code == 400
    assert remove("ana_lima", "..").status_code == 400
    assert remove("ana_lima", "..%2F..%2Foutside.png").status_code in (400, 404)
    assert remove("..", "1.jpg").status_code == 404
    assert remove("ben_ito", "..%2Fana_lima%2F1.jpg").status_code in (400, 404)
    assert (root / "ana_lima" / ".hidden.png").exists() and (
        root / "ana_lima" / "notes.txt"
    ).exists()
    assert (root / "ana_lima" / "1.jpg").exists() and outside.exists()
    # A link is removed itself, never what it points to.
    assert remove("ana_lima", "away.png").status_code == 200
    assert not (root / "ana_lima" / "away.png").is_symlink() and outside.exists()
    assert remove("ana_lima", "bens.jpg").status_code == 200
    assert (root / "ben_ito" / "1.jpg").exists()


def test_forms_need_the_csrf_token(kit: Kit) -> None:
    token = sign_in(kit)
    no_token = kit.client.post("/enrol/students", data={"name": "dan_roe"})
    assert no_token.status_code == 400 and kit.services.store.student("dan_roe") is None
    good = kit.analyzer.add(png(1), ScriptedFace(near(kit.people["ana_lima"], 0.1, 1)))
    data = {"photo": [(io.BytesIO(good), "a.png")]}
    fetched = kit.client.post("/enrol/ana_lima/photos", data=data, headers=FETCH)
    assert fetched.status_code == 400 and fetched.get_json()["status"] == "csrf_failed"
    removal = kit.client.post("/enrol/ana_lima/photos/1.jpg/remove", headers=FETCH)
    assert removal.status_code == 400 and (kit.settings.dataset_dir / "ana_lima/1.jpg").exists()
    with_header = kit.client.post(
        "/enrol/ana_lima/photos/1.jpg/remove", headers={**FETCH, "X-CSRFToken": token}
    )
    assert with_header.status_code == 200


def test_the_pages_have_no_inline_script_or_style_and_their_assets_are_served(kit: Kit) -> None:
    sign_in(kit)
    for path in ("/enrol", "/enrol/ana_lima"):
        html = text(kit.client.get(path))
        assert "/static/enrol.css" in html
        assert " style=" not in html and "<style" not in html
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        for field in re.findall(r'<input id="([^"]+)"', html):
            assert f'<label for="{field}"' in html, field
    assert "/static/enrol.js" in text(kit.client.get("/enrol/ana_lima"))
    for asset, inside in (("enrol.js", b"getUserMedia"), ("enrol.css", b".photo-list")):
        with kit.client.get(f"/static/{asset}") as response:
            assert response.status_code == 200 and inside in response.data
    assert csrf_token(kit.client.get("/enrol/ana_lima"))


# --- the measures, on drawn images ---------------------------------------------------------------


def test_yaw_is_zero_facing_and_one_with_the_nose_at_an_eye_corner() -> None:
    points = np.zeros((68, 2))
    points[36], points[45] = (40.0, 50.0), (110.0, 50.0)
    points[30] = (75.0, 90.0)
    assert yaw_ratio(points) == pytest.approx(0.0)
    points[30] = (110.0, 90.0)
    assert yaw_ratio(points) == pytest.approx(1.0)
    points[30] = (57.5, 90.0)
    assert yaw_ratio(points) == pytest.approx(-0.5)


def test_sharpness_falls_with_blur() -> None:
    rng = np.random.default_rng(3)
    chip = rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)
    image = Image.fromarray(chip)
    sharp = chip_sharpness(chip)
    soft = chip_sharpness(np.asarray(image.filter(ImageFilter.GaussianBlur(1))))
    blurred = chip_sharpness(np.asarray(image.filter(ImageFilter.GaussianBlur(4))))
    assert sharp > soft > MIN_SHARPNESS > blurred


# --- real faces ----------------------------------------------------------------------------------


@pytest.mark.real
def test_a_sharp_frontal_real_photo_passes_and_a_blurred_copy_is_refused(
    tmp_path: Path, real_analyzer: Analyzer
) -> None:
    services, clock = real_services(
        tmp_path, real_analyzer, students={"biden": STUDENTS["biden"][:1]}
    )
    try:
        app = create_app(services)
        kit = Kit(services.settings, services, ScriptedAnalyzer(), clock, app.test_client(), {})
        token = sign_in(kit)
        assert post_form(kit, "/enrol/students", token, name="obama").status_code == 303
        sharp = face_bytes("knn/obama/1.jpg")  # frontal, a 240 px face
        image = Image.open(io.BytesIO(sharp))
        out = io.BytesIO()
        image.filter(ImageFilter.GaussianBlur(8)).save(out, "JPEG", quality=90)
        response = send_photos(
            kit, token, "obama", ("obama.jpg", sharp), ("obama-blurred.jpg", out.getvalue())
        )
        assert response.status_code == 201, text(response)
        first, blurred = response.get_json()["photos"]
        assert first["status"] == "enrolled", first
        assert verdicts(first) == dict.fromkeys(CHECKS, True)
        assert (blurred["status"], blurred["reason"]) == ("refused", "blurry"), blurred
        assert verdicts(blurred) == dict(zip(CHECKS, [True, True, False, True], strict=True))
        scan = kit.recognize(face_bytes("knn/obama/2.jpg")).get_json()
        assert (scan["status"], scan["name"]) == ("success", "obama")
    finally:
        services.close()
