"""``attendance users``: the dashboard's accounts (``people/accounts.py``, docs/dashboard.md).

The first admin is made here, on the server: ``attendance users add NAME --role admin
--password-stdin``. Passwords are read from standard input (``--password-stdin``, one line) or
asked twice without echo on a terminal (again while too short); never from the command line,
where other users could see them. Without a terminal and without ``--password-stdin`` the
command says to use it. Every change is kept in the audit log (``settings``, by ``cli:USER``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from . import env_file_option, friendly_errors, main, opened_services

if TYPE_CHECKING:
    from ..people.accounts import AccountService


@contextmanager
def _accounts(env_file: str | None) -> Iterator[AccountService]:
    """The accounts of the services built from the settings, closed on the way out."""
    with opened_services(env_file) as services:
        yield services.accounts


def _terminal() -> bool:
    """Whether a person at a terminal can be asked for the password."""
    return sys.stdin.isatty()


def _acceptable(password: str) -> str:
    """``password`` if the accounts would take it; else a usage error, which makes the prompt
    say why and ask again."""
    from ..errors import BadRequestError
    from ..people.accounts import check_password

    try:
        return check_password(password)
    except BadRequestError as exc:
        raise click.UsageError(f"{exc}; try again") from None


def _password(from_stdin: bool) -> str:
    """The password from standard input (``--password-stdin``), else asked twice without echo
    on the terminal, again until it is long enough."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on standard input")
        return password
    if not _terminal():
        raise click.ClickException(
            "standard input is not a terminal, so the password cannot be asked: give it on "
            "standard input with --password-stdin"
        )
    value: str = click.prompt(
        "Password", hide_input=True, confirmation_prompt=True, value_proc=_acceptable
    )
    return value


def _by() -> str:
    """``cli:USER``, who signs the change in the audit log."""
    from ..privacy.audit import cli_actor

    return cli_actor()


def _classes(raw: str) -> list[str]:
    return [c.strip() for c in raw.split(",") if c.strip()]


def _set_active(env_file: str | None, name: str, active: bool) -> None:
    with _accounts(env_file) as accounts, friendly_errors():
        accounts.set_active(name, active, by=_by())
    click.echo(f"{'Enabled' if active else 'Disabled'} {name}.")


@main.group(name="users")
def users_group() -> None:
    """Dashboard accounts: admin, teacher and office users."""


@users_group.command(name="add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["admin", "teacher", "office"]),
    required=True,
    help="What the user may do.",
)
@click.option("--classes", default="", help="A teacher's classes, comma-separated.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@env_file_option
def users_add(
    name: str, role: str, classes: str, password_stdin: bool, env_file: str | None
) -> None:
    """Add the user NAME (the first admin too)."""
    with _accounts(env_file) as accounts:
        password = _password(password_stdin)
        with friendly_errors():
            user = accounts.add(name, role, password, _classes(classes), by=_by())
    where = f" ({', '.join(user.classes)})" if user.classes else ""
    click.echo(f"Added {user.role} {user.name}{where}. Sign in at /login on the server.")


@users_group.command(name="list")
@env_file_option
def users_list(env_file: str | None) -> None:
    """List the users: name, role, classes, whether active."""
    with _accounts(env_file) as accounts, friendly_errors():
        rows = accounts.users()
    if not rows:
        click.echo("No users yet. Add the first admin: attendance users add NAME --role admin")
        return
    width = max(len(r.name) for r in rows)
    for row in rows:
        state = "active" if row.active else "disabled"
        classes = ",".join(row.classes) or "-"
        click.echo(f"{row.name:<{width}}  {row.role:<7}  {state:<8}  {classes}")


@users_group.command(name="disable")
@click.argument("name")
@env_file_option
def users_disable(name: str, env_file: str | None) -> None:
    """Disable the user NAME: their sessions end at once; their records stay."""
    _set_active(env_file, name, False)


@users_group.command(name="enable")
@click.argument("name")
@env_file_option
def users_enable(name: str, env_file: str | None) -> None:
    """Enable the user NAME again."""
    _set_active(env_file, name, True)


@users_group.command(name="set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@env_file_option
def users_set_password(name: str, password_stdin: bool, env_file: str | None) -> None:
    """Give the user NAME a new password; their sessions end."""
    with _accounts(env_file) as accounts:
        password = _password(password_stdin)
        with friendly_errors():
            accounts.set_password(name, password, by=_by())
    click.echo(f"New password set for {name}; their open sessions have ended.")
