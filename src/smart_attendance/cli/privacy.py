"""Privacy commands (docs/privacy.md, docs/cli.md): ``attendance consent``, ``attendance
students erase|export``, ``attendance audit``, ``attendance encryption``."""

from __future__ import annotations

from pathlib import Path

import click

from . import env_file_option, friendly_errors, main, opened_services


def _actor() -> str:
    from ..privacy.audit import cli_actor

    return cli_actor()


# --- consent -------------------------------------------------------------------------------------


@main.group(name="consent")
def consent_group() -> None:
    """Consent to face recognition: give, refuse, withdraw, list."""


def _record(
    state: str, names: tuple[str, ...], everyone: bool, by: str, document: str, env_file: str | None
) -> None:
    if bool(names) == everyone:
        raise click.UsageError("name the students, or give --all (not both)")
    from ..people.names import look_alike_warning, look_alikes

    with opened_services(env_file) as services, friendly_errors():
        chosen = services.consent.everyone() if everyone else list(names)
        changes = services.consent.record(chosen, state, by, document, _actor())
        students = services.store.students()
    warnings = []
    for change in changes:
        deleted = f" ({change.photos_deleted} photo(s) deleted)" if change.photos_deleted else ""
        added = " (a new student, from its dataset folder)" if change.registered else ""
        click.echo(f"{change.student}: {change.before} -> {change.after}{deleted}{added}")
        row = next((r for r in students if r.name == change.student), None)
        alike = look_alikes(row, students) if change.registered and row else []
        if alike:
            warnings.append(look_alike_warning(change.student, alike))
    for warning in warnings:
        click.echo(f"Warning: {warning}.", err=True)
    if state == "given":
        click.echo("Running servers enrol them within seconds (no restart needed).")


def _consent_command(state: str, summary: str, document_help: str) -> None:
    @consent_group.command(
        name={"given": "give", "refused": "refuse"}.get(state, "withdraw"), help=summary
    )
    @click.argument("names", nargs=-1)
    @click.option("--all", "everyone", is_flag=True, help="Every student.")
    @click.option("--by", required=True, help="Who gave, refused or withdrew it (a parent, ...).")
    @click.option("--document", default="", help=document_help)
    @env_file_option
    def command(
        names: tuple[str, ...], everyone: bool, by: str, document: str, env_file: str | None
    ) -> None:
        _record(state, names, everyone, by, document, env_file)


_consent_command(
    "given",
    "Record consent as given for NAMES: their photos are enrolled from now on.",
    "The signed form's reference (required).",
)
_consent_command(
    "refused",
    "Record consent as refused for NAMES: their photos and descriptors are deleted.",
    "The form's reference, if any.",
)
_consent_command(
    "withdrawn",
    "Record consent as withdrawn for NAMES: their photos and descriptors are deleted now "
    "(their marks stay).",
    "The form's reference, if any.",
)


@consent_group.command(name="list")
@click.option("--state", type=click.Choice(["none", "given", "refused", "withdrawn"]))
@env_file_option
def consent_list(state: str | None, env_file: str | None) -> None:
    """List every student's consent state (and the latest record of it)."""
    with opened_services(env_file) as services, friendly_errors():
        states = services.consent.states()
        rows = []
        for name, current in sorted(states.items()):
            if state and current != state:
                continue
            history = services.consent.history(name)
            last = history[-1] if history else None
            where = (
                f"{last.at:%Y-%m-%d} by {last.by}" + (f", {last.document}" if last.document else "")
                if last
                else "-"
            )
            rows.append((name, current, where))
    if not rows:
        click.echo("No students.")
        return
    width = max([len(r[0]) for r in rows] + [len("Student")])
    click.echo(f"{'Student':<{width}}  {'Consent':<9}  Last recorded (by, document)")
    for name, current, where in rows:
        click.echo(f"{name:<{width}}  {current:<9}  {where}")


# --- students: erase and export ------------------------------------------------------------------


@main.group(name="students")
def students_group() -> None:
    """A student's data: erase it, or export all of it."""


@students_group.command(name="erase")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Erase without asking (the erasure cannot be undone).")
@env_file_option
def students_erase(name: str, yes: bool, env_file: str | None) -> None:
    """Erase the student NAME: photos, descriptors, marks, corrections, consent, badges, review
    photos, CSV lines; the database is compacted so the bytes are gone."""
    if not yes:
        click.confirm(f"Erase {name} and every record of them? This cannot be undone", abort=True)
    with opened_services(env_file) as services, friendly_errors():
        report = services.erasure.erase(name, _actor())
    click.echo(f"Erased {name}: {report.summary()}. Audit id: {report.opaque_id}.")


@students_group.command(name="export")
@click.argument("name")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The zip file to write.",
)
@env_file_option
def students_export(name: str, out: Path, env_file: str | None) -> None:
    """Write everything held on the student NAME to a zip (subject access request)."""
    with opened_services(env_file) as services, friendly_errors():
        data = services.access.export(name, _actor())
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from None
    click.echo(f"Wrote {out} ({len(data) // 1024 + 1} KB): record.json, photos, README.txt.")


# --- the audit log -------------------------------------------------------------------------------


@main.command(name="audit")
@click.option("--student", default=None, help="Only the entries about this student.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@env_file_option
def audit_command(student: str | None, limit: int, env_file: str | None) -> None:
    """Show the audit log, newest first: time (UTC), who, what, about whom."""
    with opened_services(env_file) as services, friendly_errors():
        entries = services.audit.entries(limit, student)
    if not entries:
        click.echo("The audit log is empty.")
        return
    for entry in entries:
        subject = f"  {entry.subject}" if entry.subject else ""
        detail = f"  ({entry.detail})" if entry.detail else ""
        click.echo(f"{entry.at:%Y-%m-%d %H:%M:%S}  {entry.actor}  {entry.action}{subject}{detail}")


# --- encryption at rest --------------------------------------------------------------------------


@main.group(name="encryption")
def encryption_group() -> None:
    """The data key that encrypts descriptors and photos at rest."""


@encryption_group.command(name="new-key")
def encryption_new_key() -> None:
    """Print a new data key (for ATTENDANCE_DATA_KEY)."""
    from ..privacy.sealing import new_key

    click.echo(new_key())


@encryption_group.command(name="rotate")
@env_file_option
def encryption_rotate(env_file: str | None) -> None:
    """Encrypt everything again with a new data key. Stop the servers first (or give them
    the new key first in ATTENDANCE_DATA_KEY, followed by the old one)."""
    from ..privacy.sealing import rotate

    with opened_services(env_file) as services, friendly_errors():
        where, descriptors, files = rotate(services.settings, services.store)
        services.audit.record(_actor(), "settings", "", "data key rotated")
    click.echo(f"Encrypted {descriptors} descriptor(s) and {files} file(s) again.")
    if where == "ATTENDANCE_DATA_KEY":
        click.echo(
            "Everything is now sealed with the first key of ATTENDANCE_DATA_KEY: remove the "
            "other keys from it on every server."
        )
    else:
        click.echo(f"New key written to {where} (the old one is gone). Start the servers.")
