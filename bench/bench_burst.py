"""A scan's burst of frames: every frame searched, only the best few described.

The camera client sends the frames around a blink in one request (about 20 at 25 frames a
second). This server (its folders on disk) answers a burst of 20 640x480 frames of one student
(the 6 probe frames of the second person of ../shared/bench/frames, in turn) with
``ATTENDANCE_BURST_DESCRIBE`` at its default (4) and at 60 (every frame described, as before it
existed), detection at the default 320 px. Before it is timed, the server must report the 22
students of the class enrolled, and every burst must be answered with that student's name (a
wrong answer stops the benchmark). Prints a Markdown table: median latency of a first scan (the
student's first mark of the day: the marks are deleted before each) and of a repeat scan
(already marked), and frames a second with 2 cameras sending repeat bursts back to back.

    .venv/bin/python bench/bench_burst.py [--frames 20] [--bursts 8] [--seconds 5]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from common import (
    FRAMES,
    Probe,
    WrongAnswer,
    class_size,
    clear_marks,
    copy_class,
    disk_folder,
    frame_person,
    machine,
    multipart,
    our_server,
    post,
    probe_frames,
    require,
    run,
    table,
    throughput,
    where,
)

STUDENT = "bench_person_b"


def burst_probe(frames: int) -> Probe:
    paths = sorted(require(FRAMES).glob("*.jpg"))
    mine = [p.read_bytes() for p in probe_frames() if frame_person(paths.index(p)) == STUDENT]
    body = multipart(*(mine[i % len(mine)] for i in range(frames)))
    return Probe(f"a burst of {frames} frames of {STUDENT}", body, STUDENT)


def median_ms(url: str, data: Path, probe: Probe, count: int, first: bool) -> float:
    times = []
    for _ in range(count):
        if first:
            clear_marks(data)
        answer = post(url, probe)
        if answer.new is not first:
            raise WrongAnswer(f"{probe.label}: new={answer.new}, expected {first}")
        times.append(answer.seconds * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames in a burst")
    parser.add_argument("--bursts", type=int, default=8, help="bursts timed one at a time")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    probe = burst_probe(args.frames)
    students, photos = class_size()
    rows = []
    with disk_folder("bench-burst-") as tmp:
        for describe in (4, 60):
            dataset, data = tmp / f"dataset-{describe}", tmp / f"data-{describe}"
            copy_class(dataset)
            server = our_server(
                dataset,
                data,
                tmp / f"server-{describe}.log",
                {"ATTENDANCE_BURST_DESCRIBE": str(describe), "ATTENDANCE_REQUIRE_CONSENT": "0"},
            )
            try:
                server.wait_ready()
                server.expect_enrolled(students, photos)
                post(server.url, probe)  # warm up
                post(server.url, probe)
                first = median_ms(server.url, data, probe, args.bursts, first=True)
                repeat = median_ms(server.url, data, probe, args.bursts, first=False)
                rate = throughput(server.url, [probe], 2, args.seconds) * args.frames
            finally:
                server.stop()
            label = f"all {args.frames}" if describe >= args.frames else f"best {describe}"
            if describe == 4:
                label += " (ATTENDANCE_BURST_DESCRIBE=4, default)"
            rows.append([
                label, "320 px (default)", f"{first:.0f}", f"{repeat:.0f}",
                f"{repeat / args.frames:.1f}", f"{rate:.0f}",
            ])  # fmt: skip
        place = where(tmp)
    print(
        f"POST /recognize with a burst of {args.frames} 640x480 frames of one student, "
        f"{students} students enrolled, every answer checked; medians of {args.bursts} "
        f"bursts; {place}"
    )
    print(f"Machine: {machine()}")
    print(
        table(
            [
                "frames described",
                "detection",
                "first scan ms per burst",
                "repeat ms per burst",
                "repeat ms per frame",
                "frames/s (2 cameras, repeat)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    run(main)
