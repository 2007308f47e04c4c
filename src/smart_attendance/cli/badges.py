"""``attendance badges``: printed QR cards for check-in without a face (``people/badges.py``,
docs/cli.md). The cards are written before their tokens are stored and renamed into place
after, so a failure leaves the students' earlier cards working; a card's token is on the card
only, never in this command's output.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import _database_exists, _services, _settings, env_file_option, friendly_errors, main

if TYPE_CHECKING:
    from ..app import Services


@contextmanager
def _badge_services(env_file: str | None) -> Iterator[Services]:
    """The services of the data folder's database (never a new or in-memory one: a badge
    stored there would check nobody in), closed on the way out."""
    settings = _settings(env_file)
    if not _database_exists(settings):
        raise click.ClickException(
            f"no database at {settings.db_url.removeprefix('sqlite:///')}: run the command in "
            "the folder the server runs in, or set ATTENDANCE_DATA_DIR"
        )
    services = _services(settings)
    try:
        yield services
    finally:
        services.close()


def _class_students(services: Services, class_name: str) -> list[str]:
    """The active students of a class: its roster, and students given it beside the roster."""
    services.attendance.check_class(class_name)
    school_class = services.attendance.timetable.school_class(class_name)
    assert school_class is not None  # checked above
    return [
        row.name
        for row in services.store.students()
        if row.active and school_class.holds(row.name, row.classes)
    ]


def _caption(services: Services, name: str) -> str:
    """A student's classes, for their card."""
    row = services.store.student(name)
    classes = services.attendance.timetable.classes_of(name, row.classes if row else ())
    return ", ".join(c for c in classes if c != "default")


def _write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner may read (a card is as good as the student's face)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


IMAGES = (".png", ".jpg", ".jpeg")  # one student's card as an image file


def _targets(out: Path, students: Sequence[str]) -> list[Path]:
    """Where the cards go: one PDF (``.pdf``), one image (``.png``, ``.jpg``, ``.jpeg``: one
    student), else one ``NAME.png`` per student in the folder ``out`` (an existing folder, or a
    name without a file suffix). Another suffix is a mistake, not a folder to create."""
    suffix = out.suffix.lower()
    if out.is_dir():
        pass
    elif suffix == ".pdf":
        return [out]
    elif suffix in IMAGES:
        if len(students) != 1:
            raise click.ClickException(
                f"--out {out.name} holds one card; for {len(students)} students give a folder "
                "(a PNG each) or a .pdf"
            )
        return [out]
    elif suffix:
        raise click.ClickException(
            f"--out {out.name}: a {suffix} file cannot hold badges; give a .pdf, a .png or "
            ".jpg (one student), or a folder (a PNG each)"
        )
    out.mkdir(parents=True, exist_ok=True)
    return [out / f"{name}.png" for name in students]


@main.group(name="badges")
def badges_group() -> None:
    """Printed QR badges: check-in for students without face recognition."""


@badges_group.command(name="print")
@click.argument("names", nargs=-1)
@click.option("--class", "class_name", default=None, help="Every active student of this class.")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="A .pdf (ten cards per A4 page), a .png or .jpg (one student), or a folder "
    "(NAME.png each).",
)
@env_file_option
def badges_print(
    names: tuple[str, ...], class_name: str | None, out: Path, env_file: str | None
) -> None:
    """Print new badges for NAMES or a --class; their earlier badges stop working."""
    from ..people.badges import card_jpeg, card_png, cards_pdf, render_card
    from ..privacy.audit import cli_actor

    if bool(names) == bool(class_name):
        raise click.ClickException("name the students, or give --class (not both)")
    with _badge_services(env_file) as services, friendly_errors():
        students = _class_students(services, class_name) if class_name else list(names)
        if not students:
            raise click.ClickException(f"class {class_name} has no active students")
        cards = services.badges.prepare(students)
        images = [
            render_card(card, class_name or _caption(services, card.student)) for card in cards
        ]
        targets = _targets(out, [card.student for card in cards])
        if len(targets) == 1 and targets[0].suffix.lower() == ".pdf":
            contents = [cards_pdf(images)]
        elif len(targets) == 1 and targets[0].suffix.lower() in (".jpg", ".jpeg"):
            contents = [card_jpeg(images[0])]
        else:
            contents = [card_png(image) for image in images]
        pending = [target.with_name(f".{target.name}.tmp") for target in targets]
        try:
            for path, data in zip(pending, contents, strict=True):
                _write_private(path, data)
            services.badges.issue(cards, cli_actor())
        except BaseException:
            for path in pending:
                with suppress(OSError):
                    path.unlink()
            raise
        for path, target in zip(pending, targets, strict=True):
            path.replace(target)
    where = str(targets[0]) if len(targets) == 1 else f"{out}{os.sep} (a PNG each)"
    whose = f" of {class_name}" if class_name else ""
    click.echo(
        f"Printed {len(cards)} badge(s){whose} to {where}; "
        "earlier badges of these students no longer work."
    )


@badges_group.command(name="revoke")
@click.argument("name")
@env_file_option
def badges_revoke(name: str, env_file: str | None) -> None:
    """Revoke NAME's badge (a lost card): it checks nobody in from now on."""
    from ..privacy.audit import cli_actor

    with _badge_services(env_file) as services, friendly_errors():
        rows = services.badges.revoke(name, cli_actor())
    if not rows:
        click.echo(f"{name} has no valid badge: nothing to revoke.")
        return
    printed = ", ".join(f"#{row.id} printed {row.issued_at:%Y-%m-%d}" for row in rows)
    click.echo(f"Revoked {name}'s badge ({printed}).")


@badges_group.command(name="list")
@click.option("--class", "class_name", default=None, help="Only this class's students.")
@click.option("--all", "show_all", is_flag=True, help="Revoked badges too.")
@env_file_option
def badges_list(class_name: str | None, show_all: bool, env_file: str | None) -> None:
    """List the badges: student, number, when and by whom printed, valid or revoked."""
    with _badge_services(env_file) as services, friendly_errors():
        rows = services.badges.badges(revoked=show_all)
        students = _class_students(services, class_name) if class_name else None
    if students is not None:
        rows = [row for row in rows if row.student in students]
    if not rows and students is None:
        click.echo("No badges yet. Print some: attendance badges print --class CLASS --out x.pdf")
        return
    width = max([len(r.student) for r in rows] + [len(s) for s in students or ()] + [4])
    for row in rows:
        state = "valid" if row.valid else f"revoked {row.revoked_at:%Y-%m-%d %H:%M} UTC"
        click.echo(
            f"{row.student:<{width}}  #{row.id:<4} printed {row.issued_at:%Y-%m-%d %H:%M} UTC "
            f"by {row.issued_by}  {state}"
        )
    with_badge = {row.student for row in rows if row.valid}
    for name in students or ():
        if name not in with_badge:
            click.echo(f"{name:<{width}}  no valid badge")
