"""The timetable file: ``attendance timetable check FILE`` on a valid file and on every kind of
mistake (one line naming the file, the line and the key), the default timetable without a
file, and the full example of docs/timetable.md, which must pass the check."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest
from click.testing import Result

from conftest import PARIS, ROOT, make_kit, make_settings, serve_once
from dashboard_kit import sign_in
from smart_attendance.attendance.timetable import (
    DEFAULT_CLASS,
    EVERYONE,
    default_timetable,
    load_timetable,
    timetable_for,
)
from smart_attendance.errors import ConfigError
from smart_attendance.models import STATUS_LATE, STATUS_PRESENT

# A small school; the line numbers below are this text's.
SCHOOL = """\
# Two classes and a holiday
[[class]]
name = "math-7b"
teachers = ["ms.ito@school.test"]
students = ["ana_lima", "ben_ito"]

  [[class.period]]
  days = ["mon", "tue", "wed"]
  start = "08:30"
  end = "09:25"
  late_after_minutes = 10

  [[class.period]]
  days = ["thu"]
  start = "08:30"
  end = "09:25"

[[class]]
name = "art"
students = ["*"]

  [[class.period]]
  days = "fri"
  start = "13:00"
  end = "14:30"

[[closure]]
from = "2026-12-21"
to = "2027-01-03"
reason = "winter break"
"""


def _edit(old: str, new: str, count: int = 1) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, count)

    return edit


MISTAKES: list[tuple[str, Callable[[str], str], str]] = [
    (
        "toml-syntax",
        _edit('name = "art"', 'name = "art'),
        "school.toml:19: not valid TOML: Illegal character '\\n' (column 12)",
    ),
    (
        "unknown-top-level-key",
        _edit("# Two classes and a holiday\n", "# Two classes\nschool = 'Greenfield'\n"),
        "school.toml:2: school: unknown key (expected one of class, closure)",
    ),
    (
        "class-without-name",
        _edit('name = "art"\n', ""),
        "school.toml:18: class[2]: missing key 'name'",
    ),
    (
        "duplicate-class",
        _edit('name = "art"', 'name = "math-7b"'),
        "school.toml:19: class[2].name: class 'math-7b' is defined twice",
    ),
    (
        "bad-class-name",
        _edit('name = "art"', 'name = "art room"'),
        "school.toml:19: class[2].name: use 1-64 letters, digits, '.', '_' or '-' "
        "(it appears in URLs)",
    ),
    (
        "bad-teacher-address",
        _edit('"ms.ito@school.test"', '"ms.ito"'),
        "school.toml:4: class[1].teachers: not an email address: 'ms.ito'",
    ),
    (
        "students-missing",
        _edit('students = ["*"]\n', ""),
        "school.toml:18: class[2]: missing key 'students'",
    ),
    (
        "no-period",
        lambda text: text[: text.index('  [[class.period]]\n  days = "fri"')],
        "school.toml:18: class[2]: no [[class.period]]: a class needs at least one period",
    ),
    (
        "unknown-day",
        _edit('days = ["thu"]', 'days = ["thursday"]'),
        "school.toml:14: class[1].period[2].days: unknown day 'thursday' "
        "(use mon, tue, wed, thu, fri, sat, sun)",
    ),
    (
        "bad-start",
        _edit('start = "13:00"', 'start = "25:00"'),
        "school.toml:24: class[2].period[1].start: no such time of day: '25:00'",
    ),
    (
        "start-not-a-time",
        _edit('start = "13:00"', 'start = "1pm"'),
        "school.toml:24: class[2].period[1].start: expected a time as \"HH:MM\", got '1pm'",
    ),
    (
        "end-before-start",
        _edit('end = "14:30"', 'end = "12:00"'),
        "school.toml:25: class[2].period[1].end: a period must end after it starts",
    ),
    (
        "late-negative",
        _edit("late_after_minutes = 10", "late_after_minutes = -5"),
        "school.toml:11: class[1].period[1].late_after_minutes: expected whole minutes from 0 "
        "to 1440, got -5",
    ),
    (
        "late-not-a-number",
        _edit("late_after_minutes = 10", 'late_after_minutes = "ten"'),
        "school.toml:11: class[1].period[1].late_after_minutes: expected whole minutes from 0 "
        "to 1440, got 'ten'",
    ),
    (
        "unknown-period-key",
        _edit('end = "14:30"\n', 'end = "14:30"\n  room = "B12"\n'),
        "school.toml:26: class[2].period[1].room: unknown key (expected one of days, end, "
        "late_after_minutes, opens_minutes_before, start)",
    ),
    (
        "two-periods-start-together",
        _edit('days = ["thu"]', 'days = ["wed", "thu"]'),
        "school.toml:15: class[1].period[2].start: another period of 'math-7b' starts at 08:30 too",
    ),
    (
        "closure-bad-date",
        _edit('from = "2026-12-21"', 'from = "2026-12-32"'),
        "school.toml:28: closure[1].from: expected a date as \"YYYY-MM-DD\", got '2026-12-32'",
    ),
    (
        "closure-ends-before-it-starts",
        _edit('to = "2027-01-03"', 'to = "2026-12-01"'),
        "school.toml:29: closure[1].to: the closure ends before it starts",
    ),
]


def test_the_school_file_line_numbers_are_the_ones_the_cases_use() -> None:
    lines = SCHOOL.splitlines()
    assert lines[18] == 'name = "art"' and lines[23] == '  start = "13:00"'
    assert lines[10] == "  late_after_minutes = 10" and lines[27] == 'from = "2026-12-21"'


def test_a_valid_file_is_ok(tmp_path: Path, cli: Callable[..., Result]) -> None:
    path = tmp_path / "school.toml"
    path.write_text(SCHOOL, encoding="utf-8")
    result = cli("timetable", "check", str(path))
    assert result.exit_code == 0, result.stderr
    # math-7b: 3 + 1 periods a week, art: 1
    assert result.stdout == f"{path}: 2 classes, 5 periods a week, 1 closure: OK\n"
    assert result.stderr == ""
    timetable = load_timetable(path, 15)
    art = timetable.school_class("art")
    assert art is not None and art.students == (EVERYONE,) and art.teachers == ()
    [friday] = art.periods
    assert friday.late_after_minutes == 15  # ATTENDANCE_LATE_AFTER_MINUTES by default
    assert friday.opens_before == 15


@pytest.mark.parametrize(
    ("edit", "message"), [(e, m) for _, e, m in MISTAKES], ids=[name for name, _, _ in MISTAKES]
)
def test_each_mistake_is_one_line_naming_file_line_and_key(
    tmp_path: Path, cli: Callable[..., Result], edit: Callable[[str], str], message: str
) -> None:
    path = tmp_path / "school.toml"
    path.write_text(edit(SCHOOL), encoding="utf-8")
    result = cli("timetable", "check", str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"Error: timetable {message}\n"
    with pytest.raises(ConfigError) as caught:  # what the server says at start, too
        load_timetable(path, 15)
    assert str(caught.value) == f"timetable {message}"


def test_a_missing_or_unreadable_file(tmp_path: Path, cli: Callable[..., Result]) -> None:
    missing = cli("timetable", "check", str(tmp_path / "nope.toml"))
    assert missing.exit_code == 1
    assert missing.stderr == f"Error: No such file or directory: {tmp_path / 'nope.toml'}\n"
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[[class]]")
    result = cli("timetable", "check", str(binary))
    assert result.exit_code == 1
    assert result.stderr == "Error: timetable binary.toml: not UTF-8 text\n"
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing yet\n", encoding="utf-8")
    result = cli("timetable", "check", str(empty))
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: timetable empty.toml: no [[class]] table: define at least one class\n"
    )


def test_the_default_timetable(tmp_path: Path) -> None:
    """No file: one class ``default`` for everyone, one period all day, every day, Late after
    ATTENDANCE_CLASS_START plus the grace minutes (09:00 + 15 here)."""
    settings = make_settings(tmp_path, teacher_email="a@school.test, b@school.test")
    assert settings.timetable is None
    timetable = timetable_for(settings)
    assert timetable == default_timetable(settings)
    assert timetable.is_default and timetable.closures == () and timetable.source == ""
    [only] = timetable.classes
    assert only.name == DEFAULT_CLASS == "default"
    assert only.students == (EVERYONE,) and only.everyone and only.holds("anybody")
    assert only.teachers == ("a@school.test", "b@school.test")  # TEACHER_EMAIL
    [period] = only.periods
    assert (period.start, period.end, period.label) == (0, 24 * 60, "00:00")
    assert period.days == frozenset(range(7)) and period.opens_before == 0
    assert period.late_from == 9 * 60 + 15 and period.late_after_minutes == 9 * 60 + 15
    monday = datetime(2026, 11, 23, 0, 0, tzinfo=PARIS)
    sunday_night = datetime(2026, 11, 29, 23, 59, 59, tzinfo=PARIS)
    for moment in (monday, sunday_night):
        [slot] = timetable.slots_for("anybody", moment)
        assert (slot.class_name, slot.day) == ("default", moment.date())
    assert period.punctuality(monday.replace(hour=9, minute=15)) == STATUS_PRESENT
    assert period.punctuality(monday.replace(hour=9, minute=15, second=1)) == STATUS_LATE


# --- the example of docs/timetable.md ---------------------------------------------------------


def _doc_example() -> str:
    """The TOML block under "A full example" in docs/timetable.md."""
    doc = (ROOT / "docs" / "timetable.md").read_text(encoding="utf-8")
    section = doc[doc.index("## A full example") :]
    match = re.search(r"```toml\n(.*?)```", section, re.DOTALL)
    assert match, "no ```toml block under '## A full example'"
    return match.group(1)


def test_the_documented_example_passes_the_check(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    path = tmp_path / "timetable.toml"
    path.write_text(_doc_example(), encoding="utf-8")
    result = cli("timetable", "check", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{path}: 3 classes, 51 periods a week, 2 closures: OK\n"
    timetable = load_timetable(path, 15)
    monday = datetime(2026, 11, 23, tzinfo=PARIS).date()
    day = timetable.slots_on(monday, "5a")
    assert [s.period.label for s in day] == ["08:30", "09:30", "10:30", "12:30", "13:30"]
    gaps = [b.period.start - a.period.end for a, b in pairwise(day)]
    assert max(gaps) >= 60  # the lunch break
    assert timetable.closure_on(datetime(2026, 11, 11).date()) is not None


# --- roster names that match no student ------------------------------------------------------

MISSPELT = SCHOOL.replace(
    'students = ["ana_lima", "ben_ito"]', 'students = ["ana_lima", "ben_itoo", "zoe"]'
)


def test_roster_names_matching_no_student_are_logged_at_start_and_shown_to_the_admin(
    tmp_path: Path,
    cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "timetable.toml"
    path.write_text(MISSPELT, encoding="utf-8")
    for name in ("ana_lima", "ben_ito"):
        (tmp_path / "dataset" / name).mkdir(parents=True)
    env = {
        "ATTENDANCE_TIMETABLE": str(path),
        "ATTENDANCE_DATASET_DIR": str(tmp_path / "dataset"),
        "ATTENDANCE_DATA_DIR": str(tmp_path / "data"),
    }
    with caplog.at_level("WARNING"):
        started = serve_once(cli, monkeypatch, env)
    assert started.exit_code == 0, started.output
    warned = [
        r.getMessage()
        for r in caplog.records
        if "roster" in r.getMessage() or "match no" in r.getMessage()
    ]
    assert warned == [
        f"the timetable {path} names students that match no student (not in the registry, no "
        "dataset folder): math-7b: ben_itoo, zoe. They are never marked: check the spelling in "
        "the file, or add the students (docs/timetable.md)"
    ]
    kit = make_kit(tmp_path / "kit", students=("ana_lima", "ben_ito"), timetable=path)
    try:
        sign_in(kit, "ada", "admin")
        html = kit.client.get("/admin").get_data(as_text=True)
    finally:
        kit.services.close()
    notes = re.findall(
        r'data-unmatched-roster="([^"]+)"><strong>No such student:</strong> ([^<]*?) are', html
    )
    assert notes == [("math-7b", "ben_itoo, zoe")]
