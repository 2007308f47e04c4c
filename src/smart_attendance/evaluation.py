"""Open-set evaluation of the recognition rule on a labelled folder tree.

Layout: ``ROOT/<identity>/*.jpg`` or ``ROOT/<set>/<identity>/*.jpg``; folders whose name starts
with ``_`` (``_group``, ``_noface``) are ignored. For each of ``folds`` seeded splits, half of
the identities with two or more photos are enrolled with the first half of their photos
(at least one); every other photo is a probe. Enrolled identities' probes measure the DIR
(detection and identification rate: found, accepted, right name) and the misidentification
rate (a student's photo given another enrolled student's name); all photos of the other
identities are strangers and measure the FPIR (false-positive identification rate: a stranger
given any student's name).

The decisions are the server's own (``recognition.decisions.identify``); descriptors are cached
by content in a store the caller chooses (``attendance eval`` uses a temporary one, or
``--cache DIR``), never the server's database.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .db.store import CachedFace, Store
from .engine.model_files import model_fingerprint
from .models import ENROL_PARAMS, Analyzer
from .people.enrolment import PHOTO_SUFFIXES
from .recognition.decisions import identify
from .recognition.matcher import Gallery, Matcher


@dataclass(frozen=True)
class Sample:
    identity: str
    path: Path
    plain: np.ndarray | None  # None: not exactly one usable face
    mirrored: np.ndarray | None

    @property
    def averaged(self) -> np.ndarray | None:
        if self.plain is None or self.mirrored is None:
            return None
        mean: np.ndarray = (self.plain + self.mirrored) / 2
        return mean


@dataclass(frozen=True)
class Rule:
    label: str
    threshold: float
    margin: float
    original: bool = False  # nearest photo only, plain descriptors, no second look


@dataclass(frozen=True)
class Result:
    rule: Rule
    dir: float  # genuine probes given their own name
    fpir: float  # stranger probes given any student's name
    genuine: int
    strangers: int
    misidentified: float = 0.0  # genuine probes given another enrolled student's name


def _natural(path: Path) -> tuple[object, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def find_identities(root: Path) -> dict[str, list[Path]]:
    """Identity name -> sorted photo paths, from one or two folder levels."""
    found: dict[str, list[Path]] = {}

    def photos_in(folder: Path) -> list[Path]:
        return sorted(
            (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES),
            key=_natural,
        )

    for first in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        direct = photos_in(first)
        if direct:
            found[first.name] = direct
            continue
        for second in sorted(
            p for p in first.iterdir() if p.is_dir() and not p.name.startswith("_")
        ):
            photos = photos_in(second)
            if photos:
                found.setdefault(second.name, []).extend(photos)
    return found


def describe_all(
    identities: dict[str, list[Path]],
    analyzer: Analyzer,
    store: Store | None,
    on_progress: Callable[[int], None] | None = None,
) -> list[Sample]:
    """Plain and mirrored descriptors of every photo (cached in ``store`` by content hash)."""
    pipeline = f"eval-{model_fingerprint()}-{ENROL_PARAMS.key()}"
    params = replace(ENROL_PARAMS, mirror=False)
    items = [(identity, path) for identity, paths in identities.items() for path in paths]
    data = {path: path.read_bytes() for _, path in items}
    hashes = {path: hashlib.sha256(blob).hexdigest() for path, blob in data.items()}
    cache = store.cached_faces(pipeline, hashes.values()) if store else {}
    missing = [path for _, path in items if hashes[path] not in cache]

    def jobs() -> Iterator[tuple[Path, bytes]]:
        for path in missing:
            yield path, data[path]

    fresh: dict[str, CachedFace] = {}
    chips: dict[Path, np.ndarray] = {}
    for path, frame in analyzer.analyze_many(jobs(), params):
        usable = (
            []
            if isinstance(frame, Exception)
            else [f for f in frame.faces if f.descriptor is not None]
        )
        if len(usable) == 1 and usable[0].chip is not None:
            chips[path] = usable[0].chip
            fresh[hashes[path]] = CachedFace("ok", "", np.asarray(usable[0].descriptor))
        else:
            fresh[hashes[path]] = CachedFace("no_face", "not exactly one usable face", None)
        if on_progress:
            on_progress(1)
    chip_paths = list(chips)
    for start in range(0, len(chip_paths), 16):
        batch = chip_paths[start : start + 16]
        mirrored = analyzer.describe_mirrored([chips[p] for p in batch])
        for path, vector in zip(batch, mirrored, strict=True):
            plain = fresh[hashes[path]].descriptor
            assert plain is not None
            fresh[hashes[path]] = CachedFace("ok", "", np.concatenate([plain, vector]))
    if store:
        store.cache_faces(pipeline, fresh)
    cache.update(fresh)
    samples = []
    for identity, path in items:
        entry = cache[hashes[path]]
        vec = entry.descriptor
        if entry.status == "ok" and vec is not None and vec.size == 256:
            samples.append(Sample(identity, path, vec[:128], vec[128:]))
        else:
            samples.append(Sample(identity, path, None, None))
    return samples


def evaluate(samples: list[Sample], rules: list[Rule], folds: int = 10) -> list[Result]:
    # right, genuine, false (strangers named), strangers, wrong (students named as another)
    counts = {rule.label: [0, 0, 0, 0, 0] for rule in rules}
    for gallery_items, probes in _splits(samples, folds):
        for rule in rules:
            tally = counts[rule.label]
            for truth, decided in _decide(rule, gallery_items, probes):
                if truth is None:
                    tally[3] += 1
                    tally[2] += decided is not None
                else:
                    tally[1] += 1
                    tally[0] += decided == truth
                    tally[4] += decided is not None and decided != truth
    return [
        Result(rule, c[0] / max(1, c[1]), c[2] / max(1, c[3]), c[1], c[3], c[4] / max(1, c[1]))
        for rule in rules
        for c in [counts[rule.label]]
    ]


def decisions(samples: list[Sample], rule: Rule, folds: int = 10) -> list[str | None]:
    """Every probe's decided name over all splits, in order (for comparing backends)."""
    out: list[str | None] = []
    for gallery_items, probes in _splits(samples, folds):
        out += [name for _, name in _decide(rule, gallery_items, probes)]
    return out


