"""Settings: the only module that reads the environment and the ``.env`` file.

Every setting is declared once in ``SPECS`` (name, default, parser, meaning). ``load_settings``
reads the process environment over a ``.env`` file, validates every value, rejects unknown
``ATTENDANCE_*`` names (a typo must not be silently ignored) and returns a frozen ``Settings``.
A bad value raises ``ConfigError`` with a one-line message naming the setting.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from .errors import ConfigError

PREFIX = "ATTENDANCE_"


def _local_zone_name() -> str:
    """The machine's IANA zone name, best effort ("UTC" when it cannot be told)."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and not tz.startswith("/"):
        return tz
    try:
        target = os.path.realpath("/etc/localtime")
        marker = "/zoneinfo/"
        if marker in target:
            return target.split(marker, 1)[1]
    except OSError:
        pass
    try:
        name = Path("/etc/timezone").read_text(encoding="utf-8").strip()
        if name:
            return name
    except OSError:
        pass
    return "UTC"


def _parse_int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected a whole number, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"expected a number from {lo} to {hi}, got {value}")
        return value

    return parse


def _parse_float(lo: float, hi: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"expected a number from {lo} to {hi}, got {value}")
        return value

    return parse


def _parse_time(raw: str) -> time:
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", raw)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"expected a time as HH:MM (24-hour), got {raw!r}")
    return time(int(match[1]), int(match[2]))


def _parse_zone(raw: str) -> str:
    name = raw.strip() or _local_zone_name()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)"
        ) from None
    return name


def _parse_embedder(raw: str) -> str:
    value = raw.strip().lower() or "onnx"
    if value not in {"onnx", "dlib"}:
        raise ValueError(f"expected onnx or dlib, got {raw!r}")
    return value


def _parse_security(raw: str) -> str:
    value = raw.strip().lower() or "ssl"
    if value not in {"ssl", "starttls", "none"}:
        raise ValueError(f"expected ssl, starttls or none, got {raw!r}")
    return value


def _parse_optional_time(raw: str) -> time | None:
    return _parse_time(raw) if raw.strip() else None


def _parse_port_or_auto(raw: str) -> int:
    return 0 if not raw.strip() else _parse_int(1, 65535)(raw)


def _parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _parse_str(raw: str) -> str:
    return raw.strip()


def _parse_path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("expected a folder path, got an empty value")
    return Path(raw.strip()).expanduser()


def _parse_optional_file(raw: str) -> Path | None:
    return Path(raw.strip()).expanduser() if raw.strip() else None


LIVENESS_MODES = ("off", "blink", "challenge")


def _parse_liveness(raw: str) -> str:
    """``ATTENDANCE_REQUIRE_LIVENESS``: off, blink or challenge (0 and 1 as before)."""
    value = raw.strip().lower()
    if value in {"0", "off", "false", "no", ""}:
        return "off"
    if value in {"1", "blink", "true", "yes", "on"}:
        return "blink"
    if value == "challenge":
        return "challenge"
    raise ValueError(f"expected 0, 1 (blink), blink or challenge, got {raw!r}")


def _parse_networks(raw: str) -> tuple[str, ...]:
    """Addresses or networks (``10.0.5.0/24``), comma-separated, each checked; as written."""
    import ipaddress

    found = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise ValueError(
                f"expected IP addresses or networks (such as 127.0.0.1 or 10.0.5.0/24), "
                f"comma-separated, got {part!r}"
            ) from None
        found.append(part)
    return tuple(found)


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected 1/0, true/false, yes/no or on/off, got {raw!r}")


@dataclass(frozen=True)
class Spec:
    """One setting: its variable name, field name, default (as text), parser and meaning."""

    env: str
    attr: str
    default: str
    parse: Callable[[str], Any]
    doc: str
    secret: bool = False


