"""``attendance timetable``: the timetable file (``ATTENDANCE_TIMETABLE``, docs/timetable.md).

``attendance timetable check FILE`` reads and validates a timetable file the way the server
does at start, without settings, a database or a face engine: it prints what the file holds,
or the one-line mistake (file, line and key) and exits 1.
"""

from __future__ import annotations

from pathlib import Path

import click

from . import friendly_errors, main


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


@main.group(name="timetable")
def timetable_group() -> None:
    """The timetable file: check it before the server reads it."""


@timetable_group.command(name="check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def timetable_check(file: Path) -> None:
    """Validate the timetable FILE (TOML) and say what it holds."""
    from ..attendance.timetable import parse_timetable
    from ..config import Settings
    from ..errors import ConfigError

    with friendly_errors():
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"timetable {file.name}: not UTF-8 text") from None
        # The default Late rule only fills in periods without late_after_minutes; it does not
        # change whether the file is valid.
        timetable = parse_timetable(text, file, Settings().late_after_minutes)
    periods = sum(len(p.days) for c in timetable.classes for p in c.periods)
    click.echo(
        f"{file}: {_count(len(timetable.classes), 'class', 'classes')}, "
        f"{_count(periods, 'period', 'periods')} a week, "
        f"{_count(len(timetable.closures), 'closure', 'closures')}: OK"
    )
