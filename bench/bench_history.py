"""A school year at the speed of the first day: the same operations on an empty database and on
a year on record (``attendance demo``: 1,000 students x 180 school days, 1 and 6 periods a
day), in one run, on SQLite and on PostgreSQL.

Each server runs on a faked clock (libfaketime, ``FAKETIME=@<a weekday> 08:40:00``: the clock
starts there and runs), so that the demo's first period (08:30-09:20, Late after 08:40) is
open whatever the day and hour of the run; the demo is written on the same clock, so its
history ends the school day before. The bench's real students (``common.copy_class``) join
the demo school (its class's roster is every student).

Measured, every answer checked (the expected name for every scan, status 200 for every page):
* a scan that makes a new mark (median over the class), and a repeat scan (median);
* ``GET /statistics`` over the whole range, and for the class;
* dashboard pages: Today, a student's page (the term calendar), Reports for the whole school
  over the year and for the class, the review queue;
* server start: from the process's start to ``/health`` 200 (the year's tallies are filled in
  the background after that);
* a year's xlsx export: its time, size, rows, and the server process's peak resident memory.

Usage: ``python bench/bench_history.py [--students 1000] [--days 180] [--periods 1,6]
[--databases sqlite,postgresql]``; writes bench/results/history.md. Needs libfaketime
(``make install``) and, for PostgreSQL, Debian's postgresql (tests/pg.py starts one).
"""

from __future__ import annotations

import argparse
import glob
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import common
from common import KEY, WrongAnswer

RESULTS = Path(__file__).resolve().parent / "results" / "history.md"
README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- history:begin -->", "<!-- history:end -->"


def readme_block(results: str) -> str:
    """The README's copy of the results: everything after the file's title."""
    return results.split("\n", 1)[1].strip()


def write_readme(results: str) -> None:
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    _old, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{readme_block(results)}\n{END}{tail}", encoding="utf-8")


PASSWORD = "a bench password, long enough"  # noqa: S105  (a throw-away bench account)


def libfaketime() -> str:
    for pattern in (
        "/usr/lib/*/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    sys.exit("libfaketime not found: `make install` brings Debian's faketime package")


def school_day() -> date:
    """Today if a weekday, else the Friday before: the faked day of the run."""
    day = date.today()
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


@dataclass
class Case:
    database: str  # sqlite | postgresql
    periods: int
    history: bool


def faked(day: date) -> dict[str, str]:
    return {
        "LD_PRELOAD": libfaketime(),
        "FAKETIME": f"@{day.isoformat()} 08:40:00",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "TZ": "UTC",
        "ATTENDANCE_TIMEZONE": "UTC",
    }


def prepare(case: Case, folder: Path, day: date, args: argparse.Namespace, url: str) -> Path:
    """The data folder: the demo's year (or only its timetable, for the empty database)."""
    data = folder / "data"
    env = {**faked(day), "ATTENDANCE_DATABASE_URL": url}
    if case.history:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "smart_attendance",
                "demo",
                "--students",
                str(args.students),
                "--days",
                str(args.days),
                "--periods",
                str(case.periods),
                "--data-dir",
                str(data),
            ],
            env=common.clean_env(env),
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.exit(f"attendance demo failed: {done.stderr[-2000:]}")
    else:
        from smart_attendance.demo import timetable_text

        data.mkdir(parents=True)
        (data / "timetable.toml").write_text(timetable_text(case.periods), encoding="utf-8")
    return data


def add_admin(data: Path, url: str) -> None:
    env = {"ATTENDANCE_DATA_DIR": str(data), "ATTENDANCE_DATABASE_URL": url}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "smart_attendance",
            "users",
            "add",
            "bench",
            "--role",
            "admin",
            "--password-stdin",
        ],
        env=common.clean_env(env),
        cwd=data,
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"users add failed: {done.stderr[-1000:]}")


