"""The OpenAPI document (``web/openapi.py``, served at ``GET /openapi.json``) describes the app's
routes, no more and no fewer; it is a valid OpenAPI 3.1 document; it is served without a key."""

from __future__ import annotations

import re
from typing import Any

import schemathesis

from conftest import API_KEY, Kit, io_bytes
from scripted import ScriptedFace, identity, near
from smart_attendance.web import OPEN_ROUTES
from smart_attendance.web.openapi import document
from test_badges import issue
from test_register import school as school  # the register's fixture: two classes, Monday
from test_students import png

METHODS = {"get", "post", "put", "patch", "delete"}


def app_operations(kit: Kit) -> dict[tuple[str, str], str]:
    """(METHOD, /path/{param}) -> endpoint, for every route but the dashboard's pages and the
    static files."""
    out = {}
    for rule in kit.client.application.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("dashboard."):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method.lower() in METHODS:
                out[(method, path)] = rule.endpoint
    return out


def documented_operations() -> dict[tuple[str, str], dict[str, object]]:
    return {
        (method.upper(), path): operation
        for path, item in document()["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_every_route_is_documented_and_every_operation_is_a_route(kit: Kit) -> None:
    routes = set(app_operations(kit))
    documented = set(documented_operations())
    assert sorted(routes - documented) == []  # a route the document lacks
    assert sorted(documented - routes) == []  # an operation the app does not have
    assert ("POST", "/recognize") in routes and ("GET", "/openapi.json") in routes


def test_the_operations_without_a_key_are_the_ones_the_key_check_skips(kit: Kit) -> None:
    endpoints = app_operations(kit)
    open_ops = {op for op, spec in documented_operations().items() if spec.get("security") == []}
    assert {endpoints[op] for op in open_ops} == OPEN_ROUTES - {"static"}
    for n, ((method, path), endpoint) in enumerate(sorted(endpoints.items())):
        if "{" in path:
            continue
        # each from its own address: wrong keys are throttled per address (429)
        answer = kit.client.open(path, method=method, environ_base={"REMOTE_ADDR": f"10.0.0.{n}"})
        assert (answer.status_code == 401) == (endpoint not in OPEN_ROUTES), (method, path)


def test_the_document_is_valid_openapi() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_dict(doc)
    schema.validate()  # against the OpenAPI 3.1 meta-schema; raises on a mistake
    labels = {result.ok().label for result in schema.get_all_operations()}
    assert "POST /students/{name}/photos" in labels


def test_every_operation_answers_json_errors_and_names_its_key_errors() -> None:
    doc = document()
    for (method, path), operation in documented_operations().items():
        responses = operation["responses"]
        assert isinstance(responses, dict)
        if operation.get("security") == []:
            assert "401" not in responses, (method, path)
            continue
        assert {"401", "429"} <= set(responses), (method, path)
        for code, answer in responses.items():
            if code.startswith(("4", "5")) and "$ref" in answer:
                name = answer["$ref"].rsplit("/", 1)[-1]
                schema = doc["components"]["responses"][name]["content"]["application/json"]
                assert schema["schema"] == {"$ref": "#/components/schemas/Error"}


def test_served_at_openapi_json_without_a_key(kit: Kit) -> None:
    for key in (None, "wrong", API_KEY):
        answer = kit.get("/openapi.json", key=key)
        assert answer.status_code == 200
        assert answer.content_type == "application/json"
        assert answer.get_json() == document()
    assert kit.get("/students", key=None).status_code == 401


# --- the answers of a school day are those the document describes --------------------------


def test_the_answers_of_a_day_are_as_described(school: Kit) -> None:
    """The answers fuzzing rarely reaches (a student recognised, checked in, corrected, their
    photos enrolled, erased) are the ones the document describes: status and body."""
    schema = schemathesis.openapi.from_dict(document())
    paths = document()["paths"]
    kit = school
    seen: set[tuple[str, str]] = set()

    def check(method: str, path: str, response: Any, status: int) -> Any:
        assert response.status_code == status, (method, path, response.get_data(as_text=True))
        assert str(status) in paths[path][method.lower()]["responses"], (method, path, status)
        schema[path][method].validate_response(response)  # raises on a body out of schema
        seen.add((method, path))
        return response.get_json(silent=True)

    headers = {"X-API-KEY": API_KEY}

    def send(method: str, path: str, status: int, name: str = "", **kwargs: Any) -> Any:
        url = path.replace("{name}", name)
        response = kit.client.open(url, method=method, headers=headers, **kwargs)
        return check(method, path, response, status)

    assert check("POST", "/recognize", kit.recognize(kit.probe("ana_lima")), 200)["new"]
    assert check("POST", "/recognize", kit.recognize(kit.stranger()), 200)["status"] == "unknown"
    [token] = issue(kit, "ben_ito")
    assert send("POST", "/checkin", 200, json={"badge": token})["name"] == "ben_ito"
    assert send("POST", "/checkin", 403, json={"badge": "nonsense"})["status"] == "badge_unknown"
    assert send("GET", "/liveness/challenge", 200, query_string={"camera": "door"}) == {
        "mode": "off"
    }
    send("GET", "/liveness/challenge", 400)  # no camera
    send("GET", "/health", 200)
    send("GET", "/enrolment", 200)
    send("GET", "/statistics", 200)
    day = send("GET", "/attendance", 200, query_string={"date": "2026-11-23"})
    assert day["classes"][0]["periods"][0]["students"][0]["source"] == "camera:default"
    fix = {"name": "cleo_park", "class": "art", "date": "2026-11-23", "period": "09:00"}
    send("POST", "/attendance/corrections", 201, json={**fix, "status": "excused", "reason": "ill"})
    send("POST", "/attendance/corrections", 200, json={**fix, "status": "Excused", "reason": "ill"})
    send("POST", "/attendance/corrections/undo", 201, json=fix)
    send("POST", "/attendance/corrections/undo", 400, json=fix)
    days = {"name": "cleo_park", "from": "2026-11-23", "to": "2026-11-24", "reason": "ill"}
    assert send("POST", "/attendance/corrections/days", 201, json=days)["changed"] >= 1
    assert send("POST", "/attendance/corrections/days", 200, json=days)["changed"] == 0
    send("POST", "/attendance/corrections/days", 400, json={**days, "to": "2026-11-01"})
    period = {"class": "art", "date": "2026-11-23", "period": "09:00", "reason": "camera down"}
    assert send("POST", "/attendance/corrections/period", 201, json=period)["changed"] >= 1
    send("POST", "/attendance/corrections/period", 400, json={**period, "period": "07:00"})
    send("GET", "/export.csv", 200)
    send("GET", "/export.xlsx", 200)
    send("GET", "/students", 200)
    send("POST", "/students", 201, json={"name": "dan_roe", "classes": ["art"]})
    send("POST", "/students", 409, json={"name": "dan_roe"})
    send("PATCH", "/students/{name}", 200, "dan_roe", json={"external_id": "S-9"})
    send("PATCH", "/students/{name}", 404, "nobody", json={"external_id": "S-9"})
    consent = {"state": "given", "by": "Ann Roe", "document": "form 1"}
    send("PUT", "/students/{name}/consent", 200, "dan_roe", json=consent)
    dan = identity(50)
    good = kit.analyzer.add(png(1), ScriptedFace(near(dan, 0.1, 1)))
    images = [(io_bytes(good), "a.png"), (io_bytes(png(2)), "b.png")]
    photos = send("POST", "/students/{name}/photos", 201, "dan_roe", data={"image": images})
    assert [p["status"] for p in photos["photos"]] == ["enrolled", "refused"]
    send("GET", "/students/{name}/export", 200, "dan_roe")
    send("DELETE", "/students/{name}", 200, "dan_roe")
    send("DELETE", "/students/{name}", 404, "dan_roe")
    send("POST", "/send_report", 503)  # no mail server configured
    check("GET", "/openapi.json", kit.client.get("/openapi.json"), 200)
    assert seen == set(documented_operations())
