"""API keys: one key per camera, wrong keys logged and throttled, the admin key's length, and
the generated key kept out of logs.

In process (``make_kit``): camera keys (shown once, stored hashed, the camera's routes only,
revoked at once, the key's name on its marks), throttling per address in the database (shared
by two apps on one database), the dashboard's Camera keys section, the ``attendance keys``
commands; most of them on SQLite and on a real PostgreSQL server (``kit_on_db``). Real
processes (marked ``real``): ``attendance serve`` refusing a short key, keeping a generated key
out of its output, and throttling wrong keys (guesses per second measured).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import stat
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import Result
from PIL import Image
from werkzeug.test import TestResponse

from conftest import API_KEY, Kit, ServerProcess, make_kit, run_cli
from dashboard_kit import post_form, sign_in
from smart_attendance.app import build_services
from smart_attendance.web import (
    BODY_WITHHELD,
    CAMERA_ROUTES,
    KEY_REFUSED,
    OPEN_ROUTES,
    body_gate,
    create_app,
)

Cli = Callable[..., Result]
WRONG = "wrong-key-0123456789-abcdefghij"
REFUSED = "api key refused from "
NOW = datetime(2026, 11, 23, 7, 55)  # UTC


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Kit]:
    made = make_kit(tmp_path, key_failures_per_minute=5)
    yield made
    made.services.close()


@pytest.fixture
def kit_on_db(tmp_path: Path, db_url: str) -> Iterator[Kit]:
    """The same on SQLite (its own file) and on PostgreSQL (``db_url``): for the keys' unique
    names, their conditional last-use update, and the failures counted in a time window."""
    on = "" if db_url.startswith("sqlite") else db_url
    made = make_kit(tmp_path, key_failures_per_minute=5, database_url=on)
    yield made
    made.services.close()


def call(kit: Kit, method: str, path: str, key: str | None, address: str = "127.0.0.1") -> Any:
    headers = {"X-API-KEY": key} if key is not None else {}
    return kit.client.open(
        path, method=method, headers=headers, environ_base={"REMOTE_ADDR": address}
    )


def key_rows(kit: Kit) -> list[Any]:
    from sqlalchemy import select

    from smart_attendance.db.tables import camera_keys

    with kit.services.store.engine.connect() as conn:
        return list(conn.execute(select(camera_keys)).all())


# --- camera keys ----------------------------------------------------------------------------------


def test_a_camera_key_is_shown_once_and_only_its_hash_is_kept(kit: Kit) -> None:
    made = kit.services.keys.add("door-1")
    assert len(made.key) >= 43 and made.key not in repr(made)
    [row] = key_rows(kit)
    assert row.name == "door-1"
    assert row.key_sha256 == hashlib.sha256(made.key.encode()).hexdigest()
    database = (kit.settings.data_dir / "attendance.db").read_bytes()
    wal = kit.settings.data_dir / "attendance.db-wal"
    database += wal.read_bytes() if wal.exists() else b""
    assert made.key.encode() not in database
    assert [k.name for k in kit.services.keys.camera_keys()] == ["door-1"]
    with pytest.raises(Exception, match="exists already"):
        kit.services.keys.add("door-1")
    with pytest.raises(Exception, match="name is 1-64"):
        kit.services.keys.add("door 1; drop")


def test_a_camera_key_marks_and_its_name_is_kept_with_the_mark(kit_on_db: Kit) -> None:
    kit = kit_on_db
    door = kit.services.keys.add("door-1").key
    answer = kit.recognize(kit.probe("ana_lima"), key=door, camera="cam-7")
    assert answer.status_code == 200 and answer.get_json()["name"] == "ana_lima"
    assert kit.recognize(kit.probe("ben_ito"), key=API_KEY).status_code == 200
    # A printed badge read by the same camera.
    [card] = kit.services.badges.prepare(["cleo_park"])
    kit.services.badges.issue([card], "test")
    checkin = kit.client.post(
        "/checkin", json={"badge": card.payload, "camera": "cam-7"}, headers={"X-API-KEY": door}
    )
    assert checkin.status_code == 200, checkin.get_json()
    marks = {m.name: m for m in kit.services.store.marks_on(kit.clock().date())}
    # A camera key is its own camera, whatever camera id it names.
    assert (marks["ana_lima"].key_name, marks["ana_lima"].source) == ("door-1", "camera:door-1")
    assert (marks["ben_ito"].key_name, marks["ben_ito"].source) == ("", "camera:default")
    assert (marks["cleo_park"].key_name, marks["cleo_park"].source) == ("door-1", "badge:door-1")


def test_a_camera_key_cannot_act_as_another_camera(tmp_path: Path) -> None:
    # A stolen key of door-1 naming door-2 would reset door-2's intruder streak between the
    # frames of a real stranger, who would then never be photographed.
    kit = make_kit(tmp_path, intruder_photos="off")
    try:
        door_1 = kit.services.keys.add("door-1").key
        door_2 = kit.services.keys.add("door-2").key
        for n in range(3):
            stranger = kit.recognize(kit.stranger(7), key=door_2, camera="whatever")
            assert stranger.get_json()["status"] == "unknown"
            if n < 2:
                known = kit.recognize(kit.probe("ana_lima"), key=door_1, camera="door-2")
                assert known.get_json()["name"] == "ana_lima"
        [event] = kit.services.store.intruders_on(kit.clock().date())
        assert event["camera"] == "door-2"  # its streak ran on, whatever door-1 said
        # The admin key still names any camera.
        assert kit.recognize(kit.probe("ben_ito"), camera="cam-9").status_code == 200
        sources = {m.name: m.source for m in kit.services.store.marks_on(kit.clock().date())}
        assert sources == {"ana_lima": "camera:door-1", "ben_ito": "camera:cam-9"}
    finally:
        kit.services.close()


def test_a_camera_key_draws_challenges_for_its_own_camera_only(tmp_path: Path) -> None:
    from sqlalchemy import select

    from smart_attendance.db.tables import liveness_challenges

    kit = make_kit(tmp_path, enrol=False, require_liveness="challenge")
    try:
        door_1 = kit.services.keys.add("door-1").key
        assert call(kit, "GET", "/liveness/challenge?camera=door-2", door_1).status_code == 200
        assert call(kit, "GET", "/liveness/challenge", door_1).status_code == 200  # id optional
        assert call(kit, "GET", "/liveness/challenge?camera=door-2", API_KEY).status_code == 200
        with kit.services.store.engine.connect() as conn:
            rows = conn.execute(select(liveness_challenges.c.camera)).all()
        assert sorted(r.camera for r in rows) == ["door-1", "door-1", "door-2"]
    finally:
        kit.services.close()


def _path(rule: str) -> str:
    return re.sub(r"<[^>]+>", "ana_lima", rule)


def test_a_camera_key_opens_the_camera_routes_only(kit: Kit) -> None:
    door = kit.services.keys.add("door-1").key
    api = [
        (method, rule.rule)
        for rule in kit.client.application.url_map.iter_rules()
        if rule.endpoint not in OPEN_ROUTES and not rule.endpoint.startswith("dashboard.")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
    ]
    assert ("DELETE", "/students/<name>") in api and len(api) > 10
    for method, rule in api:
        endpoint = kit.client.application.url_map.bind("x").match(_path(rule), method)[0]
        answer = call(kit, method, _path(rule), door)
        if endpoint in CAMERA_ROUTES:
            assert answer.status_code not in (401, 403), (method, rule)
        else:
            assert answer.status_code == 403, (method, rule)
            assert answer.get_json()["status"] == "forbidden"
    assert kit.services.store.student("ana_lima") is not None  # DELETE was refused
    assert call(kit, "GET", "/health", None).status_code == 200
    assert call(kit, "GET", "/statistics", API_KEY).status_code == 200  # the admin key: all


def test_a_revoked_key_opens_nothing_at_once(
    kit_on_db: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    kit = kit_on_db
    door = kit.services.keys.add("door-1").key
    assert kit.recognize(kit.probe("ana_lima"), key=door).status_code == 200
    # A second server on the same database revokes it: this one refuses it at the next request.
    other = build_services(kit.settings, clock=kit.clock, analyzer=kit.analyzer)
    try:
        other.keys.revoke("door-1")
    finally:
        other.close()
    caplog.set_level(logging.WARNING)
    answer = kit.recognize(kit.probe("ben_ito"), key=door)
    assert answer.status_code == 401
    assert answer.get_json() == {"status": "denied", "error": KEY_REFUSED}
    assert f"{REFUSED}127.0.0.1" in caplog.text and door not in caplog.text
    [row] = kit.services.keys.camera_keys()
    assert row.revoked_at is not None and not row.valid


def test_which_keys_the_server_checks_before_it_reads_a_body(kit: Kit) -> None:
    """``body_gate``: asked in the server's event loop without the database whether a
    request's key must be checked (in a request thread) before its body is read
    (web/serving.py)."""
    door = kit.services.keys.add("door-1")
    gate = body_gate(kit.client.application)
    unsure = gate.unsure
    assert not unsure("POST", "/recognize", API_KEY)  # the admin key
    assert not unsure("POST", "/recognize", door.key)  # a camera key read at start
    assert unsure("POST", "/recognize", WRONG) and unsure("POST", "/recognize", "")
    assert unsure("POST", "/students", WRONG) and unsure("PUT", "/students/ana_lima/consent", "")
    assert not unsure("POST", "/login", "") and not unsure("POST", "/enrol/ana_lima/photos", "")
    assert unsure("POST", "/no-such-route", "")  # a 404 needs no body
    assert not gate.valid(WRONG) and not gate.valid("")
    # A key added here is known at once; a revoked one is not.
    assert not unsure("POST", "/recognize", kit.services.keys.add("door-2").key)
    kit.services.keys.revoke("door-1")
    assert unsure("POST", "/recognize", door.key) and not gate.valid(door.key)
    # A key added on another server since: checked once with the database, then known.
    other = "another-servers-key-0123456789abcdef"
    kit.services.store.add_camera_key("door-3", hashlib.sha256(other.encode()).hexdigest(), NOW)
    assert unsure("POST", "/recognize", other)
    assert gate.valid(other) and not unsure("POST", "/recognize", other)


def test_a_request_whose_body_the_server_withheld_is_answered_without_it(kit: Kit) -> None:
    """The server withholds a body (``BODY_WITHHELD``) when the key was wrong, or, on a
    connection busy with another request, not known yet: a wrong key is the plain 401; a
    valid one is asked to send again (503, ``Retry-After``), this server knowing it now."""
    refused = kit.client.post("/recognize", headers={"X-API-KEY": WRONG, BODY_WITHHELD: "1"})
    assert refused.status_code == 401 and refused.get_json()["error"] == KEY_REFUSED
    door = kit.services.keys.add("door-1")
    again = kit.client.post("/recognize", headers={"X-API-KEY": door.key, BODY_WITHHELD: "1"})
    assert again.status_code == 503 and again.headers["Retry-After"] == "1"
    assert again.get_json()["status"] == "busy"


def test_last_use_is_written_at_most_once_a_minute(kit_on_db: Kit) -> None:
    kit = kit_on_db
    door = kit.services.keys.add("door-1").key
    assert kit.services.keys.camera_keys()[0].last_used_at is None
    first = kit.services.keys.camera_keys()[0].created_at
    call(kit, "POST", "/recognize", door)
    assert kit.services.keys.camera_keys()[0].last_used_at == first
    kit.clock.advance(seconds=50)
    call(kit, "POST", "/recognize", door)
    assert kit.services.keys.camera_keys()[0].last_used_at == first
    kit.clock.advance(seconds=20)
    call(kit, "POST", "/recognize", door)
    assert (kit.services.keys.camera_keys()[0].last_used_at - first).total_seconds() == 70


# --- wrong keys -----------------------------------------------------------------------------------


def test_wrong_keys_are_logged_without_the_key_and_throttled_per_address(
    kit_on_db: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    kit = kit_on_db
    caplog.set_level(logging.INFO)
    limit = kit.settings.key_failures_per_minute  # 5 in this kit
    for n in range(limit):
        key = None if n == 0 else f"{WRONG}-{n}"
        assert call(kit, "GET", "/statistics", key, "10.0.0.7").status_code == 401
        kit.clock.advance(seconds=1)
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith(REFUSED)]
    assert refused == [f"{REFUSED}10.0.0.7"] * limit
    assert WRONG not in caplog.text
    # Throttled: wrong keys get 429, neither logged nor counted.
    for key in (f"{WRONG}-x", None):
        answer = call(kit, "GET", "/statistics", key, "10.0.0.7")
        assert answer.status_code == 429
        assert answer.headers["Retry-After"] == str(60 - limit)
        assert answer.get_json()["status"] == "too_many_attempts"
    assert len(refused) == limit
    assert call(kit, "GET", "/health", None, "10.0.0.7").status_code == 200  # no key needed
    kit.clock.advance(seconds=56)  # the oldest failure is now more than a minute old
    assert call(kit, "GET", "/statistics", WRONG, "10.0.0.7").status_code == 401


def test_a_valid_key_is_served_from_an_address_that_sends_wrong_keys(kit_on_db: Kit) -> None:
    # A guesser behind the school's NAT (or a proxy) shares the cameras' address (the test
    # client's 127.0.0.1): the camera's key and the admin key keep working while it is throttled.
    kit = kit_on_db
    door = kit.services.keys.add("door-1").key
    answers = []
    for n in range(3 * kit.settings.key_failures_per_minute):
        answers.append(call(kit, "GET", "/statistics", f"{WRONG}-{n}").status_code)
        scan = kit.recognize(kit.probe("ana_lima", seed=n), key=door)
        assert scan.status_code == 200 and scan.get_json()["name"] == "ana_lima"
    limit = kit.settings.key_failures_per_minute
    assert answers == [401] * limit + [429] * (2 * limit)
    assert call(kit, "GET", "/statistics", API_KEY).status_code == 200
    assert call(kit, "GET", "/statistics", None).status_code == 429


def test_the_throttle_is_shared_by_every_server_on_the_database(kit_on_db: Kit) -> None:
    kit = kit_on_db
    other_services = build_services(kit.settings, clock=kit.clock, analyzer=kit.analyzer)
    try:
        other = create_app(other_services).test_client()
        for _ in range(kit.settings.key_failures_per_minute):
            assert other.get("/statistics", headers={"X-API-KEY": WRONG}).status_code == 401
        assert call(kit, "GET", "/statistics", WRONG).status_code == 429
        assert call(kit, "GET", "/statistics", API_KEY).status_code == 200
    finally:
        other_services.close()


def test_behind_a_proxy_the_forwarded_address_is_throttled(tmp_path: Path) -> None:
    kit = make_kit(tmp_path, enrol=False, proxy_hops=1, key_failures_per_minute=2)
    try:

        def get(key: str, forwarded: str) -> TestResponse:
            return kit.client.get(
                "/statistics", headers={"X-API-KEY": key, "X-Forwarded-For": forwarded}
            )

        assert [get(WRONG, "192.0.2.1").status_code for _ in range(3)] == [401, 401, 429]
        assert get(API_KEY, "192.0.2.2").status_code == 200  # same proxy, another client
    finally:
        kit.services.close()


def test_a_forwarded_address_is_believed_from_the_trusted_proxies_only(tmp_path: Path) -> None:
    kit = make_kit(
        tmp_path,
        enrol=False,
        proxy_hops=1,
        key_failures_per_minute=2,
        trusted_proxies=("10.0.5.2", "127.0.0.0/8"),
    )
    try:

        def get(key: str, forwarded: str, peer: str) -> TestResponse:
            return kit.client.get(
                "/statistics",
                headers={"X-API-KEY": key, "X-Forwarded-For": forwarded},
                environ_base={"REMOTE_ADDR": peer},
            )

        # Through the proxy: the forwarded address counts.
        assert [get(WRONG, "192.0.2.1", "10.0.5.2").status_code for _ in range(3)] == [
            401,
            401,
            429,
        ]
        assert get(WRONG, "192.0.2.2", "10.0.5.2").status_code == 401
        # Around the proxy, straight to the port: a forged header is ignored, the connection's
        # own address is throttled (the guesser cannot spread its guesses over made-up ones).
        answers = [get(WRONG, f"198.51.100.{n}", "10.0.9.9").status_code for n in range(3)]
        assert answers == [401, 401, 429]
        assert get(WRONG, "192.0.2.3", "10.0.5.2").status_code == 401  # the proxy's clients
    finally:
        kit.services.close()


def test_trusted_proxies_are_addresses_or_networks(tmp_path: Path) -> None:
    from smart_attendance.config import load_settings
    from smart_attendance.errors import ConfigError

    env = {"ATTENDANCE_TRUSTED_PROXIES": "10.0.5.2, 10.1.0.0/16,::1"}
    assert load_settings(env, None).trusted_proxies == ("10.0.5.2", "10.1.0.0/16", "::1")
    assert load_settings({}, None).trusted_proxies == ("127.0.0.0/8", "::1")
    with pytest.raises(ConfigError, match="ATTENDANCE_TRUSTED_PROXIES: expected IP addresses"):
        load_settings({"ATTENDANCE_TRUSTED_PROXIES": "nginx.local"}, None)


# --- the dashboard --------------------------------------------------------------------------------


def test_the_admin_page_adds_shows_once_and_revokes_camera_keys(kit_on_db: Kit) -> None:
    kit = kit_on_db
    token = sign_in(kit)
    assert "Not available yet" not in kit.client.get("/admin").get_data(as_text=True)
    added = post_form(kit, "/admin/cameras", token, name="door-1")
    assert added.status_code == 200 and added.headers["Cache-Control"] == "no-store"
    found = re.search(r'id="new-key-value">([^<]+)<', added.get_data(as_text=True))
    assert found
    key = found[1]
    assert hashlib.sha256(key.encode()).hexdigest() == key_rows(kit)[0].key_sha256
    app = kit.client.application
    cookie = kit.client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    session = app.session_interface.get_signing_serializer(app).loads(cookie.value)  # type: ignore[attr-defined,union-attr]
    assert key not in str(session)  # not in a flash message carried by the cookie
    page = kit.client.get("/admin").get_data(as_text=True)
    assert "door-1" in page and key not in page  # shown once only
    assert kit.recognize(kit.probe("ana_lima"), key=key).status_code == 200
    assert "door-1" in kit.client.get("/admin").get_data(as_text=True)
    revoked = post_form(kit, "/admin/cameras/door-1/revoke", token)
    assert revoked.status_code == 303
    assert kit.recognize(kit.probe("ben_ito"), key=key).status_code == 401
    again = post_form(kit, "/admin/cameras", token, name="door-1")
    assert again.status_code == 303  # the name is kept by the revoked key: an error message


def test_only_an_admin_manages_camera_keys(kit: Kit) -> None:
    token = sign_in(kit, "olga", "office")
    assert post_form(kit, "/admin/cameras", token, name="door-1").status_code == 403
    kit.services.keys.add("door-2")
    assert post_form(kit, "/admin/cameras/door-2/revoke", token).status_code == 403
    assert key_rows(kit)[0].revoked_at is None
    assert [r.name for r in key_rows(kit)] == ["door-2"]


# --- the commands ---------------------------------------------------------------------------------


def test_the_keys_commands_print_the_key_once(kit_on_db: Kit, cli: Cli) -> None:
    kit = kit_on_db
    env = {
        "ATTENDANCE_DATA_DIR": str(kit.settings.data_dir),
        "ATTENDANCE_DATASET_DIR": str(kit.settings.dataset_dir),
        "ATTENDANCE_DATABASE_URL": kit.settings.database_url,
    }
    empty = cli("keys", "list", env=env)
    assert empty.stdout == "No camera keys yet. Add one per camera: attendance keys add NAME\n"
    added = cli("keys", "add", "door-1", env=env)
    assert added.exit_code == 0
    [key] = added.stdout.splitlines()  # the key alone on standard output
    assert "shown only this once" in added.stderr and key not in added.stderr
    assert kit.recognize(kit.probe("ana_lima"), key=key).status_code == 200
    listed = cli("keys", "list", env=env)
    assert key not in listed.output
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d"
    assert re.search(rf"^door-1  {stamp}  {stamp}  -$", listed.stdout, re.M), listed.stdout
    revoked = cli("keys", "revoke", "door-1", env=env)
    assert revoked.exit_code == 0 and revoked.stdout.startswith("Camera key door-1 revoked at ")
    assert kit.recognize(kit.probe("ben_ito"), key=key).status_code == 401
    missing = cli("keys", "revoke", "door-9", env=env)
    assert missing.exit_code == 1 and missing.stderr == "Error: no camera key named 'door-9'\n"
    taken = cli("keys", "add", "door-1", env=env)
    assert taken.exit_code == 1 and "exists already" in taken.stderr and taken.stdout == ""


# --- real processes -------------------------------------------------------------------------------


@pytest.mark.real
def test_serve_refuses_a_short_key_in_one_line(tmp_path: Path) -> None:
    short = "only-23-characters-long"
    result = run_cli(
        "serve",
        env={
            "API_SECRET_KEY": short,
            "ATTENDANCE_DATA_DIR": str(tmp_path / "data"),
            "ATTENDANCE_DATASET_DIR": str(tmp_path / "dataset"),
            "ATTENDANCE_PORT": "9",
        },
        timeout_s=120,
    )
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: API_SECRET_KEY is too short (23 characters; at least 24)")
    assert short not in result.stdout + result.stderr
    assert not (tmp_path / "data" / "attendance.db").exists()


@pytest.fixture(scope="module")
def keyless_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real server started without API_SECRET_KEY (its output going to a file, not a
    terminal), on an empty dataset."""
    base = tmp_path_factory.mktemp("keys")
    (base / "dataset").mkdir()
    proc = ServerProcess(base / "dataset", base / "data", env={"API_SECRET_KEY": ""}).start()
    yield proc
    proc.stop()


