"""A student's privacy on their page, and the audit log (docs/privacy.md).

* ``POST /student/<name>/consent``: record consent given, refused or withdrawn (admin, office);
* ``GET /student/<name>/export``: everything held on the student, as a zip (admin, office);
* ``POST /student/<name>/erase``: erase the student, after typing their name (admin only);
* ``GET /admin/audit``: the audit log, newest first, by student or action (admin only).

Each is recorded in the audit log as ``user:NAME``; so is every opening of a student's page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request, url_for

from ...app import Services
from ...attendance.export import ExportFile
from ...errors import BadRequestError
from ...privacy.audit import ACTIONS
from .. import _attachment
from .common import access, act, render, require, shown

AUDIT_PAGE = 200  # entries on one page


def actor() -> str:
    return f"user:{access().name}"


def register(routes: Blueprint, services: Services) -> None:
    @routes.post("/student/<name>/consent")
    def student_consent(name: str) -> Any:
        require(access().may_enrol, "consent records")
        form = request.form
        back = url_for("dashboard.student_page", name=name) + "#privacy-h"

        def run() -> str:
            state = form.get("state", "")
            [change] = services.consent.record(
                [name], state, form.get("by", ""), form.get("document", ""), actor()
            )
            gone = (
                f" {change.photos_deleted} photo(s) and their descriptors were deleted."
                if change.photos_deleted
                else ""
            )
            return f"Consent of {shown(name)} recorded as {state}.{gone}"

        return act(run, back)

    @routes.get("/student/<name>/export")
    def student_export(name: str) -> Any:
        require(access().may_enrol, "a student's export")
        data = services.access.export(name, actor())
        return _attachment(ExportFile.whole(f"student-{name}.zip", "application/zip", data))

    @routes.post("/student/<name>/erase")
    def student_erase(name: str) -> Any:
        require(access().is_admin, "erasure")
        back = url_for("dashboard.student_page", name=name) + "#erase-h"

        def run() -> str:
            if request.form.get("confirm", "").strip() != name:
                raise BadRequestError(f"type the student's name ({name}) to confirm the erasure")
            report = services.erasure.erase(name, actor())
            return f"{name} was erased: {report.summary()}. The audit log says {report.opaque_id}."

        response = act(run, back)
        if response.status_code == 303 and services.store.student(name) is None:
            response.headers["Location"] = url_for("dashboard.enrol")
        return response

    @routes.get("/admin/audit")
    def admin_audit() -> Any:
        require(access().is_admin, "the audit log")
        student = request.args.get("student", "").strip() or None
        action = request.args.get("action", "").strip() or None
        if action and action not in ACTIONS:
            raise BadRequestError(f"action must be one of {', '.join(ACTIONS)}")
        entries = services.audit.entries(AUDIT_PAGE if not action else 5000, student)
        if action:
            entries = [e for e in entries if e.action == action][:AUDIT_PAGE]
        return render(
            "audit.html",
            "Audit log",
            entries=entries,
            student=student or "",
            action=action or "",
            actions=ACTIONS,
            limit=AUDIT_PAGE,
            retain_days=services.settings.retain_audit_days,
        )
