"""Schemathesis fuzzes the app in this process from its own OpenAPI document (``GET
/openapi.json``, ``web/openapi.py``): every operation, with data that fits the document and
data that does not, with the key and without one. No answer is a 5xx, every answer is one the
document describes (status, content type, headers, body), and ``GET /health`` still answers
after.

The app is ``make_kit``'s (the real services on a real SQLite file, scripted faces) with the
register's two classes and a real SMTP server on loopback, so ``POST /send_report`` really
sends. The operations on one student (``/students/{name}...``) are fuzzed on random names
(404s, mostly) and then on a student of the register, whom ``DELETE`` erases last.

Bounded so a run takes seconds: ``MAX_EXAMPLES`` cases per operation and generation mode,
derandomised (the same cases on every run), no deadline, no example database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain, count
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import API_KEY, Kit, free_port, make_kit
from test_register import at, timetable_file
from test_report import SmtpServer, mail_settings

MAX_EXAMPLES = 20
# Each of these really builds the day's report (its chart) and mails it.
FEWER_EXAMPLES = {"POST /send_report": 5}
WITHOUT_KEY_EXAMPLES = 5  # every answer but /health's is a 401, whatever the input
STUDENT = "ben_ito"  # in both classes of the register
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE


@pytest.fixture
def school(tmp_path: Path) -> Iterator[Kit]:
    """Monday 09:20: math-7b's and art's periods have begun; mail goes to loopback."""
    with SmtpServer(free_port()) as smtp:
        kit = make_kit(
            tmp_path,
            now=at(23, 9, 20),
            timetable=timetable_file(tmp_path),
            **mail_settings(smtp.port),
        )
        yield kit
        kit.services.close()


def run_cases(
    operation: Any, mode: GenerationMode, examples: int, check: Callable[[Any], None], **fixed: Any
) -> None:
    """``check`` on ``examples`` cases of ``operation`` (``fixed``: path parameters)."""
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed or None)
    test = settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )(given(case=strategy)(check))
    try:
        test()
    except Exception as exc:
        exc.add_note(f"while fuzzing {operation.label} ({mode.value} cases)")
        raise


def fuzz(kit: Kit, key: str | None) -> dict[str, set[int]]:
    """Fuzz every operation of the served document; the statuses each answered. Without
    ``key``, every case sends a key of Schemathesis's making (or none)."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", kit.client.application)
    schema.config.generation.update(with_security_parameters=key is None)
    headers = {"X-API-KEY": key} if key else {}

    answered: dict[str, set[int]] = {}
    addresses = (f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}" for n in count(1))

    def call(case: Any) -> None:
        # Without the key, each case comes from an address of its own: wrong keys are
        # throttled per address (429 from the eleventh on), which would answer every case.
        environ = {} if key else {"REMOTE_ADDR": next(addresses)}
        response = case.call_and_validate(headers=headers, checks=CHECKS, environ_base=environ)
        answered.setdefault(case.operation.label, set()).add(response.status_code)

    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        examples = FEWER_EXAMPLES.get(operation.label, MAX_EXAMPLES)
        # Invalid data needs a body, a query or a header to go in (a path segment that is
        # not one is another route).
        takes_data = bool(operation.body) or any(chain(operation.query, operation.headers))
        modes = (POSITIVE, NEGATIVE) if key and takes_data else (POSITIVE,)
        for mode in modes:
            run_cases(operation, mode, examples if key else WITHOUT_KEY_EXAMPLES, call)
    if key:  # on a student of the register; erased last
        on_student = [op for op in operations if "{name}" in op.path]
        last = {"PATCH": 1, "DELETE": 2}  # a rename, then the erasure
        for operation in sorted(on_student, key=lambda op: last.get(op.method.upper(), 0)):
            run_cases(operation, POSITIVE, MAX_EXAMPLES, call, name=STUDENT)
    return answered


@pytest.mark.slow  # 14 s: run by make test (and CI), not by make test-fast
def test_fuzz_with_the_key(school: Kit) -> None:
    answered = fuzz(school, API_KEY)
    assert school.get("/health").status_code == 200
    assert school.get("/students").status_code == 200
    # The cases went past the checks of the input, on every kind of operation.
    succeeded = {label for label, codes in answered.items() if any(c < 300 for c in codes)}
    assert {
        "POST /recognize",
        "POST /send_report",
        "GET /export.xlsx",
        "POST /students",
        "PATCH /students/{name}",
        "PUT /students/{name}/consent",
        "POST /students/{name}/photos",
        "GET /students/{name}/export",
        "DELETE /students/{name}",
    } <= succeeded


def test_fuzz_without_a_key(school: Kit) -> None:
    answered = fuzz(school, None)
    assert answered.pop("GET /health") == {200}
    assert all(codes == {401} for codes in answered.values()), answered
    assert school.get("/health", key=None).status_code == 200
    assert school.get("/students").status_code == 200
