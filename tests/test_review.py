"""The review queue, in process: uncertain faces (left unknown although a student was near)
recorded by a scan, and the Review page where a person confirms or rejects them and names,
dismisses or deletes intruder photos. Real services and SQLite (the decisions also on a real
PostgreSQL server, ``school_on_db``), scripted faces on real JPEG frames, a fixed clock, the
Flask test client."""

from __future__ import annotations

import errno
import html
import io
import logging
import re
import stat
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conftest import API_KEY, Kit, make_kit
from dashboard_kit import post_form, sign_in
from scripted import ScriptedFace, identity, near
from smart_attendance.attendance import review as review_module
from smart_attendance.db.review import IntruderRow, UncertainRow
from smart_attendance.errors import ConflictError
from smart_attendance.models import Box, Face, FaceResult, Frame
from smart_attendance.recognition.decisions import FrameDecision, decide_frame, uncertain_faces
from smart_attendance.recognition.matcher import Gallery, Matcher
from test_register import at, day, statuses, timetable_file

MONDAY = date(2026, 11, 23)
BORDERLINE = 0.49  # a probe this far from a student: just over the threshold 0.47 (to ~0.50)
FAR = 0.65  # a probe this far: nobody near (not worth a second look)
BLINK = [0.30] * 8 + [0.28, 0.12, 0.08, 0.15, 0.29] + [0.30] * 6  # 19 frames, one blink


@pytest.fixture
def school(tmp_path: Path) -> Iterator[Kit]:
    """ana, ben and cleo on Monday 2026-11-23: math-7b (ana, ben; 08:30-09:25, Late after
    08:40) and art (ben, cleo; 09:00-10:00, Late after 09:05)."""
    kit = make_kit(
        tmp_path,
        now=at(23, 8, 35),
        timetable=timetable_file(tmp_path),
        session_idle_minutes=600,  # the clock jumps over the day
    )
    yield kit
    kit.services.close()


@pytest.fixture
def school_on_db(tmp_path: Path, db_url: str) -> Iterator[Kit]:
    """The same school on SQLite (its own file) and on PostgreSQL (``db_url``): for the
    decisions (updates and deletes of the queues' rows, marks made from them) and for the
    week's date range."""
    kit = make_kit(
        tmp_path,
        now=at(23, 8, 35),
        timetable=timetable_file(tmp_path),
        session_idle_minutes=600,
        database_url="" if db_url.startswith("sqlite") else db_url,
    )
    yield kit
    kit.services.close()


def jpeg(seed: int, size: tuple[int, int] = (640, 480)) -> bytes:
    """A real JPEG frame (the review queue crops the face out of the frame's pixels): a
    gradient of the seed's colour, small enough that a burst of them stays in memory."""
    colour = np.random.default_rng(seed).integers(0, 200, 3)
    ramp = np.linspace(0, 55, size[0])[None, :, None]
    pixels = (colour[None, None, :] + ramp + np.zeros((size[1], 1, 1))).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


def face_of(kit: Kit, name: str, distance: float, seed: int) -> bytes:
    """A real frame whose one face is ``distance`` from ``name``'s enrolled face."""
    face = ScriptedFace(near(kit.people[name], distance, 10 + seed))
    return kit.analyzer.add(jpeg(seed), face)


def stranger(kit: Kit, seed: int) -> bytes:
    return kit.analyzer.add(jpeg(500 + seed), ScriptedFace(identity(20_000 + seed)))


def queued(kit: Kit, first: date = MONDAY, last: date = MONDAY) -> list[UncertainRow]:
    return kit.services.store.uncertain_rows(first, last)


def scan(kit: Kit, frame: bytes, when: datetime, camera: str = "door-1") -> dict[str, Any]:
    kit.clock.set(when)
    response = kit.recognize(frame, camera=camera)
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def intruder_photo(kit: Kit, when: datetime, camera: str = "gate", seed: int = 0) -> int:
    """Three unknown faces in a row at ``camera``: one intruder photo; its row id."""
    before = {r.id for r in kit.services.store.intruder_rows(MONDAY, MONDAY)}
    for n in range(kit.settings.intruder_threshold):
        scan(kit, stranger(kit, seed * 10 + n), when, camera)
    [row] = [r for r in kit.services.store.intruder_rows(MONDAY, MONDAY) if r.id not in before]
    return row.id


def intruder(kit: Kit, row_id: int) -> IntruderRow:
    row = kit.services.store.intruder_row(row_id)
    assert row is not None
    return row