def signed_in(url: str) -> requests.Session:
    web = requests.Session()
    page = web.get(url + "/login", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, "no CSRF token on the sign-in page"
    answer = web.post(
        url + "/login",
        data={"username": "bench", "password": PASSWORD, "csrf_token": token[1]},
        timeout=30,
    )
    if answer.status_code != 200 or "Sign out" not in answer.text:
        raise WrongAnswer(f"sign-in refused: {answer.status_code}")
    return web


def timed_get(session: requests.Session, url: str, runs: int = 3, **headers: str) -> float:
    """The median seconds of ``runs`` GETs (after one to warm), each checked for 200."""
    times = []
    for attempt in range(runs + 1):
        started = time.perf_counter()
        answer = session.get(url, headers=headers, timeout=600)
        took = time.perf_counter() - started
        if answer.status_code != 200:
            raise WrongAnswer(f"{url}: {answer.status_code} {answer.text[:200]}")
        if attempt:
            times.append(took)
    return statistics.median(times)


def measure(case: Case, args: argparse.Namespace, pg: object | None) -> dict[str, str]:
    day = school_day()
    url = ""
    if case.database == "postgresql":
        assert pg is not None
        url = pg.database("hist")  # type: ignore[attr-defined]
    with common.disk_folder("bench-history-") as folder:
        data = prepare(case, folder, day, args, url)
        dataset = folder / "dataset"
        common.copy_class(dataset)
        add_admin(data, url)
        settings = {
            **faked(day),
            "ATTENDANCE_DATABASE_URL": url,
            "ATTENDANCE_TIMETABLE": str(data / "timetable.toml"),
            "ATTENDANCE_REQUIRE_CONSENT": "0",
            "ATTENDANCE_SESSION_SECRET": "s" * 40,
        }
        server = common.our_server(dataset, data, folder / "server.log", settings)
        try:
            start_s = server.wait_ready()
            students, photos = common.class_size()
            server.expect_enrolled(students, photos)  # the enrolment report: faces only
            everyone = common.probes()
            probes = [p for p in everyone if p.expected is not None]
            for stranger in [p for p in everyone if p.expected is None] * 2:  # warm, no mark
                common.post(server.url, stranger)
            # settled, as a server started before school is by 08:30: the background fill
            # of the tallies done (a statistics request waits for it), the CSV writer idle
            requests.get(server.url + "/statistics", headers={"X-API-KEY": KEY}, timeout=600)
            time.sleep(3)
            # the class's first scans of the day: new marks; then again: repeats
            # new marks: each person's first scan of the day, ROUNDS times (today's marks are
            # taken away between rounds); repeats: every probe once they are marked
            first_of = {p.expected: p for p in reversed(probes)}
            new_ms = []
            for _round in range(ROUNDS):
                forget_today(data, url, day)
                for probe in first_of.values():
                    answer = common.post(server.url, probe)
                    if not answer.new:
                        raise WrongAnswer(f"{probe.label}: not a new mark (is a period open?)")
                    new_ms.append(answer.seconds * 1000)
            repeat_ms = [common.post(server.url, p).seconds * 1000 for p in probes * 2]
            first = [common.post(server.url, p) for p in probes[:1]]
            api = requests.Session()
            api.headers["X-API-KEY"] = KEY
            year = f"from={day - timedelta(days=args.days * 7 // 5 + 7)}&to={day}"
            stats_s = timed_get(api, f"{server.url}/statistics?{year}")
            class_stats_s = timed_get(api, f"{server.url}/statistics?{year}&class=school")
            web = signed_in(server.url)
            name = first[0].name or ""
            pages = {
                "Today": timed_get(web, server.url + "/"),
                "student": timed_get(web, f"{server.url}/student/{name}"),
                "Reports (school, year)": timed_get(web, f"{server.url}/reports?{year}"),
                "Reports (class, year)": timed_get(
                    web, f"{server.url}/reports?{year}&class=school"
                ),
                "review": timed_get(web, server.url + "/review"),
            }
            started = time.perf_counter()
            export = api.get(f"{server.url}/export.xlsx?{year}", timeout=1200)
            export_s = time.perf_counter() - started
            if export.status_code != 200:
                raise WrongAnswer(f"export: {export.status_code}")
            peak_mb = main_peak_mb(server)
        finally:
            server.stop()
    return {
        "database": case.database,
        "periods": str(case.periods),
        "record": f"{args.students} x {args.days} days" if case.history else "empty",
        "new mark (ms, median)": f"{statistics.median(new_ms):.0f}",
        "repeat (ms)": f"{statistics.median(repeat_ms):.0f}",
        "/statistics (s)": f"{stats_s:.2f}",
        "/statistics class (s)": f"{class_stats_s:.2f}",
        **{f"{k} (s)": f"{v:.2f}" for k, v in pages.items()},
        "start (s)": f"{start_s:.1f}",
        "xlsx export (s)": f"{export_s:.1f}",
        "xlsx (MB)": f"{len(export.content) / 1e6:.1f}",
        "server peak RSS (MB)": f"{peak_mb:.0f}",
    }


ROUNDS = 8  # rounds of first scans (new marks) per case


def forget_today(data: Path, url: str, day: date) -> None:
    """Take the marks of ``day`` away (the bench's own reset between rounds of first scans;
    the history before it stays)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url or f"sqlite:///{data / 'attendance.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM marks WHERE day = :day"), {"day": day})
    finally:
        engine.dispose()


def main_peak_mb(server: common.Server) -> float:
    """The peak resident memory (VmHWM) of the server's own process (not its workers)."""
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--periods", default="1,6")
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    periods = [int(p) for p in args.periods.split(",")]
    databases = args.databases.split(",")
    pg = None
    if "postgresql" in databases:
        import pg as pg_module

        pg_module.require_postgres()
        pg = pg_module.start_server(common.free_port())
    rows = []
    try:
        for database in databases:
            for count in periods:
                for history in (False, True):
                    row = measure(Case(database, count, history), args, pg)
                    print(" | ".join(row.values()), flush=True)
                    rows.append(row)
    finally:
        if pg is not None:
            pg.stop()  # type: ignore[attr-defined]
    header = list(rows[0])
    text = (
        f"# bench_history: a school year beside an empty database\n\n"
        f"{common.machine()} (at the start); servers' folders on disk; "
        f"{args.students} students, {args.days} school days; page times are medians of 3 "
        "requests as the client sees them.\n\n"
        + common.table(header, [list(r.values()) for r in rows])
        + "\n"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    write_readme(text)
    print(text)
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    common.run(main)
