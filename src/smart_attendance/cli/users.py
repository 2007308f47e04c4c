"""``attendance users``: the dashboard's accounts (``people/accounts.py``, docs/dashboard.md).

The first admin is made here, on the server: ``attendance users add NAME --role admin
--password-stdin``. Passwords are read from standard input (``--password-stdin``, one line) or
asked twice without echo; never from the command line, where other users could see them.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from . import _settings, env_file_option, friendly_errors, main

if TYPE_CHECKING:
    from ..app import Services


def _accounts(env_file: str | None) -> Services:
    from ..app import build_services

    settings = _settings(env_file)
    with friendly_errors():
        return build_services(settings, analyzer="none")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on standard input")
        return password
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


def _classes(raw: str) -> list[str]:
    return [c.strip() for c in raw.split(",") if c.strip()]


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
    services = _accounts(env_file)
    try:
        password = _password(password_stdin)
        with friendly_errors():
            user = services.accounts.add(name, role, password, _classes(classes))
    finally:
        services.close()
    where = f" ({', '.join(user.classes)})" if user.classes else ""
    click.echo(f"Added {user.role} {user.name}{where}. Sign in at /login on the server.")


@users_group.command(name="list")
@env_file_option
def users_list(env_file: str | None) -> None:
    """List the users: name, role, classes, whether active."""
    services = _accounts(env_file)
    try:
        with friendly_errors():
            rows = services.accounts.users()
    finally:
        services.close()
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
    services = _accounts(env_file)
    try:
        with friendly_errors():
            services.accounts.set_active(name, False)
    finally:
        services.close()
    click.echo(f"Disabled {name}.")


@users_group.command(name="enable")
@click.argument("name")
@env_file_option
def users_enable(name: str, env_file: str | None) -> None:
    """Enable the user NAME again."""
    services = _accounts(env_file)
    try:
        with friendly_errors():
            services.accounts.set_active(name, True)
    finally:
        services.close()
    click.echo(f"Enabled {name}.")


@users_group.command(name="set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@env_file_option
def users_set_password(name: str, password_stdin: bool, env_file: str | None) -> None:
    """Give the user NAME a new password; their sessions end."""
    services = _accounts(env_file)
    try:
        password = _password(password_stdin)
        with friendly_errors():
            services.accounts.set_password(name, password)
    finally:
        services.close()
    click.echo(f"New password set for {name}; their open sessions have ended.")
