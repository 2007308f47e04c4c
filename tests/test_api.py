"""The HTTP API in process: real services and app, scripted faces, a fixed clock."""

from __future__ import annotations

from conftest import Kit


def test_health_counts_without_personal_data(kit: Kit) -> None:
    response = kit.get("/health", key=None)
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "students": 3,
        "photos": 6,
        "skipped_photos": 0,
        "workers": 2,
        "embedder": "scripted",
    }


def test_a_known_face_is_marked_once_a_day(kit: Kit) -> None:
    first = kit.recognize(kit.probe("ana_lima"))
    assert first.status_code == 200, first.get_data(as_text=True)
    body = first.get_json()
    assert body["status"] == "success"
    assert (body["name"], body["attendance"], body["new"], body["time"]) == (
        "ana_lima",
        "Present",
        True,
        "08:55:00",
    )
    kit.clock.advance(minutes=30)
    again = kit.recognize(kit.probe("ana_lima", seed=2)).get_json()
    assert (again["new"], again["time"], again["attendance"]) == (False, "08:55:00", "Present")
