"""The daily report with a timetable: one email per class with teachers (its roster and periods
of the day, absent and excused students, the day's corrections) and the whole school's report
to TEACHER_EMAIL; a class email that fails does not stop the others. In process, on a real
SMTP server on loopback (aiosmtpd, with AUTH) for the tests marked ``real``."""

from __future__ import annotations

import email
from collections.abc import Callable, Iterator
from datetime import date, datetime
from datetime import time as clock_time
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from conftest import API_KEY, PARIS, Kit, free_port, make_kit
from scripted import ScriptedFace, identity
from smart_attendance.models import Correction
from smart_attendance.reports.scheduler import ReportScheduler
from test_report import PASSWORD, USER, jpeg, mail_env, mail_settings
from test_report import SmtpServer as ReportSmtpServer

TIMETABLE = """\
[[class]]
name = "7b"
teachers = ["t7b@school.test"]
students = ["ana_lima", "ben_ito", "=evil<b>"]

  [[class.period]]
  days = ["mon"]
  start = "08:30"
  end = "09:25"
  late_after_minutes = 10

  [[class.period]]
  days = ["mon"]
  start = "09:30"
  end = "10:25"

[[class]]
name = "8a"
teachers = ["t8a@school.test", "teacher@school.test"]
students = ["cleo_park"]

  [[class.period]]
  days = ["mon", "tue"]
  start = "08:30"
  end = "09:25"

[[class]]
name = "clubs"                 # no teachers: in the school's report only
students = ["*"]

  [[class.period]]
  days = ["mon"]
  start = "16:00"
  end = "17:00"

[[closure]]
from = "2026-11-24"
reason = "staff <training>"
"""
STUDENTS = ("ana_lima", "ben_ito", "cleo_park", "=evil<b>")
MONDAY = date(2026, 11, 23)
SCHOOL = ["teacher@school.test", "head@school.test"]  # TEACHER_EMAIL
EVENING = datetime(2026, 11, 23, 17, 30, tzinfo=PARIS)


class Inbox:
    """Keeps every message; refuses the recipients in ``refuse`` (550)."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def by_subject(self) -> dict[str, EmailMessage]:
        return {str(m["Subject"]).split(":")[0]: m for m in self.messages}


class SmtpServer(ReportSmtpServer):
    """aiosmtpd on loopback requiring AUTH, as in test_report, refusing some recipients."""

    inbox: Inbox

    def __init__(self, port: int, refuse: set[str] | None = None) -> None:
        super().__init__(port, Inbox(refuse or set()))

    def __enter__(self) -> SmtpServer:
        super().__enter__()
        return self


@pytest.fixture
def school(tmp_path: Path) -> Iterator[Callable[..., Kit]]:
    """A kit on TIMETABLE (closed at the end of the test) after a Monday of school: ana_lima
    on time twice, cleo_park late in 8a, ben_ito excused by the office for 7b 08:30 and late
    at 09:50, '=evil<b>' never seen; nobody at the clubs. The clock ends at 17:30."""
    made: list[Kit] = []

    def make(port: int = 25, **settings: Any) -> Kit:
        path = tmp_path / "timetable.toml"
        path.write_text(TIMETABLE, encoding="utf-8")
        kit = make_kit(
            tmp_path,
            students=STUDENTS,
            now=datetime(2026, 11, 23, 8, 35, tzinfo=PARIS),
            timetable=path,
            **{**mail_settings(port), "class_name": "Greenfield <School>", **settings},
        )
        made.append(kit)
        seen = [("ana_lima", 8, 35), ("cleo_park", 8, 50), ("ana_lima", 9, 40), ("ben_ito", 9, 50)]
        for name, hour, minute in seen:
            kit.clock.set(datetime(2026, 11, 23, hour, minute, tzinfo=PARIS))
            assert kit.recognize(kit.probe(name)).get_json()["new"] is True
        excuse = Correction(
            "ben_ito",
            MONDAY,
            "7b",
            "08:30",
            "Absent",
            "Excused",
            "dentist <appt>",
            "office",
            datetime(2026, 11, 23, 9, 12),  # UTC: 10:12 in Paris
        )
        kit.services.store.record_correction(excuse)
        kit.clock.set(EVENING)
        return kit

    yield make
    for kit in made:
        kit.services.close()


def _text(message: EmailMessage, kind: str = "plain") -> str:
    part = message.get_body(preferencelist=(kind,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def _csv(message: EmailMessage) -> dict[str, str]:
    return {
        str(part.get_filename()): part.get_content().replace("\r\n", "\n")
        for part in message.iter_attachments()
        if str(part.get_filename()).endswith(".csv")
    }


def _images(message: EmailMessage) -> list[str]:
    return [p.get_content_type() for p in message.walk() if p.get_content_maintype() == "image"]


# --- the content, in process ---------------------------------------------------------------------

CLASS_7B_TEXT = """\
7b: attendance report for Monday 23 November 2026

