"""``attendance db``: the database's schema (Alembic migrations, ``db/schema.py``)."""

from __future__ import annotations

import click

from . import _settings, env_file_option, friendly_errors, main


@main.group(name="db")
def db() -> None:
    """The database: bring its schema up to date."""


@db.command(name="upgrade")
@env_file_option
def db_upgrade(env_file: str | None) -> None:
    """Upgrade the database to the newest schema revision (the server also does it at start).

    A database made by release 0.1 keeps every mark, cached face and report row. Safe to run
    while servers start: the upgrade takes a lock and runs once."""
    from ..db.store import Store

    settings = _settings(env_file)
    with friendly_errors():
        store = Store(settings.db_url)
        try:
            change = store.create()
        finally:
            store.close()
    line = change.describe()
    if change.action == "created" and not settings.database_url:
        line = f"{line.removesuffix('.')}: {settings.db_url.removeprefix('sqlite:///')}"
    click.echo(line)
