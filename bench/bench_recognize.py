"""`POST /recognize` speed and memory: this server beside the original-equivalent pipeline.

Both are real HTTP servers on loopback with the same number of worker processes, recognising
the 640x480 frames of ../shared/bench/frames (two people: frames 00-04 and 10-14 enrol them,
the other 15 frames are the probes).
Prints a Markdown table: median and p90 latency of sequential requests, throughput with 4
concurrent clients, and peak memory of the server with its workers.

    .venv/bin/python bench/bench_recognize.py [--requests 40] [--per-client 25]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import (
    KEY,
    ROOT,
    Server,
    copy_class,
    free_port,
    latency_ms,
    machine,
    multipart,
    probe_frames,
    table,
    throughput,
)


def measure(server: Server, frames: list[bytes], requests: int, per_client: int) -> list[object]:
    ready_s = server.wait_ready()
    for frame in frames[:4]:  # warm up every worker
        latency_ms(server.url, [frame], 1)
    median, p90 = latency_ms(server.url, frames, requests)
    rate = throughput(server.url, frames, 4, per_client)
    return [
        f"{median:.1f}",
        f"{p90:.1f}",
        f"{rate:.1f}",
        f"{server.peak_rss_mb():.0f}",
        f"{ready_s:.1f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--per-client", type=int, default=25)
    parser.add_argument("--workers", type=int, default=2)
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
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        dataset = tmp / "dataset"
        copy_class(dataset)
        port = free_port()
        original = Server(
            [
                sys.executable,
                str(ROOT / "bench" / "original_pipeline.py"),
                str(dataset),
                str(port),
                str(args.workers),
            ],
            {},
            port,
            tmp / "original.log",
        )
        try:
            rows.append(
                [
                    "original pipeline (HOG upsample 1, full frame)",
                    *measure(original, frames, args.requests, args.per_client),
                ]
            )
        finally:
            original.stop()
        for embedder in args.embedder or backends():
            port = free_port()
            env = {
                "API_SECRET_KEY": KEY,
                "ATTENDANCE_DATASET_DIR": str(dataset),
                "ATTENDANCE_DATA_DIR": str(tmp / f"data-{embedder}"),
                "ATTENDANCE_HOST": "127.0.0.1",
                "ATTENDANCE_PORT": str(port),
                "ATTENDANCE_WORKERS": str(args.workers),
            }
            env.update(item.split("=", 1) for item in args.set)
            if embedder != "dlib" or "ATTENDANCE_EMBEDDER" in known_settings():
                env["ATTENDANCE_EMBEDDER"] = embedder
            ours = Server(
                [sys.executable, "-m", "smart_attendance", "serve"],
                env,
                port,
                tmp / f"ours-{embedder}.log",
            )
            try:
                rows.append(
                    [
                        f"smart-attendance ({embedder})",
                        *measure(ours, frames, args.requests, args.per_client),
                    ]
                )
            finally:
                ours.stop()
    base_latency, base_rate = float(rows[0][1]), float(rows[0][3])  # type: ignore[arg-type]
    for row in rows:
        row.append(
            f"{base_latency / float(row[1]):.1f}x / "  # type: ignore[arg-type]
            f"{float(row[3]) / base_rate:.1f}x"
        )  # type: ignore[arg-type]
    print(f"POST /recognize, 640x480 frames, {args.workers} workers; {machine()}")
    print(
        table(
            [
                "pipeline",
                "median ms",
                "p90 ms",
                "req/s (4 clients)",
                "peak MB",
                "ready s",
                "vs original (latency / throughput)",
            ],
            rows,
        )
    )


def known_settings() -> set[str]:
    sys.path.insert(0, str(ROOT / "src"))
    from smart_attendance.config import SPECS

    return {spec.env for spec in SPECS}


def backends() -> list[str]:
    return ["dlib", "onnx"] if "ATTENDANCE_EMBEDDER" in known_settings() else ["dlib"]


if __name__ == "__main__":
    main()
