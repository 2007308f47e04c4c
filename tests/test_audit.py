"""The audit log is complete and atomic: account changes (the command line and the Admin
page) and register exports (the API, the Reports page, the command) are recorded; a correction
or an account change and its entry are written in one transaction, both or neither
(docs/privacy.md, docs/security.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import text

from conftest import API_KEY, Kit, command_on, make_kit
from dashboard_kit import PASSWORD, post_form, sign_in
from smart_attendance.errors import StoreError

HEADERS = {"X-API-KEY": API_KEY}


@pytest.fixture
def school(tmp_path: Path) -> Iterator[Kit]:
    kit = make_kit(tmp_path)
    yield kit
    kit.services.close()


@pytest.fixture
def command(
    school: Kit, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """``attendance ARGS`` on the school's data folder and clock, as OS user ``teacher1`` (no
    timetable file: the default class); ``password`` on standard input."""
    command_on(school, cli, monkeypatch)
    env = {
        "API_SECRET_KEY": API_KEY,
        "ATTENDANCE_DATA_DIR": str(school.settings.data_dir),
        "ATTENDANCE_DATASET_DIR": str(school.settings.dataset_dir),
        "ATTENDANCE_TIMEZONE": "Europe/Paris",
    }

    def run(*args: str, password: str | None = None) -> Result:
        return cli(*args, env=env, input=None if password is None else f"{password}\n")

    return run


def entries(kit: Kit, action: str) -> list[tuple[str, str, str]]:
    """(actor, subject, detail) of the entries of ``action``, oldest first."""
    found = kit.services.audit.entries(1000)
    return [(e.actor, e.subject, e.detail) for e in reversed(found) if e.action == action]


def corrections(kit: Kit) -> int:
    with kit.services.store.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM corrections")).scalar_one())


def test_account_changes_on_the_command_line_are_audited(
    school: Kit, command: Callable[..., Result]
) -> None:
    added = command("users", "add", "tom", "--role", "teacher", "--classes", "default")
    assert added.exit_code == 1  # no terminal: the password must come on standard input
    assert entries(school, "settings") == []
    runs = [
        ("users", "add", "tom", "--role", "teacher", "--classes", "default", "--password-stdin"),
        ("users", "disable", "tom"),
        ("users", "enable", "tom"),
        ("users", "set-password", "tom", "--password-stdin"),
    ]
    for args in runs:
        done = command(*args, password="another long password")
        assert done.exit_code == 0, done.output
    assert entries(school, "settings") == [
        ("cli:teacher1", "user:tom", "added (teacher: default)"),
        ("cli:teacher1", "user:tom", "disabled"),
        ("cli:teacher1", "user:tom", "enabled"),
        ("cli:teacher1", "user:tom", "password changed"),
    ]
    # A refused change leaves no entry.
    assert command("users", "disable", "nobody").exit_code == 1
    assert len(entries(school, "settings")) == 4


def test_account_changes_on_the_admin_page_are_audited(school: Kit) -> None:
    token = sign_in(school, "ada", "admin")
    assert entries(school, "settings") == [("server", "user:ada", "added (admin)")]
    form = {"password": PASSWORD, "confirm": PASSWORD}
    added = post_form(school, "/admin/users", token, name="tom", role="teacher", **form)
    assert added.status_code == 303
    for fields in (
        {"action": "classes", "classes": "default"},
        {"action": "disable"},
        {"action": "enable"},
        {"action": "password", **form},
    ):
        assert post_form(school, "/admin/users/tom", token, **fields).status_code == 303
    assert entries(school, "settings")[1:] == [
        ("user:ada", "user:tom", "added (teacher)"),
        ("user:ada", "user:tom", "classes: default"),
        ("user:ada", "user:tom", "disabled"),
        ("user:ada", "user:tom", "enabled"),
        ("user:ada", "user:tom", "password changed"),
    ]
    assert "user:tom" in school.client.get("/admin/audit?action=settings").get_data(as_text=True)


def test_register_exports_are_audited(
    school: Kit, command: Callable[..., Result], tmp_path: Path
) -> None:
    query = "from=2026-11-23&to=2026-11-23"
    assert school.client.get(f"/export.csv?{query}", headers=HEADERS).status_code == 200
    assert school.client.get(f"/export.xlsx?{query}", headers=HEADERS).status_code == 200
    sign_in(school, "ada", "admin")
    assert school.client.get("/reports/export.csv?class=default").status_code == 200
    out = tmp_path / "register.csv"
    assert command("export", "--from", "2026-11-23", "--out", str(out)).exit_code == 0
    assert entries(school, "export") == [
        ("api", "", "register attendance_2026-11-23_2026-11-23.csv"),
        ("api", "", "register attendance_2026-11-23_2026-11-23.xlsx"),
        ("user:ada", "", "register attendance_2026-10-25_2026-11-23_default.csv"),
        ("cli:teacher1", "", "register attendance_2026-11-23_2026-11-23.csv"),
    ]


def test_every_correction_is_audited_the_command_line_too(
    school: Kit, command: Callable[..., Result]
) -> None:
    done = command("mark", "ben_ito", "--status", "excused", "--reason", "doctor")
    assert done.exit_code == 0, done.output
    [(actor, subject, detail)] = entries(school, "correct")
    assert (actor, subject) == ("cli:teacher1", "ben_ito")
    assert detail.startswith("Excused: default ") and detail.endswith(" on 2026-11-23")


def test_a_change_and_its_audit_entry_are_kept_together_or_not_at_all(school: Kit) -> None:
    """With the audit table unwritable, a correction (one or many) and an account change are
    refused, and nothing of them is written."""
    with school.services.store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit RENAME TO audit_away"))
    one = {"name": "ben_ito", "date": "2026-11-23", "status": "Excused", "reason": "doctor"}
    answer = school.client.post("/attendance/corrections", json=one, headers=HEADERS)
    assert answer.status_code == 503
    assert answer.get_json()["status"] == "database_unavailable"
    days = {"name": "ben_ito", "from": "2026-11-23", "to": "2026-11-24", "reason": "trip"}
    answer = school.client.post("/attendance/corrections/days", json=days, headers=HEADERS)
    assert answer.status_code == 503
    period = {"class": "default", "date": "2026-11-23"}
    answer = school.client.post("/attendance/corrections/period", json=period, headers=HEADERS)
    assert answer.status_code == 503
    assert corrections(school) == 0
    with pytest.raises(StoreError):
        school.services.accounts.add("tom", "office", PASSWORD, by="cli:root")
    assert school.services.store.user("tom") is None
    with school.services.store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_away RENAME TO audit"))
    # Back: the same requests are recorded, each with its entry.
    assert school.client.post("/attendance/corrections", json=one, headers=HEADERS).status_code
    assert corrections(school) == 1
    assert [a for a, _s, _d in entries(school, "correct")] == ["api"]