2 periods, 3 students: present 3 of 6 (on time 2, late 1), absent 2, excused 1 (counted per \
student and period).

08:30-09:25: present 1/3, late 0, absent 1, excused 1
            Absent   =evil<b>
  08:35:00  Present  ana_lima
            Excused  ben_ito  (corrected by office: dentist <appt>)

09:30-10:25: present 2/3, late 1, absent 1, excused 0
            Absent   =evil<b>
  09:40:00  Present  ana_lima
  09:50:00  Late     ben_ito

Absent: =evil<b> (08:30, 09:30)

Excused: ben_ito (08:30: dentist <appt>)

Corrections today:
  10:12  ben_ito, 08:30: Absent -> Excused (by office: dentist <appt>)

Statistics so far (periods present of expected, late, absent, excused):
  =evil<b>: 0/2 present (0.0%), 0 late, 2 absent, 0 excused  (below the alert threshold)
  ana_lima: 2/2 present (100.0%), 0 late, 0 absent, 0 excused
  ben_ito: 1/2 present (50.0%), 1 late, 0 absent, 1 excused  (below the alert threshold)

The class's register of the day is attached as a CSV file.
"""


def test_one_email_per_class_with_teachers_and_the_school_report(
    school: Callable[..., Kit],
) -> None:
    kit = school()
    intruder = kit.analyzer.add(jpeg(), ScriptedFace(identity(10_042)))
    for _ in range(kit.settings.intruder_threshold):  # the third unknown frame is kept
        kit.recognize(intruder, camera="door")
    day, outgoing = kit.services.reports.messages()
    assert day == MONDAY
    assert [(o.class_name, o.recipients) for o in outgoing] == [
        (None, tuple(SCHOOL)),
        ("7b", ("t7b@school.test",)),
        ("8a", ("t8a@school.test", "teacher@school.test")),  # clubs has no teachers
    ]
    school_mail, class_7b, class_8a = (o.message for o in outgoing)
    assert class_7b["Subject"] == (
        "7b: attendance 2026-11-23 (2 periods: 3/6 present, 1 late, 2 absent, 1 excused)"
    )
    assert class_7b["To"] == "t7b@school.test"
    assert _text(class_7b) == CLASS_7B_TEXT
    html = _text(class_7b, "html")
    assert "<tr><td>=evil&lt;b&gt;</td><td class='absent'>Absent</td>" in html
    assert "<td class='present'>Present<small>08:35</small></td>" in html
    assert "<td class='excused'>Excused*<small>dentist &lt;appt&gt;</small></td>" in html
    assert "<td class='late'>Late<small>09:50</small></td>" in html
    assert "<b>Absent (1):</b> =evil&lt;b&gt; (08:30, 09:30)" in html
    assert "<b>Excused (1):</b> ben_ito (08:30: dentist &lt;appt&gt;)" in html
    assert (
        "<li>10:12  ben_ito, 08:30: Absent -&gt; Excused (by office: dentist &lt;appt&gt;)</li>"
        in html
    )
    assert "=evil<b>" not in html and "<appt>" not in html
    assert _images(class_7b) == ["image/png"]  # the class's chart
    assert _csv(class_7b) == {
        "register_7b_2026-11-23.csv": (
            "\ufeffClass,Period,End,Name,Display name,Status,Time,Source,Reason\n"
            "7b,08:30,09:25,'=evil<b>,'=evil<b>,Absent,,,\n"
            "7b,08:30,09:25,ana_lima,ana_lima,Present,08:35:00,camera:default,\n"
            "7b,08:30,09:25,ben_ito,ben_ito,Excused,,office,dentist <appt>\n"
            "7b,09:30,10:25,'=evil<b>,'=evil<b>,Absent,,,\n"
            "7b,09:30,10:25,ana_lima,ana_lima,Present,09:40:00,camera:default,\n"
            "7b,09:30,10:25,ben_ito,ben_ito,Late,09:50:00,camera:default,\n"
        )
    }
    assert class_8a["Subject"] == (
        "8a: attendance 2026-11-23 (1 period: 1/1 present, 1 late, 0 absent, 0 excused)"
    )
    assert "  08:50:00  Late     cleo_park\n" in _text(class_8a)
    assert "Corrections today" not in _text(class_8a)  # 7b's correction is not 8a's

    assert school_mail["Subject"] == (
        "Greenfield <School>: attendance 2026-11-23 (3 classes, 4 periods: 4/11 present, "
        "2 late, 6 absent, 1 excused)"
    )
    assert school_mail["To"] == "teacher@school.test, head@school.test"
    text = _text(school_mail)
    assert (
        "Class periods today:\n"
        "  08:30-09:25  7b     present 1/3, late 0, absent 1, excused 1\n"
        "  08:30-09:25  8a     present 1/1, late 1, absent 0, excused 0\n"
        "  09:30-10:25  7b     present 2/3, late 1, absent 1, excused 0\n"
        "  16:00-17:00  clubs  present 0/4, late 0, absent 4, excused 0\n"
    ) in text
    assert (
        "Absent: =evil<b> (7b 08:30, 7b 09:30, clubs 16:00), ana_lima (clubs 16:00), "
        "ben_ito (clubs 16:00), cleo_park (clubs 16:00)\n"
    ) in text
    assert "Excused: ben_ito (7b 08:30: dentist <appt>)\n" in text
    assert "  10:12  ben_ito, 7b 08:30: Absent -> Excused (by office: dentist <appt>)\n" in text
    html = _text(school_mail, "html")
    assert "<h1>Greenfield &lt;School&gt;</h1>" in html and "<School>" not in html
    assert (
        "<tr><td>16:00-17:00</td><td>clubs</td><td>0/4</td><td>0</td><td>4</td><td>0</td></tr>"
    ) in html
    assert "=evil<b>" not in html
    assert "Intruder photos (1)" in html and "Intruder photos: 17:30:00 (door)\n" in text
    assert sorted(_images(school_mail)) == ["image/jpeg", "image/png"]  # thumbnail, chart
    attachments = _csv(school_mail)
    assert sorted(attachments) == [
        "attendance_2026-11-23.csv",
        "register_2026-11-23.csv",
        "student_statistics.csv",
    ]
    assert attachments["register_2026-11-23.csv"].count("\n") == 12  # header + 11 entries
    assert "'=evil<b>,0,0,0,0.0,0.0\n" in attachments["student_statistics.csv"]
    for name in ("attendance_2026-11-23.csv", "student_statistics.csv"):
        assert (kit.logs / name).read_text() == attachments[name]  # the files in logs/
    # What `attendance report preview` writes is the school's report.
    assert kit.services.reports.message()[1]["Subject"] == school_mail["Subject"]


def test_a_period_still_running_a_closure_and_a_day_without_periods(
    school: Callable[..., Kit],
) -> None:
    kit = school()
    kit.clock.set(datetime(2026, 11, 23, 9, 0, tzinfo=PARIS))  # 7b and 8a at 08:30 run
    _, outgoing = kit.services.reports.messages()
    class_7b = outgoing[1].message
    assert "08:30-09:25: present 1/3, late 0, absent 0, excused 1, not seen yet 1\n" in _text(
        class_7b
    )
    assert "            not seen yet  =evil<b>\n" in _text(class_7b)
    assert "<td class='pending'>not seen yet</td>" in _text(class_7b, "html")

    _, closed = kit.services.reports.messages(date(2026, 11, 24))  # the closure
    [only] = closed  # no class email on a closure day
    assert only.message["Subject"] == (
        "Greenfield <School>: attendance 2026-11-24 (closed: staff <training>)"
    )
    assert "The school is closed today: staff <training>.\n" in _text(only.message)
    assert "<b>The school is closed today</b>: staff &lt;training&gt;." in _text(
        only.message, "html"
    )
    _, sunday = kit.services.reports.messages(date(2026, 11, 22))
    assert [o.class_name for o in sunday] == [None]
    assert sunday[0].message["Subject"] == (
        "Greenfield <School>: attendance 2026-11-22 (no class periods)"
    )


def test_without_a_timetable_one_report_that_lists_the_excused_and_corrections(
    tmp_path: Path,
) -> None:
    kit = make_kit(tmp_path, **mail_settings(25))
    try:
        kit.recognize(kit.probe("ana_lima"))
        fix = Correction(
            "ben_ito",
            MONDAY,
            "default",
            "00:00",
            None,
            "Excused",
            "flu",
            "cli:alice",
            datetime(2026, 11, 23, 8, 0),
        )
        kit.services.store.record_correction(fix)
        _, outgoing = kit.services.reports.messages()
        [only] = outgoing
        assert (only.class_name, only.recipients) == (None, tuple(SCHOOL))
        message = only.message
        assert message["Subject"] == (
            "Room 12 <Biology>: attendance 2026-11-23 (1/3 present, 0 late)"
        )
        text = _text(message)
        assert "  08:55:00  Present  ana_lima\n" in text
        assert "Absent: cleo_park\n" in text  # ben_ito is excused, not absent
        assert "Excused: ben_ito (flu)\n" in text
        assert (
            "Corrections today:\n  09:00  ben_ito: not marked -> Excused (by cli:alice: flu)\n"
            in (text)
        )
        assert "<b>Excused (1):</b> ben_ito (flu)" in _text(message, "html")
    finally:
        kit.services.close()


# --- sending, on a real SMTP server -------------------------------------------------------------


def send_now(kit: Kit, **form: str) -> Any:
    return kit.client.post("/send_report", headers={"X-API-KEY": API_KEY}, data=form)


@pytest.mark.real
def test_every_email_is_sent_and_the_answer_lists_every_address(
    school: Callable[..., Kit], cli: Callable[..., Result]
) -> None:
    with SmtpServer(free_port()) as smtp:
        kit = school(smtp.port)
        response = send_now(kit)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {
        "status": "success",
        "date": "2026-11-23",
        "recipients": [  # every address mailed, once
            "teacher@school.test",
            "head@school.test",
            "t7b@school.test",
            "t8a@school.test",
        ],
    }
    assert smtp.inbox.envelopes == [
        (USER, SCHOOL),
        (USER, ["t7b@school.test"]),
        (USER, ["t8a@school.test", "teacher@school.test"]),
    ]
    received = smtp.inbox.by_subject()
    assert sorted(received) == ["7b", "8a", "Greenfield <School>"]
    assert _text(received["7b"]) == CLASS_7B_TEXT
    assert received["8a"]["Date"] == "Mon, 23 Nov 2026 17:30:00 +0100"
    log = cli("report", "log", env=mail_env(kit.settings))
    assert log.exit_code == 0, log.stderr
    assert log.stdout.splitlines() == [
        "2026-11-23 16:30:00 UTC  2026-11-23  manual     sent    t8a@school.test, "
        "teacher@school.test",
        "2026-11-23 16:30:00 UTC  2026-11-23  manual     sent    t7b@school.test",
        "2026-11-23 16:30:00 UTC  2026-11-23  manual     sent    teacher@school.test, "
        "head@school.test",
    ]


@pytest.mark.real
def test_a_refused_class_email_does_not_stop_the_others(school: Callable[..., Kit]) -> None:
    """The scheduled send: 7b's teacher is refused by the server; the school and 8a get
    theirs, the day counts as sent (not retried), and the log names the class that failed."""
    port = free_port()
    kit = school(port, report_time=clock_time(17, 0))
    scheduler = ReportScheduler(kit.settings, kit.services.store, kit.services.reports, kit.clock)
    with SmtpServer(port, refuse={"t7b@school.test"}) as smtp:
        scheduler.tick(EVENING)
        scheduler.tick(datetime(2026, 11, 23, 18, 30, tzinfo=PARIS))  # no retry
    assert sorted(smtp.inbox.by_subject()) == ["8a", "Greenfield <School>"]
    store = kit.services.store
    assert store.report_status(MONDAY) == "sent"
    attempts = [(a["kind"], a["outcome"], a["recipients"], a["error"]) for a in store.attempts()]
    assert attempts == [
        ("scheduled", "sent", "t8a@school.test, teacher@school.test", ""),
        (
            "scheduled",
            "failed",
            "t7b@school.test",
            f"class 7b: the SMTP server 127.0.0.1:{port} refused every recipient",
        ),
        ("scheduled", "sent", "teacher@school.test, head@school.test", ""),
    ]


@pytest.mark.real
def test_only_the_school_report_delivered_is_still_a_success(school: Callable[..., Kit]) -> None:
    with SmtpServer(free_port(), refuse={"t7b@school.test", "t8a@school.test"}) as smtp:
        kit = school(smtp.port)
        response = send_now(kit)
    assert response.status_code == 200
    # 8a's email reached one of its two teachers (who is also on TEACHER_EMAIL)
    assert response.get_json()["recipients"] == ["teacher@school.test", "head@school.test"]
    assert [e[1] for e in smtp.inbox.envelopes] == [SCHOOL, ["teacher@school.test"]]
    outcomes = [(a["outcome"], a["recipients"]) for a in kit.services.store.attempts()]
    assert outcomes == [
        ("sent", "teacher@school.test"),
        ("failed", "t7b@school.test"),
        ("sent", "teacher@school.test, head@school.test"),
    ]


@pytest.mark.real
def test_nothing_sent_is_an_error_and_every_email_is_in_the_log(
    school: Callable[..., Kit],
) -> None:
    port = free_port()  # nobody listens
    kit = school(port)
    response = send_now(kit)
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "mail_unavailable"
    assert body["error"].startswith(f"cannot reach the SMTP server 127.0.0.1:{port}: ")
    attempts = [(a["outcome"], a["recipients"], a["error"]) for a in kit.services.store.attempts()]
    assert attempts == [
        # The mail server was never reached: "unsent" (not counted against the hourly limit).
        ("unsent", "t8a@school.test, teacher@school.test", f"class 8a: {body['error']}"),
        ("unsent", "t7b@school.test", f"class 7b: {body['error']}"),
        ("unsent", "teacher@school.test, head@school.test", body["error"]),
    ]


@pytest.mark.real
def test_a_wrong_password_fails_every_email_once(school: Callable[..., Kit]) -> None:
    with SmtpServer(free_port()) as smtp:
        kit = school(smtp.port, sender_password="wrong-" + PASSWORD)
        response = send_now(kit)
    assert response.status_code == 502
    assert response.get_json()["status"] == "mail_login_refused"
    assert "wrong-" not in response.get_data(as_text=True)
    assert smtp.inbox.messages == []
    assert [a["outcome"] for a in kit.services.store.attempts()] == ["failed"] * 3
