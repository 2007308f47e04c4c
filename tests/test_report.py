"""The daily report against a real SMTP server on loopback (aiosmtpd, with AUTH)."""

from __future__ import annotations

import email
import socket
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from conftest import PROBES, STUDENTS, ServerProcess, build_dataset, face_bytes, free_port, run_cli
from smart_attendance.config import Settings
from smart_attendance.errors import MailAuthError, MailTimeoutError, MailUnavailableError
from smart_attendance.mailer import send
from smart_attendance.models import Mark
from smart_attendance.scheduler import ReportScheduler
from smart_attendance.service import AttendanceService
from smart_attendance.store import Store

USER, PASSWORD = "sender@school.test", "app-password-123"
TEACHERS = "teacher@school.test, head@school.test"


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

    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
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


def mail_env(port: int, password: str = PASSWORD) -> dict[str, str]:
    return {
        "SENDER_EMAIL": USER,
        "SENDER_PASSWORD": password,
        "TEACHER_EMAIL": TEACHERS,
        "ATTENDANCE_SMTP_HOST": "127.0.0.1",
        "ATTENDANCE_SMTP_PORT": str(port),
        "ATTENDANCE_SMTP_SECURITY": "none",
        "ATTENDANCE_SMTP_TIMEOUT_S": "5",
        "ATTENDANCE_CLASS_NAME": "Room 12 <Biology>",
    }


def _settings(tmp_path: Path, port: int, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "sender_email": USER,
        "sender_password": PASSWORD,
        "teacher_email": TEACHERS,
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "smtp_timeout_s": 2.0,
        "data_dir": tmp_path / "data",
        "dataset_dir": tmp_path / "ds",
        "timezone": "UTC",
    }
    values.update(extra)
    return Settings(**values)


def _attachments(message: EmailMessage) -> dict[str, str]:
    return {
        part.get_filename(): part.get_content()
        for part in message.iter_attachments()
        if part.get_filename() and part.get_filename().endswith(".csv")
    }


def test_manual_send_through_the_server(tmp_path: Path, smtp: SmtpServer) -> None:
    dataset = build_dataset(
        tmp_path / "dataset",
        {
            "george_w_bush": STUDENTS["george_w_bush"],
            "obama": STUDENTS["obama"],
            "=evil<b>": STUDENTS["biden"],
        },
    )
    server = ServerProcess(
        dataset,
        tmp_path / "data",
        env={
            **mail_env(smtp.port),
            "ATTENDANCE_CLASS_START": "00:00",
            "ATTENDANCE_LATE_AFTER_MINUTES": "1440",
        },
    ).start()
    try:
        assert server.recognize(face_bytes(PROBES["george_w_bush"])).json()["new"] is True
        response = requests_post(server, "/send_report")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success"
        assert body["recipients"] == ["teacher@school.test", "head@school.test"]
    finally:
        server.stop()
    [message] = smtp.inbox.messages
    assert smtp.inbox.envelopes[0] == (USER, ["teacher@school.test", "head@school.test"])
    day = body["date"]
    assert day in message["Subject"] and "Room 12 <Biology>" in message["Subject"]
    html = message.get_body(preferencelist=("html",)).get_content()
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "george_w_bush" in html and "george_w_bush" in text
    assert "Room 12 &lt;Biology&gt;" in html and "<Biology>" not in html
    assert "=evil&lt;b&gt;" in html and "=evil<b>" not in html  # absent, escaped
    inline = [p for p in message.walk() if p.get_content_maintype() == "image"]
    assert inline and inline[0]["Content-ID"].strip("<>") in html
    assert inline[0].get_content().startswith(b"\x89PNG")
    attachments = _attachments(message)
    assert set(attachments) == {f"attendance_{day}.csv", "student_statistics.csv"}
    assert attachments[f"attendance_{day}.csv"].splitlines()[0] == "Name,Time,Status"
    assert "george_w_bush" in attachments[f"attendance_{day}.csv"]
    assert "'=evil<b>" in attachments["student_statistics.csv"]
    on_disk = (tmp_path / "data" / "logs" / f"attendance_{day}.csv").read_text()
    assert on_disk.replace("\r\n", "\n") == attachments[f"attendance_{day}.csv"].replace(
        "\r\n", "\n"
    )


