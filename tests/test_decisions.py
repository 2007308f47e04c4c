"""The recognition rules as pure functions: the second look, the best frame, unknown reasons,
the blink over a burst."""

from __future__ import annotations

import numpy as np

from scripted import identity, near
from smart_attendance.models import Box, Face, FaceResult, Frame
from smart_attendance.recognition.decisions import (
    FrameDecision,
    best_frame,
    blinked,
    decide_frame,
    identify,
    unknown_reason,
)
from smart_attendance.recognition.matcher import Gallery, Matcher

ANA, BEN = identity(1), identity(2)
GALLERY = Gallery.from_pairs([("ana", ANA), ("ben", BEN)])
BOX = Box(100, 100, 260, 260)


def _no_mirror(_rows: object) -> np.ndarray:
    raise AssertionError("a clear decision takes no second look")


def test_a_clear_match_and_a_clear_stranger_take_no_second_look() -> None:
    matcher = Matcher(GALLERY, 0.47, 0.12)
    probes = np.stack([near(ANA, 0.2), identity(3)])
    names = [m.name for m in identify(matcher, probes, _no_mirror)]
    assert names == ["ana", None]


def test_the_second_look_decides_a_borderline_face() -> None:
    matcher = Matcher(GALLERY, 0.47, 0.12)
    borderline = near(ANA, 0.49)  # just over the threshold: unknown on its own
    assert matcher.match(borderline).name is None
    assert matcher.is_borderline(matcher.match(borderline))
    mirrored = near(ANA, 0.1, seed=5)  # the mirrored face is clearly Ana
    asked: list[list[int]] = []

    def mirror(rows: object) -> np.ndarray:
        asked.append(list(rows))  # type: ignore[call-overload]
        return mirrored.reshape(1, -1)

    [match] = identify(matcher, borderline.reshape(1, -1), mirror)
    assert asked == [[0]]
    assert match.name == "ana"
    assert match.distance is not None and match.distance < 0.47
    # Not allowed a second look (no chip): the first decision stands.
    [kept] = identify(matcher, borderline.reshape(1, -1), mirror, [False])
    assert kept.name is None


def _face(descriptor: np.ndarray | None, box: Box = BOX, skipped: bool = False) -> Face:
    return Face(box, descriptor, descriptor, 0.3, skipped=skipped)


def test_decide_frame_names_each_face_and_says_why_not() -> None:
    matcher = Matcher(GALLERY, 0.47, 0.12)
    frame = Frame(
        640,
        480,
        (
            _face(near(BEN, 0.1)),
            _face(None, Box(0, 0, 30, 30)),
            _face(None, Box(300, 0, 400, 100), skipped=True),
        ),
    )
    decision = decide_frame(frame, matcher, lambda chips: np.stack(chips))
    assert [(r.name, r.reason) for r in decision.results] == [
        ("ben", None),
        (None, "face too small"),
        (None, "frame not described"),
    ]


def test_best_frame_prefers_known_faces_then_the_closest() -> None:
    far = FaceResult(BOX, "ana", 0.40, 0.3)
    close = FaceResult(BOX, "ana", 0.20, 0.3)
    nobody = FaceResult(BOX, None, 0.60, 0.1)
    frames = [
        FrameDecision(Frame(1, 1, ()), (nobody,)),
        FrameDecision(Frame(1, 1, ()), (far,)),
        FrameDecision(Frame(1, 1, ()), (close,)),
    ]
    assert best_frame(frames) == 2
    assert best_frame(frames[:2]) == 1


def test_unknown_reasons() -> None:
    empty = FrameDecision(Frame(1, 1, ()), ())
    small = FrameDecision(
        Frame(1, 1, (_face(None),)), (FaceResult(BOX, None, None, None, "face too small"),)
    )
    stranger = FrameDecision(Frame(1, 1, (_face(identity(9)),)), (FaceResult(BOX, None, 0.9, 0.1),))
    assert [unknown_reason(d) for d in (empty, small, stranger)] == [
        "no_face",
        "face_too_small",
        "unknown_face",
    ]


def _burst(ears: list[float]) -> list[FrameDecision]:
    result = FaceResult(BOX, "ana", 0.2, 0.4)
    return [
        FrameDecision(Frame(640, 480, (Face(BOX, None, None, ear),)), (result,)) for ear in ears
    ]


def test_a_blink_over_the_burst_and_a_still_photo() -> None:
    target = FaceResult(BOX, "ana", 0.2, 0.4)
    blink = [0.30] * 8 + [0.28, 0.12, 0.08, 0.15, 0.29] + [0.30] * 6
    assert blinked(_burst(blink), target, 25.0)
    assert not blinked(_burst([0.30] * 19), target, 25.0)
    # The eyes of someone else in the frame do not count for Ana.
    other = [
        FrameDecision(
            Frame(640, 480, (Face(Box(400, 0, 560, 160), None, None, ear),)),
            (FaceResult(Box(400, 0, 560, 160), "ben", 0.2, 0.4),),
        )
        for ear in blink
    ]
    assert not blinked(other, target, 25.0)
