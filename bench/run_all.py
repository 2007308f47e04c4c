"""`make bench`: run every benchmark, write bench/results/latest.md, and rewrite the figures
README.md quotes from it.

Each benchmark runs in its own process, one after the other, and checks the work it times (a
wrong answer stops it). Only when all of them succeed is bench/results/latest.md replaced (the
machine, the date, the commit, each benchmark's command, time and output) and the block of
README.md between ``<!-- bench:begin -->`` and ``<!-- bench:end -->`` rewritten from it
(``readme_block``); tests/test_figures.py checks that every number of that block is in the
results file. On a failure nothing is replaced, the failing output is printed and the exit code
is 1. With ``--only``, the chosen benchmarks' results are printed and nothing is written.

    .venv/bin/python bench/run_all.py [--only bench_burst.py ...]
    .venv/bin/python bench/run_all.py --readme   # README.md from the results file, no run
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "latest.md"
README = ROOT / "README.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

# (script, arguments, extra environment): each sized for the whole run to stay under about ten
# minutes on a 2-core machine.
BENCHES: list[tuple[str, list[str], dict[str, str]]] = [
    ("bench_recognize.py", [], {}),
    ("bench_burst.py", [], {}),
    ("bench_descriptor.py", [], {}),
    ("bench_gallery.py", [], {}),
    ("bench_scale.py", [], {"BENCH_SCALE_SECONDS": "5"}),
    ("bench_abuse.py", ["--slow", "400"], {}),
    ("bench_challenge.py", [], {}),
]
# Benchmarks too long for `make bench`, each run on its own and writing its own results file,
# which the docs quoting it name.
OWN_RESULTS = {"bench_history.py": "bench/results/history.md"}
# The benchmarks whose output the README's Speed section shows, in this order.
IN_README = ("bench_recognize.py", "bench_burst.py", "bench_descriptor.py", "bench_gallery.py")


def sections(results: str) -> dict[str, str]:
    """Each benchmark's output in a results file, by script name."""
    found = {}
    for match in re.finditer(r"^## (\S+)\n(.*?)(?=^## |\Z)", results, re.S | re.M):
        body = match.group(2)
        output = re.search(r"^```text\n(.*?)^```", body, re.S | re.M)
        if output:
            found[match.group(1)] = output.group(1).rstrip("\n")
    return found


def readme_block(results: str) -> str:
    """The README's Speed figures: the header of the results file and the output of each
    ``IN_README`` benchmark, as they are in it (less the machine, said once; a blank line
    before each table)."""
    header = results.split("\n## ", 1)[0].strip().splitlines()
    taken = next(line for line in header if line.startswith("Taken "))
    outputs = sections(results)
    parts = [f"{taken} Copied from [bench/results/latest.md](bench/results/latest.md)."]
    for name in IN_README:
        lines: list[str] = []
        for line in outputs[name].splitlines():
            if line.startswith("Machine:"):
                continue
            if line.startswith("|") and lines and lines[-1] and not lines[-1].startswith("|"):
                lines.append("")  # a Markdown table starts after a blank line
            lines.append(line)
        text = "\n".join(lines)
        parts.append(f"`bench/{name}`:\n\n{text}")
    return "\n\n".join(parts)


def rewrite_readme(results: str) -> None:
    """Replace README.md's Speed figures with those of ``results``."""
    text = README.read_text(encoding="utf-8")
    README.write_text(replace_block(text, readme_block(results)), encoding="utf-8")


def replace_block(text: str, block: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + block + "\n" + text[end:]


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    return sha + (
        " with uncommitted changes" if git("status", "--porcelain", "src", "bench") else ""
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=None, help="run these scripts only, print")
    parser.add_argument(
        "--readme", action="store_true", help="only rewrite README.md from bench/results/latest.md"
    )
    args = parser.parse_args()
    if args.readme:
        rewrite_readme(RESULTS.read_text(encoding="utf-8"))
        return 0
    sys.path.insert(0, str(HERE))
    from common import disk_base, filesystem, machine

    chosen = [b for b in BENCHES if args.only is None or b[0] in args.only]
    started_at = machine()
    began = time.monotonic()
    parts = []
    for script, arguments, extra in chosen:
        command = [sys.executable, str(HERE / script), *arguments]
        shown = " ".join(
            [*(f"{k}={v}" for k, v in extra.items()), "python", f"bench/{script}", *arguments]
        )
        print(f"{shown} ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        done = subprocess.run(
            command, cwd=HERE, env={**os.environ, **extra}, capture_output=True, text=True
        )
        seconds = time.monotonic() - t0
        if done.returncode != 0:
            print(done.stdout + done.stderr, file=sys.stderr)
            print(f"{script} failed (exit {done.returncode}): nothing replaced", file=sys.stderr)
            return 1
        print(f"  {seconds:.0f} s", file=sys.stderr)
        parts.append(f"## {script}\n\n`{shown}`, {seconds:.0f} s\n\n```text\n{done.stdout}```\n")
    total = time.monotonic() - began
    base = disk_base()
    results = "\n".join(
        [
            "# Benchmark results\n",
            f"Taken by `make bench` (bench/run_all.py, {total / 60:.1f} min) at commit "
            f"{commit()}: {started_at} (at the start).",
            f"Servers' folders on {filesystem(base)} ({base}); every benchmark checks the "
            "answers it times (see each script's docstring). The figures of README.md and "
            "docs/ are quoted from this file.\n",
            *parts,
        ]
    )
    if args.only is not None:
        print(results)
        return 0
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(results, encoding="utf-8")
    rewrite_readme(results)
    print(f"wrote {RESULTS.relative_to(ROOT)} and the figures of README.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
