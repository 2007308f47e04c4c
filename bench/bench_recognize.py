"""`POST /recognize` speed and memory: this server beside the original-equivalent pipeline.

All are real HTTP servers on loopback, started at once and then measured in turn, round after
round (a shared machine's slow spells hit every pipeline), with their folders on disk. They
recognise the 640x480 frames of ../shared/bench/frames: frames 00-04 and 10-14 enrol two people
beside 20 LFW identities (22 students, 50 photos); the other 15 frames are the probes (11 of
the two students, 4 of a stranger).
Before it is timed, every server must report the 22 students enrolled; every answer timed must
give the probe's person: a wrong or missing name stops the benchmark (both sides of the
comparison therefore give the same names).

The original is measured twice: as the original project serves it (Flask's development server,
one process) and in our server with the same worker processes (only the pipeline differs). This
server is measured with each descriptor backend at the default detection size (320 px), and
with ONNX on the full frame (``ATTENDANCE_DETECT_MAX_SIDE=0``), with and without one upsampling
(``ATTENDANCE_DETECT_UPSAMPLE=1``): the first is like for like with the original, which detects
on the full frame upsampled once.

* **first scan**: the student's first mark of the day, the write path (the mark's insert in
  the database; the CSV files follow off the request): before each, the marks are deleted from
  the server's database;
* **repeat**: the student is already marked (one read); throughput with 4 clients is of repeat
  scans. The original project's pipeline writes no mark: it has one latency.

    .venv/bin/python bench/bench_recognize.py [--requests 30] [--first 11] [--seconds 5]
        [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    ROOT,
    Probe,
    Server,
    WrongAnswer,
    class_size,
    clear_marks,
    copy_class,
    disk_folder,
    free_port,
    machine,
    our_server,
    post,
    probes,
    run,
    table,
    throughput,
    where,
)

ORIGINAL_DETECTION = "full frame upsampled once (1280 px)"


@dataclass
class Pipeline:
    name: str
    detection: str
    server: Server
    data: Path | None  # this server's data folder (its marks); None: the original, no marks
    first: list[float] = field(default_factory=list)  # ms, every first scan of every round
    repeat: list[tuple[float, float]] = field(default_factory=list)  # median, p90 per round
    rate: list[float] = field(default_factory=list)  # req/s per round


def first_scans(pipeline: Pipeline, sample: list[Probe]) -> None:
    assert pipeline.data is not None
    for probe in sample:
        clear_marks(pipeline.data)
        answer = post(pipeline.server.url, probe)
        if answer.new is not True:
            raise WrongAnswer(f"{pipeline.name}: {probe.label} after the marks were cleared "
                              f"was not a new mark")  # fmt: skip
        pipeline.first.append(answer.seconds * 1000)
        again = post(pipeline.server.url, probe)
        if again.new is not False:
            raise WrongAnswer(f"{pipeline.name}: {probe.label} marked twice")
    for probe in sample:  # untimed: every student marked again for the repeat scans
        post(pipeline.server.url, probe)


def repeat_scans(pipeline: Pipeline, sample: list[Probe], count: int) -> None:
    times = []
    for i in range(count):
        answer = post(pipeline.server.url, sample[i % len(sample)])
        if answer.new is True:
            raise WrongAnswer(f"{pipeline.name}: {sample[i % len(sample)].label} was a new mark "
                              "where the student was already marked")  # fmt: skip
        times.append(answer.seconds * 1000)
    times.sort()
    pipeline.repeat.append((statistics.median(times), times[max(0, int(len(times) * 0.9) - 1)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30, help="repeat scans timed per round")
    parser.add_argument("--first", type=int, default=11, help="first scans timed per round")
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="length of each throughput measurement"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="measure every server this many times, in turn; the table gives the medians",
    )
    args = parser.parse_args()
    sample = probes()
    students_only = [probe for probe in sample if probe.expected is not None]
    students, photos = class_size()
    pipelines: list[Pipeline] = []
    with disk_folder("bench-recognize-") as tmp:
        try:
            for name, workers in (
                ("original project as it serves (Flask dev server)", 0),
                (f"original pipeline in our server ({args.workers} workers)", args.workers),
            ):
                dataset = tmp / f"dataset-original-{workers}"
                copy_class(dataset)
                port = free_port()
                command = [sys.executable, str(ROOT / "bench" / "original_pipeline.py")]
                command += [str(dataset), str(port), str(workers)]
                server = Server(command, {}, port, tmp / f"original-{workers}.log")
                pipelines.append(Pipeline(name, ORIGINAL_DETECTION, server, None))
            for name, detection, settings in (
                ("smart-attendance, ATTENDANCE_EMBEDDER=dlib", "320 px (default)",
                 {"ATTENDANCE_EMBEDDER": "dlib"}),
                ("smart-attendance, onnx, ATTENDANCE_DETECT_MAX_SIDE=0 and "
                 "ATTENDANCE_DETECT_UPSAMPLE=1", ORIGINAL_DETECTION,
                 {"ATTENDANCE_DETECT_MAX_SIDE": "0", "ATTENDANCE_DETECT_UPSAMPLE": "1"}),
                ("smart-attendance, onnx, ATTENDANCE_DETECT_MAX_SIDE=0", "full frame (640 px)",
                 {"ATTENDANCE_DETECT_MAX_SIDE": "0"}),
                ("smart-attendance, onnx (default)", "320 px (default)", {}),
            ):  # fmt: skip
                settings = {
                    "ATTENDANCE_WORKERS": str(args.workers),
                    "ATTENDANCE_REQUIRE_CONSENT": "0",  # every photo enrolled, as the original
                    "ATTENDANCE_TIMEZONE": "UTC",
                    **settings,
                }
                label = f"ours-{len(pipelines)}"
                # A dataset of its own: the server encrypts the photos it enrols with its key.
                dataset, data = tmp / f"dataset-{label}", tmp / f"data-{label}"
                copy_class(dataset)
                server = our_server(dataset, data, tmp / f"{label}.log", settings)
                pipelines.append(Pipeline(name, detection, server, data))
            for pipeline in pipelines:
                pipeline.server.wait_ready()
                pipeline.server.expect_enrolled(students, photos)
                for probe in sample:  # warm-up; every answer checked, every student marked
                    post(pipeline.server.url, probe)
            for _round in range(args.rounds):
                for pipeline in pipelines:
                    if pipeline.data is not None:
                        first_scans(pipeline, students_only[: args.first])
                    repeat_scans(pipeline, sample, args.requests)
                    pipeline.rate.append(throughput(pipeline.server.url, sample, 4, args.seconds))
            peaks = [p.server.peak_rss_mb() for p in pipelines]
        finally:
            for pipeline in pipelines:
                pipeline.server.stop()
        place = where(tmp)
    print(
        f"POST /recognize: {len(sample)} probe frames (640x480; 2 students, 1 stranger) against "
        f"{students} students ({photos} photos) enrolled; every answer checked; "
        f"{args.workers} workers; medians of {args.rounds} round(s); {place}"
    )
    print(f"Machine: {machine()}")
    print(
        "first scan: the student's first mark of the day (the write path); repeat: already "
        "marked; req/s: 4 clients sending repeat scans back to back"
    )
    base = figures(pipelines[1])
    project = figures(pipelines[0])
    rows = []
    for pipeline, peak in zip(pipelines, peaks, strict=True):
        first, repeat, p90, rate = figures(pipeline)
        rows.append([
            pipeline.name,
            pipeline.detection,
            f"{first:.1f}" if first else "- (no mark)",
            f"{repeat:.1f}",
            f"{p90:.1f}",
            f"{rate:.1f}",
            f"{peak:.0f}",
            ratios(base, first, repeat, rate),
            ratios(project, first, repeat, rate),
        ])  # fmt: skip
    print(
        table(
            [
                "pipeline",
                "detection",
                "first scan ms",
                "repeat ms",
                "repeat p90 ms",
                "req/s",
                "peak MB",
                "vs original pipeline, same server (first / repeat / req/s)",
                "vs original project (first / repeat / req/s)",
            ],
            rows,
        )
    )


def figures(pipeline: Pipeline) -> tuple[float, float, float, float]:
    """(first-scan median ms or 0, repeat median ms, repeat p90 ms, req/s): medians over the
    rounds (the first scans of all rounds together)."""
    first = statistics.median(pipeline.first) if pipeline.first else 0.0
    repeat = statistics.median(m for m, _ in pipeline.repeat)
    p90 = statistics.median(p for _, p in pipeline.repeat)
    return first, repeat, p90, statistics.median(pipeline.rate)


def ratios(
    base: tuple[float, float, float, float], first: float, repeat: float, rate: float
) -> str:
    """How many times lower the latencies and higher the throughput are than ``base``'s (whose
    one latency, when it writes no mark, is set against both of ours)."""
    base_first = base[0] or base[1]
    shown_first = f"{base_first / first:.1f}x" if first else "-"
    return f"{shown_first} / {base[1] / repeat:.1f}x / {rate / base[3]:.1f}x"


if __name__ == "__main__":
    run(main)
