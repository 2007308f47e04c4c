"""Open-set identification: name a face only when the evidence is clear, else call it unknown.

A probe descriptor is compared with every enrolled descriptor, and with every student's mean
descriptor (centroid), in matrix operations. A student's distance is the smaller of the two
(nearest photo, centroid): the centroid averages out one odd photo, the nearest photo keeps a
student with varied photos reachable. The probe is accepted as student A when

* A's distance is ``<= threshold`` (lower is stricter), and
* every *other* student's distance is at least ``margin`` larger (higher is stricter: a
  look-alike of two students is unknown rather than a guess).

A probe whose decision is close to either line is worth a second look: ``is_borderline``
tells the service to average in the descriptor of the mirrored face before deciding.

The defaults (0.47 and 0.12) were calibrated with ``attendance eval`` on ../shared/faces; see
docs/recognition.md. The original project accepted any nearest face under 0.6 with no margin,
which names strangers as students far too often.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..models import Match

DESCRIPTOR_SIZE = 128


class Gallery:
    """Enrolled descriptors as one float32 matrix grouped by student, plus student centroids."""

    def __init__(self, names: Sequence[str], descriptors: np.ndarray, labels: np.ndarray) -> None:
        matrix = np.asarray(descriptors, dtype=np.float32).reshape(-1, DESCRIPTOR_SIZE)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(labels) != len(matrix):
            raise ValueError("one label per descriptor is required")
        order = np.argsort(labels, kind="stable")
        matrix, labels = matrix[order], labels[order]
        used = np.unique(labels)
        # Re-number students 0..k-1 in name order; only students with a descriptor are kept.
        self.names = [names[int(i)] for i in used]
        self.labels = np.searchsorted(used, labels).astype(np.int32)
        self.matrix = np.ascontiguousarray(matrix)
        self.starts = (
            np.flatnonzero(np.r_[True, np.diff(self.labels) != 0])
            if len(labels)
            else np.zeros(0, np.int64)
        )
        counts = np.diff(np.r_[self.starts, len(self.labels)])
        sums = (
            np.add.reduceat(self.matrix, self.starts, axis=0)
            if len(labels)
            else np.zeros((0, DESCRIPTOR_SIZE), np.float32)
        )
        self.centroids = np.ascontiguousarray(sums / np.maximum(counts, 1)[:, None], np.float32)
        self.sq_norms = np.einsum("ij,ij->i", self.matrix, self.matrix)
        self.centroid_sq_norms = np.einsum("ij,ij->i", self.centroids, self.centroids)

    @classmethod
    def empty(cls) -> Gallery:
        return cls([], np.zeros((0, DESCRIPTOR_SIZE), np.float32), np.zeros(0, np.int64))

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, np.ndarray]]) -> Gallery:
        """Build from ``(student name, descriptor)`` pairs."""
        if not pairs:
            return cls.empty()
        names = sorted({name for name, _ in pairs})
        index = {name: i for i, name in enumerate(names)}
        descriptors = np.stack([np.asarray(d, np.float32).reshape(-1) for _, d in pairs])
        labels = np.array([index[name] for name, _ in pairs], np.int64)
        return cls(names, descriptors, labels)

    def __len__(self) -> int:
        return len(self.matrix)

    @property
    def student_count(self) -> int:
        return len(self.names)

    def student_distances(self, probes: np.ndarray) -> np.ndarray:
        """Per-student distances, shape ``(probes, students)``: min(nearest photo, centroid)."""
        probes = np.asarray(probes, np.float32).reshape(-1, DESCRIPTOR_SIZE)
        probe_sq = np.einsum("ij,ij->i", probes, probes)[:, None]
        to_photos = _euclidean(probe_sq, probes @ self.matrix.T, self.sq_norms)
        nearest = np.minimum.reduceat(to_photos, self.starts, axis=1)
        to_centroids = _euclidean(probe_sq, probes @ self.centroids.T, self.centroid_sq_norms)
        result: np.ndarray = np.minimum(nearest, to_centroids)
        return result


def _euclidean(a_sq: np.ndarray, dots: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    squared: np.ndarray = a_sq - 2.0 * dots + b_sq[None, :]
    np.maximum(squared, 0.0, out=squared)
    np.sqrt(squared, out=squared)
    return squared


class Matcher:
    """The decision rule over a ``Gallery``."""

    def __init__(
        self,
        gallery: Gallery,
        threshold: float = 0.47,
        margin: float = 0.12,
        borderline: float = 0.05,
    ) -> None:
        self.gallery = gallery
        self.threshold = threshold
        self.margin = margin
        self.borderline = borderline

    def match(self, descriptor: np.ndarray) -> Match:
        return self.match_many(np.asarray(descriptor).reshape(1, -1))[0]

    def match_many(self, descriptors: np.ndarray) -> list[Match]:
        probes = np.asarray(descriptors, np.float32).reshape(-1, DESCRIPTOR_SIZE)
        if self.gallery.student_count == 0:
            return [Match(None, None, None, None) for _ in range(len(probes))]
        dist = self.gallery.student_distances(probes)
        results = []
        for row in dist:
            best = int(row.argmin())
            d1 = float(row[best])
            if len(row) > 1:
                d2 = float(np.partition(row, 1)[1])
                margin: float | None = d2 - d1
            else:
                margin = None
            candidate = self.gallery.names[best]
            accepted = d1 <= self.threshold and (margin is None or margin >= self.margin)
            results.append(Match(candidate if accepted else None, candidate, d1, margin))
        return results

    def is_borderline(self, match: Match) -> bool:
        """True when a second look (mirrored face) could change the decision."""
        if match.distance is None:
            return False
        if match.distance > self.threshold + self.borderline:
            return False  # clearly nobody we know
        clear_margin = match.margin is None or match.margin > self.margin + self.borderline
        return not (match.distance < self.threshold - self.borderline and clear_margin)
