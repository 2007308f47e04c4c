#!/bin/sh
# Back up a Smart Attendance installation while its servers run: the database (SQLite through
# its online backup API, or PostgreSQL with pg_dump's custom format), the data folder and the
# dataset folder, into a new folder DEST/smart-attendance-YYYYMMDDTHHMMSSZ/:
#
#   database.sqlite | database.pgdump   the database
#   data.tar.gz                         ATTENDANCE_DATA_DIR without the database, the keys
#                                       and models/ (rebuilt at start)
#   dataset.tar.gz                      ATTENDANCE_DATASET_DIR (photos, sealed once enrolled)
#
# The keys are NOT in the backup: DATA_DIR/data_key, api_key and session_secret are left out,
# and ATTENDANCE_DATA_KEY lives in the settings file. Keep a copy of them apart from the
# backups (docs/deploy.md, "Backup and restore"): without the data key the backup's
# descriptors and photos cannot be opened.
#
# Usage, as the servers' user, with the servers' settings in the environment:
#
#   sudo -u attendance sh -c 'set -a; . /etc/smart-attendance/env; set +a;
#       exec sh /opt/smart-attendance/backup.sh /var/backups/smart-attendance'
#
# Reads ATTENDANCE_DATABASE_URL, ATTENDANCE_DATA_DIR and ATTENDANCE_DATASET_DIR (defaults as
# the server's: SQLite in ./data, ./dataset). Needs python3 (standard library only), tar,
# gzip, and pg_dump for PostgreSQL (Debian: postgresql-client, the server's major version or
# newer). The PostgreSQL password is handed to pg_dump in PGPASSWORD, never on a command line.
# Prints the new folder; exits non-zero (and removes the half-made folder) on any failure.

set -eu
umask 077

if [ "$#" -ne 1 ]; then
    echo "usage: $0 DEST_FOLDER" >&2
    exit 2
fi
dest=$1
python=${PYTHON:-python3}
data_dir=${ATTENDANCE_DATA_DIR:-./data}
dataset_dir=${ATTENDANCE_DATASET_DIR:-./dataset}
url=${ATTENDANCE_DATABASE_URL:-}

[ -d "$data_dir" ] || { echo "backup: data folder $data_dir not found" >&2; exit 1; }
mkdir -p "$dest"
out="$dest/smart-attendance-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir "$out"
trap 'status=$?; if [ "$status" -ne 0 ]; then rm -rf "$out"; echo "backup: failed, nothing kept" >&2; fi' EXIT

# 1. The database first: a file written meanwhile (a photo, an intruder capture) is then in
#    the archives without its row (enrolment reads a new photo; the purge empties the folders
#    of purged days), rather than a row in the database whose file is missing.
case "$url" in
    "" | sqlite:*)
        case "$url" in
            "") db="$data_dir/attendance.db" ;;
            sqlite:///?*) db="${url#sqlite:///}"; db="${db%%\?*}" ;;  # sqlite:////abs, sqlite:///rel
            *) echo "backup: cannot read the SQLite path of ATTENDANCE_DATABASE_URL" >&2; exit 1 ;;
        esac
        [ -f "$db" ] || { echo "backup: database $db not found" >&2; exit 1; }
        # SQLite's online backup: a consistent copy while the servers write (WAL mode).
        "$python" - "$db" "$out/database.sqlite" <<'PY'
import sqlite3
import sys

source = sqlite3.connect(sys.argv[1], timeout=60)
target = sqlite3.connect(sys.argv[2])
with target:
    source.backup(target)
check = target.execute("PRAGMA integrity_check").fetchone()[0]
target.close()
source.close()
if check != "ok":
    sys.exit(f"backup: the copy fails SQLite's integrity check: {check}")
PY
        ;;
    postgresql*)
        # postgresql+psycopg://user:password@host:port/db?sslmode=... -> libpq's URL without
        # the password (pg_dump does not know SQLAlchemy's "+driver").
        "$python" - "$out/database.pgdump" <<'PY'
import os
import sys
from urllib.parse import unquote, urlsplit, urlunsplit

parts = urlsplit(os.environ["ATTENDANCE_DATABASE_URL"])
userinfo, at, hostport = parts.netloc.rpartition("@")
user, colon, password = userinfo.partition(":")
env = dict(os.environ)
if colon:
    env["PGPASSWORD"] = unquote(password)
netloc = f"{user}@{hostport}" if at else hostport
libpq = urlunsplit(("postgresql", netloc, parts.path, parts.query, ""))
args = ["pg_dump", "--format=custom", "--no-owner", "--file", sys.argv[1], "--dbname", libpq]
os.execvpe("pg_dump", args, env)
PY
        ;;
    *)
        echo "backup: ATTENDANCE_DATABASE_URL is neither SQLite nor PostgreSQL" >&2
        exit 1
        ;;
esac

# tar, where a file changed or vanished while it was read (the servers keep running) is not
# a failure: such a file is a temporary one, or is rewritten by a rename (the CSV files).
archive() {
    set +e
    tar --warning=no-file-changed --warning=no-file-removed "$@"
    status=$?
    set -e
    [ "$status" -le 1 ] || exit "$status"
}

# 2. The data folder: logs/ (CSV), intruders/, review/ and the rest; not the database (above),
#    the keys (kept apart) or models/ (rebuilt at start).
archive -C "$data_dir" -czf "$out/data.tar.gz" \
    --exclude=./attendance.db --exclude=./attendance.db-wal --exclude=./attendance.db-shm \
    --exclude=./attendance.db-journal --exclude=./data_key --exclude=./api_key \
    --exclude=./session_secret --exclude=./models .

# 3. The dataset folder (photos awaiting consent are not encrypted: protect DEST).
if [ -d "$dataset_dir" ]; then
    archive -C "$dataset_dir" -czf "$out/dataset.tar.gz" .
else
    echo "backup: no dataset folder at $dataset_dir (skipped)" >&2
fi

echo "$out"