@pytest.mark.real
def test_a_generated_key_is_not_printed_when_the_output_is_not_a_terminal(
    keyless_server: ServerProcess,
) -> None:
    key_file = keyless_server.data_dir / "api_key"
    key = key_file.read_text().strip()
    assert len(key) >= 43 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    output = keyless_server.output()
    assert key not in output
    assert f"one was generated and written to {key_file}" in output


@pytest.mark.real
def test_a_real_server_takes_camera_keys_and_throttles_guesses(
    keyless_server: ServerProcess,
) -> None:
    server = keyless_server
    master = (server.data_dir / "api_key").read_text().strip()
    env = {
        "ATTENDANCE_DATA_DIR": str(server.data_dir),
        "ATTENDANCE_DATASET_DIR": str(server.dataset),
    }
    added = run_cli("keys", "add", "door-1", env=env, cwd=server.data_dir, timeout_s=120)
    assert added.returncode == 0, added.stderr
    door = added.stdout.strip()
    # The running server takes the new key at once: the camera's routes only.
    blank = io.BytesIO()
    Image.new("RGB", (64, 64), "grey").save(blank, format="JPEG")
    scan = server.recognize(blank.getvalue(), key=door)
    assert scan.status_code == 200 and scan.json()["status"] == "unknown", scan.text
    card = requests.post(
        server.url + "/checkin",
        json={"badge": "SA1:" + "x" * 32, "camera": "door-1"},
        headers={"X-API-KEY": door},
        timeout=30,
    )
    assert (card.status_code, card.json()["status"]) == (403, "badge_unknown")
    assert server.get("/statistics", key=door).status_code == 403
    assert server.get("/statistics", key=master).status_code == 200

    # Guessing: as fast as one client can, until the server says 429.
    session = requests.Session()
    answers = []
    throttled_after, retry_after = 0.0, 0
    started = time.perf_counter()
    while len(answers) < 100:
        answer = session.get(
            server.url + "/statistics", headers={"X-API-KEY": f"{WRONG}{len(answers)}"}, timeout=10
        )
        answers.append(answer.status_code)
        if answer.status_code == 429:
            throttled_after = time.perf_counter() - started
            retry_after = int(answer.headers["Retry-After"])
            break
    limit = 10  # ATTENDANCE_KEY_FAILURES_PER_MINUTE's default
    assert answers == [401] * limit + [429]
    assert 1 <= retry_after <= 60
    # Throttled: for two seconds no guess gets an answer, nor does the right key.
    during = []
    until = time.perf_counter() + 2
    while time.perf_counter() < until:
        during.append(
            session.get(server.url + "/statistics", headers={"X-API-KEY": WRONG}, timeout=10)
        )
    assert {r.status_code for r in during} == {429}
    assert server.get("/statistics", key=master).status_code == 200  # a valid key: served
    log = server.output()
    assert log.count(f"{REFUSED}127.0.0.1") == limit
    assert WRONG not in log and master not in log and door not in log
    print(
        f"\nguesses before throttling: {limit} in {throttled_after:.3f} s "
        f"({limit / throttled_after:.0f} guesses/s); then {len(during)} guesses in 2 s all "
        f"refused (429, Retry-After {retry_after} s): at most {limit} guesses a minute "
        f"({limit / 60:.2f}/s)"
    )
