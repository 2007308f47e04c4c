"""Commands over the register (marks, corrections, statistics, exports, the timetable)."""

from __future__ import annotations

import getpass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..config import load_settings
from . import (
    _database_exists,
    _services,
    _settings,
    env_file_option,
    friendly_errors,
    main,
)

if TYPE_CHECKING:
    from ..app import Services
    from ..attendance.corrections import BulkCorrected


def parse_day(value: str | None, option: str) -> date | None:
    """A ``YYYY-MM-DD`` option, or one line saying what is wrong with it."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.ClickException(
            f"{option} must be a date as YYYY-MM-DD, got {value!r}"
        ) from None


def parse_range(first: str | None, last: str | None) -> tuple[date | None, date | None]:
    start, end = parse_day(first, "--from"), parse_day(last, "--to")
    if start and end and end < start:
        raise click.ClickException("--to is before --from")
    return start, end


def _register_services(env_file: str | None) -> Services:
    """The services over the server's existing database, or one line saying where it is not."""
    settings = _settings(env_file)
    if not _database_exists(settings):
        raise click.ClickException(
            f"no database at {settings.db_url.removeprefix('sqlite:///')}: run the command in "
            "the folder the server runs in, or set ATTENDANCE_DATA_DIR"
        )
    return _services(settings)


def _echo_bulk(done: BulkCorrected, nothing: str) -> None:
    if not done.changed:
        click.echo(f"{nothing} ({done.kept} left as they were); nothing recorded.")
        return
    for entry in done.changed:
        click.echo(
            f"{entry.day.isoformat()} {entry.class_name} {entry.period}  {entry.student}: "
            f"{entry.status}"
        )
    click.echo(f"{len(done.changed)} class periods corrected, {done.kept} left as they were.")


def cli_source() -> str:
    """Who corrects from the command line: ``cli:<os user>`` (``cli`` if there is none)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError, ImportError):  # no user name in the environment or passwd
        return "cli"
    return f"cli:{user}" if user else "cli"


@main.command()
@click.argument("name")
@click.option("--from", "first", required=True, metavar="YYYY-MM-DD", help="First day.")
@click.option("--to", "last", default=None, metavar="YYYY-MM-DD", help="Last day (default --from).")
@click.option("--reason", required=True, help="Why (a doctor's note, a trip...).")
@env_file_option
def excuse(name: str, first: str, last: str | None, reason: str, env_file: str | None) -> None:
    """Excuse NAME in every class period from --from to --to that has no mark (days ahead
    too); periods where they were seen keep their mark. At most 92 days at once."""
    from ..attendance.corrections import correct_days

    start, end = parse_range(first, last)
    assert start is not None
    services = _register_services(env_file)
    by = cli_source()
    with friendly_errors():
        try:
            done = correct_days(
                services.attendance,
                services.files,
                name=name,
                first=start,
                last=end or start,
                reason=reason,
                by=by,
            )
        finally:
            services.close()
    _echo_bulk(done, f"Nothing to excuse for {name}")


@main.command("mark-period")
@click.argument("class_name", metavar="CLASS")
@click.option("--date", "day", default=None, metavar="YYYY-MM-DD", help="Day (default today).")
@click.option(
    "--period", default=None, metavar="HH:MM", help="The period's start (needed with several)."
)
@click.option("--status", default="Present", show_default=True, help="The status to set.")
@click.option("--reason", default="", help="Why (required for Excused).")
@env_file_option
def mark_period(
    class_name: str,
    day: str | None,
    period: str | None,
    status: str,
    reason: str,
    env_file: str | None,
) -> None:
    """Set every student of CLASS not marked in one period to --status (default Present):
    a camera that was down, a lesson outside. Students who were seen keep their mark."""
    from ..attendance.corrections import correct_period

    the_day = parse_day(day, "--date")
    services = _register_services(env_file)
    by = cli_source()
    with friendly_errors():
        try:
            done = correct_period(
                services.attendance,
                services.files,
                class_name=class_name,
                day=the_day or services.attendance.today(),
                period=period,
                status=status,
                reason=reason,
                by=by,
            )
        finally:
            services.close()
    _echo_bulk(done, f"Nobody to change in {class_name}")


@main.command()
@click.argument("name")
@click.option("--class", "class_name", default=None, help="Class (needed with several classes).")
@click.option("--date", "day", default=None, metavar="YYYY-MM-DD", help="Day (default today).")
@click.option(
    "--period",
    default=None,
    metavar="HH:MM",
    help="The period's start (needed when the class has several periods that day).",
)
@click.option("--status", required=True, help="Present, Late, Absent or Excused (any case).")
@click.option("--reason", default="", help="Why (required for Excused).")
@env_file_option
def mark(
    name: str,
    class_name: str | None,
    day: str | None,
    period: str | None,
    status: str,
    reason: str,
    env_file: str | None,
) -> None:
    """Correct NAME's status in one class period; every correction is kept, with its history."""
    from ..attendance.corrections import correct

    the_day = parse_day(day, "--date")
    services = _register_services(env_file)
    with friendly_errors():
        try:
            result = correct(
                services.attendance,
                services.files,
                name=name,
                day=the_day or services.attendance.today(),
                class_name=class_name,
                period=period,
                status=status,
                reason=reason,
                by=cli_source(),
            )
        finally:
            services.close()
    entry = result.entry
    where = f"{entry.student}, {entry.class_name} {entry.period} on {entry.day.isoformat()}"
    why = f" ({entry.reason})" if entry.reason else ""
    if not result.changed:
        click.echo(f"{where}: already {entry.status}{why}; nothing recorded.")
    else:
        old = result.history[-1].old_status or "not seen yet"
        click.echo(f"{where}: {old} -> {entry.status}{why}.")
    click.echo("History:")
    for fix in result.history:
        fix_why = f"  {fix.reason}" if fix.reason else ""
        click.echo(
            f"  {fix.at:%Y-%m-%d %H:%M:%S} UTC  {fix.by}  "
            f"{fix.old_status or 'not seen yet'} -> {fix.new_status}{fix_why}"
        )


