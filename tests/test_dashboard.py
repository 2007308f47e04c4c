"""The dashboard's accounts, sessions and Today board, in process (Flask test client, fixed
clock, real SQLite): sign-in, throttling, CSRF, idle expiry, the separation of the camera API
key from sessions, and marking, excusing and undoing from the board."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import Result

from conftest import API_KEY, ROOT, Kit, make_kit
from dashboard_kit import PASSWORD, csrf_token, post_form, sign_in
from smart_attendance.web import create_app
from test_register import at, timetable_file


@pytest.fixture
def school(tmp_path: Path) -> Iterator[Kit]:
    """ana, ben and cleo on Monday 2026-11-23 at 08:20: math-7b (ana, ben; 08:30-09:25) and
    art (ben, cleo; 09:00-10:00)."""
    kit = make_kit(
        tmp_path,
        now=at(23, 8, 20),
        timetable=timetable_file(tmp_path),
        session_idle_minutes=240,  # the clock jumps over the morning
    )
    yield kit
    kit.services.close()


def _login(kit: Kit, name: str, password: str, address: str = "10.0.0.1") -> tuple[int, str]:
    token = csrf_token(kit.client.get("/login"))
    response = kit.client.post(
        "/login",
        data={"username": name, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": address},
    )
    return response.status_code, response.get_data(as_text=True)


def _board(kit: Kit, query: str = "") -> str:
    response = kit.client.get("/today/board" + query)
    assert response.status_code == 200, response.headers.get("Location")
    return response.get_data(as_text=True)


def _chip(board: str, student: str) -> list[str]:
    """The status words shown for ``student`` on a board, period by period."""
    rows = re.findall(
        rf'class="name" href="/student/{student}">{student}</a>\s*<span><span class="chip '
        r'[a-z]+">([^<]+)</span>',
        board,
    )
    return rows


# --- signing in ----------------------------------------------------------------------------------


def test_pages_ask_to_sign_in_and_the_form_has_the_documented_fields(kit: Kit) -> None:
    response = kit.client.get("/?date=2026-11-23")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/?date%3D2026-11-23"
    page = kit.client.get("/login").get_data(as_text=True)
    for field in ('name="username"', 'name="password"', 'name="csrf_token"'):
        assert field in page
    assert "No admin account exists yet" in page  # and how to make one
    assert "attendance users add NAME --role admin --password-stdin" in page


def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(kit: Kit) -> None:
    kit.services.accounts.add("ada", "admin", PASSWORD)
    wrong = _login(kit, "ada", "not the password")
    unknown = _login(kit, "nobody", "not the password")
    assert wrong[0] == unknown[0] == 401
    assert "wrong user name or password" in wrong[1] and "wrong user name or password" in unknown[1]
    assert "No admin account exists yet" not in wrong[1]
    assert _login(kit, "ada", PASSWORD)[0] == 303
    assert kit.client.get("/").status_code == 200


def test_failed_sign_ins_are_throttled_per_account_and_address(kit: Kit) -> None:
    kit.services.accounts.add("ada", "admin", PASSWORD)
    for _ in range(5):
        assert _login(kit, "ada", "guess", "10.0.0.1")[0] == 401
    token = csrf_token(kit.client.get("/login"))
    refused = kit.client.post(
        "/login",
        data={"username": "ada", "password": PASSWORD, "csrf_token": token},
        environ_base={"REMOTE_ADDR": "10.0.0.1"},
    )
    assert refused.status_code == 429  # even the right password, for now
    assert 1 <= int(refused.headers["Retry-After"]) <= 15 * 60
    assert "too many failed sign-ins" in refused.get_data(as_text=True)
    # The account's owner at another address is not locked out by the guesser.
    assert _login(kit, "ada", PASSWORD, "10.0.0.2")[0] == 303
    kit.client.post("/logout", data={"csrf_token": csrf_token(kit.client.get("/"))})
    kit.clock.advance(minutes=16)
    assert _login(kit, "ada", PASSWORD, "10.0.0.1")[0] == 303


def test_a_failed_sign_in_logs_a_tag_of_the_name_never_the_name(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    """People type their password in the name field: the log keeps a short keyed hash."""
    kit.services.accounts.add("ada", "admin", PASSWORD)
    caplog.set_level(logging.INFO)
    for name in (PASSWORD, PASSWORD, "ada"):
        assert _login(kit, name, "guess")[0] == 401
    assert PASSWORD not in caplog.text and "'ada'" not in caplog.text
    tags = re.findall(r"failed sign-in \(name #([0-9a-f]{8})\) from 10\.0\.0\.1", caplog.text)
    assert len(tags) == 3 and tags[0] == tags[1] != tags[2]  # one name, one tag


def test_one_address_guessing_many_accounts_is_throttled_but_a_right_password_gets_in(
    kit: Kit,
) -> None:
    kit.services.accounts.add("ada", "admin", PASSWORD)
    for n in range(20):
        assert _login(kit, f"user{n}", "guess", "10.0.0.9")[0] == 401
    assert _login(kit, "someone-else", "guess", "10.0.0.9")[0] == 429
    assert _login(kit, "ada", "not her password", "10.0.0.9")[0] == 429
    # A teacher behind the same school NAT who types the right password gets in.
    assert _login(kit, "ada", PASSWORD, "10.0.0.9")[0] == 303
    assert kit.client.get("/").status_code == 200


def test_csrf_token_is_required_on_every_form(school: Kit) -> None:
    school.services.accounts.add("ada", "admin", PASSWORD)
    no_token = school.client.post("/login", data={"username": "ada", "password": PASSWORD})
    assert no_token.status_code == 400
    assert "Reload the page" in no_token.get_data(as_text=True)
    sign_in(school)
    forged = school.client.post(
        "/today/correct",
        data={"name": "ana_lima", "class": "math-7b", "period": "08:30", "status": "Present"},
    )
    assert forged.status_code == 400
    assert school.services.store.corrections_between(at(23, 0, 0).date(), at(23, 0, 0).date()) == []


def test_the_session_cookie_is_httponly_lax_and_secure_behind_https(tmp_path: Path) -> None:
    kit = make_kit(tmp_path, proxy_hops=1)
    try:
        kit.services.accounts.add("ada", "admin", PASSWORD)
        token = csrf_token(kit.client.get("/login"))
        plain = kit.client.post(
            "/login", data={"username": "ada", "password": PASSWORD, "csrf_token": token}
        )
        cookie = plain.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
        token = csrf_token(kit.client.get("/login", headers={"X-Forwarded-Proto": "https"}))
        secure = kit.client.post(
            "/login",
            data={"username": "ada", "password": PASSWORD, "csrf_token": token},
            # Over HTTPS, Flask-WTF also wants a same-site Referer (browsers send it).
            headers={"X-Forwarded-Proto": "https", "Referer": "https://localhost/login"},
        )
        assert secure.status_code == 303, secure.get_data(as_text=True)[-600:]
        assert "Secure" in secure.headers["Set-Cookie"]
    finally:
        kit.services.close()


def test_an_idle_session_ends_and_an_active_one_goes_on(kit: Kit) -> None:
    sign_in(kit)
    kit.clock.advance(minutes=50)
    assert kit.client.get("/").status_code == 200  # used: the hour starts again
    kit.clock.advance(minutes=50)
    assert kit.client.get("/").status_code == 200
    kit.clock.advance(minutes=61)
    expired = kit.client.get("/")
    assert expired.status_code == 302 and "reason=expired" in expired.headers["Location"]
    assert kit.client.get("/").status_code == 302  # the session is gone, not only refused once
    page = kit.client.get(expired.headers["Location"]).get_data(as_text=True)
    assert "Your session ended" in page


def test_a_copied_session_cookie_opens_nothing_after_sign_out(kit: Kit) -> None:
    token = sign_in(kit)
    copied = kit.client.get_cookie("attendance_session")
    assert copied is not None
    assert kit.client.post("/logout", data={"csrf_token": token}).status_code == 303
    # Someone who copied the cookie before the sign-out sets it in their own browser.
    thief = kit.client.application.test_client()
    thief.set_cookie("attendance_session", copied.value)
    assert thief.get("/").status_code == 302
    assert thief.get("/today/board", headers={"X-Requested-With": "fetch"}).status_code == 401
    # Ended on every server: another app on the same database refuses it too.
    other = create_app(kit.services).test_client()
    other.set_cookie("attendance_session", copied.value)
    assert other.get("/").status_code == 302
    sign_in(kit)  # a new sign-in is a new session
    assert kit.client.get("/").status_code == 200


def test_a_session_ends_after_its_maximum_lifetime_however_used(kit: Kit) -> None:
    assert kit.settings.session_max_hours == 12
    sign_in(kit)
    for _ in range(12):
        kit.clock.advance(minutes=59)
        assert kit.client.get("/").status_code == 200  # in use all along
    kit.clock.advance(minutes=13)  # 12 h 1 min after the sign-in
    ended = kit.client.get("/")
    assert ended.status_code == 302 and "reason=expired" in ended.headers["Location"]


def test_the_boards_own_refresh_does_not_keep_a_session_alive(school: Kit) -> None:
    kit = make_kit(school.settings.data_dir.parent / "idle", session_idle_minutes=60)
    try:
        sign_in(kit)
        refresh = {"X-Requested-With": "fetch", "X-Live-Refresh": "1"}
        for _ in range(6):
            kit.clock.advance(minutes=10)
            assert kit.client.get("/today/board", headers=refresh).status_code == 200
        kit.clock.advance(minutes=1)  # 61 minutes since the user last did anything
        assert kit.client.get("/today/board", headers=refresh).status_code == 401
    finally:
        kit.services.close()


def test_serve_refuses_a_short_session_secret_in_one_line(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    short = "s" * 31
    result = cli(
        "serve",
        env={
            "API_SECRET_KEY": "k" * 24,
            "ATTENDANCE_SESSION_SECRET": short,
            "ATTENDANCE_DATA_DIR": str(tmp_path / "d"),
            "ATTENDANCE_DATASET_DIR": str(tmp_path / "dataset"),
            "ATTENDANCE_PORT": "9",  # were the secret taken, listening there would fail
        },
    )
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ATTENDANCE_SESSION_SECRET is too short (31 bytes; at least 32)")
    assert short not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_a_new_password_or_a_disabled_account_ends_open_sessions(kit: Kit) -> None:
    kit.services.accounts.add("root", "admin", PASSWORD)  # so the next admin may be disabled
    sign_in(kit, "ada", "admin")
    kit.clock.advance(seconds=1)
    kit.services.accounts.set_password("ada", "another long password")
    assert kit.client.get("/").status_code == 302
    assert _login(kit, "ada", "another long password")[0] == 303
    assert kit.client.get("/").status_code == 200
    kit.services.accounts.set_active("ada", False)
    assert kit.client.get("/").status_code == 302
    assert _login(kit, "ada", "another long password")[0] == 401


def test_fetches_of_a_signed_out_page_get_json_not_a_redirect(kit: Kit) -> None:
    response = kit.client.get("/today/board", headers={"X-Requested-With": "fetch"})
    assert response.status_code == 401
    assert response.get_json()["status"] == "signed_out"


def test_the_pages_never_take_the_api_key_and_the_api_never_takes_a_session(kit: Kit) -> None:
    assert kit.get("/", key=API_KEY).status_code == 302  # the key signs nobody in
    sign_in(kit)
    assert kit.get("/statistics", key=None).status_code == 401  # a session is not a key
    assert kit.get("/statistics", key=API_KEY).status_code == 200


def test_sign_in_only_goes_back_to_this_site(kit: Kit) -> None:
    kit.services.accounts.add("ada", "admin", PASSWORD)
    token = csrf_token(kit.client.get("/login"))
    for target, expected in (
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/?date=2026-11-20", "/?date=2026-11-20"),
    ):
        response = kit.client.post(
            "/login",
            data={"username": "ada", "password": PASSWORD, "csrf_token": token, "next": target},
        )
        assert response.headers["Location"] == expected
        token = csrf_token(kit.client.get("/"))


def test_pages_carry_a_strict_content_security_policy(kit: Kit) -> None:
    sign_in(kit)
    headers = kit.client.get("/").headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"


# --- the Today board -----------------------------------------------------------------------------


def test_a_scan_shows_on_the_board_without_reloading_the_page(school: Kit) -> None:
    sign_in(school)
    page = school.client.get("/").get_data(as_text=True)
    assert 'data-live-src="/today/board?date=2026-11-23' in page
    assert _chip(_board(school), "ana_lima") == ["Not yet seen"]
    school.clock.set(at(23, 8, 31))
    assert school.recognize(school.probe("ana_lima")).status_code == 200
    assert _chip(_board(school), "ana_lima") == ["Present"]
    school.clock.set(at(23, 9, 40))  # math ended: ben is Absent there, Late in art
    school.recognize(school.probe("ben_ito"))
    assert _chip(_board(school), "ben_ito") == ["Absent", "Late"]


def test_mark_excuse_and_undo_from_the_board(school: Kit) -> None:
    token = sign_in(school, "office1", "office")
    school.clock.set(at(23, 9, 40))
    slot = {"name": "ana_lima", "class": "math-7b", "date": "2026-11-23", "period": "08:30"}
    assert _chip(_board(school, "?class=math-7b"), "ana_lima") == ["Absent"]
    marked = post_form(
        school, "/today/correct", token, status="Present", next="/?class=math-7b", **slot
    )
    assert marked.status_code == 303 and marked.headers["Location"] == "/?class=math-7b"
    assert _chip(_board(school), "ana_lima") == ["Present"]
    no_reason = post_form(school, "/today/correct", token, status="Excused", **slot)
    assert no_reason.status_code == 303
    page = school.client.get(no_reason.headers["Location"]).get_data(as_text=True)
    assert "an excused absence needs a reason" in page
    post_form(school, "/today/correct", token, status="Excused", reason="dentist", **slot)
    board = _board(school)
    assert _chip(board, "ana_lima") == ["Excused"] and "dentist" in board
    post_form(school, "/today/undo", token, **slot)
    assert _chip(_board(school), "ana_lima") == ["Present"]  # the Excused is taken back
    post_form(school, "/today/undo", token, **slot)
    assert _chip(_board(school), "ana_lima") == ["Absent"]  # and the hand mark
    fixes = school.services.store.corrections_between(at(23, 0, 0).date(), at(23, 0, 0).date())
    assert [(f.new_status, f.by) for f in fixes] == [
        ("Present", "user:office1"),
        ("Excused", "user:office1"),
        ("Undone", "user:office1"),
        ("Undone", "user:office1"),
    ]
    nothing = post_form(school, "/today/undo", token, **slot)
    assert "no correction to undo" in school.client.get(nothing.headers["Location"]).get_data(
        as_text=True
    )


def test_a_teacher_sees_and_corrects_only_their_classes(school: Kit) -> None:
    token = sign_in(school, "tom", "teacher", ["art"])
    board = _board(school)
    assert ">art</a>" in board and "math-7b" not in board
    assert school.client.get("/?class=math-7b").status_code == 403
    refused = post_form(
        school,
        "/today/correct",
        token,
        name="ana_lima",
        **{"class": "math-7b"},
        date="2026-11-23",
        period="08:30",
        status="Present",
    )
    assert refused.status_code == 403
    assert school.services.store.corrections_between(at(23, 0, 0).date(), at(23, 0, 0).date()) == []
    allowed = post_form(
        school,
        "/today/correct",
        token,
        name="cleo_park",
        **{"class": "art"},
        date="2026-11-23",
        period="09:00",
        status="Present",
    )
    assert allowed.status_code == 303
    assert _chip(_board(school), "cleo_park") == ["Present"]


def test_a_teacher_without_a_class_is_told_so(school: Kit) -> None:
    sign_in(school, "new", "teacher")
    assert "your account has no class yet" in _board(school)


# --- the users command ---------------------------------------------------------------------------


def test_users_command_adds_lists_disables_and_resets(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    env = {"ATTENDANCE_DATA_DIR": str(tmp_path / "data")}
    stdin = f"{PASSWORD}\n"
    added = cli("users", "add", "ada", "--role", "admin", "--password-stdin", env=env, input=stdin)
    assert added.exit_code == 0, added.output
    assert added.output == "Added admin ada. Sign in at /login on the server.\n"
    weak = cli("users", "add", "bob", "--role", "office", "--password-stdin", env=env, input="x\n")
    assert weak.exit_code == 1
    assert weak.stderr == "Error: a password has at least 10 characters\n"
    empty = cli("users", "add", "bob", "--role", "office", "--password-stdin", env=env, input="")
    assert empty.stderr == "Error: no password on standard input\n"
    again = cli("users", "add", "ada", "--role", "office", "--password-stdin", env=env, input=stdin)
    assert again.stderr == "Error: a user named ada already exists\n"
    teacher = cli(
        "users",
        "add",
        "tom",
        "--role",
        "teacher",
        "--classes",
        "5A",
        "--password-stdin",
        env=env,
        input=stdin,
    )
    assert teacher.stderr == "Error: unknown class '5A' (not in the timetable)\n"
    assert cli("users", "list", env=env).output == "ada  admin    active    -\n"
    last = cli("users", "disable", "ada", env=env)
    assert last.stderr == "Error: this is the last admin; add another admin first\n"
    reset = cli(
        "users", "set-password", "ada", "--password-stdin", env=env, input="a brand new password\n"
    )
    assert reset.exit_code == 0
    assert "open sessions have ended" in reset.output
    missing = cli("users", "disable", "nobody", env=env)
    assert missing.stderr == "Error: no user named 'nobody'\n"


def test_the_dashboard_refuses_to_start_without_a_session_key(kit: Kit) -> None:
    from smart_attendance.errors import ConfigError

    services = replace(kit.services, settings=replace(kit.settings, session_secret=""))
    with pytest.raises(ConfigError, match="ATTENDANCE_SESSION_SECRET"):
        create_app(services)


def test_the_api_undoes_a_correction_too(school: Kit) -> None:
    slot = {"name": "ana_lima", "class": "math-7b", "date": "2026-11-23", "period": "08:30"}
    headers = {"X-API-KEY": API_KEY}
    school.clock.set(at(23, 8, 31))
    school.recognize(school.probe("ana_lima"))
    fixed = school.client.post(
        "/attendance/corrections", json={**slot, "status": "Late"}, headers=headers
    )
    assert fixed.get_json()["student"]["status"] == "Late"
    undone = school.client.post("/attendance/corrections/undo", json=slot, headers=headers)
    assert undone.status_code == 201
    student = undone.get_json()["student"]
    assert student["status"] == "Present"  # the camera's mark again
    assert [h["status"] for h in student["history"]] == ["Late", "Undone"]
    again = school.client.post("/attendance/corrections/undo", json=slot, headers=headers)
    assert again.status_code == 400
    assert "no correction to undo" in again.get_json()["error"]


def test_every_route_is_documented(kit: Kit) -> None:
    """Each route of the app appears in docs/api.md or docs/dashboard.md (parameters by any
    name: ``<int:row_id>`` is documented as ``<id>``)."""
    docs = "".join(
        (ROOT / "docs" / page).read_text(encoding="utf-8") for page in ("api.md", "dashboard.md")
    )
    documented = re.sub(r"<[^>]+>", "<>", docs)
    missing = []
    for rule in kit.client.application.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<[^>]+>", "<>", rule.rule)
        if not re.search(re.escape(path) + r"[`?\s)]", documented):
            missing.append(rule.rule)
    assert missing == []


def test_users_add_without_a_terminal_says_to_use_password_stdin(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    env = {"ATTENDANCE_DATA_DIR": str(tmp_path / "data")}
    result = cli("users", "add", "ada", "--role", "admin", env=env, input="")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: standard input is not a terminal, so the password cannot be asked: give it on "
        "standard input with --password-stdin\n"
    )


def test_users_add_asks_again_for_a_password_too_short(
    tmp_path: Path, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    from smart_attendance.cli import users

    monkeypatch.setattr(users, "_terminal", lambda: True)  # a person at a terminal
    env = {"ATTENDANCE_DATA_DIR": str(tmp_path / "data")}
    typed = f"short\n{PASSWORD}\n{PASSWORD}\n"
    result = cli("users", "add", "ada", "--role", "admin", env=env, input=typed)
    assert result.exit_code == 0, result.output
    assert "Error: a password has at least 10 characters; try again" in result.output
    assert result.stdout.splitlines()[-1] == "Added admin ada. Sign in at /login on the server."
