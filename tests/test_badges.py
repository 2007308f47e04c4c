"""Badge check-in: printed QR cards for students who refuse face recognition (and for days the
camera cannot recognise anyone).

In process: the real services and app of ``make_kit`` (the marks and revocations also on a real
PostgreSQL server, ``school_on_db``); cards printed by ``attendance badges print`` (the
in-process ``cli`` fixture, on the kit's data folder and database); a card pasted into a
camera-like frame (small, tilted, in perspective, blurred, noisy, JPEG, on a cluttered
background) and read back by the camera client, whose loop sends it to ``POST /checkin`` through
a transport that hands each request to the app (no socket).
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import segno
from click.testing import Result

from conftest import API_KEY, MONDAY_0855, Kit, make_kit
from smart_attendance.client import app as client_app
from smart_attendance.client import hud
from smart_attendance.client.outbox import Outbox
from smart_attendance.client.qr import BadgeReader, badge_token
from smart_attendance.client.uploader import Uploader
from smart_attendance.models import Recognition
from smart_attendance.people.badges import PREFIX, digest
from test_client import SERVER, AppTransport, NoFaceEngine, session_to
from test_students import TIMETABLE  # math-7b (ana, ben) and art (cleo)

MONDAY = MONDAY_0855.date()
HEADERS = {"X-API-KEY": API_KEY}


Cli = Callable[..., Result]


@pytest.fixture
def school(tmp_path: Path) -> Iterator[Kit]:
    timetable = tmp_path / "timetable.toml"
    timetable.write_text(TIMETABLE, encoding="utf-8")
    made = make_kit(tmp_path, timetable=timetable)
    yield made
    made.services.close()


@pytest.fixture
def school_on_db(tmp_path: Path, db_url: str) -> Iterator[Kit]:
    """The same on SQLite (its own file) and on PostgreSQL (``db_url``): for the marks a card
    makes once per event id, and the cards revoked when new ones are printed."""
    timetable = tmp_path / "timetable.toml"
    timetable.write_text(TIMETABLE, encoding="utf-8")
    on = "" if db_url.startswith("sqlite") else db_url
    made = make_kit(tmp_path, timetable=timetable, database_url=on)
    yield made
    made.services.close()


def attendance(cli: Cli, kit: Kit, *args: str) -> Result:
    """``attendance ARGS`` on the kit's data folder and timetable."""
    settings = kit.settings
    env = {
        "ATTENDANCE_DATA_DIR": str(settings.data_dir),
        "ATTENDANCE_DATASET_DIR": str(settings.dataset_dir),
        "ATTENDANCE_TIMEZONE": "Europe/Paris",
        "ATTENDANCE_TIMETABLE": str(settings.timetable),
        "ATTENDANCE_DATABASE_URL": settings.database_url,  # "": the data folder's SQLite file
    }
    return cli(*args, env=env)


def held_up(card_png: Path, width_px: int = 260, angle: float = 8.0, seed: int = 1) -> np.ndarray:
    """A 640x480 webcam frame of the card held up: scaled down to ``width_px``, turned by
    ``angle`` degrees and in perspective, over a cluttered background, lower contrast, blurred,
    with sensor noise and JPEG compression."""
    rng = np.random.default_rng(seed)
    card = cv2.imread(str(card_png), cv2.IMREAD_COLOR)
    assert card is not None
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w]
    background = np.stack([60 + 0.1 * xx, 80 + 0.15 * yy, 100 + 0.05 * (xx + yy)], -1)
    background = np.ascontiguousarray(background.astype(np.uint8))
    for _ in range(15):
        color = tuple(int(v) for v in rng.integers(0, 255, 3))
        x1, x2 = (int(v) for v in rng.integers(0, w, 2))
        y1, y2 = (int(v) for v in rng.integers(0, h, 2))
        cv2.rectangle(background, (x1, y1), (x2, y2), color, -1)
    card_h, card_w = card.shape[:2]
    half_w, half_h = width_px / 2, width_px * card_h / card_w / 2
    corners = np.float32(
        [[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]]
    )
    corners[1, 1] += 0.12 * half_h  # the right edge further away
    corners[2, 1] -= 0.12 * half_h
    turn = np.deg2rad(angle)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    placed = (corners @ rotation.T + [330, 250]).astype(np.float32)
    source = np.float32([[0, 0], [card_w, 0], [card_w, card_h], [0, card_h]])
    matrix = cv2.getPerspectiveTransform(source, placed)
    warped = cv2.warpPerspective(card, matrix, (w, h), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((card_h, card_w), 255, np.uint8), matrix, (w, h))
    frame = np.where(mask[..., None] > 0, warped, background).astype(np.float32) * 0.85 + 10
    frame = cv2.GaussianBlur(frame, (3, 3), 0.8) + rng.normal(0, 8.0, frame.shape)
    ok, jpeg = cv2.imencode(
        ".jpg", np.clip(frame, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 80]
    )
    assert ok
    decoded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    assert decoded is not None
    return decoded


