"""``attendance purge [--dry-run]``: the retention purge, now (``privacy/retention.py``,
docs/cli.md). The server runs the same purge daily at ``ATTENDANCE_PURGE_TIME``."""

from __future__ import annotations

import click

from . import _database_exists, _logging, _settings, env_file_option, friendly_errors, main


@main.command(name="purge")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@env_file_option
def purge(dry_run: bool, env_file: str | None) -> None:
    """Delete what is older than the retention settings (the daily purge, now)."""
    from ..app import build_services
    from ..privacy.audit import cli_actor

    settings = _settings(env_file)
    _logging(settings)
    if not _database_exists(settings):
        raise click.ClickException(
            f"no database at {settings.db_url.removeprefix('sqlite:///')}: nothing to purge. "
            "Run the command in the folder the server runs in, or set ATTENDANCE_DATA_DIR."
        )
    with friendly_errors():
        services = build_services(settings, analyzer="none")
    try:
        with friendly_errors():
            report = services.purge.purge(dry_run=dry_run, actor=cli_actor())
    finally:
        services.close()
    cutoffs = report.cutoffs
    click.echo("Dry run: nothing deleted. Would delete:" if dry_run else "Deleted:")
    width = max(len(what) for what, _count in report.counts())
    for what, count in report.counts():
        click.echo(f"  {what + ':':<{width + 1}} {count}")
    click.echo(
        f"Kept from: intruder photos {cutoffs['intruders']}, uncertain faces "
        f"{cutoffs['uncertain']}, marks {cutoffs['marks']}, audit log {cutoffs['audit']}; "
        f"enrolment photos: {settings.enrolment_photos}."
    )
    if report.failed_files:
        raise click.ClickException(
            f"{report.failed_files} file(s) could not be deleted (see the log above)"
        )