def requests_post(server: ServerProcess, path: str, **kwargs: Any) -> Any:
    import requests

    from conftest import API_KEY

    return requests.post(server.url + path, headers={"X-API-KEY": API_KEY}, timeout=60, **kwargs)


def test_smtp_down_is_a_clear_error_then_a_retry_delivers(tmp_path: Path) -> None:
    port = free_port()
    dataset = build_dataset(tmp_path / "dataset", {"obama": STUDENTS["obama"]})
    server = ServerProcess(dataset, tmp_path / "data", env=mail_env(port)).start()
    try:
        down = requests_post(server, "/send_report")
        assert down.status_code == 503
        assert down.json()["status"] == "mail_unavailable"
        assert f"127.0.0.1:{port}" in down.json()["error"]
        with SmtpServer(port) as smtp:
            again = requests_post(server, "/send_report", data={"date": "2026-01-05"})
            assert again.status_code == 200, again.text
            assert again.json()["date"] == "2026-01-05"
        assert len(smtp.inbox.messages) == 1
        bad_date = requests_post(server, "/send_report", data={"date": "yesterday"})
        assert bad_date.status_code == 400
    finally:
        server.stop()
    log = run_cli(
        "report",
        "log",
        env={**mail_env(port), "ATTENDANCE_DATA_DIR": str(tmp_path / "data")},
        cwd=tmp_path,
    )
    lines = log.stdout.splitlines()
    assert len(lines) == 2
    assert "manual" in lines[0] and "sent" in lines[0] and "2026-01-05" in lines[0]
    assert "failed" in lines[1] and "cannot reach the SMTP server" in lines[1]


def test_wrong_password_is_reported_plainly(tmp_path: Path, smtp: SmtpServer) -> None:
    dataset = build_dataset(tmp_path / "dataset", {"obama": STUDENTS["obama"]})
    env = mail_env(smtp.port, password="wrong-secret-999")
    server = ServerProcess(dataset, tmp_path / "data", env=env).start()
    try:
        response = requests_post(server, "/send_report")
    finally:
        server.stop()
    assert response.status_code == 502
    body = response.json()
    assert body["status"] == "mail_login_refused"
    assert "refused the login" in body["error"] and "wrong-secret-999" not in response.text
    assert "wrong-secret-999" not in server.output()
    cli = run_cli(
        "report",
        "send",
        env={
            **env,
            "ATTENDANCE_DATA_DIR": str(tmp_path / "data"),
            "ATTENDANCE_DATASET_DIR": str(dataset),
        },
        cwd=tmp_path,
    )
    assert cli.returncode == 1
    assert cli.stderr.startswith("Error: the SMTP server") and "refused the login" in cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1
    assert "wrong-secret-999" not in cli.stderr
    assert smtp.inbox.messages == []


