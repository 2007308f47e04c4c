"""The database tables (SQLAlchemy Core). The schema is made and upgraded by the migrations
in ``db/migrations``; these definitions are the head revision, used by the queries."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    true,
)

metadata = MetaData()

photos = Table(
    "photos",
    metadata,
    Column("path", String(1024), primary_key=True),  # relative to the dataset folder
    Column("student", String(255), nullable=False, index=True),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    # False: the file was deleted once its descriptor was computed (descriptor-only storage)
    Column("kept", Boolean, nullable=False, default=True, server_default=true()),
)

face_cache = Table(
    "face_cache",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("pipeline", String(64), primary_key=True),
    Column("status", String(32), nullable=False),  # ok | no_face | many_faces | too_small | ...
    Column("detail", String(255), nullable=False, default=""),
    # 128 float32, only when status == ok; encrypted at rest (privacy.sealing)
    Column("descriptor", LargeBinary, nullable=True),
)

students = Table(
    "students",  # the registry: a dataset folder name is a student's name
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("display_name", String(255), nullable=False, default=""),
    Column("external_id", String(64), nullable=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("joined_on", Date, nullable=False),  # expected in class from this day
    # UTC, when they were added: expected in the periods that start after it (NULL: all day)
    Column("joined_at", DateTime, nullable=True),
    Column("classes", String(2048), nullable=False, default=""),  # extra classes, comma-separated
    # none|given|refused|withdrawn
    Column("consent", String(16), nullable=False, default="none", server_default="none"),
)

consent_events = Table(
    "consent_events",  # every change of a student's consent, with who recorded it and why
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("student", String(255), nullable=False, index=True),
    Column("state", String(16), nullable=False),  # given | refused | withdrawn
    Column("by", String(128), nullable=False),  # who recorded it (a person, as typed)
    Column("document", String(255), nullable=False, default=""),  # the signed form's reference
    Column("recorded_by", String(128), nullable=False),  # user:NAME | cli:USER | api
    Column("at", DateTime, nullable=False),  # UTC
)

badges = Table(
    "badges",  # printed QR cards: a random token per card, stored as its SHA-256 only
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("student", String(255), nullable=False, index=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("issued_at", DateTime, nullable=False),  # UTC
    Column("issued_by", String(128), nullable=False),
    Column("revoked_at", DateTime, nullable=True),  # UTC; a revoked card checks nobody in
)

audit = Table(
    "audit",  # who viewed, exported, corrected, erased, changed consent or settings, and when
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False, index=True),  # UTC
    Column("actor", String(128), nullable=False),  # user:NAME | camera:ID | cli:USER | server
    Column("action", String(32), nullable=False),
    Column("subject", String(255), nullable=False, default=""),  # a student, or erased:<id>
    Column("detail", String(512), nullable=False, default=""),
)

job_runs = Table(
    "job_runs",  # daily jobs other than the report (the retention purge): once across servers
    metadata,
    Column("job", String(32), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("status", String(16), nullable=False),  # running | done | failed
    Column("owner", String(64), nullable=False),
    Column("lease_until", DateTime, nullable=False),  # UTC
    Column("detail", String(1024), nullable=False, default=""),
)

marks = Table(
    "marks",  # the first sighting of a student in a class period (or a mark set by hand)
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("student", String(255), nullable=False),
    Column("day", Date, nullable=False),
    Column("class_name", String(64), nullable=False, default="default", server_default="default"),
    # the period's start, HH:MM
    Column("period", String(5), nullable=False, default="00:00", server_default="00:00"),
    Column("period_end", String(5), nullable=False, default="24:00", server_default="24:00"),
    # the rule: Late after HH:MM
    Column("late_after", String(5), nullable=False, default="", server_default=""),
    Column("seen_at", DateTime, nullable=False),  # local wall time in the configured zone
    Column("status", String(16), nullable=False),
    Column("camera", String(64), nullable=False, default=""),
    # camera:ID | user:NAME | import
    Column("source", String(128), nullable=False, default="", server_default=""),
    # A scan's event id (with the class period under a timetable): unique per student, so a
    # resend marks nobody twice and one student's scan never stands for another's.
    Column("event_id", String(192), nullable=True),
    Column("received_at", DateTime, nullable=True),  # UTC, when the server got the scan
    # the camera key that made it
    Column("key_name", String(64), nullable=False, default="", server_default=""),
    UniqueConstraint("student", "day", "class_name", "period", name="uq_marks_student_period"),
    UniqueConstraint("event_id", "student", name="uq_marks_event_student"),
    Index("ix_marks_day", "day", "class_name"),  # a day's (or a class's day's) marks
)

corrections = Table(
    "corrections",  # every change to a mark, never an overwrite: the latest row is current
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("student", String(255), nullable=False),
    Column("day", Date, nullable=False),
    Column("class_name", String(64), nullable=False),
    Column("period", String(5), nullable=False),
    Column("old_status", String(16), nullable=True),
    Column("new_status", String(16), nullable=False),
    Column("reason", String(512), nullable=False, default=""),
    Column("by", String(128), nullable=False),  # user:NAME | cli:USER | api
    Column("at", DateTime, nullable=False),  # UTC
    Index("ix_corrections_slot", "day", "class_name", "period", "student"),
)

sightings = Table(
    "sightings",  # a recognised student outside every class period: kept, not a mark
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("student", String(255), nullable=False),
    Column("day", Date, nullable=False, index=True),
    Column("seen_at", DateTime, nullable=False),
    Column("camera", String(64), nullable=False),
)

intruders = Table(
    "intruders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("day", Date, nullable=False, index=True),
    Column("seen_at", DateTime, nullable=False),
    Column("camera", String(64), nullable=False),
    Column("path", String(1024), nullable=False),
    # the review: open | identified (``student`` was marked) | dismissed
    Column("state", String(16), nullable=False, default="open", server_default="open"),
    Column("student", String(255), nullable=True),
    Column("decided_by", String(128), nullable=True),
    Column("decided_at", DateTime, nullable=True),  # UTC
)

intruder_streaks = Table(
    "intruder_streaks",  # per camera, shared by every server: unknown frames in a row
    metadata,
    Column("camera", String(64), primary_key=True),
    Column("count", Integer, nullable=False),  # unknown frames since the last known face
    Column("updated_at", DateTime, nullable=False),  # UTC
    Column("captured_at", DateTime, nullable=True),  # UTC: the camera's last intruder capture
    Column("captured_by", String(64), nullable=False),  # the server that made it ("": none)
)

uncertain = Table(
    "uncertain",  # a face left unknown although a student was near: for a person to decide
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("day", Date, nullable=False, index=True),
    Column("seen_at", DateTime, nullable=False),  # local wall time
    Column("camera", String(64), nullable=False),
    Column("candidate", String(255), nullable=False),  # the nearest student
    Column("distance", Float, nullable=False),
    Column("margin", Float, nullable=True),
    Column("path", String(1024), nullable=False),  # the face's photo, under the data folder
    Column("state", String(16), nullable=False, default="open"),  # open|confirmed|rejected
    Column("decided_by", String(128), nullable=True),
    Column("decided_at", DateTime, nullable=True),  # UTC
)

users = Table(
    "users",  # the dashboard's accounts
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # admin | teacher | office
    Column("classes", String(2048), nullable=False, default=""),  # a teacher's, comma-separated
    Column("password_hash", String(255), nullable=False),  # Argon2id
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime, nullable=False),  # UTC
    Column("password_changed_at", DateTime, nullable=False),  # UTC; older sessions end
)

login_failures = Table(
    "login_failures",  # failed logins, for throttling across every server
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False),
    Column("address", String(64), nullable=False),
    Column("at", DateTime, nullable=False, index=True),  # UTC
)

ended_sessions = Table(
    "ended_sessions",  # dashboard sessions signed out: their cookies open nothing any more
    metadata,
    Column("session_sha256", String(64), primary_key=True),  # the session id's, never the id
    Column("ended_at", DateTime, nullable=False),  # UTC
    Column("expires_at", DateTime, nullable=False, index=True),  # UTC; then it is forgotten
)

pending_erasures = Table(
    "pending_erasures",  # erasures whose database step is done, not the rest: a retry finishes
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("opaque_id", String(32), nullable=False, unique=True),  # erased:<12 hex>
    Column("name_sealed", LargeBinary, nullable=False),  # the name, sealed with the data key
    Column("files", Text, nullable=False),  # review files still to delete, one a line
    Column("summary", String(255), nullable=False),  # what the database step removed
    Column("stage", String(16), nullable=False),  # files | compact
    Column("started_at", DateTime, nullable=False),  # UTC
)


camera_keys = Table(
    "camera_keys",  # one API key per door camera, stored as the SHA-256 of the key only
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("key_sha256", String(64), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),  # UTC
    Column("revoked_at", DateTime, nullable=True),  # UTC; a revoked key opens nothing
    Column("last_used_at", DateTime, nullable=True),  # UTC
)

key_failures = Table(
    "key_failures",  # wrong API keys, per address, for throttling across every server
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("address", String(64), nullable=False),
    Column("at", DateTime, nullable=False, index=True),  # UTC
)


report_runs = Table(
    "report_runs",  # the scheduled report of each day: claimed by exactly one process
    metadata,
    Column("day", Date, primary_key=True),
    Column("status", String(16), nullable=False),  # sending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=False),  # UTC
    Column("lease_until", DateTime, nullable=False),  # UTC
    Column("owner", String(64), nullable=False),
)

report_attempts = Table(
    "report_attempts",  # every send, scheduled or manual, with its outcome
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("day", Date, nullable=False),
    Column("kind", String(16), nullable=False),  # scheduled | manual
    Column("at", DateTime, nullable=False),  # UTC
    Column("outcome", String(16), nullable=False),  # sent | failed | unsent (no mail server)
    Column("recipients", String(1024), nullable=False),
    Column("error", String(512), nullable=False, default=""),
)

meta = Table(
    "meta",  # small shared values, e.g. the gallery's version that every server polls
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

day_tallies = Table(
    "day_tallies",  # a closed day's counts per student and class (attendance/tallies.py)
    metadata,
    Column("day", Date, primary_key=True),
    Column("class_name", String(64), primary_key=True),
    Column("student", String(255), primary_key=True, index=True),
    Column("present", Integer, nullable=False),
    Column("late", Integer, nullable=False),
    Column("excused", Integer, nullable=False),
    Column("absent", Integer, nullable=False),
)

tallied_days = Table(
    "tallied_days",  # the days whose tallies are kept, and under which generation
    metadata,
    Column("day", Date, primary_key=True),
    Column("generation", Integer, nullable=False),
    # the highest mark and correction ids when the day was computed: a later one on that day
    # makes it computed again
    Column("marks_seen", Integer, nullable=False),
    Column("corrections_seen", Integer, nullable=False),
)

timetables = Table(
    "timetables",  # every timetable the server ran with, from the day it came into force
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("effective_from", Date, nullable=False),
    # UTC: governs the periods of effective_from that start after it (NULL: the whole day)
    Column("effective_at", DateTime, nullable=True),
    Column("digest", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # file | default
    Column("source", String(1024), nullable=False),  # the file's path ("" for the default)
    Column("text", Text, nullable=False),  # the file's TOML, or "HH:MM+grace" for the default
    Column("default_late", Integer, nullable=False),  # ATTENDANCE_LATE_AFTER_MINUTES then
)

liveness_challenges = Table(
    "liveness_challenges",  # GET /liveness/challenge: one-use nonces, shared by every server
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # the nonce is never stored: only its SHA-256, like a badge's token
    Column("nonce_sha256", String(64), nullable=False, unique=True),
    Column("camera", String(64), nullable=False),
    Column("key_name", String(64), nullable=False),  # the key that asked ("": the admin key)
    Column("actions", String(128), nullable=False),  # comma-separated, in order
    Column("issued_at", DateTime, nullable=False),  # UTC
    Column("expires_at", DateTime, nullable=False, index=True),  # UTC
    Column("used_at", DateTime, nullable=True),  # UTC; set by the one scan that used it
)
