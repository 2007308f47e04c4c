"""``RecognitionService``: analyzer + matcher + liveness. Who is in a scan, and are they alive.

It sends the frames to the ``Analyzer``, applies the rules of ``decisions`` to every frame and
answers a ``Sighting``: the faces of the best frame and the names it may mark, or why none, and
its *uncertain* faces (left unknown although a student was near). What a sighting means for
the register and the review queue is the attendance service's business.

Liveness (``ATTENDANCE_REQUIRE_LIVENESS``): ``off``; ``blink``, a face is named only if it
blinks in the burst (``decisions.blinked``); ``challenge``, only if it stays the same face and
performs the challenge's actions and no others, in order, in time (``challenge.verify``). In
challenge mode every frame of the burst is described, so that a face that changes anywhere in
it is seen.
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
from . import challenge
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
        require_liveness: str | bool,
    ) -> None:
        """``require_liveness``: off, blink or challenge (True and False: blink and off)."""
        self.analyzer = analyzer
        self.params = params
        self.describe = describe
        if isinstance(require_liveness, bool):
            require_liveness = "blink" if require_liveness else "off"
        self.liveness = require_liveness

    @property
    def require_liveness(self) -> bool:
        """Whether a scan must show a live face (blink or challenge)."""
        return self.liveness != "off"

    def look(
        self,
        frames: Sequence[bytes],
        matcher: Matcher,
        fps: float,
        actions: Sequence[str] = (),
        elapsed_s: float | None = None,
    ) -> Sighting:
        """Recognise the faces of a burst (one frame or several, in time order). In challenge
        mode, ``actions`` are the challenge's (the scan service has used up its nonce) and
        ``elapsed_s`` the time from its issue to now, which the burst's length and timing must
        fit (``challenge.verify``)."""
        challenged = self.liveness == "challenge"
        if challenged and not actions:
            raise ValueError("a scan in challenge mode needs the challenge's actions")
        # The workers check each image's type and size from its header before decoding it;
        # a refused image raises its ImageError here.
        describe = None if challenged else self.describe
        found = self.analyzer.analyze(frames, self.params, describe=describe)
        decisions = [decide_frame(f, matcher, self.analyzer.describe_mirrored) for f in found]
        best = best_frame(decisions)
        chosen = decisions[best]

        def refused(face: FaceResult) -> str | None:
            """Why ``face`` does not pass the liveness check (None: it passes)."""
            if challenged:
                return challenge.verify(decisions, best, face, actions, fps, elapsed_s)
            if self.liveness == "blink" and not blinked(decisions, face, fps):
                return (
                    "send a burst of frames around a blink"
                    if len(frames) < 2
                    else "no blink seen in the burst"
                )
            return None

        near = uncertain_faces(chosen)
        if self.require_liveness:
            near = [r for r in near if refused(r) is None]
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
            reasons = [refused(r) for r in known]
            if all(reasons):
                faces = tuple(r.anonymous() for r in chosen.results)
                return Sighting(
                    LIVENESS_FAILED,
                    faces,
                    best,
                    (),
                    reasons[0],
                    uncertain=uncertain,
                    stranger=stranger,
                )
            known = [r for r, why in zip(known, reasons, strict=True) if why is None]
        names = tuple(dict.fromkeys(r.name for r in known if r.name))
        return Sighting(
            RECOGNISED, chosen.results, best, names, uncertain=uncertain, stranger=stranger
        )
