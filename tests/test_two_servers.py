"""Two real ``attendance serve`` processes of one school (docs/deploy.md: one database, one
dataset folder, one data folder, the same keys) on one real PostgreSQL, behind a real nginx
running the shipped load-balancing file (deploy/nginx/smart-attendance-lb.conf): bursts of the
same students through both servers and the proxy mark each student once; an enrolment or an
erasure on one server is honoured by the other within seconds; an intruder's frames
alternating between servers make one intruder event; a server killed mid-burst loses no scan
and marks nobody twice for a client that retries through nginx; and when nginx cannot retry
(the camera gave up waiting after the server took the scan), the camera client's own queue
keeps the scan and its retry marks once.

Measured figures are printed (run with ``-s``)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, create_engine, func, select

from conftest import (
    API_KEY,
    PROBES,
    ROOT,
    STRANGERS,
    STUDENTS,
    ServerProcess,
    build_dataset,
    face_bytes,
    free_port,
    require_faces,
)
from pg import PostgresServer
from smart_attendance.client.outbox import Outbox
from smart_attendance.client.uploader import FINAL, UNREACHABLE, Uploader
from smart_attendance.db.tables import intruders, marks, report_attempts, report_runs
from smart_attendance.models import Recognition
from smart_attendance.privacy.sealing import new_key
from test_nginx import nginx_command, require_nginx, self_signed, wait_for_port, wrapper
from test_report import PASSWORD, TEACHERS, USER, SmtpServer

pytestmark = pytest.mark.real

LB_SITE = ROOT / "deploy" / "nginx" / "smart-attendance-lb.conf"
HEADERS = {"X-API-KEY": API_KEY}
# colin_powell is left out of the dataset: enrolled through the API by the tests.
NEWCOMER = "colin_powell"
NEWCOMER_PHOTOS = ["lfw/colin_powell/1.jpg", "lfw/colin_powell/2.jpg"]
BURST_PROBES = {
    "george_w_bush": PROBES["george_w_bush"],
    "donald_rumsfeld": PROBES["donald_rumsfeld"],
    "obama": "knn/obama/3.jpg",  # not enrolled (1 and 2 are)
}
KILL_STUDENT = "biden"  # not scanned by any other test (an enrolled photo: no unseen one exists)
KILL_PHOTO = "knn/biden/1.jpg"
KILL_FRAMES = 8
PROPAGATION_LIMIT_S = 5.0


def render_lb_site(https_port: int, http_port: int, ports: list[int], cert: Path, key: Path) -> str:
    """The shipped load-balancing file with the test's ports, certificate and two servers."""
    text = LB_SITE.read_text(encoding="utf-8")
    replacements = {
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "server 127.0.0.1:5001 ": f"server 127.0.0.1:{ports[0]} ",
        "server 127.0.0.1:5002 ": f"server 127.0.0.1:{ports[1]} ",
        "/etc/letsencrypt/live/attendance.example.org/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/attendance.example.org/privkey.pem": str(key),
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, f"{old!r} is no longer in {LB_SITE.name}: update this test"
        text = text.replace(old, new)
    third = "    server 127.0.0.1:5003 max_fails=3 fail_timeout=10s;\n"
    assert text.count(third) == 1, f"the third server is no longer in {LB_SITE.name}"
    text = text.replace(third, "")
    return "\n".join(line for line in text.splitlines() if "listen [::]:" not in line) + "\n"


@dataclass
class School:
    a: ServerProcess
    b: ServerProcess
    https: str
    cert: Path
    engine: Engine
    dataset: Path
    nginx_folder: Path
    mail: SmtpServer  # the report's SMTP server on loopback

    def post(self, base: str, path: str, **kwargs: Any) -> requests.Response:
        verify = str(self.cert) if base.startswith("https") else True
        return requests.post(base + path, headers=HEADERS, verify=verify, timeout=60, **kwargs)

    def recognize(
        self,
        base: str,
        photo: str,
        camera: str = "door-1",
        event_id: str | None = None,
        frames: int = 1,
    ) -> requests.Response:
        data = {"camera": camera}
        if event_id:
            data["event_id"] = event_id
        files = [("image", (f"{i}.jpg", face_bytes(photo), "image/jpeg")) for i in range(frames)]
        return self.post(base, "/recognize", files=files, data=data)

    def marks_of(self, student: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(marks).where(marks.c.student == student)))


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory, pg: PostgresServer) -> Iterator[School]:
    require_faces()
    require_nginx()
    base = tmp_path_factory.mktemp("school")
    dataset = build_dataset(base / "dataset", {k: v for k, v in STUDENTS.items() if k != NEWCOMER})
    data = base / "data"
    url = pg.database("two")
    mail = SmtpServer(free_port()).__enter__()
    env = {
        "ATTENDANCE_DATABASE_URL": url,
        "ATTENDANCE_DATA_KEY": new_key(),
        "ATTENDANCE_SESSION_SECRET": "two-servers-session-secret-0123456789",
        "ATTENDANCE_PROXY_HOPS": "1",
        "ATTENDANCE_REQUIRE_CONSENT": "0",
        "ATTENDANCE_WORKERS": "1",
        "ATTENDANCE_CLASS_START": "00:00",
        "ATTENDANCE_LATE_AFTER_MINUTES": "1440",
        "ATTENDANCE_KEY_FAILURES_PER_MINUTE": "1000",
        "ATTENDANCE_INTRUDER_THRESHOLD": "3",
        # The daily report is due from midnight: both servers' schedulers race to send it.
        "ATTENDANCE_REPORT_TIME": "00:00",
        "SENDER_EMAIL": USER,
        "SENDER_PASSWORD": PASSWORD,
        "TEACHER_EMAIL": TEACHERS,
        "ATTENDANCE_SMTP_HOST": "127.0.0.1",
        "ATTENDANCE_SMTP_PORT": str(mail.port),
        "ATTENDANCE_SMTP_SECURITY": "none",
    }
    a = ServerProcess(dataset, data, env=dict(env), log_path=base / "a.log")
    b = ServerProcess(dataset, data, env=dict(env), log_path=base / "b.log")
    engine = create_engine(url)
    proc: subprocess.Popen[bytes] | None = None
    try:
        began = time.monotonic()
        a.start()  # the first creates the schema
        started_a = time.monotonic() - began
        b.start()
        print(f"\n[two-servers] startup: A {started_a:.1f}s, A+B {time.monotonic() - began:.1f}s")
        folder = base / "nginx"
        folder.mkdir()
        cert, key = self_signed(folder)
        https_port, http_port = free_port(), free_port()
        site = folder / "smart-attendance-lb.conf"
        site.write_text(
            render_lb_site(https_port, http_port, [a.port, b.port], cert, key), encoding="utf-8"
        )
        conf = folder / "nginx.conf"
        conf.write_text(wrapper(folder, site), encoding="utf-8")
        pid = f"pid {folder / 'nginx.pid'};"
        checked = subprocess.run(
            nginx_command(folder, conf, "-t", "-g", pid, prefix=folder),
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, f"nginx -t refused:\n{checked.stderr}"
        proc = subprocess.Popen(
            nginx_command(folder, conf, "-g", f"daemon off; {pid}", prefix=folder),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(https_port, proc)
        yield School(a, b, f"https://127.0.0.1:{https_port}", cert, engine, dataset, folder, mail)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        a.stop()
        b.stop()
        engine.dispose()
        pg.drop(url)
        mail.__exit__()


def test_concurrent_bursts_through_both_servers_and_nginx_mark_each_student_once(
    school: School,
) -> None:
    bases = [school.a.url, school.b.url, school.https]
    jobs = [(name, bases[i % 3]) for name in BURST_PROBES for i in range(6)]
    answers: list[tuple[str, str, requests.Response]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(len(jobs))

    def run(name: str, base: str) -> None:
        start.wait()
        try:
            answer = school.recognize(base, BURST_PROBES[name])
            with lock:
                answers.append((name, base, answer))
        except BaseException as exc:
            with lock:
                errors.append(exc)

    began = time.monotonic()
    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - began
    assert errors == []
    assert len(answers) == len(jobs)
    for name, base, answer in answers:
        assert answer.status_code == 200, (base, answer.text)
        body = answer.json()
        assert body["status"] == "success" and body["name"] == name, (base, body)
    for name in BURST_PROBES:
        new = [a.json()["new"] for n, _, a in answers if n == name]
        assert new.count(True) == 1, (name, new)
        rows = school.marks_of(name)
        assert len(rows) == 1, (name, rows)
        assert len({(r.day, r.class_name, r.period) for r in rows}) == 1
    print(
        f"\n[two-servers] burst: {len(jobs)} scans ({len(BURST_PROBES)} students x 6, "
        f"over A, B and nginx) in {elapsed:.2f}s; one mark and one new:true per student"
    )


def _poll(school: School, base: str, want_name: str | None, deadline_s: float) -> float:
    """Seconds until ``base`` names the newcomer (or stops naming anyone), or fail."""
    began = time.monotonic()
    last: Any = None
    while time.monotonic() - began < deadline_s:
        answer = school.recognize(base, PROBES[NEWCOMER], camera="poll-b")
        last = answer.json() if answer.status_code == 200 else (answer.status_code, answer.text)
        if answer.status_code == 200:
            named = last.get("name") if last.get("status") == "success" else None
            if named == want_name:
                return time.monotonic() - began
        time.sleep(0.1)
    pytest.fail(f"B did not answer {want_name!r} within {deadline_s}s; last answer: {last}")


def test_a_student_enrolled_through_a_is_recognised_through_b(school: School) -> None:
    before = school.recognize(school.b.url, PROBES[NEWCOMER], camera="poll-b").json()
    assert before["status"] == "unknown", before
    created = school.post(school.a.url, "/students", json={"name": NEWCOMER})
    assert created.status_code == 201, created.text
    files = [("image", (Path(p).name, face_bytes(p), "image/jpeg")) for p in NEWCOMER_PHOTOS]
    began = time.monotonic()
    uploaded = school.post(school.a.url, f"/students/{NEWCOMER}/photos", files=files)
    upload_s = time.monotonic() - began
    assert uploaded.status_code in (200, 201), uploaded.text
    seen_s = _poll(school, school.b.url, NEWCOMER, PROPAGATION_LIMIT_S)
    print(
        f"\n[two-servers] enrolment: upload on A took {upload_s:.2f}s; "
        f"B recognised the newcomer {seen_s:.2f}s after it"
    )
    assert seen_s < PROPAGATION_LIMIT_S


def test_an_erasure_through_a_is_honoured_by_b(school: School) -> None:
    named = school.recognize(school.b.url, PROBES[NEWCOMER], camera="poll-b").json()
    assert named.get("name") == NEWCOMER, "needs the enrolment of the previous test"
    began = time.monotonic()
    erased = requests.delete(school.a.url + f"/students/{NEWCOMER}", headers=HEADERS, timeout=60)
    erase_s = time.monotonic() - began
    assert erased.status_code == 200, erased.text
    gone_s = _poll(school, school.b.url, None, PROPAGATION_LIMIT_S)
    print(
        f"\n[two-servers] erasure: DELETE on A took {erase_s:.2f}s; "
        f"B stopped naming the face {gone_s:.2f}s after it"
    )
    assert gone_s < PROPAGATION_LIMIT_S
    assert school.marks_of(NEWCOMER) == []
    assert not (school.dataset / NEWCOMER).exists()


def test_an_intruder_alternating_between_servers_makes_one_event(school: School) -> None:
    camera = "door-intruder"
    for photo, base in zip(STRANGERS[:3], [school.a.url, school.b.url, school.a.url], strict=True):
        answer = school.recognize(base, photo, camera=camera)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "unknown", answer.json()
    with school.engine.connect() as conn:
        count = conn.execute(
            select(func.count()).select_from(intruders).where(intruders.c.camera == camera)
        ).scalar_one()
    print(f"\n[two-servers] intruder: 3 frames over A, B, A -> {count} intruder event(s)")
    assert count == 1


def _send_with_retry(
    school: School, event_id: str, attempts: int = 6
) -> tuple[dict[str, Any], int]:
    """A camera client through nginx: the same event id on every retry; a scan is a burst of
    KILL_FRAMES frames (long enough for a kill to land while a server works on one)."""
    last: Any = None
    for attempt in range(1, attempts + 1):
        try:
            answer = school.recognize(
                school.https, KILL_PHOTO, camera="door-kill", event_id=event_id, frames=KILL_FRAMES
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            last = exc
        else:
            if answer.status_code == 200:
                return answer.json(), attempt
            last = (answer.status_code, answer.text)
            if answer.status_code not in (502, 503):
                break
        time.sleep(0.3)
    raise AssertionError(f"scan {event_id} failed after retries: {last}")


def test_both_servers_send_the_daily_report_once(school: School) -> None:
    """The report was due when both started: their schedulers raced, one email left."""
    deadline = time.monotonic() + 20
    while not school.mail.inbox.messages and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # the other server's scheduler has had its turn too
    assert len(school.mail.inbox.messages) == 1
    with school.engine.connect() as conn:
        runs = list(conn.execute(select(report_runs.c.status)))
        sends = list(conn.execute(select(report_attempts.c.outcome)))
    assert [r.status for r in runs] == ["sent"] and [s.outcome for s in sends] == ["sent"]


def _workers_cpu_s(pid: int) -> float:
    """CPU seconds used so far by the recognition worker processes of the server ``pid``."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            try:
                fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _wait_until_working(pid: int, timeout_s: float = 60) -> None:
    """Return as soon as the server's worker is busy (it has a scan in hand), or fail."""
    deadline = time.monotonic() + timeout_s
    last = _workers_cpu_s(pid)
    while time.monotonic() < deadline:
        time.sleep(0.02)
        now = _workers_cpu_s(pid)
        if now - last >= 0.01:  # half of the last 20 ms or more spent recognising
            return
        last = now
    pytest.fail("server B never worked on a scan of the burst")


def test_a_server_killed_mid_burst_loses_nothing_and_marks_once(school: School) -> None:
    assert school.marks_of(KILL_STUDENT) == []
    error_log = school.nginx_folder / "error.log"
    log_offset = error_log.stat().st_size if error_log.exists() else 0
    scans = [f"kill-{uuid.uuid4()}" for _ in range(12)]
    results: dict[str, tuple[dict[str, Any], int]] = {}
    answered_at: dict[str, float] = {}  # seconds from the start of the burst
    errors: list[BaseException] = []
    lock = threading.Lock()
    first_done = threading.Event()

    def run(events: list[str]) -> None:
        for event_id in events:
            try:
                outcome = _send_with_retry(school, event_id)
                with lock:
                    results[event_id] = outcome
                    answered_at[event_id] = time.monotonic() - began
            except BaseException as exc:
                with lock:
                    errors.append(exc)
            first_done.set()

    threads = [threading.Thread(target=run, args=(scans[i::3],)) for i in range(3)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    assert first_done.wait(timeout=60)
    assert school.b.proc is not None
    _wait_until_working(school.b.proc.pid)  # B holds a scan of the burst: kill it now
    os.killpg(school.b.proc.pid, signal.SIGKILL)
    killed_at = time.monotonic() - began
    school.b.proc.wait(timeout=10)
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - began
    assert errors == []
    assert sorted(results) == sorted(scans)
    for body, _ in results.values():
        assert body["status"] == "success" and body["name"] == KILL_STUDENT, body
    new = [body["new"] for body, _ in results.values()]
    assert new.count(True) <= 1, new
    rows = school.marks_of(KILL_STUDENT)
    assert len(rows) == 1, rows
    assert rows[0].event_id in scans
    # The kill landed mid-burst: scans were answered before it and after it, and B had taken
    # a scan it never answered (nginx saw B's connection drop while waiting for its answer,
    # and handed the scan to A).
    before = [e for e, at in answered_at.items() if at < killed_at]
    after = [e for e, at in answered_at.items() if at > killed_at]
    assert before and after, (killed_at, sorted(answered_at.values()))
    with error_log.open("rb") as handle:
        handle.seek(log_offset)
        new_log = handle.read().decode(errors="replace")
    at_b = [line for line in new_log.splitlines() if f"127.0.0.1:{school.b.port}" in line]
    dropped = [line for line in at_b if "connect() failed" not in line]
    assert dropped, f"B answered everything it took before the kill; nginx logged: {at_b}"
    retried = sum(1 for _, attempts in results.values() if attempts > 1)
    refused = len(at_b) - len(dropped)
    print(
        f"\n[two-servers] kill: B killed {killed_at:.2f}s into a burst of {len(scans)} scans "
        f"through nginx; all answered in {elapsed:.2f}s ({retried} needed a client retry); "
        f"{len(rows)} mark, from one of the burst's events; {len(before)} answered before the "
        f"kill, {len(after)} after; nginx saw B drop {len(dropped)} scan(s) and refuse "
        f"{refused} connection(s)"
    )


class FirstReadGivesUp(requests.Session):
    """The camera's HTTP session, verifying nginx's certificate (per request: a CA bundle
    named in the environment would override the session's), whose first POST stops waiting
    for the answer after ``read_s`` (on a connection already open: the TLS handshake is not
    timed): the request has reached nginx and the server, the camera just never hears the
    answer."""

    def __init__(self, cert: Path, read_s: float) -> None:
        super().__init__()
        self.ca = str(cert)  # not `cert`: the session's client certificate
        self.read_s = read_s
        self.posts = 0

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["verify"] = self.ca
        if method.upper() == "POST":
            self.posts += 1
            if self.posts == 1:
                kwargs["timeout"] = (10.0, self.read_s)
        return super().request(method, url, *args, **kwargs)


def test_a_scan_the_camera_never_heard_back_about_is_kept_retried_and_marked_once(
    school: School, tmp_path: Path
) -> None:
    """nginx retries a scan on the next server only while the camera is still waiting. Here the
    camera (its real outbox and uploader, through the shipped nginx) gives up reading after
    50 ms, while the server is still matching a burst of frames: nginx cannot retry a request
    whose client has gone, and the server marks the student anyway. The client must keep the
    scan, back off, send it again with the same event id, and get the first mark back: one
    mark, none lost, none doubled."""
    created = school.post(school.a.url, "/students", json={"name": NEWCOMER})  # erased above
    assert created.status_code == 201, created.text
    files = [("image", (Path(p).name, face_bytes(p), "image/jpeg")) for p in NEWCOMER_PHOTOS]
    uploaded = school.post(school.a.url, f"/students/{NEWCOMER}/photos", files=files)
    assert uploaded.status_code in (200, 201), uploaded.text
    assert school.marks_of(NEWCOMER) == []

    outbox = Outbox(tmp_path / "queue")
    answers: list[Recognition] = []
    session = FirstReadGivesUp(school.cert, read_s=0.05)
    uploader = Uploader(
        outbox, school.https, API_KEY, on_answer=lambda _s, a: answers.append(a), session=session
    )
    uploader.base_s = 0.2  # the scan's back-off after the timeout: 0.1-0.2 s
    frame = face_bytes(PROBES[NEWCOMER])
    scan = outbox.put([frame] * 12, "door-retry", fps=10)  # a burst: long enough to match
    began = time.monotonic()
    try:
        # GET /health: opens the keep-alive TLS connection the scan will use.
        health = session.get(school.https + "/health", timeout=10)
        assert health.status_code == 200, health.text
        # 1. No answer in time: kept, in back-off, and nothing shown.
        assert uploader.send_next() == UNREACHABLE
        assert [s.event_id for s in outbox.pending()] == [scan.event_id]
        retry = outbox.retry(scan)
        assert retry.attempts == 1 and "ReadTimeout" in retry.last_error, retry
        assert answers == [] and uploader.state == "offline"
        # 2. The server did take it: the mark is there, under the scan's event id.
        deadline = time.monotonic() + 10
        while not school.marks_of(NEWCOMER) and time.monotonic() < deadline:
            time.sleep(0.02)
        [first] = school.marks_of(NEWCOMER)
        assert first.event_id == scan.event_id
        # 3. The client's retry (the same event id, its normal timeout) gets that mark back.
        outcome = None
        while outcome not in FINAL and time.monotonic() < deadline:
            outcome = uploader.send_next()
            if outcome is None:
                time.sleep(0.02)
        retried_s = time.monotonic() - began
    finally:
        uploader.stop()
    assert session.posts == 2 and len(outbox) == 0 and uploader.sent == 1
    [answer] = answers
    assert answer.status == "success" and answer.first is not None, answer
    assert (answer.first.name, answer.first.new) == (NEWCOMER, False)
    assert answer.first.time == f"{first.seen_at:%H:%M:%S}"
    assert [(r.id, r.event_id) for r in school.marks_of(NEWCOMER)] == [(first.id, scan.event_id)]
    print(
        f"\n[two-servers] client retry: the camera gave up after 50 ms, the server marked "
        f"anyway; the client's retry answered in {retried_s:.2f}s with new: false; 1 mark"
    )
