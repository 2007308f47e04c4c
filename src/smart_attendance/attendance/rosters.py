"""Roster names of the timetable file that match no student: a misspelt name, or a student not
added yet, would otherwise never be marked nor listed, without a word. The server logs them at
start (``attendance serve``) and the Admin page shows them beside their class."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from ..people.enrolment import enrolled_students
from .timetable import Timetable

log = logging.getLogger(__name__)


def unmatched_roster_names(
    timetable: Timetable, students: Iterable[str], dataset_dir: Path
) -> dict[str, list[str]]:
    """Per class (in the file's order), the roster names that are neither a student of the
    registry (``students``) nor a folder of the dataset (a student the server registers when it
    enrols); classes of every student have none."""
    try:
        folders = enrolled_students(dataset_dir)
    except OSError:  # an unreadable dataset: enrolment says why; the registry alone here
        folders = []
    known = set(students) | set(folders)
    out: dict[str, list[str]] = {}
    for school_class in timetable.classes:
        if school_class.everyone:
            continue
        unknown = [name for name in dict.fromkeys(school_class.students) if name not in known]
        if unknown:
            out[school_class.name] = unknown
    return out


def warn_unmatched(unmatched: dict[str, list[str]], source: str) -> None:
    """Log the roster names that match no student, one line (nothing when there are none)."""
    if not unmatched:
        return
    listed = "; ".join(f"{name}: {', '.join(names)}" for name, names in unmatched.items())
    log.warning(
        "the timetable %s names students that match no student (not in the registry, no "
        "dataset folder): %s. They are never marked: check the spelling in the file, or add "
        "the students (docs/timetable.md)",
        source,
        listed,
    )
