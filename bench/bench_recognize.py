"""`POST /recognize` speed and memory: this server beside the original-equivalent pipeline.

Both are real HTTP servers on loopback with the same number of worker processes, recognising
the 640x480 frames of ../shared/bench/frames (two people: frames 00-04 and 10-14 enrol them,
the other 15 frames are the probes). The original is measured twice: as the original project
serves it (Flask's development server, one process) and in our server with the same worker
processes (only the pipeline differs).
Prints a Markdown table: median and p90 latency of sequential requests, throughput with 4
concurrent clients, and peak memory of the server with its workers.

    .venv/bin/python bench/bench_recognize.py [--requests 40] [--seconds 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import (
    ROOT,
    Server,
    copy_class,
    free_port,
    latency_ms,
    machine,
    multipart,
    our_server,
    probe_frames,
    table,
    throughput,
)


def start(server: Server, frames: list[bytes]) -> float:
    """Wait until ``server`` is ready (seconds from its start), then warm every worker up."""
    ready_s = server.wait_ready()
    for frame in frames[:4]:
        latency_ms(server.url, [frame], 1)
    return ready_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="length of each throughput measurement"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measure every server this many times, in turn; the table gives the medians",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra setting for this server, e.g. ATTENDANCE_DETECT_MAX_SIDE=320",
    )
    parser.add_argument(
        "--embedder",
        action="append",
        default=None,
        help="backends of this server to measure (default: each available)",
    )
    args = parser.parse_args()
    frames = [multipart(p.read_bytes()) for p in probe_frames()]
    servers: list[tuple[str, Server, float]] = []  # name, server, seconds until ready
    running: list[Server] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        dataset = tmp / "dataset"
        copy_class(dataset)
        try:
            # Started one after the other (their start-up times do not overlap), then measured
            # in turn, round after round: a shared machine's slow spells hit every pipeline.
            originals = [
                ("original project as it serves (Flask dev server)", 0),
                (f"original pipeline in our server ({args.workers} workers)", args.workers),
            ]
            for name, workers in originals:
                port = free_port()
                command = [sys.executable, str(ROOT / "bench" / "original_pipeline.py")]
                command += [str(dataset), str(port), str(workers)]
                original = Server(command, {}, port, tmp / f"original-{workers}.log")
                running.append(original)
                servers.append((name, original, start(original, frames)))
            for embedder in args.embedder or backends():
                settings = {"ATTENDANCE_WORKERS": str(args.workers)}
                settings.update(item.split("=", 1) for item in args.set)
                if embedder != "dlib" or "ATTENDANCE_EMBEDDER" in known_settings():
                    settings["ATTENDANCE_EMBEDDER"] = embedder
                data, log = tmp / f"data-{embedder}", tmp / f"ours-{embedder}.log"
                ours = our_server(dataset, data, log, settings)
                running.append(ours)
                servers.append((f"smart-attendance ({embedder})", ours, start(ours, frames)))
            figures: dict[str, list[tuple[float, float, float]]] = {n: [] for n, _, _ in servers}
            for _round in range(args.rounds):
                for name, server, _ready in servers:
                    median, p90 = latency_ms(server.url, frames, args.requests)
                    rate = throughput(server.url, frames, 4, args.seconds)
                    figures[name].append((median, p90, rate))
            rows = []
            for name, server, ready_s in servers:
                median, p90, rate = (statistics.median(f) for f in zip(*figures[name], strict=True))
                rows.append([name, median, p90, rate, server.peak_rss_mb(), ready_s])
        finally:
            for server in running:
                server.stop()
    print(
        f"POST /recognize, 640x480 frames, {args.workers} workers, median of {args.rounds} "
        f"rounds; {machine()}"
    )
    print(
        table(
            [
                "pipeline",
                "median ms",
                "p90 ms",
                "req/s (4 clients)",
                "peak MB",
                "ready s",
                "vs original project (latency / throughput)",
                "vs original pipeline, same server",
            ],
            [
                [
                    name,
                    f"{median:.1f}",
                    f"{p90:.1f}",
                    f"{rate:.1f}",
                    f"{peak:.0f}",
                    f"{ready:.1f}",
                    ratios(rows[0], median, rate),
                    ratios(rows[1], median, rate),
                ]
                for name, median, p90, rate, peak, ready in rows
            ],
        )
    )


def ratios(base: list[Any], median: float, rate: float) -> str:
    """How many times lower the latency and higher the throughput are than ``base``'s."""
    return f"{base[1] / median:.1f}x / {rate / base[3]:.1f}x"


def known_settings() -> set[str]:
    sys.path.insert(0, str(ROOT / "src"))
    from smart_attendance.config import SPECS

    return {spec.env for spec in SPECS}


def backends() -> list[str]:
    return ["dlib", "onnx"] if "ATTENDANCE_EMBEDDER" in known_settings() else ["dlib"]


if __name__ == "__main__":
    main()
