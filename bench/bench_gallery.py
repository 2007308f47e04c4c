"""Gallery scale: matching against 100,000 descriptors, and a server restart with 10,000
enrolled photos (descriptors already cached), with its time to ready and peak memory.

The work is checked: every timed match must name the student whose descriptor the probe was
made from, and each server must report the 10,000 photos and 200 students enrolled before its
start-up time counts; else the benchmark stops. No detection: descriptors only.

    .venv/bin/python bench/bench_gallery.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

from common import (
    ROOT,
    WrongAnswer,
    disk_folder,
    enrolled_gallery,
    machine,
    our_server,
    run,
    table,
    where,
)

sys.path.insert(0, str(ROOT / "src"))
from smart_attendance.config import Settings
from smart_attendance.privacy.sealing import load_sealer
from smart_attendance.recognition.matcher import Gallery, Matcher


def matching_ms(students: int, per_student: int) -> float:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(students * per_student, 128)).astype(np.float32) * 0.09
    labels = np.repeat(np.arange(students), per_student)
    matcher = Matcher(Gallery([f"s{i}" for i in range(students)], vectors, labels))
    probes = vectors[:200] + 0.01
    matcher.match(probes[0])
    times = []
    for i, probe in enumerate(probes):
        started = time.perf_counter()
        match = matcher.match(probe)
        times.append(time.perf_counter() - started)
        if match.name != f"s{labels[i]}":
            raise WrongAnswer(f"probe {i} matched {match.name}, expected s{labels[i]}")
    return statistics.median(times) * 1000


def restart(tmp: Path, photos: int, per_student: int) -> list[list[object]]:
    dataset, data = tmp / "dataset", tmp / "data"
    data.mkdir(parents=True)
    sealer = load_sealer(Settings(data_dir=data))  # the data key the server will use
    enrolled_gallery(
        dataset, f"sqlite:///{(data / 'attendance.db').resolve()}", sealer, photos, per_student
    )
    rows = []
    for label in (
        "first start (reads, hashes and encrypts every file)",
        "restart (unchanged files)",
    ):
        env = {"ATTENDANCE_WORKERS": "2", "ATTENDANCE_REQUIRE_CONSENT": "0"}
        server = our_server(dataset, data, tmp / "log", env)
        try:
            ready = server.wait_ready()
            server.expect_enrolled(photos // per_student, photos)
            time.sleep(3)  # let the workers start so their memory counts too
            rows.append([label, f"{photos:,}", f"{ready:.2f}", f"{server.peak_rss_mb():.0f}"])
        finally:
            server.stop()
    return rows


def main() -> None:
    print("Gallery scale: matching (no detection, every match checked) and start-up")
    print(f"Machine: {machine()}")
    match_rows = [
        [f"{n * k:,}", f"{n:,}", f"{matching_ms(n, k):.2f}"] for n, k in ((1_000, 10), (10_000, 10))
    ]
    print(table(["descriptors", "students", "match ms (median, one probe)"], match_rows))
    with disk_folder("bench-gallery-") as tmp:
        rows = restart(tmp, 10_000, 50)
        place = where(tmp)
    print(f"Start-up with 10,000 enrolled photos, 2 workers; {place}")
    print(table(["server start", "enrolled photos", "ready s", "peak MB (server+workers)"], rows))


if __name__ == "__main__":
    run(main)
