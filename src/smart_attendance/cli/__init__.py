"""The ``attendance`` command: a thin shell over the services of ``app.build_services``.

The one place where errors become words: every ``AttendanceError`` (and a file that cannot be
read or written) becomes a one-line message and exit status 1 (``friendly_errors``); no command
prints a traceback for a problem a person can fix. A command whose optional dependencies are
not installed says which extra to install (``require_extra``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..config import Settings, load_settings
from ..errors import AttendanceError, ConfigError, MissingExtraError

if TYPE_CHECKING:
    from ..app import AnalyzerKind, Services

F = TypeVar("F", bound=Callable[..., Any])

MIN_API_KEY = 24  # characters of API_SECRET_KEY, the admin key
MIN_SESSION_SECRET = 32  # bytes of a hand-set ATTENDANCE_SESSION_SECRET

# The modules each optional part of the product needs (pyproject's extras).
EXTRAS: dict[str, tuple[str, ...]] = {
    "server": (
        "flask",
        "sqlalchemy",
        "alembic",
        "waitress",
        "onnxruntime",
        "matplotlib",
        "openpyxl",
        "dlib",
        "cv2",
    ),
    "client": ("dlib", "cv2", "requests"),
}


@contextmanager
def friendly_errors() -> Iterator[None]:
    try:
        yield
    except AttendanceError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        raise click.ClickException(f"{exc.strerror or exc}{where}") from None


def program() -> str:
    """How to run this command again, for the hints it prints: ``attendance`` when that is the
    one on PATH (an activated virtualenv, a system install) or when run as ``python -m``, else
    the path it was run by, relative to the current folder where it can be (``make run``:
    ``.venv/bin/attendance``, as the README writes it)."""
    ran = Path(sys.argv[0] or "attendance")
    if ran.name != "attendance":
        return "attendance"
    on_path = shutil.which("attendance")
    try:
        if on_path and Path(on_path).resolve() == ran.resolve():
            return "attendance"
        return str(ran.resolve().relative_to(Path.cwd().resolve()))
    except (OSError, ValueError):  # elsewhere: the path as it was typed
        return str(ran)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module blocked or broken in sys.modules
        return False


def require_extra(extra: str) -> None:
    """Stop with one line when the modules of ``extra`` are not installed."""
    missing = [module for module in EXTRAS[extra] if not _installed(module)]
    if missing:
        raise click.ClickException(
            str(
                MissingExtraError(
                    f"this command needs the {extra} part of Smart Attendance "
                    f"({', '.join(missing)} not installed): "
                    f"pip install 'smart-attendance[{extra}]'"
                )
            )
        )


def _settings(env_file: str | None, extra: str | None = "server") -> Settings:
    if extra:
        require_extra(extra)
    with friendly_errors():
        settings = load_settings(env_file=env_file or ".env")
    _private_from_now(settings)
    return settings


def _private_from_now(settings: Settings) -> None:
    """Whatever a command creates is its user's only (files 0600, folders 0700: the umask),
    and so is the data folder (biometric data: the database, photos, logs)."""
    os.umask(0o077)
    try:
        if settings.data_dir.is_dir():
            settings.data_dir.chmod(0o700)
    except OSError as exc:  # another user's folder: `attendance serve` logs it
        logging.getLogger(__name__).debug("data folder mode unchanged: %s", exc.strerror)


def _services(settings: Settings, analyzer: AnalyzerKind = "none") -> Services:
    """The services of a command; a command that only reads (statistics, reports) and finds
    no database where the settings point says so, and creates none there."""
    from ..app import build_services
    from ..db.store import Store

    with friendly_errors():
        if analyzer == "none" and not _database_exists(settings):
            click.echo(
                f"Note: no database at {settings.db_url.removeprefix('sqlite:///')}: nothing "
                "has been recorded in this data folder. Run the command in the folder the "
                "server runs in, or set ATTENDANCE_DATA_DIR.",
                err=True,
            )
            from ..privacy.sealing import DataSealer, new_key

            store = Store("sqlite://")  # in memory: nothing is created on disk
            store.create()
            memory_key = DataSealer([new_key().encode()], "memory")  # nothing sealed to keep
            services = build_services(settings, analyzer=analyzer, store=store, sealer=memory_key)
            # The dataset's students, as the server would list them after enrolment.
            services.enrolment.ensure_students(services.enrolment.names())
            return services
        return build_services(settings, analyzer=analyzer)


@contextmanager
def opened_services(env_file: str | None) -> Iterator[Services]:
    """The services of a command that changes the records (the database is created if there
    is none yet), without recognition workers; closed on the way out."""
    from ..app import build_services

    settings = _settings(env_file)
    logging.basicConfig(level=logging.CRITICAL)  # the command's output is its answer
    with friendly_errors():
        services = build_services(settings, analyzer="none")
    try:
        yield services
    finally:
        services.close()


def _database_exists(settings: Settings) -> bool:
    if settings.database_url:
        return True  # a server database: the store reports it when it is unreachable
    return Path(settings.db_url.removeprefix("sqlite:///")).is_file()


def _logging(settings: Settings, command: bool = False) -> None:
    """The log on standard error at ``ATTENDANCE_LOG_LEVEL``; for a ``command`` whose printed
    lines are its answer (``enroll``), warnings and errors only unless DEBUG is asked for.
    Alembic's own INFO lines (plug-ins, the migration context) are never shown: the store logs
    what it did to the database in one line."""
    level = settings.log_level
    if command and level != "DEBUG":
        level = "WARNING" if level == "INFO" else level
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


env_file_option = click.option(
    "--env-file", default=None, metavar="FILE", help="Settings file to read (default: ./.env)."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="smart-attendance")
def main() -> None:
    """Smart Attendance: face-recognition attendance server and tools."""


def _kept_key(key_file: Path, nbytes: int) -> tuple[str, bool]:
    """The key kept in ``key_file`` and True, else a new one (``nbytes`` random bytes) written
    there, readable by its owner only, and False."""
    if key_file.is_file():
        key = key_file.read_text(encoding="utf-8").strip()
        if key:
            return key, True
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(nbytes)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key, False


def _check_api_key(key: str, where: str) -> None:
    """Refuse a master key shorter than ``MIN_API_KEY`` characters (one line naming it)."""
    if len(key) < MIN_API_KEY:
        raise ConfigError(
            f"{where} is too short ({len(key)} characters; at least {MIN_API_KEY}): set a long "
            "random key, such as the output of `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`, or leave it empty to have one generated"
        )


def ensure_api_key(
    settings: Settings,
    echo: Callable[[str], None] = click.echo,
    terminal: bool | None = None,
) -> Settings:
    """The configured key (at least ``MIN_API_KEY`` characters, else a ``ConfigError``), else
    the one kept in DATA_DIR/api_key, else a new one written there. A new key is printed only
    on a terminal (``terminal``, default: whether standard output is one); printed into a log
    it would be readable by whoever reads the log, so otherwise only the file is named."""
    if settings.api_key:
        _check_api_key(settings.api_key, "API_SECRET_KEY")
        return settings
    key_file = settings.api_key_file
    key, kept = _kept_key(key_file, 32)
    if kept:
        _check_api_key(key, f"the API key kept in {key_file}")
        echo(f"Using the API key kept in {key_file} (set API_SECRET_KEY to choose your own).")
    elif terminal if terminal is not None else sys.stdout.isatty():
        echo("No API_SECRET_KEY was set, so one was generated. Give it to your camera clients;")
        echo(f"it is shown only this once and kept in {key_file}:")
        echo(f"\n    API_SECRET_KEY={key}\n")
    else:
        echo(
            f"No API_SECRET_KEY was set, so one was generated and written to {key_file} "
            "(readable by this user only; not shown here, as this output is not a terminal). "
            f"Give cameras their own keys: `{program()} keys add NAME`."
        )
    return replace(settings, api_key=key)


def ensure_session_secret(settings: Settings) -> Settings:
    """The configured session key (at least ``MIN_SESSION_SECRET`` bytes, else a
    ``ConfigError``: a short one can be guessed offline from one cookie, and then any session
    forged), else the one kept in DATA_DIR/session_secret, else a new one written there (never
    printed: nobody needs to type it)."""
    if settings.session_secret:
        size = len(settings.session_secret.encode("utf-8"))
        if size < MIN_SESSION_SECRET:
            raise ConfigError(
                f"ATTENDANCE_SESSION_SECRET is too short ({size} bytes; at least "
                f"{MIN_SESSION_SECRET}): set a long random value, such as the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`, or leave it "
                "empty to have one generated"
            )
        return settings
    key, _kept = _kept_key(settings.data_dir / "session_secret", 48)
    return replace(settings, session_secret=key)


def _progress_enroll(services: Services, label: str = "Enrolling photos") -> Any:
    from tqdm import tqdm

    bar: dict[str, Any] = {}

    def on_total(total: int) -> None:
        if total:
            bar["bar"] = tqdm(total=total, desc=label, unit="photo", file=sys.stderr, disable=None)

    def on_progress(step: int) -> None:
        if "bar" in bar:
            bar["bar"].update(step)

    try:
        report = services.enrolment.enroll(on_total=on_total, on_progress=on_progress)
        services.files.update()
        return report
    finally:
        if "bar" in bar:
            bar["bar"].close()


def _print_report(report: Any, verbose: bool = True) -> None:
    click.echo(f"Enrolment: {report.summary()}.")
    if report.skipped:
        click.echo(f"{len(report.skipped)} photo(s) were not enrolled:")
        shown = report.skipped if verbose else report.skipped[:20]
        for skipped in shown:
            click.echo(f"  {skipped.path}: {skipped.reason}")
        if len(shown) < len(report.skipped):
            click.echo(
                f"  ... and {len(report.skipped) - len(shown)} more "
                f"(see `{program()} enroll` or GET /enrolment)"
            )
    if report.awaiting:
        click.echo(
            f"{len(report.awaiting)} student(s) await consent and are not enrolled "
            f"(`{program()} consent list --state none`); record it with `{program()} consent "
            "give NAME --by WHO --document REF` or on the student's page (docs/privacy.md)."
        )


def _folders(settings: Settings) -> None:
    click.echo(f"Data folder: {settings.data_dir}", err=True)
    click.echo(f"Dataset folder: {settings.dataset_dir}", err=True)


@main.command()
@click.option("--host", default=None, help="Address to listen on (ATTENDANCE_HOST).")
@click.option("--port", default=None, type=int, help="Port to listen on (ATTENDANCE_PORT).")
@env_file_option
def serve(host: str | None, port: int | None, env_file: str | None) -> None:
    """Run the attendance server (enrols the dataset first, in the background)."""
    from ..attendance.files import private_data_folder
    from ..privacy.retention import PurgeScheduler
    from ..reports.scheduler import ReportScheduler
    from ..web import body_gate, create_app
    from ..web.serving import limits, make_server

    settings = _settings(env_file)
    _logging(settings)
    if settings.report_time is not None:
        from ..reports.mailer import missing_settings, names

        missing = missing_settings(settings)
        if missing:
            empty, them = ("is empty", "it") if len(missing) == 1 else ("are empty", "them")
            raise click.ClickException(
                f"ATTENDANCE_REPORT_TIME is set but {names(missing)} {empty} "
                f"(set {them}, or leave ATTENDANCE_REPORT_TIME empty; docs/report.md)"
            )
    with friendly_errors():
        settings = ensure_session_secret(ensure_api_key(settings))
        private_data_folder(settings.data_dir, existing=True)  # older files too: 0600, 0700
        settings = replace(settings, host=host or settings.host, port=port or settings.port)
        _folders(settings)
        services = _services(settings, analyzer="pool")
        # a mark recorded just before a crash reaches its day file (the days changed since
        # the last sync only; the statistics file follows in the background)
        services.files.sync(with_stats=False)
        app = create_app(services)

    if not settings.dataset_dir.is_dir():
        click.echo(
            f"Note: dataset folder {settings.dataset_dir} not found; nobody is enrolled. "
            f"Create dataset/<student>/photo.jpg and restart (or run `{program()} enroll`).",
            err=True,
        )

    def background() -> None:
        try:
            report = _progress_enroll(services)
            _print_report(report, verbose=False)
            click.echo("Ready: enrolment finished, recognising.")
        except Exception as exc:  # enroll() keeps it for /health (503, the reason) and logs it
            error = services.enrolment.error or f"enrolment failed: {type(exc).__name__}"
            click.echo(f"Error: {error}", err=True)

    # Connection, slow-client and body limits; the open-file limit raised to fit (web/serving.py).
    server_limits = limits(settings)
    if server_limits.note:
        click.echo(f"Warning: {server_limits.note}", err=True)
    try:
        # the key from the headers before the body (web/serving.py)
        server = make_server(app, settings, server_limits, gate=body_gate(app))
    except OSError as exc:
        services.close()
        raise click.ClickException(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from None
    scheduler = ReportScheduler(settings, services.store, services.reports, services.clock)
    scheduler.start()
    purger = PurgeScheduler(settings, services.store, services.purge, services.clock)
    purger.start()  # the retention purge, daily at ATTENDANCE_PURGE_TIME
    if settings.report_time:
        click.echo(
            f"Daily report at {settings.report_time:%H:%M} ({settings.timezone}) to "
            f"{len(settings.recipients)} recipient(s)."
        )
    # Load the models in the workers now, not on the first request (in parallel with
    # enrolment, which needs no worker when every descriptor is cached).
    threading.Thread(target=services.analyzer.warm_up, name="warm-up", daemon=True).start()
    threading.Thread(target=background, name="enrolment", daemon=True).start()
    services.watcher.start()  # enrolments by other processes reach this server too
    with friendly_errors():  # from now on, the register reads this timetable
        services.attendance.adopt_timetable()
        _warn_roster_names(services)

    def warm_register() -> None:  # the year's tallies, then the statistics file from them
        services.attendance.tallies.warm()
        services.files.update()

    threading.Thread(target=warm_register, name="register-warm", daemon=True).start()
    click.echo(
        f"Serving on http://{settings.host}:{settings.port} "
        f"({services.analyzer.workers} recognition workers, {settings.embedder} embedder, "
        f"{settings.threads} threads)"
    )
    if not settings.require_consent:
        click.echo(
            "Warning: consent is not enforced (ATTENDANCE_REQUIRE_CONSENT=0): every photo in "
            "the dataset is enrolled, whether or not consent was recorded (docs/privacy.md).",
            err=True,
        )
    shown = "localhost" if settings.host in {"0.0.0.0", "::", "127.0.0.1"} else settings.host  # noqa: S104
    click.echo(f"Dashboard: open http://{shown}:{settings.port}/ in a browser.")
    with friendly_errors():
        if not services.accounts.has_admin():
            click.echo(
                "No dashboard account yet: create the first admin with "
                f"`{program()} users add NAME --role admin`."
            )

    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    except KeyboardInterrupt:
        click.echo("Stopping.")
    finally:
        scheduler.stop()
        purger.stop()
        services.close()


def _warn_roster_names(services: Services) -> None:
    """Log the timetable's roster names that match no student (the Admin page shows them)."""
    from ..attendance.rosters import unmatched_roster_names, warn_unmatched

    timetable = services.attendance.timetable
    names = [row.name for row in services.store.students()]
    unmatched = unmatched_roster_names(timetable, names, services.settings.dataset_dir)
    warn_unmatched(unmatched, timetable.source)