def run_client(kit: Kit, frames: Path, queue: Path) -> list[str]:
    """The camera client's loop on a folder of frames (no face in them), sending to the kit's
    app; what it printed."""
    said: list[str] = []
    options = client_app.ClientOptions(
        source=str(frames),
        server=SERVER,
        key=API_KEY,
        camera="door-1",
        queue_dir=queue,
        window=False,
        drain_s=10,
    )
    session = session_to(AppTransport(kit.client))
    assert (
        client_app.run(
            options, echo=said.append, session=session, clock=kit.clock, note=lambda _line: None
        )
        == 0
    )
    return said


def checkin(kit: Kit, body: object, key: str | None = API_KEY) -> tuple[int, dict[str, object]]:
    headers = {"X-API-KEY": key} if key is not None else {}
    response = kit.client.post("/checkin", json=body, headers=headers)
    return response.status_code, response.get_json()


def issue(kit: Kit, *names: str) -> list[str]:
    """New cards for ``names``, as ``attendance badges print`` makes them; their tokens."""
    cards = kit.services.badges.prepare(names)
    kit.services.badges.issue(cards, "cli:test")
    return [card.token for card in cards]


# --- the acceptance test --------------------------------------------------------------------------


def test_a_printed_badge_seen_by_the_camera_checks_the_student_in_until_revoked(
    school: Kit, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_app, "FaceEngine", NoFaceEngine)  # a card, no face
    printed = attendance(cli, school, "badges", "print", "ana_lima", "--out", str(tmp_path / "c"))
    assert printed.exit_code == 0, printed.output
    card = tmp_path / "c" / "ana_lima.png"
    assert printed.output == (
        f"Printed 1 badge(s) to {card}; earlier badges of these students no longer work.\n"
    )
    assert stat.S_IMODE(card.stat().st_mode) == 0o600  # as good as the student's face

    # The client's reader finds the card in a webcam-like frame; its token is the stored one.
    frames = tmp_path / "frames"
    frames.mkdir()
    frame = held_up(card)
    cv2.imwrite(str(frames / "0001.png"), frame)
    [token] = BadgeReader().read(frame)
    [row] = school.services.badges.badges("ana_lima")
    assert school.services.store.badge_by_digest(digest(token)) == row
    assert token not in printed.output

    # The client's loop sends it: ana is marked as a face would mark her, signed by the badge.
    said = run_client(school, frames, tmp_path / "queue")
    assert said == ["ana_lima: Present (new)"]
    [mark] = school.services.store.marks_on(MONDAY)
    assert (mark.name, mark.status, mark.class_name, mark.source) == (
        "ana_lima",
        "Present",
        "math-7b",
        "badge:door-1",
    )
    assert "ana_lima" in (school.logs / f"attendance_{MONDAY.isoformat()}.csv").read_text()

    # Revoked (a lost card): the same card is refused with the reason, and not kept queued.
    revoked = attendance(cli, school, "badges", "revoke", "ana_lima")
    assert revoked.exit_code == 0, revoked.output
    assert (
        revoked.output
        == f"Revoked ana_lima's badge (#{row.id} printed {row.issued_at:%Y-%m-%d}).\n"
    )
    school.clock.advance(minutes=30)
    said = run_client(school, frames, tmp_path / "queue")
    assert said == ["badge_revoked: this badge was revoked; ask the office for a new one"]
    assert Outbox(tmp_path / "queue").pending() == []
    assert len(school.services.store.marks_on(MONDAY)) == 1


