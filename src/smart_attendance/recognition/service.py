"""``RecognitionService``: analyzer + matcher + liveness. Who is in a scan, and did they blink.

It sends the frames to the ``Analyzer``, applies the rules of ``decisions`` to every frame and
answers a ``Sighting``: the faces of the best frame and the names it may mark, or why none, and
its *uncertain* faces (left unknown although a student was near). What a sighting means for
the register and the review queue is the attendance service's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..models import (
    LIVENESS_FAILED,
    RECOGNISED,
    UNKNOWN,
    Analyzer,
    DetectParams,
    FaceResult,
)
from .decisions import (
    best_frame,
    blinked,
    decide_frame,
    stranger_descriptors,
    stranger_seen,
    uncertain_faces,
    unknown_reason,
)
from .matcher import Matcher


@dataclass(frozen=True)
class Sighting:
    """What a scan showed. ``names``: students to mark, largest face first (``RECOGNISED``);
    ``best``: the index of the frame answered for; ``reason`` when nobody is named.

    ``uncertain``: faces of the best frame left unknown although a student was near (each
    with its ``candidate``; with liveness required, only faces that blink), for a person to
    confirm or reject; ``stranger``: the best frame has an unknown face with no student near
    (what counts toward a camera's intruder streak); ``strangers``: those faces' descriptors
    (biometric data: kept in memory by the intruder service, never stored)."""

    status: str
    faces: tuple[FaceResult, ...]
    best: int
    names: tuple[str, ...] = ()
    reason: str | None = None
    uncertain: tuple[FaceResult, ...] = ()
    stranger: bool = False
    strangers: tuple[np.ndarray, ...] = field(default=(), repr=False, compare=False)


class RecognitionService:
    def __init__(
        self,
        analyzer: Analyzer,
        params: DetectParams,
        describe: int,
        require_liveness: bool,
    ) -> None:
        self.analyzer = analyzer
        self.params = params
        self.describe = describe
        self.require_liveness = require_liveness

    def look(self, frames: Sequence[bytes], matcher: Matcher, fps: float) -> Sighting:
        """Recognise the faces of a burst (one frame or several, in time order)."""
        # The workers check each image's type and size from its header before decoding it;
        # a refused image raises its ImageError here.
        found = self.analyzer.analyze(frames, self.params, describe=self.describe)
        decisions = [decide_frame(f, matcher, self.analyzer.describe_mirrored) for f in found]
        best = best_frame(decisions)
        chosen = decisions[best]
        near = uncertain_faces(chosen)
        if self.require_liveness:
            near = [r for r in near if blinked(decisions, r, fps)]
        uncertain, stranger = tuple(near), stranger_seen(chosen)
        strangers = stranger_descriptors(chosen)
        known = sorted(chosen.known, key=lambda r: -(r.box.width * r.box.height))
        if not known:
            reason = unknown_reason(chosen)
            return Sighting(
                UNKNOWN,
                chosen.results,
                best,
                (),
                reason,
                uncertain=uncertain,
                stranger=stranger,
                strangers=strangers,
            )
        if self.require_liveness:
            known = [r for r in known if blinked(decisions, r, fps)]
            if not known:
                reason = (
                    "send a burst of frames around a blink"
                    if len(frames) < 2
                    else "no blink seen in the burst"
                )
                faces = tuple(r.anonymous() for r in chosen.results)
                return Sighting(
                    LIVENESS_FAILED, faces, best, (), reason, uncertain=uncertain, stranger=stranger
                )
        names = tuple(dict.fromkeys(r.name for r in known if r.name))
        return Sighting(
            RECOGNISED, chosen.results, best, names, uncertain=uncertain, stranger=stranger
        )
