"""The daily report: its content, manual sends through the app, the scheduler on an injected
clock, and the ``report`` commands, in process. Delivery goes to a real SMTP server on loopback
(aiosmtpd, with AUTH): those tests are marked ``real``."""

from __future__ import annotations

import email
import io
import logging
import smtplib
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import Result
from PIL import Image

from conftest import API_KEY, PARIS, Kit, free_port, make_kit, make_settings, tick_together
from scripted import ScriptedFace, identity
from smart_attendance.app import build_services
from smart_attendance.config import Settings
from smart_attendance.errors import MailAuthError, MailTimeoutError, MailUnavailableError
from smart_attendance.reports.mailer import missing_settings, send
from smart_attendance.reports.scheduler import ReportScheduler

USER, PASSWORD = "sender@school.test", "app-password-123"
TEACHERS = "teacher@school.test, head@school.test"
RECIPIENTS = ["teacher@school.test", "head@school.test"]
MONDAY = date(2026, 11, 23)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def _authenticator(
    _server: Any, _session: Any, _envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == USER
        and auth_data.password.decode() == PASSWORD
    )
    return AuthResult(success=ok, handled=False)


class SmtpServer:
    """aiosmtpd on loopback requiring AUTH (plain text: no TLS on loopback)."""

    def __init__(self, port: int, inbox: Any = None) -> None:
        self.port = port
        self.inbox = Inbox() if inbox is None else inbox
        self.controller = Controller(
            self.inbox,
            hostname="127.0.0.1",
            port=port,
            authenticator=_authenticator,
            auth_required=True,
            auth_require_tls=False,
        )

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer(free_port()) as server:
        yield server