def test_a_card_is_read_tilted_small_and_noisy_but_other_codes_are_ignored(
    school: Kit, cli: Cli, tmp_path: Path
) -> None:
    printed = attendance(
        cli, school, "badges", "print", "ben_ito", "--out", str(tmp_path / "b.png")
    )
    assert printed.exit_code == 0, printed.output
    reader = BadgeReader()
    stored = school.services.badges.badges("ben_ito")[0]
    for width, angle, seed in ((220, -12, 2), (300, 0, 3), (360, 15, 4)):
        [token] = reader.read(held_up(tmp_path / "b.png", width, angle, seed))
        assert school.services.store.badge_by_digest(digest(token)) == stored
    # Another QR code in view (a poster's link), or none at all: no badge.
    poster = tmp_path / "poster.png"
    segno.make("https://example.org/timetable", error="m").save(poster, scale=12, border=4)
    assert reader.read(held_up(poster, 200, 5)) == []
    assert reader.read(np.full((480, 640, 3), 120, np.uint8)) == []
    assert badge_token("SA1:abc") == "abc"
    assert badge_token("WIFI:S:school;;") is None
    assert badge_token(PREFIX) is None


# --- POST /checkin --------------------------------------------------------------------------------


def test_checkin_marks_like_a_face_and_a_resend_marks_once(school_on_db: Kit) -> None:
    school = school_on_db
    [token] = issue(school, "ana_lima")
    status, body = checkin(school, {"badge": token, "camera": "door-2", "event_id": "ev-1"})
    assert status == 200
    assert body == {
        "status": "success",
        "name": "ana_lima",
        "attendance": "Present",
        "new": True,
        "time": "08:55:00",
        "marks": [
            {
                "name": "ana_lima",
                "display_name": "ana_lima",
                "attendance": "Present",
                "new": True,
                "time": "08:55:00",
                "class": "math-7b",
                "period": "09:00",
            }
        ],
        "faces": [],
    }
    # The same event again (a resend), and the whole QR text (a hand-held reader types it).
    school.clock.advance(minutes=30)
    again = checkin(school, {"badge": PREFIX + token, "camera": "door-2", "event_id": "ev-1"})
    assert again[1]["new"] is False and again[1]["time"] == "08:55:00"
    assert len(school.services.store.marks_on(MONDAY)) == 1
    # Late like a face: cleo's art class began at 08:45, late after 09:00.
    [cleo] = issue(school, "cleo_park")
    assert checkin(school, {"badge": cleo})[1]["attendance"] == "Late"
    marks = {m.name: m.source for m in school.services.store.marks_on(MONDAY)}
    assert marks == {"ana_lima": "badge:door-2", "cleo_park": "badge:default"}


def test_printing_again_revokes_the_older_card(school_on_db: Kit) -> None:
    school = school_on_db
    [old] = issue(school, "ana_lima")
    [new] = issue(school, "ana_lima")
    assert checkin(school, {"badge": old}) == (
        403,
        {
            "status": "badge_revoked",
            "error": "this badge was revoked; ask the office for a new one",
        },
    )
    assert checkin(school, {"badge": new})[0] == 200
    rows = school.services.badges.badges("ana_lima", revoked=True)
    assert [r.valid for r in rows] == [True, False]