SPECS: tuple[Spec, ...] = (
    Spec(
        "API_SECRET_KEY",
        "api_key",
        "",
        _parse_str,
        "The admin key, sent in the X-API-KEY header: every API route (door cameras should "
        "get their own keys: `attendance keys add`). At least 24 characters. Empty: `attendance "
        "serve` generates one on first start into DATA_DIR/api_key (0600) and prints it only "
        "on a terminal.",
        secret=True,
    ),
    Spec(
        "ATTENDANCE_DATASET_DIR",
        "dataset_dir",
        "./dataset",
        _parse_path,
        "Folder of student photos: dataset/<student>/*.jpg|*.jpeg|*.png.",
    ),
    Spec(
        "ATTENDANCE_DATA_DIR",
        "data_dir",
        "./data",
        _parse_path,
        "Folder for the database, logs/ (CSV files) and intruders/ (photos).",
    ),
    Spec(
        "ATTENDANCE_DATABASE_URL",
        "database_url",
        "",
        _parse_str,
        "SQLAlchemy database URL. Empty: SQLite file DATA_DIR/attendance.db. PostgreSQL: "
        "postgresql+psycopg://user:password@host/database (the postgres extra), shared by "
        "several servers.",
    ),
    Spec(
        "ATTENDANCE_CLASS_START",
        "class_start",
        "09:00",
        _parse_time,
        "Class start, local time HH:MM (24-hour).",
    ),
    Spec(
        "ATTENDANCE_LATE_AFTER_MINUTES",
        "late_after_minutes",
        "15",
        _parse_int(0, 24 * 60),
        "Grace minutes: a first sighting later than class start plus this is Late.",
    ),
    Spec(
        "ATTENDANCE_TIMETABLE",
        "timetable",
        "",
        _parse_optional_file,
        "Timetable file (TOML): classes, rosters, periods and closures (docs/timetable.md). "
        "Empty: one class for every student, one period all day, Late after "
        "ATTENDANCE_CLASS_START plus the grace minutes (the original's rule).",
    ),
    Spec(
        "ATTENDANCE_ALERT_BELOW_PCT",
        "alert_below_pct",
        "90",
        _parse_float(0, 100),
        "Students whose attendance over the range is below this percentage are flagged in "
        "statistics and reports.",
    ),
    Spec(
        "ATTENDANCE_TIMEZONE",
        "timezone",
        "",
        _parse_zone,
        "IANA time zone for days and class times. Empty: the machine's zone.",
    ),
    Spec(
        "ATTENDANCE_CSV_WRITE_SECONDS",
        "csv_write_seconds",
        "2",
        _parse_float(0, 300),
        "The CSV files in logs/ (derived from the database) are written off the request path, "
        "at most this often, changes coalesced, and at shutdown; 0: on the request itself.",
    ),
    Spec(
        "ATTENDANCE_MAX_RANGE_DAYS",
        "max_range_days",
        "400",
        _parse_int(1, 3660),
        "The longest range (days) of statistics, pages, reports and exports: a longer one is "
        "refused (400) with the reason; a range left open starts at most this far back.",
    ),
    Spec(
        "ATTENDANCE_INTRUDER_THRESHOLD",
        "intruder_threshold",
        "3",
        _parse_int(1, 1000),
        "Consecutive unknown-face frames from one camera that save an intruder photo.",
    ),
    Spec(
        "ATTENDANCE_MATCH_THRESHOLD",
        "match_threshold",
        "0.47",
        _parse_float(0.1, 1.2),
        "Largest face distance accepted as a match. Lower is stricter (fewer wrong names, "
        "more unknowns); the original project used 0.6.",
    ),
    Spec(
        "ATTENDANCE_MATCH_MARGIN",
        "match_margin",
        "0.12",
        _parse_float(0.0, 1.0),
        "Required gap between the nearest student and the next different student. Higher is "
        "stricter: look-alikes become unknown instead of a guess.",
    ),
    Spec(
        "ATTENDANCE_DETECT_MAX_SIDE",
        "detect_max_side",
        "320",
        _parse_int(0, 8000),
        "Live frames are scaled so their long side is at most this before face detection "
        "(faster; at 320 a 640x480 frame finds faces from 160 px wide, and a frame with no "
        "face found is searched once more at twice the scale). 0: detect on the full frame.",
    ),
    Spec(
        "ATTENDANCE_DETECT_UPSAMPLE",
        "detect_upsample",
        "0",
        _parse_int(0, 2),
        "Extra 2x upsampling passes of the HOG detector on live frames (finds smaller faces, "
        "much slower). The original project used 1 on the full frame.",
    ),
    Spec(
        "ATTENDANCE_MIN_FACE_PX",
        "min_face_px",
        "60",
        _parse_int(10, 2000),
        "Faces narrower than this (pixels, in the original image) are too small to trust: "
        "not enrolled, and reported as unknown with a reason.",
    ),
    Spec(
        "ATTENDANCE_BURST_DESCRIBE",
        "burst_describe",
        "4",
        _parse_int(1, 60),
        "Of a burst of frames (a scan around a blink), how many are described and matched: "
        "the best ones (most faces, eyes most open, largest faces). Every frame is still "
        "searched for faces and eye movement. With ATTENDANCE_REQUIRE_LIVENESS=challenge every "
        "frame is described (the same face must be there throughout).",
    ),
    Spec(
        "ATTENDANCE_MAX_UPLOAD_MB",
        "max_upload_mb",
        "10",
        _parse_float(0.01, 1024),
        "Largest accepted request body in megabytes (larger: 413).",
    ),
    Spec(
        "ATTENDANCE_MAX_IMAGE_PIXELS",
        "max_image_pixels",
        "40000000",
        _parse_int(1, 10**9),
        "Largest accepted image in pixels (width x height); guards against decompression bombs.",
    ),
    Spec(
        "ATTENDANCE_REQUIRE_LIVENESS",
        "require_liveness",
        "0",
        _parse_liveness,
        "0 (off): one frame is enough (the original's clients). 1 or blink: mark a student "
        "only when a burst of frames (several `image` parts) shows that same face blinking; a "
        "single frame or a still photo is refused. challenge: before each scan the camera asks "
        "`GET /liveness/challenge` for a one-use nonce and one to three random actions "
        "(blink, blink twice, turn the head left or right), and the burst must show the "
        "recognised face doing them and nothing else, in order, at a human pace "
        "(docs/liveness.md).",
    ),
    Spec(
        "ATTENDANCE_CHALLENGE_SECONDS",
        "challenge_seconds",
        "20",
        _parse_float(3, 600),
        "With ATTENDANCE_REQUIRE_LIVENESS=challenge: how long a challenge's nonce is valid, "
        "from `GET /liveness/challenge` to the scan that uses it (once).",
    ),
    Spec(
        "ATTENDANCE_TRUST_CLIENT_CLOCK",
        "trust_client_clock",
        "1",
        _parse_bool,
        "1: a scan that carries its capture time (`captured_at`, sent by `attendance client` for "
        "scans queued while the server was down) is marked at that time, if it is not in the "
        "future and within ATTENDANCE_CLOCK_WINDOW_HOURS. 0: always the server's clock.",
    ),
    Spec(
        "ATTENDANCE_REQUIRE_CONSENT",
        "require_consent",
        "1",
        _parse_bool,
        "1: only students whose consent is recorded as given (`attendance consent give`) are "
        "enrolled: the photos of everyone else are not read, no descriptor is computed, and "
        "they are never matched. 0: every photo in the dataset is enrolled (the original's "
        "behaviour; the server says so once at start).",
    ),
    Spec(
        "ATTENDANCE_DATA_KEY",
        "data_key",
        "",
        _parse_str,
        "Key that encrypts face descriptors and stored photos at rest (Fernet keys, "
        "comma-separated: the first encrypts, every one decrypts). Empty: generated on first "
        "start into DATA_DIR/data_key (mode 0600). Several servers need the same value. "
        "Rotate with `attendance encryption rotate`.",
        secret=True,
    ),
    Spec(
        "ATTENDANCE_ENROLMENT_PHOTOS",
        "enrolment_photos",
        "keep",
        _parse_choice("keep", "delete"),
        "keep: enrolment photos stay in the dataset folder, encrypted once enrolled. delete: "
        "the daily purge (or `attendance purge`) deletes every photo whose descriptor is "
        "computed (descriptor-only storage; the dashboard can no longer show it).",
    ),
    Spec(
        "ATTENDANCE_INTRUDER_PHOTOS",
        "intruder_photos",
        "full",
        _parse_choice("full", "blurred", "off"),
        "What an intruder capture keeps: full (the photo), blurred (a photo that shows that "
        "someone was there, not who) or off (only the event: time and camera).",
    ),
    Spec(
        "ATTENDANCE_RETAIN_INTRUDER_DAYS",
        "retain_intruder_days",
        "30",
        _parse_int(1, 36500),
        "Intruder photos (and their records) older than this many days are deleted by the "
        "daily purge.",
    ),
    Spec(
        "ATTENDANCE_RETAIN_UNCERTAIN_DAYS",
        "retain_uncertain_days",
        "30",
        _parse_int(1, 36500),
        "Uncertain faces of the review queue (crops and records) older than this are deleted.",
    ),
    Spec(
        "ATTENDANCE_RETAIN_MARKS_DAYS",
        "retain_marks_days",
        "400",
        _parse_int(1, 36500),
        "Marks, corrections and sightings older than this many days are deleted (with the "
        "CSV day files of those days).",
    ),
    Spec(
        "ATTENDANCE_RETAIN_AUDIT_DAYS",
        "retain_audit_days",
        "400",
        _parse_int(1, 36500),
        "Audit log entries older than this many days are deleted.",
    ),
    Spec(
        "ATTENDANCE_PURGE_TIME",
        "purge_time",
        "03:00",
        _parse_optional_time,
        "Local time HH:MM of the daily retention purge that `attendance serve` runs (once "
        "across servers; a server that was down then runs it when it starts). Empty: off "
        "(run `attendance purge` yourself).",
    ),
    Spec(
        "ATTENDANCE_CLOCK_WINDOW_HOURS",
        "clock_window_hours",
        "12",
        _parse_int(1, 168),
        "A queued scan's capture time (`captured_at`) is accepted only this many hours back "
        "(and not in the future); an older one is refused with 422 `captured_at_out_of_window` "
        "and the client keeps it aside. Marks that arrive late are shown as such in reports.",
    ),
    Spec(
        "ATTENDANCE_MAX_CONNECTIONS",
        "max_connections",
        "1000",
        _parse_int(10, 100_000),
        "Open connections the server accepts at once (waitress's connection limit); idle or slow "
        "ones are closed after ATTENDANCE_CHANNEL_TIMEOUT_S.",
    ),
    Spec(
        "ATTENDANCE_CHANNEL_TIMEOUT_S",
        "channel_timeout_s",
        "20",
        _parse_float(1, 3600),
        "A connection that sends or receives nothing for this many seconds is closed; a request "
        "whose headers take longer than this in all, or whose body brings less than 2 KB/s over "
        "this many seconds, is closed (slow senders). A slow but steady upload goes on.",
    ),
    Spec(
        "ATTENDANCE_MAX_REQUEST_PIXELS",
        "max_request_pixels",
        "100000000",
        _parse_int(1, 2_000_000_000),
        "Pixel budget of one request: the frames of a burst together (each frame is also "
        "limited by ATTENDANCE_MAX_IMAGE_PIXELS); larger requests get 413.",
    ),
    Spec(
        "ATTENDANCE_WORKER_TIMEOUT_S",
        "worker_timeout_s",
        "30",
        _parse_float(1, 3600),
        "A recognition worker call that takes longer is stopped (the worker is replaced) and "
        "the request answered 503.",
    ),
    Spec(
        "ATTENDANCE_INTRUDER_COOLDOWN_S",
        "intruder_cooldown_s",
        "300",
        _parse_int(0, 86400),
        "At most one intruder photo per stranger per camera in this many seconds.",
    ),
    Spec(
        "ATTENDANCE_INTRUDER_MAX_MB",
        "intruder_max_mb",
        "500",
        _parse_int(1, 1_000_000),
        "Disk the intruder photos may use in all; beyond it new captures keep only the event.",
    ),
    Spec(
        "ATTENDANCE_REVIEW_MAX_MB",
        "review_max_mb",
        "200",
        _parse_int(1, 1_000_000),
        "Disk the review queue's crops of uncertain faces may use in all; beyond it new "
        "uncertain faces are not queued (the scan is answered all the same).",
    ),
    Spec(
        "ATTENDANCE_REPORT_SENDS_PER_HOUR",
        "report_sends_per_hour",
        "5",
        _parse_int(1, 1000),
        "`POST /send_report` calls allowed per hour (across servers) that reached the mail "
        "server (sent or refused by it); more get 429.",
    ),
    Spec(
        "ATTENDANCE_KEY_FAILURES_PER_MINUTE",
        "key_failures_per_minute",
        "10",
        _parse_int(1, 10_000),
        "Wrong API keys one address may send per minute; more get 429 with Retry-After. Every "
        "wrong key is logged with the address (never the key).",
    ),
    Spec(
        "ATTENDANCE_EMBEDDER",
        "embedder",
        "onnx",
        _parse_embedder,
        "Face descriptor backend: onnx (dlib's network converted to ONNX, many times faster: "
        "bench/results/latest.md; same descriptors) or dlib (dlib itself).",
    ),
    Spec(
        "ATTENDANCE_WORKERS",
        "workers",
        "0",
        _parse_int(0, 64),
        "Recognition worker processes. 0: one per CPU core.",
    ),
    Spec(
        "ATTENDANCE_THREADS",
        "threads",
        "8",
        _parse_int(1, 256),
        "HTTP server threads. On PostgreSQL each server keeps this many connections, plus 4 for "
        "its background jobs (and up to 4 more for a moment).",
    ),
    Spec(
        "ATTENDANCE_SESSION_SECRET",
        "session_secret",
        "",
        _parse_str,
        "Key that signs the dashboard's session cookies. Empty: `attendance serve` generates "
        "one on first start and keeps it in DATA_DIR/session_secret (mode 0600). Several "
        "servers behind one load balancer need the same value. Changing it signs everybody out.",
        secret=True,
    ),
    Spec(
        "ATTENDANCE_SESSION_IDLE_MINUTES",
        "session_idle_minutes",
        "60",
        _parse_int(1, 24 * 60),
        "A dashboard session unused this long ends; the user signs in again. The Today page's "
        "own refreshes are not use: a board left open ends like any other page.",
    ),
    Spec(
        "ATTENDANCE_SESSION_MAX_HOURS",
        "session_max_hours",
        "12",
        _parse_int(1, 24 * 30),
        "A dashboard session ends this many hours after its sign-in, however much it is used.",
    ),
    Spec(
        "ATTENDANCE_PROXY_HOPS",
        "proxy_hops",
        "0",
        _parse_int(0, 5),
        "Reverse proxies in front of the server (nginx: 1). Their X-Forwarded-For and "
        "X-Forwarded-Proto headers then give the client's address (sign-in throttling, logs) "
        "and HTTPS (the session cookie becomes Secure), from ATTENDANCE_TRUSTED_PROXIES only. "
        "0: the headers are ignored, so nobody can forge an address.",
    ),
    Spec(
        "ATTENDANCE_TRUSTED_PROXIES",
        "trusted_proxies",
        "127.0.0.0/8,::1",
        _parse_networks,
        "Addresses or networks of the reverse proxies, comma-separated (10.0.5.2, "
        "10.0.5.0/24). With ATTENDANCE_PROXY_HOPS set, X-Forwarded-For and X-Forwarded-Proto "
        "are believed only on connections from these; anyone else reaching the port directly "
        "is taken at their own address. The default: loopback, a proxy on this machine.",
    ),
    Spec(
        "ATTENDANCE_HOST",
        "host",
        "0.0.0.0",  # noqa: S104 - a LAN server; every request but /health needs the key
        _parse_str,
        "Address `attendance serve` listens on (0.0.0.0: every interface, so a camera on "
        "the LAN can reach it).",
    ),
    Spec(
        "ATTENDANCE_PORT",
        "port",
        "5000",
        _parse_int(1, 65535),
        "Port `attendance serve` listens on.",
    ),
    Spec(
        "ATTENDANCE_LOG_LEVEL",
        "log_level",
        "INFO",
        _parse_str,
        "Logging level: DEBUG, INFO, WARNING or ERROR.",
    ),
    Spec(
        "ATTENDANCE_SERVER_URL",
        "server_url",
        "http://127.0.0.1:5000",
        _parse_str,
        "Where `attendance client` sends its scans.",
    ),
    Spec(
        "ATTENDANCE_CAMERA_ID",
        "camera_id",
        "door",
        _parse_str,
        "Camera id `attendance client` sends (intruder streaks are counted per camera).",
    ),
    Spec(
        "ATTENDANCE_CLIENT_QUEUE_MAX_MB",
        "client_queue_max_mb",
        "500",
        _parse_int(1, 1_000_000),
        "Most megabytes `attendance client`'s queue folder holds in all (queued scans, "
        "rejected/, quarantine/: faces). Past it the oldest of rejected/ and quarantine/ are "
        "deleted first, then the oldest queued scans.",
    ),
    Spec(
        "ATTENDANCE_CLIENT_QUEUE_MAX_DAYS",
        "client_queue_max_days",
        "7",
        _parse_int(1, 3650),
        "Days `attendance client` keeps a queued scan (from its capture) or an entry of "
        "rejected/ or quarantine/ (from when it was set aside) before deleting it.",
    ),
    Spec(
        "SENDER_EMAIL",
        "sender_email",
        "",
        _parse_str,
        "Email address the daily report is sent from.",
    ),
    Spec(
        "SENDER_PASSWORD",
        "sender_password",
        "",
        _parse_str,
        "SMTP password of the sender (for Gmail an app password).",
        secret=True,
    ),
    Spec(
        "TEACHER_EMAIL",
        "teacher_email",
        "",
        _parse_str,
        "Report recipients, comma-separated (several teachers may be listed).",
    ),
    Spec(
        "ATTENDANCE_CLASS_NAME",
        "class_name",
        "Smart Attendance",
        _parse_str,
        "Class name shown in the report's subject and title.",
    ),
    Spec(
        "ATTENDANCE_REPORT_TIME",
        "report_time",
        "",
        _parse_optional_time,
        "Local time HH:MM at which `attendance serve` emails the day's report, once a day "
        "(a server that was down then sends it when it starts, the same day). Empty: off.",
    ),
    Spec(
        "ATTENDANCE_SMTP_HOST",
        "smtp_host",
        "smtp.gmail.com",
        _parse_str,
        "SMTP server that sends the report.",
    ),
    Spec(
        "ATTENDANCE_SMTP_PORT",
        "smtp_port",
        "",
        _parse_port_or_auto,
        "SMTP port. Empty: 465 for ssl, 587 for starttls, 25 for none.",
    ),
    Spec(
        "ATTENDANCE_SMTP_SECURITY",
        "smtp_security",
        "ssl",
        _parse_security,
        "ssl (TLS from the start, port 465), starttls (upgrade, port 587; a server that "
        "does not offer it is sent nothing, the password neither) or none (plain; only for a "
        "relay on your own network).",
    ),
    Spec(
        "ATTENDANCE_SMTP_TIMEOUT_S",
        "smtp_timeout_s",
        "20",
        _parse_float(1, 600),
        "Seconds to wait for the SMTP server before giving up.",
    ),
)

