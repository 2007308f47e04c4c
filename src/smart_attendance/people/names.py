"""Names that look the same: ``Zoë Martín`` and ``zoe_martin`` are two folder names, and most
likely one student added twice. A new student whose name (or display name) matches another's
once case, accents, underscores and spaces are set aside is still added (two students may share
a name), with a warning: ``POST /students`` answers it in ``warnings``, the Enrol page in its
message, ``attendance enroll`` and ``attendance consent`` print it."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

from ..db.store import StudentRow


def name_key(text: str) -> str:
    """``text`` without case, accents, and with ``_``, ``-``, ``.`` and runs of spaces as one
    space: ``Zoë  Martín`` and ``zoe_martin`` give ``zoe martin``."""
    plain = "".join(
        ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
    )
    for mark in "_-.":
        plain = plain.replace(mark, " ")
    return " ".join(plain.casefold().split())


def _keys(row: StudentRow) -> set[str]:
    return {key for key in (name_key(row.name), name_key(row.display_name)) if key}


def look_alikes(new: StudentRow, students: Iterable[StudentRow]) -> list[str]:
    """The other students whose name or display name looks the same as ``new``'s."""
    keys = _keys(new)
    return [row.name for row in students if row.name != new.name and keys & _keys(row)]


def look_alike_warning(name: str, others: Sequence[str]) -> str:
    """One sentence for a new student that looks like ``others``."""
    listed = ", ".join(repr(other) for other in others)
    return (
        f"{name!r} looks like {listed} (the same name but for case, accents, spaces or "
        "underscores): check that it is not the same student added twice"
    )


def look_alike_groups(students: Sequence[StudentRow]) -> list[list[str]]:
    """The students that look like each other, in groups of two or more, in name order."""
    groups: list[list[str]] = []
    placed: set[str] = set()
    for row in sorted(students, key=lambda r: r.name):
        if row.name in placed:
            continue
        group = [row.name, *look_alikes(row, [r for r in students if r.name not in placed])]
        if len(group) > 1:
            groups.append(sorted(set(group)))
            placed.update(group)
    return groups