def test_timeout_and_refused_connection(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections, never says hello
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        settings = _settings(tmp_path, silent.getsockname()[1], smtp_timeout_s=1.0)
        with pytest.raises(MailTimeoutError, match="did not answer in 1 s"):
            send(EmailMessage(), settings)
    with pytest.raises(MailUnavailableError, match="cannot reach"):
        send(EmailMessage(), _settings(tmp_path, free_port()))


def test_login_refused_error_never_shows_the_password(tmp_path: Path, smtp: SmtpServer) -> None:
    with pytest.raises(MailAuthError) as caught:
        send(EmailMessage(), _settings(tmp_path, smtp.port, sender_password="hunter2"))
    assert "hunter2" not in str(caught.value)


def test_empty_day_preview_says_everyone_is_absent(tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    for name in ("ana", "ben"):
        (dataset / name).mkdir(parents=True)
    env = {"ATTENDANCE_DATASET_DIR": str(dataset), "ATTENDANCE_DATA_DIR": str(tmp_path / "d")}
    html_out, eml_out = tmp_path / "r.html", tmp_path / "r.eml"
    for out in (html_out, eml_out):
        result = run_cli(
            "report", "preview", "--date", "2026-03-02", "--out", str(out), env=env, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
    page = html_out.read_text()
    assert "Nobody was marked today" in page and "Absent (2):</b> ana, ben" in page
    assert "data:image/png;base64," in page
    message = email.message_from_bytes(eml_out.read_bytes(), policy=default_policy)
    assert "2026-03-02" in message["Subject"] and "0/2 present" in message["Subject"]
    assert len(list(message.iter_attachments())) >= 2
    bad = run_cli("report", "preview", "--out", str(tmp_path / "r.pdf"), env=env, cwd=tmp_path)
    assert bad.returncode == 1 and "--out must end in .eml or .html" in bad.stderr


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_scheduler_retries_with_back_off_and_sends_once(tmp_path: Path) -> None:
    port = free_port()
    start = datetime(2026, 11, 23, 17, 0, 5, tzinfo=timezone.utc)
    clock = FakeClock(start)
    from datetime import time as dtime

    settings = _settings(tmp_path, port, report_time=dtime(17, 0))
    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    store.create()
    store.record_mark(Mark("ana", start.date(), start.replace(tzinfo=None), "Late", "cam"))
    scheduler = ReportScheduler(AttendanceService(settings, store, None, clock))
    scheduler.tick()  # SMTP is down: failed, retry in 30 s
    assert store.report_status(start.date()) == "failed"
    with SmtpServer(port) as smtp:
        clock.now = start + timedelta(seconds=10)
        scheduler.tick()  # not due yet
        assert smtp.inbox.messages == []
        clock.now = start + timedelta(seconds=31)
        scheduler.tick()
        assert len(smtp.inbox.messages) == 1
        clock.now = start + timedelta(hours=2)
        scheduler.tick()
        # A second process sharing the database does not send it again either.
        other = ReportScheduler(AttendanceService(settings, Store(store.url), None, clock))
        other.tick()
    assert len(smtp.inbox.messages) == 1
    assert store.report_status(start.date()) == "sent"
    kinds = [(a["kind"], a["outcome"]) for a in store.attempts()]
    assert kinds == [("scheduled", "sent"), ("scheduled", "failed")]


def test_scheduled_report_arrives_once_with_two_server_processes(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    zone = "UTC"
    now = datetime.now(ZoneInfo(zone))
    if now.second > 45:  # leave the servers time to start before the minute turns
        time.sleep(62 - now.second)
        now = datetime.now(ZoneInfo(zone))
    due = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    if due.date() != now.date():
        pytest.skip("too close to midnight UTC for a same-day schedule")
    dataset = build_dataset(tmp_path / "dataset", {"obama": STUDENTS["obama"]})
    env = {
        **mail_env(smtp.port),
        "ATTENDANCE_TIMEZONE": zone,
        "ATTENDANCE_REPORT_TIME": due.strftime("%H:%M"),
    }
    first = ServerProcess(dataset, tmp_path / "data", env=env).start()
    second = ServerProcess(dataset, tmp_path / "data", env=env).start()
    try:
        assert datetime.now(ZoneInfo(zone)) < due
        assert smtp.inbox.messages == []  # not before its time
        while datetime.now(ZoneInfo(zone)) < due + timedelta(seconds=8):
            time.sleep(0.5)
        assert len(smtp.inbox.messages) == 1
        time.sleep(3)
        assert len(smtp.inbox.messages) == 1  # and not again
    finally:
        first.stop()
        second.stop()
    assert (
        date.today().isoformat() in smtp.inbox.messages[0]["Subject"]
        or due.date().isoformat() in smtp.inbox.messages[0]["Subject"]
    )


def test_a_scheduled_report_without_recipients_stops_start_up(tmp_path: Path) -> None:
    result = run_cli(
        "serve",
        env={
            "API_SECRET_KEY": "k",
            "ATTENDANCE_REPORT_TIME": "17:30",
            "SENDER_EMAIL": USER,
            "ATTENDANCE_DATA_DIR": str(tmp_path),
        },
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: ATTENDANCE_REPORT_TIME is set but TEACHER_EMAIL is empty "
        "(set it, or leave ATTENDANCE_REPORT_TIME empty)"
    )