_KNOWN = {spec.env for spec in SPECS}
SECRET_FIELDS = frozenset(spec.attr for spec in SPECS if spec.secret)
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR"}


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Build with ``load_settings``; copy with ``dataclasses.replace``."""

    api_key: str = ""
    dataset_dir: Path = Path("./dataset")
    data_dir: Path = Path("./data")
    database_url: str = ""
    class_start: time = time(9, 0)
    late_after_minutes: int = 15
    timezone: str = "UTC"
    timetable: Path | None = None
    alert_below_pct: float = 90.0
    csv_write_seconds: float = 2.0
    max_range_days: int = 400
    intruder_threshold: int = 3
    match_threshold: float = 0.47
    match_margin: float = 0.12
    detect_max_side: int = 320
    detect_upsample: int = 0
    min_face_px: int = 60
    burst_describe: int = 4
    max_upload_mb: float = 10.0
    max_image_pixels: int = 40_000_000
    # off | blink | challenge (LIVENESS_MODES). True and False, as older code passes them,
    # stand for blink and off (__post_init__).
    require_liveness: str = "off"
    challenge_seconds: float = 20.0
    trust_client_clock: bool = True
    require_consent: bool = True
    clock_window_hours: int = 12
    max_connections: int = 1000
    channel_timeout_s: float = 20.0
    max_request_pixels: int = 100_000_000
    worker_timeout_s: float = 30.0
    intruder_cooldown_s: int = 300
    intruder_max_mb: int = 500
    review_max_mb: int = 200
    report_sends_per_hour: int = 5
    key_failures_per_minute: int = 10
    data_key: str = field(default="", repr=False)
    enrolment_photos: str = "keep"
    intruder_photos: str = "full"
    retain_intruder_days: int = 30
    retain_uncertain_days: int = 30
    retain_marks_days: int = 400
    retain_audit_days: int = 400
    purge_time: time | None = time(3, 0)
    embedder: str = "onnx"
    workers: int = 0
    threads: int = 8
    session_secret: str = field(default="", repr=False)
    session_idle_minutes: int = 60
    session_max_hours: int = 12
    proxy_hops: int = 0
    trusted_proxies: tuple[str, ...] = ("127.0.0.0/8", "::1")
    host: str = "0.0.0.0"  # noqa: S104 - documented LAN default
    port: int = 5000
    log_level: str = "INFO"
    server_url: str = "http://127.0.0.1:5000"
    camera_id: str = "door"
    client_queue_max_mb: int = 500
    client_queue_max_days: int = 7
    sender_email: str = ""
    sender_password: str = field(default="", repr=False)
    teacher_email: str = ""
    class_name: str = "Smart Attendance"
    report_time: time | None = None
    smtp_host: str = "smtp.gmail.com"
    smtp_port: int = 0
    smtp_security: str = "ssl"
    smtp_timeout_s: float = 20.0

    def __post_init__(self) -> None:
        mode: object = self.require_liveness
        if isinstance(mode, bool):
            object.__setattr__(self, "require_liveness", "blink" if mode else "off")
        elif mode not in LIVENESS_MODES:
            raise ConfigError(
                f"ATTENDANCE_REQUIRE_LIVENESS: expected one of {', '.join(LIVENESS_MODES)}, "
                f"got {mode!r}"
            )

    def __repr__(self) -> str:  # never print secrets
        shown = {
            f.name: (
                "***"
                if f.name in SECRET_FIELDS and getattr(self, f.name)
                else getattr(self, f.name)
            )
            for f in dataclasses.fields(self)
        }
        return f"Settings({shown})"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'attendance.db').resolve()}"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def review_dir(self) -> Path:
        return self.data_dir / "review"

    @property
    def api_key_file(self) -> Path:
        """Where ``attendance serve`` keeps the key it generated (no API_SECRET_KEY set); the
        camera client on the same machine reads it there."""
        return self.data_dir / "api_key"

    @property
    def data_key_file(self) -> Path:
        return self.data_dir / "data_key"

    @property
    def intruders_dir(self) -> Path:
        return self.data_dir / "intruders"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def smtp_port_effective(self) -> int:
        return self.smtp_port or {"ssl": 465, "starttls": 587}.get(self.smtp_security, 25)

    @property
    def recipients(self) -> list[str]:
        return [a.strip() for a in self.teacher_email.replace(";", ",").split(",") if a.strip()]

    @property
    def worker_count(self) -> int:
        return self.workers or max(1, os.cpu_count() or 1)


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> Settings:
    """Settings from ``environ`` (default ``os.environ``) over ``env_file`` (if it exists)."""
    env = dict(os.environ if environ is None else environ)
    merged: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        for key, value in dotenv_values(env_file).items():
            if value is not None:
                merged[key] = value
    merged.update(env)
    unknown = sorted(k for k in merged if k.startswith(PREFIX) and k not in _KNOWN)
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]} (see docs/configuration.md for the list)")
    values: dict[str, Any] = {}
    for spec in SPECS:
        raw = merged.get(spec.env, spec.default)
        try:
            values[spec.attr] = spec.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{spec.env}: {exc}") from None
    level = str(values["log_level"]).upper()
    if level not in _LOG_LEVELS:
        raise ConfigError(
            f"ATTENDANCE_LOG_LEVEL: expected one of {sorted(_LOG_LEVELS)}, got {level!r}"
        )
    values["log_level"] = level
    # Folders are resolved once, here, against the working folder: every part of the process
    # (and every message) then names the same absolute folder.
    values["data_dir"] = values["data_dir"].resolve()
    values["dataset_dir"] = values["dataset_dir"].resolve()
    if values["timetable"] is not None:
        values["timetable"] = values["timetable"].resolve()
    return Settings(**values)