def _engine_kind(settings: Settings) -> AnalyzerKind:
    """Worker processes when there is more than one core to use, else this process."""
    return "pool" if settings.worker_count > 1 else "local"


def look_alike_names(group: list[str]) -> str:
    """One warning for students whose names look the same (``people/names.py``)."""
    from ..people.names import look_alike_warning

    return look_alike_warning(group[-1], group[:-1])


@main.command()
@env_file_option
def enroll(env_file: str | None) -> None:
    """Enrol (or update) the students from the dataset folder, with a progress bar."""
    from ..people.names import look_alike_groups

    settings = _settings(env_file)
    _logging(settings, command=True)
    with friendly_errors():
        if not settings.dataset_dir.is_dir():
            raise click.ClickException(
                f"dataset folder not found: {settings.dataset_dir} "
                "(set ATTENDANCE_DATASET_DIR or create dataset/<student>/photo.jpg)"
            )
        _folders(settings)
        services = _services(settings, analyzer=_engine_kind(settings))
        try:
            report = _progress_enroll(services)
            alike = look_alike_groups(services.store.students())
        finally:
            services.close()
    _print_report(report)
    for group in alike:
        click.echo(f"Warning: {look_alike_names(group)}.", err=True)


@main.command()
@click.option("--from", "first", default=None, metavar="YYYY-MM-DD", help="First day.")
@click.option("--to", "last", default=None, metavar="YYYY-MM-DD", help="Last day (default today).")
@click.option("--class", "class_name", default=None, help="One class (default: every class).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@env_file_option
def stats(
    first: str | None, last: str | None, class_name: str | None, as_json: bool, env_file: str | None
) -> None:
    """Print per-student attendance statistics from the database (default: from the first
    day on record to today, every class)."""
    from .register import parse_range

    settings = _settings(env_file)
    start, end = parse_range(first, last)
    services = _services(settings)
    with friendly_errors():
        try:
            summary = services.attendance.summary(start, end, class_name)
        finally:
            services.close()
    rows = summary.students
    if as_json:
        click.echo(json.dumps([row.as_dict() for row in rows], indent=2))
        return
    scope = ""
    if start or end or class_name:
        scope = f" from {summary.first.isoformat()} to {summary.last.isoformat()}"
        scope += f" in {class_name}" if class_name else ""
    click.echo(f"{summary.days_on_record} day(s) on record{scope}")
    click.echo(
        f"{'Student':30} {'Present':>7} {'OnTime':>7} {'Late':>5} {'Attend%':>8} {'Late%':>6}"
    )
    for row in rows:
        # A dash where there is nothing to divide by: no expected period, no day present.
        attend = f"{row.attendance_pct:8.1f}" if row.total_days else f"{'-':>8}"
        late = f"{row.late_pct:6.1f}" if row.days_present else f"{'-':>6}"
        click.echo(
            f"{row.name[:30]:30} {row.days_present:7d} {row.days_on_time:7d} "
            f"{row.days_late:5d} {attend} {late}"
        )


@main.command(name="eval")
@click.argument("dataset_root", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Threshold to evaluate (default: ATTENDANCE_MATCH_THRESHOLD).",
)
@click.option(
    "--margin",
    type=float,
    default=None,
    help="Margin to evaluate (default: ATTENDANCE_MATCH_MARGIN).",
)
@click.option(
    "--folds",
    type=click.IntRange(1, 100),
    default=10,
    show_default=True,
    help="Number of random enrolled/stranger splits.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to keep the photos' descriptors in between runs (default: a temporary "
    "folder, removed afterwards; never the server's database).",
)
@env_file_option
def eval_command(
    dataset_root: Path,
    threshold: float | None,
    margin: float | None,
    folds: int,
    as_json: bool,
    cache_dir: Path | None,
    env_file: str | None,
) -> None:
    """Open-set evaluation (DIR, FPIR, wrong names) on a labelled tree such as ../shared/faces."""
    import tempfile

    from tqdm import tqdm

    from ..app import make_analyzer
    from ..db.store import Store
    from ..evaluation import Rule, describe_all, evaluate, find_identities

    settings = _settings(env_file)
    if not dataset_root.is_dir():
        raise click.ClickException(f"folder not found: {dataset_root}")
    identities = find_identities(dataset_root)
    total = sum(len(v) for v in identities.values())
    if total == 0:
        raise click.ClickException(
            f"no labelled photos under {dataset_root} "
            "(expected <identity>/*.jpg or <set>/<identity>/*.jpg)"
        )
    with friendly_errors(), tempfile.TemporaryDirectory(prefix="attendance-eval-") as scratch:
        folder = cache_dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        # Descriptors are biometric data here too: sealed with a key kept beside the cache.
        from dataclasses import replace as with_settings

        from ..privacy.sealing import load_sealer

        sealer = load_sealer(with_settings(settings, data_key="", data_dir=folder))
        store = Store(f"sqlite:///{(folder / 'eval-descriptors.db').resolve()}", sealer)
        store.create()
        # The ONNX model is built once per machine, in the data folder's models/ (no marks).
        analyzer = make_analyzer(settings, _engine_kind(settings))
        try:
            with tqdm(
                total=total, desc="Describing photos", unit="photo", file=sys.stderr, disable=None
            ) as bar:
                samples = describe_all(identities, analyzer, store, on_progress=bar.update)
        finally:
            analyzer.close()
            store.close()
    rules = [
        Rule(
            "this system",
            threshold if threshold is not None else settings.match_threshold,
            margin if margin is not None else settings.match_margin,
        ),
        Rule("original rule", 0.6, 0.0, original=True),
    ]
    results = evaluate(samples, rules, folds)
    usable = sum(1 for s in samples if s.plain is not None)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "photos": total,
                    "usable": usable,
                    "identities": len(identities),
                    "folds": folds,
                    "results": [
                        {
                            "rule": r.rule.label,
                            "threshold": r.rule.threshold,
                            "margin": r.rule.margin,
                            "dir": r.dir,
                            "fpir": r.fpir,
                            "misidentified": r.misidentified,
                            "genuine_probes": r.genuine,
                            "stranger_probes": r.strangers,
                        }
                        for r in results
                    ],
                },
                indent=2,
            )
        )
        return
    click.echo(
        f"Open-set evaluation: {total} photos ({usable} with one usable face) of "
        f"{len(identities)} identities, {folds} splits"
    )
    click.echo(
        f"{'rule':16} {'threshold':>9} {'margin':>6} {'DIR':>8} {'FPIR':>8} {'wrong':>8} "
        f"{'genuine':>8} {'strangers':>9}"
    )
    for r in results:
        click.echo(
            f"{r.rule.label:16} {r.rule.threshold:9.2f} {r.rule.margin:6.2f} "
            f"{r.dir:8.2%} {r.fpir:8.2%} {r.misidentified:8.2%} {r.genuine:8d} {r.strangers:9d}"
        )
    click.echo(
        "DIR: enrolled people found and named correctly (higher is better). "
        "FPIR: strangers given a student's name. wrong: enrolled people given another "
        "enrolled student's name (both lower is better)."
    )