def mail_settings(port: int, password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
    """``make_kit`` overrides for sending to the SMTP server on loopback ``port``."""
    return {
        "sender_email": USER,
        "sender_password": password,
        "teacher_email": TEACHERS,
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "smtp_timeout_s": 5.0,
        "class_name": "Room 12 <Biology>",
        **extra,
    }


def mail_env(settings: Settings) -> dict[str, str]:
    """The same settings as environment variables, for the CLI."""
    return {
        "SENDER_EMAIL": settings.sender_email,
        "SENDER_PASSWORD": settings.sender_password,
        "TEACHER_EMAIL": settings.teacher_email,
        "ATTENDANCE_SMTP_HOST": settings.smtp_host,
        "ATTENDANCE_SMTP_PORT": str(settings.smtp_port),
        "ATTENDANCE_SMTP_SECURITY": settings.smtp_security,
        "ATTENDANCE_DATA_DIR": str(settings.data_dir),
        "ATTENDANCE_DATASET_DIR": str(settings.dataset_dir),
        "ATTENDANCE_TIMEZONE": settings.timezone,
    }


@pytest.fixture
def kits(tmp_path: Path) -> Iterator[Callable[..., Kit]]:
    """``make_kit`` in ``tmp_path``, closed at the end of the test."""
    made: list[Kit] = []

    def make(**kwargs: Any) -> Kit:
        kit = make_kit(tmp_path, **kwargs)
        made.append(kit)
        return kit

    yield make
    for kit in made:
        kit.services.close()


def send_now(kit: Kit, **form: str) -> Any:
    return kit.client.post("/send_report", headers={"X-API-KEY": API_KEY}, data=form)


def jpeg(color: tuple[int, int, int] = (180, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), color).save(out, format="JPEG")
    return out.getvalue()


def _attachments(message: EmailMessage) -> dict[str, str]:
    return {
        str(part.get_filename()): part.get_content().replace("\r\n", "\n")
        for part in message.iter_attachments()
        if str(part.get_filename()).endswith(".csv")
    }


def _body(message: EmailMessage, kind: str) -> str:
    part = message.get_body(preferencelist=(kind,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


# --- manual sends through the app ---------------------------------------------------------------


@pytest.mark.real
def test_manual_send_through_the_app(kits: Callable[..., Kit], smtp: SmtpServer) -> None:
    kit = kits(students=("ana_lima", "ben_ito", "=evil<b>"), **mail_settings(smtp.port))
    assert kit.recognize(kit.probe("ana_lima")).get_json()["new"] is True  # 08:55 Present
    kit.clock.set(datetime(2026, 11, 23, 9, 20, 7, tzinfo=PARIS))
    assert kit.recognize(kit.probe("ben_ito")).get_json()["attendance"] == "Late"
    intruder = kit.analyzer.add(jpeg(), ScriptedFace(identity(10_042)))
    for _ in range(kit.settings.intruder_threshold):  # the third unknown frame is kept
        kit.recognize(intruder, camera="door")
    assert len(list(kit.settings.intruders_dir.glob("2026-11-23/intruder_092007_door_*"))) == 1

    response = send_now(kit)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {
        "status": "success",
        "date": "2026-11-23",
        "recipients": RECIPIENTS,
    }
    [message] = smtp.inbox.messages
    assert smtp.inbox.envelopes == [(USER, RECIPIENTS)]
    assert message["Subject"] == "Room 12 <Biology>: attendance 2026-11-23 (2/3 present, 1 late)"
    assert message["To"] == "teacher@school.test, head@school.test"
    assert message["Date"] == "Mon, 23 Nov 2026 09:20:07 +0100"  # the server's clock and zone
    text = _body(message, "plain")
    assert "  08:55:00  Present  ana_lima\n" in text
    assert "  09:20:07  Late     ben_ito\n" in text
    assert "Absent: =evil<b>\n" in text
    assert "Intruder photos: 09:20:07 (door)\n" in text
    html = _body(message, "html")
    assert "<tr><td>ana_lima</td><td>08:55:00</td><td class='present'>Present</td></tr>" in html
    assert "<tr><td>ben_ito</td><td>09:20:07</td><td class='late'>Late</td></tr>" in html
    assert "<h1>Room 12 &lt;Biology&gt;</h1>" in html and "<Biology>" not in html
    assert "<b>Absent (1):</b> =evil&lt;b&gt;" in html and "=evil<b>" not in html
    assert "Intruder photos (1)" in html
    images = {
        part["Content-ID"].strip("<>"): part
        for part in message.walk()
        if part.get_content_maintype() == "image"
    }
    assert len(images) == 2 and all(f"cid:{cid}" in html for cid in images)
    kinds = sorted(part.get_content_type() for part in images.values())
    assert kinds == ["image/jpeg", "image/png"]
    sizes = {}
    for part in images.values():
        with Image.open(io.BytesIO(part.get_content())) as picture:
            sizes[picture.format] = picture.size
    assert sizes == {"PNG": (704, 374), "JPEG": (160, 120)}  # the chart, the thumbnail
    attachments = _attachments(message)
    assert attachments == {
        "attendance_2026-11-23.csv": (
            "Name,Time,Status\nana_lima,08:55:00,Present\nben_ito,09:20:07,Late\n"
        ),
        "student_statistics.csv": (
            "Student Name,Total Days Present,Days On Time,Days Late,Attendance Percentage,"
            "Late Percentage\n"
            "'=evil<b>,0,0,0,0.0,0.0\n"
            "ana_lima,1,1,0,100.0,0.0\n"
            "ben_ito,1,0,1,100.0,100.0\n"
        ),
    }
    for name, content in attachments.items():  # the files in logs/ are the ones sent
        assert (kit.logs / name).read_text() == content


@pytest.mark.real
def test_smtp_down_is_a_clear_error_then_a_retry_delivers(
    kits: Callable[..., Kit], cli: Callable[..., Result]
) -> None:
    port = free_port()
    kit = kits(**mail_settings(port))
    down = send_now(kit)
    assert down.status_code == 503
    assert down.get_json()["status"] == "mail_unavailable"
    assert down.get_json()["error"].startswith(f"cannot reach the SMTP server 127.0.0.1:{port}: ")
    kit.clock.advance(minutes=5)
    with SmtpServer(port) as smtp:
        again = send_now(kit, date="2026-01-05")
        assert again.status_code == 200, again.get_data(as_text=True)
        assert again.get_json()["date"] == "2026-01-05"
        bad_date = send_now(kit, date="yesterday")
    assert bad_date.status_code == 400
    assert bad_date.get_json() == {"status": "bad_request", "error": "date must be YYYY-MM-DD"}
    [message] = smtp.inbox.messages
    assert "attendance 2026-01-05 (0/3 present, 0 late)" in message["Subject"]
    log = cli("report", "log", env=mail_env(kit.settings))
    assert log.exit_code == 0, log.stderr
    assert log.stdout.splitlines() == [
        "2026-11-23 08:00:00 UTC  2026-01-05  manual     sent    "
        "teacher@school.test, head@school.test",
        "2026-11-23 07:55:00 UTC  2026-11-23  manual     unsent  "
        "teacher@school.test, head@school.test  " + down.get_json()["error"],
    ]


@pytest.mark.real
def test_wrong_password_is_reported_plainly(
    kits: Callable[..., Kit],
    smtp: SmtpServer,
    cli: Callable[..., Result],
    caplog: pytest.LogCaptureFixture,
) -> None:
    kit = kits(**mail_settings(smtp.port, password="wrong-secret-999"))
    with caplog.at_level(logging.DEBUG):
        response = send_now(kit)
    assert response.status_code == 502
    body = response.get_json()
    assert body["status"] == "mail_login_refused"
    assert body["error"].startswith(
        f"the SMTP server 127.0.0.1:{smtp.port} refused the login of {USER} (535)"
    )
    assert "wrong-secret-999" not in response.get_data(as_text=True)
    assert "refused the login" in caplog.text and "wrong-secret-999" not in caplog.text
    result = cli("report", "send", env=mail_env(kit.settings))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: the SMTP server 127.0.0.1:{smtp.port} refused")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "wrong-secret-999" not in result.stderr
    assert smtp.inbox.messages == []
    assert [a["outcome"] for a in kit.services.store.attempts()] == ["failed", "failed"]


@pytest.mark.real
def test_timeout_and_refused_connection(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections, never says hello
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        settings = make_settings(tmp_path, **mail_settings(port, smtp_timeout_s=0.3))
        with pytest.raises(MailTimeoutError) as timed_out:
            send(EmailMessage(), settings)
    assert str(timed_out.value) == f"the SMTP server 127.0.0.1:{port} did not answer in 0.3 s"
    closed = free_port()
    with pytest.raises(MailUnavailableError) as refused:
        send(EmailMessage(), make_settings(tmp_path, **mail_settings(closed)))
    assert str(refused.value).startswith(f"cannot reach the SMTP server 127.0.0.1:{closed}: ")


@pytest.mark.real
def test_login_refused_error_never_shows_the_password(tmp_path: Path, smtp: SmtpServer) -> None:
    settings = make_settings(tmp_path, **mail_settings(smtp.port, "hunter2"))
    with pytest.raises(MailAuthError) as caught:
        send(EmailMessage(), settings)
    assert "hunter2" not in str(caught.value) and USER in str(caught.value)
    assert smtp.inbox.messages == []


@pytest.mark.real
def test_starttls_that_the_server_does_not_offer_sends_no_password(
    tmp_path: Path, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loopback server offers AUTH but no STARTTLS: with ``starttls`` neither the password
    nor the message crosses in clear; ``none`` (said explicitly) still sends to such a relay."""
    logins: list[str] = []
    login = smtplib.SMTP.login

    def spy(client: smtplib.SMTP, user: str, password: str, **kwargs: Any) -> Any:
        logins.append(user)
        return login(client, user, password, **kwargs)

    monkeypatch.setattr(smtplib.SMTP, "login", spy)
    settings = make_settings(tmp_path, **mail_settings(smtp.port, smtp_security="starttls"))
    with pytest.raises(MailUnavailableError) as refused:
        send(EmailMessage(), settings)
    assert str(refused.value).startswith(
        f"the SMTP server 127.0.0.1:{smtp.port} does not offer STARTTLS, so nothing was sent"
    )
    assert "ATTENDANCE_SMTP_SECURITY=ssl" in str(refused.value)
    assert PASSWORD not in str(refused.value)
    assert logins == [] and smtp.inbox.messages == []
    message = EmailMessage()
    message["Subject"] = "plain relay"
    send(message, replace(settings, smtp_security="none"))
    assert logins == [USER] and [m["Subject"] for m in smtp.inbox.messages] == ["plain relay"]


# --- preview -----------------------------------------------------------------------------------


def test_empty_day_preview_says_everyone_is_absent(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    dataset = tmp_path / "dataset"
    for name in ("ben", "ana"):
        (dataset / name).mkdir(parents=True)
    data = tmp_path / "d"
    env = {"ATTENDANCE_DATASET_DIR": str(dataset), "ATTENDANCE_DATA_DIR": str(data)}
    html_out, eml_out = tmp_path / "r.html", tmp_path / "r.eml"
    for out in (html_out, eml_out):
        result = cli("report", "preview", "--date", "2026-03-02", "--out", str(out), env=env)
        assert result.exit_code == 0, result.stderr
        assert result.stdout == f"Report for 2026-03-02 written to {out}.\n"
        assert result.stderr.startswith(f"Note: no database at {data / 'attendance.db'}")
    assert not data.exists()  # a preview records nothing
    page = html_out.read_text()
    assert "Nobody was marked today" in page and "<b>Absent (2):</b> ana, ben" in page
    assert "data:image/png;base64," in page and "cid:" not in page
    message = email.message_from_bytes(eml_out.read_bytes(), policy=default_policy)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "Smart Attendance: attendance 2026-03-02 (0/2 present, 0 late)"
    assert _attachments(message) == {
        "attendance_2026-03-02.csv": "Name,Time,Status\n",
        "student_statistics.csv": (
            "Student Name,Total Days Present,Days On Time,Days Late,Attendance Percentage,"
            "Late Percentage\nana,0,0,0,0.0,0.0\nben,0,0,0,0.0,0.0\n"
        ),
    }
    bad = cli("report", "preview", "--out", str(tmp_path / "r.pdf"), env=env)
    assert bad.exit_code == 1
    assert bad.stderr.splitlines()[-1] == "Error: --out must end in .eml or .html"
    assert not (tmp_path / "r.pdf").exists()


def test_report_of_a_day_without_marks_from_the_service(kit: Kit) -> None:
    kit.recognize(kit.probe("ana_lima"))  # Monday; the report is for Sunday
    day, message = kit.services.reports.message(date(2026, 11, 22))
    assert day == date(2026, 11, 22)
    assert message["Subject"] == "Smart Attendance: attendance 2026-11-22 (0/3 present, 0 late)"
    text = _body(message, "plain")
    assert "Nobody was marked today: every enrolled student is absent." in text
    assert "Absent: ana_lima, ben_ito, cleo_park\n" in text
    assert not (kit.logs / "attendance_2026-11-22.csv").exists()  # no day file for an empty day


# --- the scheduler, on the injected clock ------------------------------------------------------

REPORT_AT = datetime(2026, 11, 23, 17, 0, tzinfo=PARIS)


def scheduler_for(kit: Kit, services: Any = None) -> ReportScheduler:
    services = services or kit.services
    return ReportScheduler(kit.settings, services.store, services.reports, kit.clock)


def tick_at(kit: Kit, scheduler: ReportScheduler, when: datetime) -> float:
    kit.clock.set(when)
    return scheduler.tick(when)


@pytest.mark.real
def test_scheduler_retries_with_back_off_and_sends_once(kits: Callable[..., Kit]) -> None:
    port = free_port()
    kit = kits(**mail_settings(port, report_time=clock_time(17, 0)))
    kit.recognize(kit.probe("ana_lima"))
    store = kit.services.store
    scheduler = scheduler_for(kit)

    assert tick_at(kit, scheduler, REPORT_AT - timedelta(seconds=2)) == 2.0  # not before 17:00
    assert store.report_status(MONDAY) is None and store.attempts() == []
    tick_at(kit, scheduler, REPORT_AT)  # SMTP is down: failed, retry in 30 s
    assert store.report_status(MONDAY) == "failed"
    tick_at(kit, scheduler, REPORT_AT + timedelta(seconds=29))
    assert len(store.attempts()) == 1  # not due yet
    tick_at(kit, scheduler, REPORT_AT + timedelta(seconds=30))  # second failure: retry in 60 s
    assert len(store.attempts()) == 2
    with SmtpServer(port) as smtp:
        tick_at(kit, scheduler, REPORT_AT + timedelta(seconds=89))
        assert smtp.inbox.messages == [] and len(store.attempts()) == 2
        tick_at(kit, scheduler, REPORT_AT + timedelta(seconds=90))
        assert len(smtp.inbox.messages) == 1
        for later in (timedelta(seconds=91), timedelta(hours=2), timedelta(hours=6, minutes=59)):
            tick_at(kit, scheduler, REPORT_AT + later)
        # A server started later on the same database does not send it again either.
        other = build_services(kit.settings, clock=kit.clock, analyzer=kit.analyzer)
        try:
            tick_at(kit, scheduler_for(kit, other), REPORT_AT + timedelta(hours=3))
        finally:
            other.close()
    assert len(smtp.inbox.messages) == 1
    assert "attendance 2026-11-23 (1/3 present, 0 late)" in smtp.inbox.messages[0]["Subject"]
    assert store.report_status(MONDAY) == "sent"
    attempts = [(a["kind"], a["outcome"], a["at"]) for a in store.attempts()]
    assert attempts == [
        ("scheduled", "sent", datetime(2026, 11, 23, 16, 1, 30)),  # UTC
        ("scheduled", "unsent", datetime(2026, 11, 23, 16, 0, 30)),  # no mail server
        ("scheduled", "unsent", datetime(2026, 11, 23, 16, 0, 0)),
    ]


@pytest.mark.real
def test_scheduled_report_arrives_once_with_two_servers(
    kits: Callable[..., Kit], smtp: SmtpServer
) -> None:
    """Two processes' services on the same SQLite file, their schedulers ticking at the same
    moment: exactly one email."""
    kit = kits(**mail_settings(smtp.port, report_time=clock_time(17, 0)))
    kit.recognize(kit.probe("ben_ito"))
    second = build_services(kit.settings, clock=kit.clock, analyzer=kit.analyzer)
    try:
        schedulers = [scheduler_for(kit), scheduler_for(kit, second)]

        def together(when: datetime) -> None:
            kit.clock.set(when)
            tick_together(schedulers, when)

        together(REPORT_AT - timedelta(seconds=1))
        assert smtp.inbox.messages == []  # not before its time
        for when in (REPORT_AT, REPORT_AT + timedelta(seconds=1), REPORT_AT + timedelta(hours=1)):
            together(when)
            assert len(smtp.inbox.messages) == 1  # once, and not again
    finally:
        second.close()
    [message] = smtp.inbox.messages
    assert message["Subject"] == "Room 12 <Biology>: attendance 2026-11-23 (1/3 present, 0 late)"
    assert [(a["kind"], a["outcome"]) for a in kit.services.store.attempts()] == [
        ("scheduled", "sent")
    ]


@pytest.mark.real
def test_a_failed_report_is_sent_the_next_morning_by_a_restarted_server(
    kits: Callable[..., Kit],
) -> None:
    port = free_port()
    kit = kits(**mail_settings(port, report_time=clock_time(17, 0)))
    kit.recognize(kit.probe("cleo_park"))
    tick_at(kit, scheduler_for(kit), REPORT_AT)  # SMTP down; then this server stops
    assert kit.services.store.report_status(MONDAY) == "failed"
    restarted = scheduler_for(kit)  # knows nothing of the failure but what the database says
    with SmtpServer(port) as smtp:
        tick_at(kit, restarted, datetime(2026, 11, 24, 8, 0, tzinfo=PARIS))
    [message] = smtp.inbox.messages  # Monday's report; Tuesday's is not due before 17:00
    assert "attendance 2026-11-23 (1/3 present, 0 late)" in message["Subject"]
    assert kit.services.store.report_status(MONDAY) == "sent"
    assert kit.services.store.report_status(date(2026, 11, 24)) is None


def test_a_scheduled_report_without_recipients_stops_start_up(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    data = tmp_path / "d"
    result = cli(
        "serve",
        env={
            "API_SECRET_KEY": "k",
            "ATTENDANCE_REPORT_TIME": "17:30",
            "SENDER_EMAIL": USER,
            "ATTENDANCE_DATA_DIR": str(data),
        },
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "Error: ATTENDANCE_REPORT_TIME is set but SENDER_PASSWORD and TEACHER_EMAIL are empty "
        "(set them, or leave ATTENDANCE_REPORT_TIME empty; docs/report.md)\n"
    )
    assert not data.exists()  # stopped before opening the database or starting workers


# --- sends that never reach the mail server ------------------------------------------------------


NOT_CONFIGURED = (
    "email is not configured: set SENDER_EMAIL, SENDER_PASSWORD and TEACHER_EMAIL in .env (in "
    "the server's folder) or the environment, then restart the server; see docs/report.md "
    "(for Gmail: an app password)"
)


def test_email_not_configured_names_every_setting_and_never_uses_up_the_hourly_sends(
    kits: Callable[..., Kit], cli: Callable[..., Result]
) -> None:
    kit = kits(report_sends_per_hour=2)  # no email settings at all
    for _ in range(5):  # an admin trying while setting up Gmail: never locked out
        refused = send_now(kit)
        assert refused.status_code == 503
        assert refused.get_json() == {"status": "mail_not_configured", "error": NOT_CONFIGURED}
    # The command says the same.
    env = {**mail_env(kit.settings), "SENDER_EMAIL": "", "SENDER_PASSWORD": "", "TEACHER_EMAIL": ""}
    del env["ATTENDANCE_SMTP_PORT"]  # not set: the port that goes with the security
    result = cli("report", "send", env=env)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {NOT_CONFIGURED}\n"
    attempts = kit.services.store.attempts()
    assert [a["outcome"] for a in attempts] == ["unsent"] * 6
    # Another mail server (a relay may need no login): only what is missing is named.
    relay = replace(kit.settings, smtp_host="mail.school.test", sender_email=USER)
    assert missing_settings(relay) == ["TEACHER_EMAIL"]


@pytest.mark.real
def test_only_sends_that_reached_the_mail_server_count_against_the_hourly_limit(
    kits: Callable[..., Kit],
) -> None:
    port = free_port()  # nothing listens there yet: the SMTP server is down
    kit = kits(report_sends_per_hour=2, **mail_settings(port))
    for _ in range(3):
        down = send_now(kit)
        assert down.get_json()["status"] == "mail_unavailable"
        kit.clock.advance(minutes=1)
    with SmtpServer(port, inbox=Inbox()) as smtp:
        for _ in range(2):
            assert send_now(kit).status_code == 200
            kit.clock.advance(minutes=1)
        limited = send_now(kit)
        assert limited.status_code == 429
        assert "sent by hand 2 times" in limited.get_json()["error"]
    assert len(smtp.inbox.messages) == 2
    outcomes = [a["outcome"] for a in reversed(kit.services.store.attempts())]
    assert outcomes == ["unsent"] * 3 + ["sent"] * 2