def _splits(
    samples: list[Sample], folds: int
) -> Iterator[tuple[list[Sample], list[tuple[str | None, Sample]]]]:
    by_identity: dict[str, list[Sample]] = {}
    for sample in samples:
        by_identity.setdefault(sample.identity, []).append(sample)
    names = sorted(by_identity)
    for seed in range(folds):
        rng = random.Random(seed)
        multi = [n for n in names if len(by_identity[n]) >= 2]
        rng.shuffle(multi)
        enrolled = set(multi[: len(multi) // 2])
        gallery_items: list[Sample] = []
        probes: list[tuple[str | None, Sample]] = []
        for name in names:
            items = by_identity[name]
            if name in enrolled:
                k = max(1, len(items) // 2)
                gallery_items += items[:k]
                probes += [(name, s) for s in items[k:]]
            else:
                probes += [(None, s) for s in items]
        yield gallery_items, probes


def _decide(
    rule: Rule, gallery_items: list[Sample], probes: list[tuple[str | None, Sample]]
) -> list[tuple[str | None, str | None]]:
    if rule.original:
        pairs = [(s.identity, s.plain) for s in gallery_items if s.plain is not None]
    else:
        pairs = [(s.identity, s.averaged) for s in gallery_items if s.averaged is not None]
    gallery = Gallery.from_pairs([(n, v) for n, v in pairs if v is not None])
    out: list[tuple[str | None, str | None]] = []
    if rule.original:
        for truth, sample in probes:
            if sample.plain is None or len(gallery) == 0:
                out.append((truth, None))
                continue
            dist = np.linalg.norm(gallery.matrix - sample.plain, axis=1)
            best = int(dist.argmin())
            name = (
                gallery.names[int(gallery.labels[best])] if dist[best] <= rule.threshold else None
            )
            out.append((truth, name))
        return out
    matcher = Matcher(gallery, rule.threshold, rule.margin)
    for truth, sample in probes:
        if sample.plain is None:
            out.append((truth, None))
            continue
        [match] = identify(
            matcher,
            sample.plain.reshape(1, -1),
            _fixed_rows(sample.mirrored),
            [sample.mirrored is not None],
        )
        out.append((truth, match.name))
    return out


def _fixed_rows(vector: np.ndarray | None) -> Callable[[Sequence[int]], np.ndarray]:
    """The mirrored descriptor of a single probe, as ``identify`` asks for it."""

    def rows(_indices: Sequence[int]) -> np.ndarray:
        return np.asarray(vector).reshape(1, -1)

    return rows
