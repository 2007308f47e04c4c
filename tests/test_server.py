"""The API through a real `attendance serve` process, on real faces."""

from __future__ import annotations

import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import requests

from conftest import (
    API_KEY,
    GROUP_BIDEN_OBAMA,
    NO_FACE,
    PROBES,
    STRANGERS,
    ServerProcess,
    face_bytes,
)


def _today(server: ServerProcess) -> str:
    files = sorted((server.data_dir / "logs").glob("attendance_*.csv"))
    assert files, "no day file written"
    return files[-1].stem.removeprefix("attendance_")


def test_health_reports_counts_without_personal_data(server: ServerProcess) -> None:
    response = server.get("/health", key=None)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["students"] == 5
    assert body["photos"] == 16
    text = response.text
    for name in ("obama", "biden", "george_w_bush"):
        assert name not in text


def test_wrong_or_missing_key_is_denied(server: ServerProcess) -> None:
    probe = face_bytes(PROBES["george_w_bush"])
    for key in ("wrong", "", API_KEY + "x"):
        response = server.recognize(probe, key=key)
        assert response.status_code == 401
        assert response.json()["status"] == "denied"
    # The key is accepted only in the header, never as a query parameter or form field.
    response = requests.post(
        f"{server.url}/recognize?api_key={API_KEY}",
        files={"image": probe},
        data={"X-API-KEY": API_KEY},
        timeout=30,
    )
    assert response.status_code == 401
    assert server.get("/statistics", key="nope").status_code == 401


def test_known_face_is_marked_once_a_day(server: ServerProcess) -> None:
    probe = face_bytes(PROBES["george_w_bush"])
    first = server.recognize(probe)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["status"] == "success"
    assert body["name"] == "george_w_bush"
    assert body["attendance"] == "Present"
    assert body["new"] is True
    [face] = body["faces"]
    assert face["name"] == "george_w_bush"
    assert face["distance"] <= 0.47
    assert set(face["box"]) == {"left", "top", "right", "bottom"}
    second = server.recognize(probe).json()
    assert second["name"] == "george_w_bush"
    assert second["new"] is False
    assert second["time"] == body["time"]


def test_stranger_and_no_face_are_unknown(server: ServerProcess) -> None:
    stranger = server.recognize(face_bytes(STRANGERS[0]), camera="stranger-test").json()
    assert stranger["status"] == "unknown"
    assert stranger["reason"] == "unknown_face"
    assert stranger["faces"][0]["name"] is None
    empty = server.recognize(face_bytes(NO_FACE), camera="stranger-test").json()
    assert empty == {"status": "unknown", "reason": "no_face", "faces": []}


def test_every_face_in_a_group_photo_is_handled(server: ServerProcess) -> None:
    body = server.recognize(face_bytes(GROUP_BIDEN_OBAMA)).json()
    assert body["status"] == "success"
    names = {face["name"] for face in body["faces"]}
    assert {"biden", "obama"} <= names
    assert {mark["name"] for mark in body["marks"]} == {"biden", "obama"}


def test_concurrent_requests_mark_once(server: ServerProcess) -> None:
    probe = face_bytes(PROBES["colin_powell"])
    with ThreadPoolExecutor(max_workers=8) as pool:
        bodies = [r.json() for r in pool.map(lambda _: server.recognize(probe), range(8))]
    assert all(b["name"] == "colin_powell" for b in bodies), bodies
    assert sum(b["new"] for b in bodies) == 1
    assert len({b["time"] for b in bodies}) == 1


def test_csv_files_and_statistics(server: ServerProcess) -> None:
    server.recognize(face_bytes(PROBES["donald_rumsfeld"]))
    day = _today(server)
    with open(server.data_dir / "logs" / f"attendance_{day}.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    names = [row["Name"] for row in rows]
    assert len(names) == len(set(names))
    assert {"george_w_bush", "donald_rumsfeld"} <= set(names)
    assert all(row["Status"] in {"Present", "Late"} for row in rows)
    assert all(len(row["Time"]) == 8 for row in rows)

    stats = server.get("/statistics").json()
    assert stats["status"] == "success"
    assert stats["days_on_record"] == 1
    by_name = {s["name"]: s for s in stats["students"]}
    assert set(by_name) >= {"obama", "biden", "george_w_bush", "colin_powell", "donald_rumsfeld"}
    bush = by_name["george_w_bush"]
    assert (bush["days_present"], bush["days_on_time"], bush["days_late"]) == (1, 1, 0)
    assert bush["attendance_pct"] == 100.0 and bush["late_pct"] == 0.0

    with open(server.data_dir / "logs" / "student_statistics.csv", newline="") as handle:
        table = {row["Student Name"]: row for row in csv.DictReader(handle)}
    assert table["george_w_bush"]["Days On Time"] == "1"
    assert table["george_w_bush"]["Attendance Percentage"] == "100.0"


def test_intruder_saved_after_consecutive_unknown_frames(server: ServerProcess) -> None:
    camera = "door-7"
    folder_root = server.data_dir / "intruders"

    def saved() -> list[Path]:
        return sorted(folder_root.glob(f"*/intruder_*_{camera}_*"))

    stranger = face_bytes(STRANGERS[1])
    no_face = face_bytes(NO_FACE)
    server.recognize(stranger, camera=camera)
    server.recognize(no_face, camera=camera)  # frames with no face do not count
    server.recognize(stranger, camera=camera)
    assert saved() == []
    server.recognize(no_face, camera="another-camera")
    server.recognize(face_bytes(STRANGERS[2]), camera="another-camera")  # other camera
    server.recognize(stranger, camera=camera)
    files = saved()
    assert len(files) == 1
    assert files[0].read_bytes() == stranger
    assert files[0].parent.name == _today(server) or len(files[0].parent.name) == 10
    # A known face resets the streak.
    server.recognize(stranger, camera=camera)
    server.recognize(face_bytes(PROBES["george_w_bush"]), camera=camera)
    server.recognize(stranger, camera=camera)
    server.recognize(stranger, camera=camera)
    assert len(saved()) == 1


def test_enrolment_route_lists_skipped_photos(server: ServerProcess) -> None:
    body = server.get("/enrolment").json()
    assert body["status"] == "success"
    assert body["students"] == 5
    assert body["skipped"] == []
    assert server.get("/enrolment", key=None).status_code == 401


def test_server_time_and_marks_use_the_configured_zone(server: ServerProcess) -> None:
    body = server.recognize(face_bytes(PROBES["george_w_bush"])).json()
    stamp = datetime.strptime(body["time"], "%H:%M:%S")
    assert 0 <= stamp.hour <= 23
    assert json.loads(json.dumps(body)) == body
    assert io.BytesIO(b"").read() == b""
