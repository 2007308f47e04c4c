"""The rates of ``attendance eval`` on made-up descriptors (in process): a student's photo given
another enrolled student's name is counted as a misidentification, apart from the strangers
given a name (FPIR) and the students not recognised."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smart_attendance.evaluation import Rule, Sample, evaluate

RULE = Rule("defaults", 0.47, 0.12)


def _vector(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vector: np.ndarray = rng.normal(size=128).astype(np.float32) * 0.09  # far from each other
    return vector


def _samples(swap: bool) -> list[Sample]:
    """Four people with two photos each; with ``swap``, ana's second photo is bea's face."""
    samples = []
    for i, name in enumerate(("ana", "bea", "cal", "dan")):
        for k in range(2):
            vector = _vector(10 * i)  # both photos of a person: the same face
            if swap and name == "ana" and k == 1:
                vector = _vector(10)  # bea's
            samples.append(Sample(name, Path(f"{name}/{k}.jpg"), vector, vector))
    return samples


def test_a_student_given_another_students_name_is_counted_as_misidentified() -> None:
    [result] = evaluate(_samples(swap=True), [RULE], folds=10)
    # ana's second photo is a probe whenever ana is enrolled (with her first photo); it is
    # named bea whenever bea is enrolled too, and unknown otherwise.
    assert 0 < result.misidentified < 1
    assert result.dir + result.misidentified <= 1
    assert round(result.misidentified * result.genuine) == 2  # the splits where both are in


def test_no_misidentification_when_every_photo_is_its_own_person() -> None:
    [result] = evaluate(_samples(swap=False), [RULE], folds=10)
    assert result.misidentified == 0.0 and result.dir == 1.0 and result.fpir == 0.0