def test_a_badge_works_without_face_consent_but_not_for_a_student_who_left(school: Kit) -> None:
    [token] = issue(school, "ana_lima")
    school.services.consent.record(["ana_lima"], "refused", "parent", "", "cli:test")
    assert checkin(school, {"badge": token})[1]["name"] == "ana_lima"
    left = school.client.patch("/students/ana_lima", json={"active": False}, headers=HEADERS)
    assert left.status_code == 200
    assert checkin(school, {"badge": token}) == (
        403,
        {"status": "badge_inactive", "error": "this badge's student is no longer on the roll"},
    )


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({"badge": "x" * 32}, 403, "badge_unknown", "not a badge of this school"),
        ({"badge": "not a token!"}, 403, "badge_unknown", "not a badge of this school"),
        ({}, 400, "bad_request", "field 'badge'"),
        ({"badge": ""}, 400, "bad_request", "field 'badge'"),
        ({"badge": 12345}, 400, "bad_request", "badge must be a text"),
        ({"badge": "x" * 32, "name": "ana_lima"}, 400, "bad_request", "unknown field 'name'"),
        ({"badge": "x" * 32, "camera": "door 1"}, 400, "bad_request", "camera id"),
        ({"badge": "x" * 32, "captured_at": "yesterday"}, 400, "bad_request", "captured_at"),
        (["badge"], 400, "bad_request", "JSON object"),
    ],
)
def test_checkin_refusals_and_bad_requests_are_json(
    school: Kit, body: object, status: int, code: str, words: str
) -> None:
    issue(school, "ana_lima")
    got, answer = checkin(school, body)
    assert (got, answer["status"]) == (status, code)
    assert words in str(answer["error"])
    assert school.services.store.marks_on(MONDAY) == []


def test_checkin_needs_the_camera_key(school: Kit) -> None:
    [token] = issue(school, "ana_lima")
    assert checkin(school, {"badge": token}, key=None)[0] == 401
    assert checkin(school, {"badge": token}, key="wrong")[0] == 401
    not_json = school.client.post("/checkin", data=token, headers=HEADERS)
    assert not_json.status_code == 400 and not_json.get_json()["status"] == "bad_request"
    assert school.services.store.marks_on(MONDAY) == []


# --- the command ----------------------------------------------------------------------------------


def test_a_class_printed_to_pdf_listed_and_revoked(
    school_on_db: Kit, cli: Cli, tmp_path: Path
) -> None:
    school = school_on_db
    out = tmp_path / "cards.pdf"
    printed = attendance(cli, school, "badges", "print", "--class", "math-7b", "--out", str(out))
    assert printed.output == (
        f"Printed 2 badge(s) of math-7b to {out}; earlier badges of these students no longer "
        "work.\n"
    )
    data = out.read_bytes()
    assert data.startswith(b"%PDF") and data.count(b"/Type /Page\n") == 1
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file

    listed = attendance(cli, school, "badges", "list", "--class", "math-7b").output.splitlines()
    assert [line.split()[:2] for line in listed] == [["ana_lima", "#1"], ["ben_ito", "#2"]]
    assert all(line.endswith("  valid") and "by cli:" in line for line in listed)
    assert attendance(cli, school, "badges", "revoke", "ben_ito").exit_code == 0
    nothing = attendance(cli, school, "badges", "revoke", "ben_ito")
    assert nothing.output == "ben_ito has no valid badge: nothing to revoke.\n"
    listed = attendance(cli, school, "badges", "list", "--class", "math-7b").output.splitlines()
    assert [line.split()[:3] for line in listed] == [
        ["ana_lima", "#1", "printed"],
        ["ben_ito", "no", "valid"],
    ]
    every = attendance(cli, school, "badges", "list", "--all").output.splitlines()
    assert len(every) == 2 and "revoked" in every[1]

    # Printed and revoked, by whom, in the audit log; never the token, nor in the database.
    entries = [e for e in school.services.audit.entries() if e.action == "badge"]
    assert [(e.subject, e.detail) for e in reversed(entries)] == [
        ("ana_lima", "badge #1 printed; earlier badges revoked"),
        ("ben_ito", "badge #2 printed; earlier badges revoked"),
        ("ben_ito", "badge #2 revoked"),
    ]
    assert all(e.actor.startswith("cli:") for e in entries)


