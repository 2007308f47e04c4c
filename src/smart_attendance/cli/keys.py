"""``attendance keys``: one API key per door camera (``people/keys.py``, docs/api.md#keys).

``attendance keys add NAME`` prints the new key on standard output, alone on its line and only
this once (the explanation goes to standard error, so ``KEY=$(attendance keys add door-1)``
works); the database keeps its SHA-256 only. ``revoke`` makes it open nothing, on every server,
from its next request on. ``API_SECRET_KEY`` stays the admin key.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

import click

from . import env_file_option, friendly_errors, main, opened_services

if TYPE_CHECKING:
    from ..people.keys import CameraKeyService


@contextmanager
def _keys(env_file: str | None) -> Iterator[CameraKeyService]:
    """The key service of the services built from the settings, closed on the way out."""
    with opened_services(env_file) as services:
        yield services.keys


def _actor() -> str:
    from ..privacy.audit import cli_actor

    return cli_actor()


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M}" if at else "never"


@main.group(name="keys")
def keys_group() -> None:
    """API keys per camera: add, list, revoke (API_SECRET_KEY stays the admin key)."""


@keys_group.command(name="add")
@click.argument("name")
@env_file_option
def keys_add(name: str, env_file: str | None) -> None:
    """Add a key for the camera NAME and print it, once."""
    with _keys(env_file) as keys, friendly_errors():
        made = keys.add(name, actor=_actor())
    click.echo(
        f"Camera key {made.name} added. It is shown only this once (the server keeps a hash): "
        f"set it as API_SECRET_KEY on that camera. It opens POST /recognize and POST /checkin.",
        err=True,
    )
    click.echo(made.key)


@keys_group.command(name="list")
@env_file_option
def keys_list(env_file: str | None) -> None:
    """List the camera keys: name, created, last used, revoked (times in UTC)."""
    with _keys(env_file) as keys, friendly_errors():
        rows = keys.camera_keys()
    if not rows:
        click.echo("No camera keys yet. Add one per camera: attendance keys add NAME")
        return
    width = max(4, *(len(r.name) for r in rows))
    click.echo(f"{'Name':<{width}}  {'Created (UTC)':16}  {'Last used (UTC)':16}  Revoked (UTC)")
    for row in rows:
        revoked = _when(row.revoked_at) if row.revoked_at else "-"
        click.echo(
            f"{row.name:<{width}}  {_when(row.created_at):16}  {_when(row.last_used_at):16}  "
            f"{revoked}"
        )


@keys_group.command(name="revoke")
@click.argument("name")
@env_file_option
def keys_revoke(name: str, env_file: str | None) -> None:
    """Revoke the key of the camera NAME: it opens nothing from its next request on."""
    with _keys(env_file) as keys, friendly_errors():
        row = keys.revoke(name, actor=_actor())
    click.echo(
        f"Camera key {row.name} revoked at {_when(row.revoked_at)} UTC: it opens nothing from "
        "now on, on every server."
    )