def _report_services(env_file: str | None) -> Services:
    """Services for reports only: the store and the enrolled names, no recognition workers."""
    settings = _settings(env_file)
    # A command's outcome is its one line of output; the server's log lines are not needed.
    logging.basicConfig(level=logging.CRITICAL)
    return _services(settings)


def _parse_day(value: str | None) -> Any:
    from datetime import date

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected a date as YYYY-MM-DD") from None


@main.group()
def report() -> None:
    """The daily report: send it now, preview it, or list the sending attempts."""


@report.command(name="send")
@click.option("--date", "day", default=None, metavar="YYYY-MM-DD", help="Day (default today).")
@env_file_option
def report_send(day: str | None, env_file: str | None) -> None:
    """Email the day's report now."""
    services = _report_services(env_file)
    with friendly_errors():
        result = services.reports.send_report(_parse_day(day), kind="manual")
    click.echo(f"Report for {result.day.isoformat()} sent to {', '.join(result.recipients)}.")


@report.command(name="preview")
@click.option("--date", "day", default=None, metavar="YYYY-MM-DD", help="Day (default today).")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write: .eml (the whole message) or .html (the body, images inline).",
)
@env_file_option
def report_preview(day: str | None, out: Path, env_file: str | None) -> None:
    """Write the report to a file instead of sending it."""
    from ..reports.content import inline_html

    services = _report_services(env_file)
    with friendly_errors():
        the_day, message = services.reports.message(_parse_day(day))
        if out.suffix.lower() == ".html":
            out.write_text(inline_html(message), encoding="utf-8")
        elif out.suffix.lower() == ".eml":
            out.write_bytes(bytes(message))
        else:
            raise click.ClickException("--out must end in .eml or .html")
    click.echo(f"Report for {the_day.isoformat()} written to {out}.")


