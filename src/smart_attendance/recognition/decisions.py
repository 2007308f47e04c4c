"""The recognition rules as pure functions over descriptors and eye ratios, called by the
server (``RecognitionService``) and by ``attendance eval`` alike.

* ``identify``: the open-set rule (``Matcher``) and the *second look*: a decision close to the
  threshold or the margin is taken again on the descriptor averaged with the one of the
  mirrored face (steadier than either alone).
* ``decide_frame``: every face of a frame named, unknown, too small, or not described; an
  unknown face still close to the threshold or the margin after the second look keeps its
  nearest student as ``candidate`` (an *uncertain* face, for a person to review: the rule
  itself never changes).
* ``uncertain_faces``, ``stranger_seen``, ``stranger_descriptors``: a frame's uncertain
  faces; whether it has an unknown face with no student near, and those faces' descriptors.
* ``best_frame``: the frame of a burst to answer for.
* ``unknown_reason``: why a frame names nobody (``no_face``, ``face_too_small``,
  ``unknown_face``).
* ``blinked``: whether the face recognised as a student blinks over the burst.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..models import Face, FaceResult, Frame, Match
from .liveness import BlinkDetector
from .matcher import Matcher

TOO_SMALL = "face too small"
NOT_DESCRIBED = "frame not described"

MirroredDescriptors = Callable[[Sequence[int]], np.ndarray]
"""Given the indices of some probes, their mirrored-face descriptors ``(len, 128)``."""


def identify(
    matcher: Matcher,
    descriptors: np.ndarray,
    mirrored: MirroredDescriptors,
    can_look_again: Sequence[bool] | None = None,
) -> list[Match]:
    """The open-set decision for each descriptor row, with a second look at borderline ones
    (those ``can_look_again`` allows: all by default)."""
    matches = matcher.match_many(descriptors)
    again = [
        i
        for i, match in enumerate(matches)
        if matcher.is_borderline(match) and (can_look_again is None or can_look_again[i])
    ]
    if again:
        averaged = (np.asarray(descriptors)[again] + mirrored(again)) / 2
        for i, match in zip(again, matcher.match_many(averaged), strict=True):
            matches[i] = match
    return matches


@dataclass(frozen=True)
class FrameDecision:
    """A frame and the decision for each of its faces (same order)."""

    frame: Frame
    results: tuple[FaceResult, ...]

    @property
    def known(self) -> list[FaceResult]:
        return [r for r in self.results if r.name]


def decide_frame(
    frame: Frame, matcher: Matcher, mirrored_chips: Callable[[list[np.ndarray]], np.ndarray]
) -> FrameDecision:
    """Name every described face of ``frame``; ``mirrored_chips`` describes mirror images of
    face chips for the second look."""
    usable = [face for face in frame.faces if face.descriptor is not None]
    matches: dict[int, Match] = {}
    if usable:
        vectors = np.stack([np.asarray(f.descriptor) for f in usable])

        def mirrored(indices: Sequence[int]) -> np.ndarray:
            return mirrored_chips([np.asarray(usable[i].chip) for i in indices])

        decided = identify(matcher, vectors, mirrored, [f.chip is not None for f in usable])
        matches = {id(face): match for face, match in zip(usable, decided, strict=True)}
    results = []
    for face in frame.faces:
        match = matches.get(id(face))
        near = match is not None and match.name is None and matcher.is_borderline(match)
        results.append(_face_result(face, match, near))
    return FrameDecision(frame, tuple(results))


def _face_result(face: Face, match: Match | None, uncertain: bool = False) -> FaceResult:
    """``uncertain``: the face is unknown but close to the threshold or the margin; its
    nearest student is kept as ``candidate`` (never named)."""
    if face.skipped:
        return FaceResult(face.box, None, None, None, NOT_DESCRIBED)
    if face.descriptor is None or match is None:
        return FaceResult(face.box, None, None, None, TOO_SMALL)
    candidate = match.candidate if uncertain and match.name is None else None
    return FaceResult(face.box, match.name, match.distance, match.margin, candidate=candidate)


def uncertain_faces(decision: FrameDecision) -> list[FaceResult]:
    """The unknown faces of a frame with a student near (``candidate``), except those whose
    candidate the frame names anyway (a look-alike beside the student is nobody to review)."""
    named = {r.name for r in decision.results if r.name}
    return [r for r in decision.results if r.candidate and r.candidate not in named]


def stranger_seen(decision: FrameDecision) -> bool:
    """Whether the frame has an unknown face with no student near: it counts toward the
    camera's intruder streak, an uncertain face does not."""
    return any(
        r.name is None and r.candidate is None and r.reason != TOO_SMALL for r in decision.results
    )


def stranger_descriptors(decision: FrameDecision) -> tuple[np.ndarray, ...]:
    """The descriptors of the frame's strangers (the faces ``stranger_seen`` counts that were
    described): the intruder service tells one stranger from another with them, in memory
    only."""
    return tuple(
        np.asarray(face.descriptor)
        for face, r in zip(decision.frame.faces, decision.results, strict=True)
        if r.name is None and r.candidate is None and r.reason is None
        if face.descriptor is not None
    )


def best_frame(decisions: Sequence[FrameDecision]) -> int:
    """The frame to answer for: most known faces, then the closest match."""

    def score(item: tuple[int, FrameDecision]) -> tuple[int, float]:
        _, decision = item
        known = [r.distance for r in decision.results if r.name and r.distance is not None]
        any_face = [r.distance for r in decision.results if r.distance is not None]
        best = min(known or any_face or [9.0])
        return (-len(known), best)

    return min(enumerate(decisions), key=score)[0]


def unknown_reason(decision: FrameDecision) -> str:
    if not decision.frame.faces:
        return "no_face"
    if all(r.reason == TOO_SMALL for r in decision.results):
        return "face_too_small"
    return "unknown_face"


def blinked(decisions: Sequence[FrameDecision], target: FaceResult, fps: float) -> bool:
    """Whether the face recognised as ``target`` blinks over the burst: followed from frame to
    frame by its name, or by box overlap where a frame was not described (an unknown face:
    by box overlap alone)."""
    detector = BlinkDetector(fps)
    reference = target.box
    for decision in decisions:
        same = [r for r in decision.results if r.name == target.name] if target.name else []
        result = (
            same[0]
            if same
            else max(decision.results, key=lambda r: r.box.iou(reference), default=None)
        )
        ear = None
        if result is not None and (same or result.box.iou(reference) > 0.3):
            reference = result.box
            ear = next((f.ear for f in decision.frame.faces if f.box == result.box), None)
        if detector.update(ear):
            return True
    return False