@main.command(name="export")
@click.option("--from", "first", default=None, metavar="YYYY-MM-DD", help="First day.")
@click.option("--to", "last", default=None, metavar="YYYY-MM-DD", help="Last day (default today).")
@click.option("--class", "class_name", default=None, help="One class (default: every class).")
@click.option(
    "--format",
    "fmt",
    default=None,
    metavar="csv|xlsx",
    help="File format (default: from the --out file's extension, else csv).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write.",
)
@env_file_option
def export_command(
    first: str | None,
    last: str | None,
    class_name: str | None,
    fmt: str | None,
    out: Path,
    env_file: str | None,
) -> None:
    """Write the register of a range: one row per student per class period (CSV or Excel;
    the Excel file has a second sheet with one column per day)."""
    from ..attendance.export import build

    settings = _settings(env_file)
    start, end = parse_range(first, last)
    if fmt is None:
        fmt = "xlsx" if out.suffix.lower() == ".xlsx" else "csv"
    services = _services(settings)
    with friendly_errors():
        partial = out.with_name(f".{out.name}.partial")
        try:
            made = build(services.attendance, start, end, class_name, fmt)
            services.audit.exported(cli_source(), made)
            with partial.open("wb") as handle:  # written as it is read, then renamed
                for piece in made.chunks:
                    handle.write(piece)
            partial.replace(out)
        finally:
            partial.unlink(missing_ok=True)
            services.close()
    click.echo(f"{made.rows} row(s) written to {out}.")


@main.command()
@click.option("--students", type=int, default=1000, show_default=True, help="How many students.")
@click.option("--days", type=int, default=180, show_default=True, help="School days on record.")
@click.option("--periods", type=int, default=1, show_default=True, help="Periods a day (1-12).")
@click.option(
    "--data-dir",
    "data_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A new or empty folder (or an earlier demo's).",
)
@click.option("--seed", type=int, default=2026, show_default=True, help="Random seed.")
def demo(students: int, days: int, periods: int, data_dir: Path, seed: int) -> None:
    """Write a synthetic school with a year on record into a data folder of its own (invented
    names, no faces): to look at a populated dashboard, and for the benchmarks."""
    import os
    from datetime import datetime

    from ..demo import make_demo

    url = os.environ.get("ATTENDANCE_DATABASE_URL", "")
    folder = data_dir.resolve()
    with friendly_errors():  # the environment's zone and Late rule, the demo's folders
        settings = load_settings(
            env_file=None,
            environ={
                **os.environ,
                "ATTENDANCE_DATA_DIR": str(folder),
                "ATTENDANCE_DATASET_DIR": str(folder / "dataset"),
                "ATTENDANCE_TIMETABLE": str(folder / "timetable.toml"),
                "ATTENDANCE_DATABASE_URL": url,
                "ATTENDANCE_CSV_WRITE_SECONDS": "0",
            },
        )
        made = make_demo(
            data_dir,
            students=students,
            days=days,
            periods=periods,
            today=datetime.now(settings.zone).date(),
            database_url=url,
            seed=seed,
            progress=click.echo,
            default_late=settings.late_after_minutes,
        )
    # What a server that ran all year keeps beside the database: the per-day tallies and
    # the CSV files of logs/ (written by the product's own code).
    click.echo("Counting the days and writing logs/ ...")
    services = _services(settings, analyzer="none")
    with friendly_errors():
        try:
            services.attendance.adopt_timetable()
            services.attendance.tallies.warm()
            services.files.sync()
        finally:
            services.close()
    click.echo(
        f"Demo school in {made.data_dir}: {made.students} students, {made.school_days} school "
        f"days ({made.first} to {made.last}), {made.marks} marks, {made.corrections} corrections."
    )
    click.echo("Serve it with:")
    click.echo(
        f"  ATTENDANCE_DATA_DIR={made.data_dir} ATTENDANCE_TIMETABLE={made.timetable} "
        "ATTENDANCE_REQUIRE_CONSENT=0 attendance serve"
    )