@report.command(name="log")
@click.option("--limit", default=20, show_default=True, help="How many attempts to list.")
@env_file_option
def report_log(limit: int, env_file: str | None) -> None:
    """List the latest sending attempts (time, kind, outcome, recipients, error)."""
    services = _report_services(env_file)
    with friendly_errors():
        rows = services.store.attempts(limit)
    if not rows:
        click.echo("No report has been sent yet.")
    for row in rows:
        error = f"  {row['error']}" if row["error"] else ""
        click.echo(
            f"{row['at']:%Y-%m-%d %H:%M:%S} UTC  {row['day']}  {row['kind']:9}  "
            f"{row['outcome']:6}  {row['recipients']}{error}"
        )


@main.command()
@click.option(
    "--source",
    default="0",
    show_default=True,
    help="Webcam index, video file, RTSP/HTTP stream URL, or folder of images.",
)
@click.option("--server", default=None, help="Server URL (ATTENDANCE_SERVER_URL).")
@click.option("--camera", default=None, help="Camera id sent with scans (ATTENDANCE_CAMERA_ID).")
@click.option("--no-window", is_flag=True, help="Run headless (no preview window).")
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the annotated video (HUD included) to this .mp4 file.",
)
@click.option(
    "--queue-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Offline queue folder (default DATA_DIR/client-queue).",
)
@click.option(
    "--cooldown",
    type=float,
    default=8.0,
    show_default=True,
    help="Seconds before the same face is scanned again.",
)
@click.option("--width", type=int, default=0, help="Resize frames to this width (0: as is).")
@click.option(
    "--fps",
    type=float,
    default=0.0,
    help="Frame rate to assume (0: the source's); a live camera's is measured, a video "
    "file's own is used.",
)
@click.option(
    "--no-mirror",
    is_flag=True,
    help="Show the preview as the camera sees it, not as a mirror.",
)
@click.option(
    "--drain",
    type=float,
    default=30.0,
    show_default=True,
    help="At the end of a file or folder, seconds to wait for queued scans to be sent.",
)
@env_file_option
def client(
    source: str,
    server: str | None,
    camera: str | None,
    no_window: bool,
    record: Path | None,
    queue_dir: Path | None,
    cooldown: float,
    width: int,
    fps: float,
    no_mirror: bool,
    drain: float,
    env_file: str | None,
) -> None:
    """Camera client: blink to scan, with a HUD; queues scans on disk while offline."""
    from ..client.app import ClientOptions, find_key, run

    settings = _settings(env_file, extra="client")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    with friendly_errors():
        key, key_from = find_key(settings)
    if key_from != "API_SECRET_KEY":
        click.echo(f"Using the server's key kept in {key_from}.", err=True)
    options = ClientOptions(
        source=source,
        server=server or settings.server_url,
        key=key,
        key_from=key_from,
        camera=camera or settings.camera_id,
        window=not no_window,
        record=record,
        queue_dir=queue_dir or settings.data_dir / "client-queue",
        queue_max_mb=settings.client_queue_max_mb,
        queue_max_days=settings.client_queue_max_days,
        cooldown_s=cooldown,
        width=width,
        fps=fps,
        drain_s=drain,
        mirror=not no_mirror,
    )
    with friendly_errors():
        code = run(options, echo=click.echo, note=lambda line: click.echo(line, err=True))
    sys.exit(code)