def test_the_token_is_kept_as_its_hash_only(school: Kit) -> None:
    [token] = issue(school, "ana_lima")
    database = (school.settings.data_dir / "attendance.db").read_bytes()
    wal = school.settings.data_dir / "attendance.db-wal"
    stored = database + (wal.read_bytes() if wal.exists() else b"")
    assert token.encode() not in stored
    assert hashlib.sha256(token.encode()).hexdigest().encode() in stored
    assert token not in repr(school.services.badges.prepare(["ana_lima"]))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--out", "x.pdf"), "name the students, or give --class (not both)"),
        (("ana_lima", "--class", "math-7b", "--out", "x.pdf"), "not both"),
        (("nobody", "--out", "x.pdf"), "no student named 'nobody'"),
        (("--class", "chemistry", "--out", "x.pdf"), "unknown class 'chemistry'"),
        (("--class", "math-7b", "--out", "x.png"), "holds one card"),
        (("--class", "math-7b", "--out", "x.jpg"), "holds one card"),
        (("ana_lima", "--out", "x.gif"), "--out x.gif: a .gif file cannot hold badges"),
    ],
)
def test_print_mistakes_are_one_line_and_print_nothing(
    school: Kit, cli: Cli, tmp_path: Path, args: tuple[str, ...], words: str
) -> None:
    result = attendance(cli, school, "badges", "print", *args)
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith("Error: ") and words in line, line
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("x.")]  # nor a folder
    assert school.services.badges.badges(revoked=True) == []


def test_one_students_card_as_a_jpeg_file_is_read_like_the_png(
    school: Kit, cli: Cli, tmp_path: Path
) -> None:
    card = tmp_path / "card.jpg"
    printed = attendance(cli, school, "badges", "print", "ben_ito", "--out", str(card))
    assert printed.exit_code == 0, printed.output
    assert card.is_file() and card.read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG, not a folder
    assert printed.output == (
        f"Printed 1 badge(s) to {card}; earlier badges of these students no longer work.\n"
    )
    assert stat.S_IMODE(card.stat().st_mode) == 0o600
    [token] = BadgeReader().read(held_up(card, 300, 5, 1))
    [row] = school.services.badges.badges("ben_ito")
    assert school.services.store.badge_by_digest(digest(token)) == row


def test_revoke_names_an_unknown_student_in_one_line(school: Kit, cli: Cli) -> None:
    result = attendance(cli, school, "badges", "revoke", "nobody")
    assert (result.exit_code, result.output) == (1, "Error: no student named 'nobody'\n")


# --- the camera client ----------------------------------------------------------------------------


def test_the_client_queues_a_card_once_per_cooldown_and_shows_a_refusal(
    school: Kit, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_app, "FaceEngine", NoFaceEngine)
    attendance(cli, school, "badges", "print", "ana_lima", "--out", str(tmp_path / "a.png"))
    frame = held_up(tmp_path / "a.png", 320, -4)
    outbox = Outbox(tmp_path / "queue")
    uploader = Uploader(outbox, SERVER, API_KEY)  # not started: scans stay queued
    options = client_app.ClientOptions(camera="door-3", cooldown_s=8.0, badge_every_s=0.0)
    scanner = client_app.Scanner(options, outbox, uploader, fps=10)
    for t in (0.0, 0.1, 0.2, 7.9, 8.1):
        scanner.process(frame, t)
    scans = outbox.pending()
    assert len(scans) == 2 and {s.camera for s in scans} == {"door-3"}
    assert all(s.badge and s.frames() == [] for s in scans)
    assert scanner.state.result["title"] == "Badge read"
    # A refused badge: its own card on the HUD, with the server's words.
    refused = Recognition.from_json({"status": "badge_revoked", "error": "this badge was revoked"})
    assert hud.result_card(refused) == {
        "title": "Badge refused",
        "detail": "this badge was revoked",
        "kind": "unknown",
    }
    uploader.stop()
