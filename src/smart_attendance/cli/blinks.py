"""``attendance blinks VIDEO`` and ``attendance blinks --eval FOLDER``: the blink rule
(``recognition/liveness.py``) on a video, or scored against annotated clips
(``recognition/blink_scoring.py``; docs/liveness.md, docs/cli.md)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import click
import numpy as np

from . import friendly_errors, main, require_extra

# Bump when the eye ratio series of a clip would change (detection or landmark changes):
# cached series from an older version are then read again.
SERIES_VERSION = "1"


@main.command(name="blinks")
@click.argument("video", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per blink (per clip).")
@click.option(
    "--eval",
    "eval_dir",
    type=click.Path(file_okay=False),
    help="Score the rule on every clip of FOLDER/BLINKS.tsv (e.g. ../shared/faces/video).",
)
@click.option(
    "--cache",
    type=click.Path(file_okay=False),
    help="With --eval: keep each clip's eye ratios in this folder (by content) for next time.",
)
def blinks(video: str | None, as_json: bool, eval_dir: str | None, cache: str | None) -> None:
    """Print the blinks seen in VIDEO (a file, stream URL, webcam index or image folder), or
    with --eval FOLDER the recall and precision on its annotated clips, per clip."""
    if (video is None) == (eval_dir is None):
        raise click.UsageError("give a VIDEO, or --eval FOLDER (not both)")
    require_extra("client")
    from ..recognition.liveness import detect_blinks

    if eval_dir is not None:
        _evaluate(Path(eval_dir), Path(cache) if cache else None, as_json)
        return
    assert video is not None
    with friendly_errors():
        fps, ears = _eye_ratios(video)
        count = 0
        for blink in detect_blinks(ears, fps):
            count += 1
            if as_json:
                click.echo(json.dumps(blink.as_dict()))
            else:
                click.echo(f"blink at frame {blink.frame} ({blink.t:.2f} s)")
    if not as_json:
        click.echo(f"{count} blink(s)", err=True)


def _eye_ratios(video: str) -> tuple[float, list[float | None]]:
    """The largest face's eye aspect ratio in every frame (None without a face), as the camera
    client measures it, and the frame rate. Frames are read one at a time."""
    from ..client.sources import largest_face_ear, open_frames
    from ..engine.dlib_engine import FaceEngine

    fps, frames = open_frames(video)
    encoder = FaceEngine(describe=False)
    ears: list[float | None] = []
    for frame in frames:
        found = largest_face_ear(encoder, frame)
        ears.append(found[1] if found else None)
    return fps, ears


def _cached_ratios(clip: Path, cache: Path | None) -> tuple[float, list[float | None]]:
    if cache is None:
        return _eye_ratios(str(clip))
    digest = hashlib.sha256(clip.read_bytes()).hexdigest()[:24]
    path = cache / f"ears-{SERIES_VERSION}-{digest}.npz"
    if path.is_file():
        with np.load(path) as saved:
            series = [None if np.isnan(v) else float(v) for v in saved["ears"]]
            return float(saved["fps"]), series
    fps, ears = _eye_ratios(str(clip))
    cache.mkdir(parents=True, exist_ok=True)
    values = np.array([np.nan if e is None else e for e in ears], dtype=np.float64)
    partial = path.with_suffix(".part.npz")
    np.savez(partial, ears=values, fps=fps)
    partial.replace(path)
    return fps, ears


VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm"})


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def _evaluate(folder: Path, cache: Path | None, as_json: bool) -> None:
    from ..recognition.blink_scoring import read_annotations, score_clip, totals
    from ..recognition.liveness import detect_blinks

    tsv = folder / "BLINKS.tsv"
    if not tsv.is_file():
        raise click.ClickException(f"no BLINKS.tsv in {folder}: give the annotated clips folder")
    with friendly_errors():
        events = read_annotations(tsv)
        # A clip of the folder without a row has no eye event: every blink found is false.
        clips = sorted(set(events) | {p.name for p in folder.iterdir() if _is_video(p)})
        scores = []
        for name in clips:
            clip = folder / name
            if not clip.is_file():
                raise click.ClickException(f"{name} is annotated but missing from {folder}")
            fps, ears = _cached_ratios(clip, cache)
            detected = [b.frame for b in detect_blinks(ears, fps)]
            score = score_clip(name, detected, events.get(name, []))
            scores.append(score)
            if as_json:
                click.echo(json.dumps(score.as_dict()))
            else:
                click.echo(
                    f"{name:28} blinks {score.blinks:2}  found {score.found:2}  "
                    f"false {len(score.false)}  missed {len(score.missed)}"
                    + (f"  (false at frames {score.false})" if score.false else "")
                    + (f"  (missed frames {score.missed})" if score.missed else "")
                )
    recall, precision = totals(scores)
    found = sum(s.found for s in scores)
    total = sum(s.blinks for s in scores)
    false = sum(len(s.false) for s in scores)
    summary = {"recall": round(recall, 4), "precision": round(precision, 4)}
    if as_json:
        click.echo(json.dumps({"total": True, "blinks": total, "found": found, **summary}))
    else:
        click.echo(
            f"all {len(scores)} clips: {found} of {total} blinks found, {false} false: "
            f"recall {recall:.1%}, precision {precision:.1%}"
        )
