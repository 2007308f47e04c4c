"""Regenerate the settings tables of docs/configuration.md and .env.example from config.SPECS.

    .venv/bin/python scripts/settings_docs.py

The text around the tables in docs/configuration.md (the introduction and the "Notes" section)
is kept; tests/test_config_cli.py checks that every setting is documented.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from smart_attendance.config import SPECS

ROOT = Path(__file__).resolve().parents[1]
GROUPS = [
    ("Security", ["API_SECRET_KEY"]),
    (
        "Folders and database",
        [
            "ATTENDANCE_DATASET_DIR",
            "ATTENDANCE_DATA_DIR",
            "ATTENDANCE_DATABASE_URL",
            "ATTENDANCE_CSV_WRITE_SECONDS",
        ],
    ),
    (
        "Class schedule",
        [
            "ATTENDANCE_TIMETABLE",
            "ATTENDANCE_CLASS_START",
            "ATTENDANCE_LATE_AFTER_MINUTES",
            "ATTENDANCE_TIMEZONE",
            "ATTENDANCE_ALERT_BELOW_PCT",
            "ATTENDANCE_MAX_RANGE_DAYS",
        ],
    ),
    (
        "Recognition",
        [
            "ATTENDANCE_MATCH_THRESHOLD",
            "ATTENDANCE_MATCH_MARGIN",
            "ATTENDANCE_DETECT_MAX_SIDE",
            "ATTENDANCE_DETECT_UPSAMPLE",
            "ATTENDANCE_MIN_FACE_PX",
            "ATTENDANCE_BURST_DESCRIBE",
            "ATTENDANCE_EMBEDDER",
            "ATTENDANCE_REQUIRE_LIVENESS",
            "ATTENDANCE_CHALLENGE_SECONDS",
            "ATTENDANCE_TRUST_CLIENT_CLOCK",
            "ATTENDANCE_CLOCK_WINDOW_HOURS",
            "ATTENDANCE_INTRUDER_THRESHOLD",
            "ATTENDANCE_INTRUDER_COOLDOWN_S",
            "ATTENDANCE_INTRUDER_MAX_MB",
            "ATTENDANCE_REVIEW_MAX_MB",
        ],
    ),
    (
        "Server",
        [
            "ATTENDANCE_HOST",
            "ATTENDANCE_PORT",
            "ATTENDANCE_WORKERS",
            "ATTENDANCE_THREADS",
            "ATTENDANCE_MAX_UPLOAD_MB",
            "ATTENDANCE_MAX_IMAGE_PIXELS",
            "ATTENDANCE_MAX_REQUEST_PIXELS",
            "ATTENDANCE_WORKER_TIMEOUT_S",
            "ATTENDANCE_MAX_CONNECTIONS",
            "ATTENDANCE_CHANNEL_TIMEOUT_S",
            "ATTENDANCE_KEY_FAILURES_PER_MINUTE",
            "ATTENDANCE_REPORT_SENDS_PER_HOUR",
            "ATTENDANCE_LOG_LEVEL",
        ],
    ),
    (
        "Privacy",
        [
            "ATTENDANCE_REQUIRE_CONSENT",
            "ATTENDANCE_DATA_KEY",
            "ATTENDANCE_ENROLMENT_PHOTOS",
            "ATTENDANCE_INTRUDER_PHOTOS",
            "ATTENDANCE_RETAIN_INTRUDER_DAYS",
            "ATTENDANCE_RETAIN_UNCERTAIN_DAYS",
            "ATTENDANCE_RETAIN_MARKS_DAYS",
            "ATTENDANCE_RETAIN_AUDIT_DAYS",
            "ATTENDANCE_PURGE_TIME",
        ],
    ),
    (
        "Dashboard",
        [
            "ATTENDANCE_SESSION_SECRET",
            "ATTENDANCE_SESSION_IDLE_MINUTES",
            "ATTENDANCE_SESSION_MAX_HOURS",
            "ATTENDANCE_PROXY_HOPS",
            "ATTENDANCE_TRUSTED_PROXIES",
        ],
    ),
    (
        "Camera client",
        [
            "ATTENDANCE_SERVER_URL",
            "ATTENDANCE_CAMERA_ID",
            "ATTENDANCE_CLIENT_QUEUE_MAX_MB",
            "ATTENDANCE_CLIENT_QUEUE_MAX_DAYS",
        ],
    ),
    (
        "Email report",
        [
            "SENDER_EMAIL",
            "SENDER_PASSWORD",
            "TEACHER_EMAIL",
            "ATTENDANCE_CLASS_NAME",
            "ATTENDANCE_REPORT_TIME",
            "ATTENDANCE_SMTP_HOST",
            "ATTENDANCE_SMTP_PORT",
            "ATTENDANCE_SMTP_SECURITY",
            "ATTENDANCE_SMTP_TIMEOUT_S",
        ],
    ),
]


def main() -> None:
    by_name = {spec.env: spec for spec in SPECS}
    grouped = {name for _, names in GROUPS for name in names}
    missing = set(by_name) ^ grouped
    if missing:
        raise SystemExit(f"settings not in GROUPS (or gone): {sorted(missing)}")
    example = [
        "# Smart Attendance settings. Copy to .env (never commit .env) and edit.",
        "# Every line is optional: the value shown is the built-in default.",
        "# The process environment overrides this file. Full reference: docs/configuration.md",
        "",
    ]
    doc_path = ROOT / "docs" / "configuration.md"
    old = doc_path.read_text(encoding="utf-8")
    head = old[: old.index("## Security")].rstrip("\n")
    notes = old[old.index("## Notes") :]
    doc = [head, ""]
    for title, names in GROUPS:
        example.append(f"# --- {title} ---")
        doc += [f"## {title}", "", "| setting | default | meaning |", "|---|---|---|"]
        for name in names:
            spec = by_name[name]
            example += [f"# {line}" for line in textwrap.wrap(spec.doc, 96)]
            example.append(f"{name}=" if spec.secret else f"# {name}={spec.default}")
            example.append("")
            default = f"`{spec.default}`" if spec.default else "(empty)"
            doc.append(f"| `{name}` | {default} | {spec.doc} |")
        doc.append("")
    (ROOT / ".env.example").write_text("\n".join(example), encoding="utf-8")
    doc_path.write_text("\n".join(doc) + "\n" + notes, encoding="utf-8")


if __name__ == "__main__":
    main()