def flashes(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<p class="flash [a-z]+">([^<]*)</p>', page)]


def follow(kit: Kit, response: Any) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    page: str = kit.client.get(response.headers["Location"]).get_data(as_text=True)
    return page


def register_of(kit: Kit) -> dict[tuple[str, str, str], str | None]:
    return statuses(day(kit, "date=2026-11-23"))


def entry(kit: Kit, class_name: str, student: str) -> dict[str, Any]:
    body = day(kit, "date=2026-11-23")
    for cls in body["classes"]:
        if cls["name"] == class_name:
            for period in cls["periods"]:
                for found in period["students"]:
                    if found["name"] == student:
                        result: dict[str, Any] = found
                        return result
    raise AssertionError(f"{student} not in {class_name}")


# --- recording --------------------------------------------------------------------------------


def test_a_borderline_unknown_face_is_queued_once_with_a_private_photo(school: Kit) -> None:
    body = scan(school, face_of(school, "ana_lima", BORDERLINE, 1), at(23, 8, 35))
    # The camera's answer is the original's: unknown, no name, and no candidate anywhere.
    assert body["status"] == "unknown" and body["reason"] == "unknown_face"
    assert [face["name"] for face in body["faces"]] == [None]
    assert "ana_lima" not in str(body) and "candidate" not in str(body)

    [row] = queued(school)
    assert (row.candidate, row.camera, row.state) == ("ana_lima", "door-1", "open")
    assert row.seen_at == datetime(2026, 11, 23, 8, 35)
    assert 0.47 < row.distance <= 0.52 and row.margin is not None and row.margin > 0.5
    photo = Path(row.path)
    assert photo.parent == school.settings.data_dir / "review" / "2026-11-23"
    assert stat.S_IMODE(photo.stat().st_mode) == 0o600
    sealed = photo.read_bytes()  # encrypted at rest
    assert b"JFIF" not in sealed and school.services.sealer.is_sealed(sealed)
    with Image.open(io.BytesIO(school.services.sealer.open(sealed))) as image:
        # the face box (160 px) with 40% more on each side
        assert (image.format, image.size) == ("JPEG", (288, 288))
    assert "ana_lima" not in photo.name

    # Not again within 10 minutes for the same candidate and camera...
    scan(school, face_of(school, "ana_lima", BORDERLINE, 2), at(23, 8, 40))
    scan(school, face_of(school, "ana_lima", BORDERLINE, 3), at(23, 8, 44))
    assert len(queued(school)) == 1
    # ...but at another camera, for another student, or 10 minutes later.
    scan(school, face_of(school, "ana_lima", BORDERLINE, 4), at(23, 8, 41), camera="door-2")
    scan(school, face_of(school, "ben_ito", BORDERLINE, 5), at(23, 8, 42))
    scan(school, face_of(school, "ana_lima", BORDERLINE, 6), at(23, 8, 45))
    assert [(r.candidate, r.camera, r.seen_at.strftime("%H:%M")) for r in queued(school)] == [
        ("ana_lima", "door-1", "08:35"),
        ("ana_lima", "door-2", "08:41"),
        ("ben_ito", "door-1", "08:42"),
        ("ana_lima", "door-1", "08:45"),
    ]
    # Nobody was marked, and no uncertain face counted toward an intruder photo (3 in a row).
    assert set(register_of(school).values()) == {None}
    assert school.services.store.intruder_rows(MONDAY, MONDAY) == []


def test_a_face_far_from_everyone_is_an_intruder_not_an_uncertain_face(school: Kit) -> None:
    for n in range(3):
        far = school.analyzer.add(
            jpeg(40 + n), ScriptedFace(near(school.people["ana_lima"], FAR, 40 + n))
        )
        assert scan(school, far, at(23, 8, 35 + n))["faces"][0]["name"] is None
    assert queued(school) == []
    assert len(school.services.store.intruder_rows(MONDAY, MONDAY)) == 1


def test_a_recognised_face_is_not_queued_nor_a_look_alike_beside_the_student(
    school: Kit,
) -> None:
    scan(school, face_of(school, "ana_lima", 0.2, 1), at(23, 8, 35))
    ana = school.people["ana_lima"]
    group = school.analyzer.add(
        jpeg(7),
        ScriptedFace(near(ana, 0.2, 11)),
        ScriptedFace(near(ana, BORDERLINE, 12), box=Box(420, 120, 580, 280)),
    )
    body = scan(school, group, at(23, 8, 36))
    assert body["name"] == "ana_lima"
    assert queued(school) == []


def test_with_liveness_required_only_a_blinking_uncertain_face_is_queued(tmp_path: Path) -> None:
    kit = make_kit(tmp_path, now=at(23, 8, 35), require_liveness=True)
    try:
        ana = near(kit.people["ana_lima"], BORDERLINE, 60)

        def burst(ears: list[float], seed: int) -> list[bytes]:
            return [
                kit.analyzer.add(jpeg(seed + i), ScriptedFace(ana, ear=ear))
                for i, ear in enumerate(ears)
            ]

        still = kit.recognize(*burst([0.30] * len(BLINK), 100), camera="door-1")
        assert still.get_json()["status"] == "unknown"
        assert queued(kit) == []
        blinking = kit.recognize(*burst(BLINK, 200), camera="door-1")
        assert blinking.get_json()["status"] == "unknown"
        assert [r.candidate for r in queued(kit)] == ["ana_lima"]
    finally:
        kit.services.close()


def test_uncertain_faces_in_decisions_are_pure_and_keep_the_rule() -> None:
    people = {name: identity(i) for i, name in enumerate(("ana", "ben"))}
    gallery = Gallery.from_pairs([(n, near(f, 0.1, k)) for n, f in people.items() for k in (1, 2)])
    matcher = Matcher(gallery, 0.47, 0.12)
    box, other = Box(0, 0, 160, 160), Box(200, 0, 360, 160)

    def decide(*faces: tuple[np.ndarray, Box]) -> FrameDecision:
        frame = Frame(640, 480, tuple(Face(b, d, d, 0.3) for d, b in faces))
        return decide_frame(frame, matcher, lambda chips: np.stack(chips))

    near_ana = decide((near(people["ana"], BORDERLINE, 30), box))
    [result] = near_ana.results
    assert (result.name, result.candidate) == (None, "ana")
    assert FaceResult.as_dict(result).keys() == {"box", "name", "distance", "margin"}
    assert uncertain_faces(near_ana) == [result]
    assert result.anonymous().candidate is None
    far = decide((near(people["ana"], FAR, 31), box))
    assert far.results[0].candidate is None and uncertain_faces(far) == []
    beside = decide(
        (near(people["ana"], 0.2, 32), box), (near(people["ana"], BORDERLINE, 33), other)
    )
    assert beside.results[1].candidate == "ana" and uncertain_faces(beside) == []
    assert (matcher.threshold, matcher.margin) == (0.47, 0.12)


def test_a_failing_photo_save_never_fails_the_scan(
    school: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    (school.settings.data_dir / "review").write_text("a file where the folder should be")
    caplog.set_level(logging.INFO)
    body = scan(school, face_of(school, "ana_lima", BORDERLINE, 1), at(23, 8, 35))
    assert body["status"] == "unknown"
    assert queued(school) == []
    lines = [r.getMessage() for r in caplog.records if "review" in r.getMessage()]
    assert len(lines) == 1 and "not queued for review" in lines[0]
    assert "ana_lima" not in lines[0] and "\\x" not in lines[0]
    # A known face in the next scan is marked as ever.
    assert scan(school, face_of(school, "ana_lima", 0.2, 2), at(23, 8, 36))["name"] == "ana_lima"


def test_a_full_disk_never_fails_the_scan_and_leaves_no_row(
    school: Kit, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(review_module, "write_private", full)
    body = scan(school, face_of(school, "ana_lima", BORDERLINE, 1), at(23, 8, 35))
    assert body["status"] == "unknown"
    assert queued(school) == []
    assert list((school.settings.data_dir / "review").rglob("*.jpg")) == []
    [line] = [r.getMessage() for r in caplog.records if "not queued" in r.getMessage()]
    assert line.endswith("OSError: [Errno 28] No space left on device")


def test_the_crops_stay_under_their_disk_cap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kit = make_kit(tmp_path, now=at(23, 8, 35), timetable=timetable_file(tmp_path), review_max_mb=1)
    try:
        old = kit.settings.data_dir / "review" / "2026-11-20"
        old.mkdir(parents=True)
        (old / "uncertain_120000_door_0badf00d.jpg").write_bytes(bytes(1024 * 1024 - 100))
        body = scan(kit, face_of(kit, "ana_lima", BORDERLINE, 1), at(23, 8, 35))
        assert body["status"] == "unknown"  # answered all the same
        assert queued(kit) == []
        assert "ATTENDANCE_REVIEW_MAX_MB=1 already" in caplog.text
        (old / "uncertain_120000_door_0badf00d.jpg").unlink()  # room again
        kit.services.review.disk.recount()
        scan(kit, face_of(kit, "ana_lima", BORDERLINE, 2), at(23, 8, 50))
        assert len(queued(kit)) == 1
    finally:
        kit.services.close()


def test_a_frame_that_cannot_be_cropped_is_logged_not_queued(school: Kit) -> None:
    frame = school.probe("ana_lima", BORDERLINE, seed=20)  # scripted bytes, not an image
    assert scan(school, frame, at(23, 8, 35))["status"] == "unknown"
    assert queued(school) == []


# --- the page and its decisions ------------------------------------------------------------


def test_confirming_marks_the_candidate_and_rejecting_does_not(school_on_db: Kit) -> None:
    school = school_on_db
    scan(school, face_of(school, "ana_lima", BORDERLINE, 1), at(23, 8, 35))
    scan(school, face_of(school, "ben_ito", BORDERLINE, 2), at(23, 8, 36))
    ana, ben = queued(school)
    school.clock.set(at(23, 11, 0))  # reviewed later: marked at the time of the sighting
    token = sign_in(school)

    page = school.client.get("/review?date=2026-11-23").get_data(as_text=True)
    assert "Confirm: this is ana_lima" in page and "Confirm: this is ben_ito" in page
    assert f'src="/review/uncertain/{ana.id}/photo"' in page
    photo = school.client.get(f"/review/uncertain/{ana.id}/photo")
    assert photo.status_code == 200 and photo.mimetype == "image/jpeg"
    assert photo.headers["Cache-Control"] == "no-store"
    assert photo.data == school.services.sealer.open(Path(ana.path).read_bytes())
    assert photo.data.startswith(b"\xff\xd8")

    done = follow(school, post_form(school, f"/review/uncertain/{ana.id}", token, action="confirm"))
    assert flashes(done) == [
        "Confirmed: ana_lima at 08:35 on 2026-11-23 (camera door-1), marked Present in "
        "math-7b at 08:30."
    ]
    marked = entry(school, "math-7b", "ana_lima")
    assert (marked["status"], marked["time"], marked["source"]) == (
        "Present",
        "08:35:00",
        "review:ada",
    )
    follow(school, post_form(school, f"/review/uncertain/{ben.id}", token, action="reject"))
    register = register_of(school)  # at 11:00 both of ben's periods have ended
    assert register[("math-7b", "08:30", "ben_ito")] == "Absent"
    assert register[("art", "09:00", "ben_ito")] == "Absent"
    assert [(r.state, r.decided_by) for r in queued(school)] == [
        ("confirmed", "user:ada"),
        ("rejected", "user:ada"),
    ]
    # A decision is taken once; the rule did not move.
    again = follow(
        school, post_form(school, f"/review/uncertain/{ben.id}", token, action="confirm")
    )
    assert flashes(again) == ["this uncertain face was already rejected by user:ada"]
    assert register_of(school)[("math-7b", "08:30", "ben_ito")] == "Absent"
    matcher = school.services.enrolment.current()
    assert (matcher.threshold, matcher.margin) == (0.47, 0.12)
    assert len(matcher.gallery) == 6  # two photos each, as enrolled


def test_an_intruder_photo_named_marks_the_student_dismiss_and_delete(school_on_db: Kit) -> None:
    school = school_on_db
    first = intruder_photo(school, at(23, 9, 2), seed=1)
    second = intruder_photo(school, at(23, 9, 3), seed=2)
    third = intruder_photo(school, at(23, 9, 4), camera="yard", seed=3)
    late = intruder_photo(school, at(23, 12, 0), seed=4)  # no class period at noon
    school.clock.set(at(23, 16, 0))
    token = sign_in(school, "olga", "office")

    page = school.client.get("/review?date=2026-11-23").get_data(as_text=True)
    assert page.index("camera gate") < page.index("camera yard")
    assert f'<label for="s-{first}">' in page and f'<select id="s-{first}" name="student"' in page
    assert '<option value="cleo_park">cleo_park</option>' in page
    image = school.client.get(f"/review/intruders/{first}/photo")
    assert image.status_code == 200 and image.headers["Cache-Control"] == "no-store"

    named = post_form(
        school, f"/review/intruders/{first}", token, action="identify", student="cleo_park"
    )
    assert flashes(follow(school, named)) == [
        "Photo of 09:02 on 2026-11-23 (camera gate): cleo_park marked Present in art at 09:00."
    ]
    cleo = entry(school, "art", "cleo_park")
    assert (cleo["status"], cleo["time"], cleo["source"]) == ("Present", "09:02:00", "review:olga")
    row = intruder(school, first)
    assert (row.state, row.student, row.decided_by) == (
        "identified",
        "cleo_park",
        "user:olga",
    )

    nobody = post_form(
        school, f"/review/intruders/{late}", token, action="identify", student="ana_lima"
    )
    assert flashes(follow(school, nobody)) == [
        "ana_lima had no class period open at 12:00 on 2026-11-23: nothing was marked"
    ]
    stranger_name = post_form(
        school, f"/review/intruders/{second}", token, action="identify", student="zed"
    )
    assert flashes(follow(school, stranger_name)) == ["unknown student 'zed'"]
    assert [intruder(school, i).state for i in (second, late)] == ["open", "open"]

    follow(school, post_form(school, f"/review/intruders/{second}", token, action="dismiss"))
    dismissed = intruder(school, second)
    assert (dismissed.state, dismissed.student) == ("dismissed", None)

    path = Path(intruder(school, third).path)
    assert path.is_file()
    gone = follow(school, post_form(school, f"/review/intruders/{third}", token, action="delete"))
    assert flashes(gone) == ["Photo of 09:04 on 2026-11-23 (camera yard) deleted."]
    assert not path.exists() and school.services.store.intruder_row(third) is None
    assert school.client.get(f"/review/intruders/{third}/photo").status_code == 404
    bad = follow(school, post_form(school, f"/review/intruders/{late}", token, action="burn"))
    assert flashes(bad) == ["action must be identify, dismiss or delete"]


def test_a_teacher_sees_only_their_students_and_no_intruder(school: Kit) -> None:
    scan(school, face_of(school, "ana_lima", BORDERLINE, 1), at(23, 8, 35))  # math-7b only
    scan(school, face_of(school, "cleo_park", BORDERLINE, 2), at(23, 9, 1))  # art
    ana, cleo = queued(school)
    photo = intruder_photo(school, at(23, 9, 2))
    token = sign_in(school, "tom", "teacher", ["art"])

    page = school.client.get("/review?date=2026-11-23")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Confirm: this is cleo_park" in text and "ana_lima" not in text
    assert "Intruder photos" not in text and "/review/intruders/" not in text
    assert school.client.get(f"/review/intruders/{photo}/photo").status_code == 403
    refused = post_form(school, f"/review/intruders/{photo}", token, action="dismiss")
    assert refused.status_code == 403
    assert school.client.get(f"/review/uncertain/{ana.id}/photo").status_code == 403
    denied = post_form(school, f"/review/uncertain/{ana.id}", token, action="confirm")
    assert denied.status_code == 403
    assert [r.state for r in queued(school)] == ["open", "open"]
    assert intruder(school, photo).state == "open"

    follow(school, post_form(school, f"/review/uncertain/{cleo.id}", token, action="confirm"))
    assert register_of(school)[("art", "09:00", "cleo_park")] == "Present"
    assert register_of(school)[("math-7b", "08:30", "ana_lima")] is None


def test_the_page_shows_a_day_or_the_open_items_of_a_week(school_on_db: Kit) -> None:
    school = school_on_db
    scan(school, face_of(school, "ana_lima", BORDERLINE, 1), at(20, 8, 35))  # last Friday
    scan(school, face_of(school, "ben_ito", BORDERLINE, 2), at(23, 8, 35))
    scan(school, face_of(school, "cleo_park", BORDERLINE, 3), at(23, 9, 10))
    token = sign_in(school)
    cleo = queued(school)[-1]
    follow(school, post_form(school, f"/review/uncertain/{cleo.id}", token, action="reject"))

    today = school.client.get("/review").get_data(as_text=True)
    assert "Monday 23 November 2026" in today
    assert "this is ben_ito" in today and "this is ana_lima" not in today
    assert "Rejected" in today  # the day shows decided items too, without their forms
    assert "Confirm: this is cleo_park" not in today
    assert "Open items of the last 7 days (2)" in today

    week = school.client.get("/review?open=1").get_data(as_text=True)
    assert "this is ana_lima" in week and "this is ben_ito" in week and "cleo_park" not in week
    friday = school.client.get("/review?date=2026-11-20").get_data(as_text=True)
    assert "this is ana_lima" in friday and "ben_ito" not in friday
    assert school.client.get("/review?date=yesterday").status_code == 400


def test_the_page_is_labelled_carries_csrf_and_has_no_inline_style(school: Kit) -> None:
    scan(school, face_of(school, "ana_lima", BORDERLINE, 1), at(23, 8, 35))
    intruder_photo(school, at(23, 9, 2))
    sign_in(school)
    page = school.client.get("/review?date=2026-11-23").get_data(as_text=True)
    assert 'href="/static/review.css"' in page
    assert "style=" not in page and "<script>" not in page and "onclick" not in page
    forms = page.count('method="post"')
    assert forms >= 4 and page.count('name="csrf_token"') == forms  # sign-out form included
    assert 'class="danger"' in page and "confirm(" not in page
    selects = re.findall(r'<select id="([^"]+)"', page)
    assert selects and all(f'<label for="{ident}">' in page for ident in selects)


def test_photos_are_served_only_from_the_data_folder(school: Kit, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(jpeg(1))
    row_id = school.services.store.record_uncertain(
        datetime(2026, 11, 23, 8, 35), "door-1", "ana_lima", 0.5, 0.6, str(outside)
    )
    missing = school.services.store.record_uncertain(
        datetime(2026, 11, 23, 8, 36),
        "door-1",
        "ben_ito",
        0.5,
        0.6,
        str(school.settings.data_dir / "review" / "gone.jpg"),
    )
    sign_in(school)
    assert school.client.get(f"/review/uncertain/{row_id}/photo").status_code == 404
    assert school.client.get(f"/review/uncertain/{missing}/photo").status_code == 404
    assert school.client.get("/review/uncertain/999/photo").status_code == 404
    # The camera key never opens the review.
    keyed = school.client.application.test_client().get(
        f"/review/uncertain/{row_id}/photo", headers={"X-API-KEY": API_KEY}
    )
    assert keyed.status_code == 302


def test_a_camera_id_with_a_colon_is_not_used_raw_in_file_names(school: Kit) -> None:
    """Camera ids may hold ':' (allowed by the API), which some file systems refuse in names."""
    row = intruder(school, intruder_photo(school, at(23, 8, 50), camera="gate:north"))
    scan(school, face_of(school, "ana_lima", BORDERLINE, 7), at(23, 8, 51), camera="door:1")
    [crop] = queued(school)
    for stored in (row.path, crop.path):
        name = Path(stored).name
        assert ":" not in name and ("gate-north" in name or "door-1" in name)
        assert Path(stored).is_file()
    assert (row.camera, crop.camera) == ("gate:north", "door:1")  # the records keep the id


def test_two_reviewers_deciding_the_same_face_at_once_mark_once(
    school_on_db: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two reviewers (on two servers) open the same uncertain face; both read it open, and the
    second one's decision must not overwrite the first or mark again: the write is taken only
    while the row is still open."""
    school = school_on_db
    scan(school, face_of(school, "ben_ito", BORDERLINE, 2), at(23, 8, 36))
    [ben] = queued(school)
    review = school.services.review
    stale = review.uncertain(ben.id)  # what the second reviewer read before the first decided
    review.reject(ben.id, by="user:ada")
    reads = iter([stale])
    fresh = review.uncertain
    monkeypatch.setattr(review, "uncertain", lambda row_id: next(reads, None) or fresh(row_id))
    with pytest.raises(ConflictError, match="was just rejected by user:ada"):
        review.confirm(ben.id, by="user:bea")
    monkeypatch.undo()
    [row] = queued(school)
    assert (row.state, row.decided_by) == ("rejected", "user:ada")
    assert register_of(school)[("math-7b", "08:30", "ben_ito")] != "Present"


def test_a_failed_mark_leaves_the_face_open_for_review(
    school_on_db: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    school = school_on_db
    scan(school, face_of(school, "ana_lima", BORDERLINE, 1), at(23, 8, 35))
    [ana] = queued(school)
    review = school.services.review

    def outage(*_args: object) -> None:
        raise OSError("database went away")

    monkeypatch.setattr(review, "_mark", outage)
    with pytest.raises(OSError):
        review.confirm(ana.id, by="user:ada")
    [row] = queued(school)
    assert (row.state, row.decided_by) == ("open", None)
