"""A scan's burst of frames: every frame searched, only the best few described.

The camera client sends the frames around a blink in one request (about 20 at 25 frames a
second). This server answers a burst of 20 640x480 frames of ../shared/bench/frames with
``ATTENDANCE_BURST_DESCRIBE`` at its default (4) and at 60 (every frame described, as before
it existed). Prints a Markdown table: median latency of a burst, and frames a second with 2
cameras sending bursts back to back.

    .venv/bin/python bench/bench_burst.py [--frames 20] [--bursts 10] [--seconds 8]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import (
    copy_class,
    latency_ms,
    machine,
    multipart,
    our_server,
    probe_frames,
    table,
    throughput,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames in a burst")
    parser.add_argument("--bursts", type=int, default=10, help="bursts timed one at a time")
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    probes = [p.read_bytes() for p in probe_frames()[-10:]]  # one person (frames 15-24)
    burst = multipart(*(probes[i % len(probes)] for i in range(args.frames)))
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        copy_class(tmp / "dataset")
        for describe in (4, 60):
            server = our_server(
                tmp / "dataset",
                tmp / f"data-{describe}",
                tmp / f"server-{describe}.log",
                {"ATTENDANCE_BURST_DESCRIBE": str(describe)},
            )
            try:
                server.wait_ready()
                latency_ms(server.url, [burst], 2)  # warm up
                median, _p90 = latency_ms(server.url, [burst], args.bursts)
                rate = throughput(server.url, [burst], 2, args.seconds) * args.frames
            finally:
                server.stop()
            label = "all frames" if describe >= args.frames else f"best {describe}"
            rows.append([label, f"{median:.0f}", f"{median / args.frames:.1f}", f"{rate:.0f}"])
    print(f"POST /recognize with a burst of {args.frames} 640x480 frames; {machine()}")
    print(table(["frames described", "ms per burst", "ms per frame", "frames/s (2 cameras)"], rows))


if __name__ == "__main__":
    main()
