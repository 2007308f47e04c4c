"""Blink detection: unit behaviour (in process); the annotated clips and a still photo that never
blinks (real: dlib on real video through the ``blinks`` command)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import TEST_DATA, require_faces
from smart_attendance.cli import main as cli_main
from smart_attendance.recognition.blink_scoring import (
    EyeEvent,
    read_annotations,
    score_clip,
    totals,
)
from smart_attendance.recognition.liveness import BlinkDetector, blinks_in


def _series(*parts: tuple[float, int]) -> list[float | None]:
    out: list[float | None] = []
    for value, frames in parts:
        out += [value] * frames
    return out


def test_a_fast_dip_and_recovery_is_a_blink() -> None:
    ears = _series((0.32, 40), (0.20, 1), (0.12, 2), (0.22, 1), (0.32, 20))
    [blink] = blinks_in(ears, fps=25)
    assert blink.frame == 41 and (blink.start, blink.end) == (41, 42)
    assert blink.t == pytest.approx(41 / 25)
    assert blink.depth == pytest.approx(0.12 / 0.32)


def test_a_blink_of_a_single_frame_is_found() -> None:
    """A third of the annotated blinks close the eyes in one or two frames only."""
    ears = _series((0.37, 30), (0.12, 1), (0.36, 30))
    [blink] = blinks_in(ears, fps=30)
    assert blink.frame == 30 and blink.start == blink.end == 30


def test_it_answers_when_the_eyes_reopen_not_later() -> None:
    detector = BlinkDetector(fps=25)
    answers = [detector.update(e) for e in _series((0.32, 30), (0.10, 2), (0.30, 1))]
    assert answers[-1] is not None and not any(answers[:-1])


def test_squints_gazes_winks_and_long_closures_are_not_blinks() -> None:
    # a smile squint or a downward gaze: the eyes narrow to 55-65% and stay there
    squint = _series((0.39, 40), (0.21, 1), (0.245, 6), (0.32, 20))
    assert blinks_in(squint, fps=30) == []
    slow = [0.32] * 40 + list(np.linspace(0.32, 0.15, 12)) + [0.15] * 30 + [0.32] * 20
    assert blinks_in(slow, fps=25) == []
    # eyes shut for 1.2 s: not a blink
    assert blinks_in(_series((0.32, 40), (0.10, 30), (0.32, 20)), fps=25) == []
    # out of narrowed eyes (a wink, a squint) into a closure: the eyes were not open before
    narrowed = _series((0.33, 40), (0.21, 12), (0.13, 4), (0.30, 20))
    assert blinks_in(narrowed, fps=30) == []
    # closed, then eyes that never reopen past 60%
    assert blinks_in(_series((0.33, 40), (0.12, 3), (0.18, 30)), fps=30) == []


def test_a_squint_after_the_blink_still_reopens_the_eyes() -> None:
    ears = _series((0.36, 40), (0.20, 2), (0.11, 2), (0.24, 20), (0.36, 10))
    assert len(blinks_in(ears, fps=25)) == 1


def test_a_lost_face_restarts_the_track() -> None:
    lost = [*_series((0.32, 40), (0.12, 2)), None, *_series((0.32, 20))]
    assert blinks_in(lost, fps=25) == []
    # and a new face needs a few frames of open eyes before its first blink counts
    assert blinks_in([None, *_series((0.12, 1), (0.32, 3), (0.1, 1), (0.32, 3))], fps=25) == []


def test_narrow_eyes_adapt_the_baseline() -> None:
    narrow = _series((0.19, 50), (0.09, 3), (0.19, 20))  # low EAR all along, e.g. glasses
    assert len(blinks_in(narrow, fps=30)) == 1
    detector = BlinkDetector(fps=30)
    assert all(detector.update(0.19) is None for _ in range(50))
    assert detector.openness(0.19) == pytest.approx(1.0)


def test_scoring_counts_found_missed_false_and_unsure() -> None:
    events = [
        EyeEvent(10, 12, "blink"),
        EyeEvent(40, 41, "blink"),
        EyeEvent(60, 70, "squint"),
        EyeEvent(90, 95, "blink", unsure=True),
    ]
    score = score_clip("clip.mp4", [8, 11, 64, 93, 150], events)
    assert (score.blinks, score.found, score.ignored) == (2, 1, 1)
    assert score.false == [11, 64, 150]  # a blink found twice counts once
    assert score.missed == [(40, 41)]
    assert totals([score]) == (0.5, 0.25)


def test_annotations_are_read_with_their_unsure_notes(tmp_path: Path) -> None:
    tsv = tmp_path / "BLINKS.tsv"
    tsv.write_text(
        "clip\tstart_frame\tend_frame\tstart_s\tend_s\tevent\tnote\n"
        "a.mp4\t10\t12\t0.4\t0.5\tblink\t\n"
        "a.mp4\t20\t30\t0.8\t1.2\tgaze\tunsure; looking down\n"
    )
    assert read_annotations(tsv) == {
        "a.mp4": [EyeEvent(10, 12, "blink"), EyeEvent(20, 30, "gaze", unsure=True)]
    }


def test_blinks_needs_a_video_or_eval(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_main, ["blinks"])
    assert result.exit_code == 2 and "give a VIDEO, or --eval FOLDER" in result.output
    result = CliRunner().invoke(cli_main, ["blinks", "--eval", str(tmp_path)])
    assert result.exit_code == 1 and f"no BLINKS.tsv in {tmp_path}" in result.output


@pytest.mark.real
def test_blinks_eval_on_every_annotated_clip() -> None:
    """``attendance blinks --eval`` on all of ../shared/faces/video: recall and precision of at
    least 95% over the clips (unsure events excluded), and never a squint or a gaze taken for
    a blink. The eye ratios are cached by content in tests/.cache (real dlib the first time)."""
    faces = require_faces()
    result = CliRunner().invoke(
        cli_main,
        [
            "blinks",
            "--eval",
            str(faces / "video"),
            "--json",
            "--cache",
            str(TEST_DATA / "blinks"),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    total = lines[-1]
    clips = {line["clip"]: line for line in lines[:-1]}
    annotated = read_annotations(faces / "video" / "BLINKS.tsv")
    assert set(annotated) <= set(clips)
    assert total["blinks"] == sum(c["blinks"] for c in clips.values()) >= 28
    assert total["recall"] >= 0.95 and total["precision"] >= 0.95, total
    for name, clip in clips.items():
        negatives = [e for e in annotated.get(name, []) if e.kind in ("squint", "gaze")]
        for frame in clip["false"]:
            assert not any(e.near(frame) for e in negatives), (name, frame)


def _still_photo_video(path: Path, frames: int = 90) -> None:
    """A photo held in front of the camera: shifted, scaled and lit slightly differently."""
    import cv2

    photo = cv2.imread(str(require_faces() / "lfw" / "george_w_bush" / "1.jpg"))
    photo = cv2.resize(photo, (400, 400))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (480, 480))
    rng = np.random.default_rng(7)
    for i in range(frames):
        dx, dy = 40 + 6 * np.sin(i / 7) + rng.normal(0, 1), 40 + 4 * np.cos(i / 9)
        scale = 1.0 + 0.03 * np.sin(i / 11)
        matrix = np.float32([[scale, 0, dx], [0, scale, dy]])
        canvas = cv2.warpAffine(photo, matrix, (480, 480), borderValue=(90, 90, 90))
        canvas = cv2.convertScaleAbs(canvas, alpha=1.0 + 0.05 * np.sin(i / 5), beta=0)
        writer.write(canvas)
    writer.release()


@pytest.mark.real
def test_a_still_photo_moved_slightly_never_blinks(tmp_path: Path) -> None:
    from smart_attendance.client.sources import largest_face_ear, open_frames
    from smart_attendance.engine.dlib_engine import FaceEngine

    video = tmp_path / "still.mp4"
    _still_photo_video(video)
    encoder = FaceEngine(describe=False)
    _fps, frames = open_frames(str(video))
    with_face = sum(1 for frame in frames if largest_face_ear(encoder, frame) is not None)
    assert with_face >= 80  # the face is seen in (almost) every frame
    result = CliRunner().invoke(cli_main, ["blinks", str(video), "--json"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


def test_blinks_command_reports_a_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_main, ["blinks", str(tmp_path / "nope.mp4")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stderr.strip() == f"Error: video file not found: {tmp_path / 'nope.mp4'}"
