"""``attendance demo``: a synthetic school with a year on record, for a first look at a
populated dashboard and for the benchmarks (``bench/bench_history.py``).

Invented names (no face, no photo), one class ``school`` whose roster is ``"*"`` (every student)
with ``periods`` periods on weekdays, and the last ``days`` school days up to yesterday: marks
with late arrivals and absences in realistic proportions (about 92% present, 5% late, 3%
absent), some absences excused and some marks corrected by hand. Everything is written
through the store's own tables and rules (the unique mark per student and period, corrections
as rows of their own), so what the dashboard and the statistics show is the product's.

The data folder must be new or empty (or a previous demo, which is replaced): a folder holding
anything else is refused, so a school's real data is never touched.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from .db.store import Store, StudentRow
from .errors import ConfigError
from .models import STATUS_ABSENT, STATUS_EXCUSED, STATUS_LATE, STATUS_PRESENT, Correction, Mark

MARKER = ".demo"  # in the data folder: it holds a demo school, which a new demo may replace
CLASS = "school"
FIRST_START = 8 * 60 + 30  # 08:30
PERIOD_MINUTES = 50
BREAK_MINUTES = 10
LATE_AFTER_MINUTES = 10
BATCH = 20_000  # marks written per transaction

GIVEN = [
    "Ada",
    "Ana",
    "Ben",
    "Cleo",
    "Dan",
    "Eva",
    "Finn",
    "Gus",
    "Hana",
    "Ida",
    "Jon",
    "Kai",
    "Lea",
    "Max",
    "Nia",
    "Omar",
    "Pia",
    "Rui",
    "Sam",
    "Tea",
    "Ugo",
    "Vera",
    "Wim",
    "Xia",
    "Yan",
    "Zoë",
    "Ines",
    "Lars",
    "Mia",
    "Noor",
    "Otto",
    "Rosa",
    "Sven",
    "Tove",
    "Elif",
    "Aziz",
    "Chloé",
    "José",
    "Léa",
    "Maja",
]
FAMILY = [
    "Lima",
    "Ito",
    "Park",
    "Roe",
    "Berg",
    "Costa",
    "Dahl",
    "Eder",
    "Faure",
    "Garcia",
    "Haas",
    "Ivanova",
    "Jensen",
    "Klein",
    "Lund",
    "Moreau",
    "Novak",
    "Okafor",
    "Petit",
    "Quist",
    "Rossi",
    "Silva",
    "Tanaka",
    "Ueda",
    "Vidal",
    "Weber",
    "Xu",
    "Young",
    "Zeller",
    "Martín",
    "Öberg",
]


@dataclass(frozen=True)
class DemoSchool:
    data_dir: Path
    timetable: Path
    students: int
    first: date
    last: date
    school_days: int
    marks: int
    corrections: int


def timetable_text(periods: int) -> str:
    """One class of every student with ``periods`` weekday periods from 08:30."""
    lines = [
        "# A demo school made by `attendance demo`: every student in one class.",
        "[[class]]",
        f'name = "{CLASS}"',
        'students = ["*"]',
    ]
    for start, end in _periods(periods):
        lines += [
            "  [[class.period]]",
            '  days = ["mon", "tue", "wed", "thu", "fri"]',
            f'  start = "{start // 60:02d}:{start % 60:02d}"',
            f'  end = "{end // 60:02d}:{end % 60:02d}"',
            f"  late_after_minutes = {LATE_AFTER_MINUTES}",
        ]
    return "\n".join(lines) + "\n"


def _periods(count: int) -> list[tuple[int, int]]:
    out = []
    start = FIRST_START
    for _ in range(count):
        out.append((start, start + PERIOD_MINUTES))
        start += PERIOD_MINUTES + BREAK_MINUTES
    return out


def school_days(today: date, count: int) -> list[date]:
    """The last ``count`` weekdays before ``today``, oldest first."""
    out: list[date] = []
    day = today - timedelta(days=1)
    while len(out) < count:
        if day.weekday() < 5:
            out.append(day)
        day -= timedelta(days=1)
    return out[::-1]


def names(count: int) -> Iterator[tuple[str, str]]:
    """``count`` unique (folder name, display name) pairs of invented people."""
    seen: set[str] = set()
    index = 0
    while len(seen) < count:
        given = GIVEN[index % len(GIVEN)]
        family = FAMILY[(index // len(GIVEN)) % len(FAMILY)]
        number = index // (len(GIVEN) * len(FAMILY))
        display = f"{given} {family}" + (f" {number + 1}" if number else "")
        folder = display.lower().replace(" ", "_")
        index += 1
        if folder not in seen:
            seen.add(folder)
            yield folder, display


def check_folder(data_dir: Path) -> None:
    """Refuse a data folder that holds anything but a previous demo; empty a previous demo."""
    if not data_dir.exists():
        return
    if not data_dir.is_dir():
        raise ConfigError(f"{data_dir} is not a folder")
    if (data_dir / MARKER).is_file():
        for child in data_dir.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        return
    if any(data_dir.iterdir()):
        raise ConfigError(
            f"{data_dir} is not empty: a demo is written only into a new or empty folder (or over "
            "an earlier demo), never over a school's data"
        )


def make_demo(
    data_dir: Path,
    *,
    students: int,
    days: int,
    periods: int = 1,
    today: date,
    database_url: str = "",
    seed: int = 2026,
    progress: Callable[[str], None] = lambda _line: None,
    default_late: int = 15,
) -> DemoSchool:
    """Write the demo school into ``data_dir`` (its database: ``database_url``, default SQLite
    in the folder; that database must be empty). ``default_late``: the school's
    ATTENDANCE_LATE_AFTER_MINUTES, part of the timetable's fingerprint (a server reading the
    demo's timetable finds it the one in force)."""
    if students < 1 or days < 1 or not 1 <= periods <= 12:
        raise ConfigError("--students and --days must be at least 1, --periods from 1 to 12")
    check_folder(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MARKER).write_text("a demo school made by `attendance demo`\n", encoding="utf-8")
    timetable = data_dir / "timetable.toml"
    timetable.write_text(timetable_text(periods), encoding="utf-8")
    url = database_url or f"sqlite:///{(data_dir / 'attendance.db').resolve()}"
    store = Store(url)
    try:
        store.create()
        if store.students():
            raise ConfigError("the demo's database already holds students: give an empty one")
        calendar = school_days(today, days)
        first = calendar[0]
        from .attendance.timetable import load_timetable

        loaded = load_timetable(timetable, default_late)
        store.record_timetable(loaded.as_row(first))
        people = list(names(students))
        rows = [StudentRow(n, d, f"D{i:05d}", True, first) for i, (n, d) in enumerate(people)]
        store.add_students(rows)
        progress(f"{students} students, {len(calendar)} school days, {periods} period(s) a day")
        rng = random.Random(seed)
        slots = _periods(periods)
        written = fixes = 0
        batch: list[Mark] = []
        corrections: list[Correction] = []
        for number, day in enumerate(calendar, 1):
            for name, _display in people:
                for start, end in slots:
                    roll = rng.random()
                    label = f"{start // 60:02d}:{start % 60:02d}"
                    if roll < 0.03:  # absent; some excused afterwards
                        if rng.random() < 0.3:
                            at = datetime.combine(day, datetime.min.time()) + timedelta(hours=16)
                            corrections.append(
                                Correction(
                                    name,
                                    day,
                                    CLASS,
                                    label,
                                    STATUS_ABSENT,
                                    STATUS_EXCUSED,
                                    "ill (parent's note)",
                                    "user:office",
                                    at,
                                )
                            )
                        continue
                    late = roll < 0.08
                    minutes = start + (rng.randint(11, 25) if late else rng.randint(-10, 8))
                    seen = datetime.combine(day, datetime.min.time()) + timedelta(
                        minutes=minutes, seconds=rng.randint(0, 59)
                    )
                    batch.append(
                        Mark(
                            name,
                            day,
                            seen,
                            STATUS_LATE if late else STATUS_PRESENT,
                            "door-1",
                            CLASS,
                            label,
                            f"{end // 60:02d}:{end % 60:02d}",
                            f"{(start + LATE_AFTER_MINUTES) // 60:02d}:"
                            f"{(start + LATE_AFTER_MINUTES) % 60:02d}",
                            "camera:door-1",
                        )
                    )
                    if late and rng.random() < 0.05:  # the teacher saw them on time
                        at = seen + timedelta(minutes=30)
                        corrections.append(
                            Correction(
                                name,
                                day,
                                CLASS,
                                label,
                                STATUS_LATE,
                                STATUS_PRESENT,
                                "was in class, the door camera was late",
                                "user:teacher",
                                at,
                            )
                        )
            if len(batch) >= BATCH or number == len(calendar):
                store.import_marks(batch)
                written += len(batch)
                batch = []
                store.record_corrections(corrections)
                fixes += len(corrections)
                corrections = []
                progress(f"day {number}/{len(calendar)}: {written} marks")
        return DemoSchool(
            data_dir, timetable, students, first, calendar[-1], len(calendar), written, fixes
        )
    finally:
        store.close()