@main.group()
def models() -> None:
    """Model files: build the ONNX descriptor network ahead of time."""


@models.command(name="build")
@env_file_option
def models_build(env_file: str | None) -> None:
    """Convert dlib's descriptor network to ONNX and cache it in DATA_DIR/models."""
    import time

    from ..engine.model_files import RESNET, model_path
    from ..engine.onnx import ensure_onnx_model, onnx_model_path

    settings = _settings(env_file)
    with friendly_errors():
        source = model_path(RESNET)
        target = onnx_model_path(settings.models_dir, source)
        existed = target.is_file()
        started = time.monotonic()
        ensure_onnx_model(settings.models_dir, source)
    verb = "Already built" if existed else f"Built in {time.monotonic() - started:.1f} s"
    click.echo(f"{verb}: {target} (from {source.name})")


if __name__ == "__main__":  # pragma: no cover
    main()


# Command groups kept in their own modules register themselves on ``main``.
from . import badges as _badges  # noqa: E402,F401
from . import blinks as _blinks  # noqa: E402,F401
from . import db as _db  # noqa: E402,F401
from . import keys as _keys  # noqa: E402,F401
from . import privacy as _privacy  # noqa: E402,F401
from . import purge as _purge  # noqa: E402,F401
from . import register as _register  # noqa: E402,F401  (import for its commands)
from . import timetable as _timetable  # noqa: E402,F401
from . import users as _users  # noqa: E402,F401
