"""The open-set rule on constructed descriptors (no dlib needed)."""

from __future__ import annotations

import numpy as np

from smart_attendance.recognition.matcher import Gallery, Matcher


def _unit(rng: np.random.Generator, n: int = 1) -> np.ndarray:
    v = rng.normal(size=(n, 128)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_threshold_and_margin_decide() -> None:
    rng = np.random.default_rng(0)
    a, b = _unit(rng, 2)
    gallery = Gallery.from_pairs([("ann", a), ("bob", b)])
    matcher = Matcher(gallery, threshold=0.47, margin=0.12)
    near_a = a + 0.02 * _unit(rng)[0]
    match = matcher.match(near_a)
    assert match.name == "ann"
    assert match.distance is not None and match.distance < 0.05
    assert match.margin is not None and match.margin > 1.0
    # Far from everyone: unknown, but the nearest candidate is still reported.
    stranger = matcher.match(_unit(rng)[0])
    assert stranger.name is None and stranger.candidate in {"ann", "bob"}
    # Half-way between two students: within threshold of both but no margin -> unknown.
    close_b = a + 0.3 * (_unit(rng)[0])
    twin = Gallery.from_pairs([("ann", a), ("bob", close_b)])
    midway = (a + close_b) / 2
    result = Matcher(twin, threshold=0.47, margin=0.12).match(midway)
    assert result.name is None
    assert result.candidate in {"ann", "bob"}
    assert result.margin is not None and result.margin < 0.12


def test_student_distance_uses_nearest_photo_or_centroid() -> None:
    rng = np.random.default_rng(1)
    base = _unit(rng)[0]
    photos = [base + 0.3 * _unit(rng)[0] for _ in range(4)]
    gallery = Gallery.from_pairs([("ann", p) for p in photos])
    centroid = np.mean(photos, axis=0)
    distances = gallery.student_distances(base)[0]
    nearest = min(np.linalg.norm(p - base) for p in photos)
    assert distances.shape == (1,)
    assert np.isclose(distances[0], min(nearest, np.linalg.norm(centroid - base)), atol=1e-5)


def test_single_student_needs_only_the_threshold() -> None:
    rng = np.random.default_rng(2)
    a = _unit(rng)[0]
    matcher = Matcher(Gallery.from_pairs([("ann", a)]))
    assert matcher.match(a).name == "ann"
    assert matcher.match(a).margin is None


def test_empty_gallery_knows_nobody() -> None:
    match = Matcher(Gallery.empty()).match(np.zeros(128, np.float32))
    assert match.name is None and match.distance is None


def test_borderline_cases_ask_for_a_second_look() -> None:
    matcher = Matcher(Gallery.empty(), threshold=0.47, margin=0.12, borderline=0.05)
    from smart_attendance.models import Match

    assert not matcher.is_borderline(Match("a", "a", 0.30, 0.40))  # clearly known
    assert not matcher.is_borderline(Match(None, "a", 0.60, 0.10))  # clearly unknown
    assert matcher.is_borderline(Match("a", "a", 0.45, 0.40))  # near the threshold
    assert matcher.is_borderline(Match(None, "a", 0.50, 0.40))
    assert matcher.is_borderline(Match("a", "a", 0.30, 0.13))  # near the margin


def test_many_probes_and_many_students_in_one_call() -> None:
    rng = np.random.default_rng(3)
    people = _unit(rng, 500)
    pairs = [(f"s{i:04d}", people[i] + 0.05 * _unit(rng)[0]) for i in range(500) for _ in range(3)]
    matcher = Matcher(Gallery.from_pairs(pairs))
    assert len(matcher.gallery) == 1500
    assert matcher.gallery.student_count == 500
    results = matcher.match_many(people[:50])
    assert [r.name for r in results] == [f"s{i:04d}" for i in range(50)]
