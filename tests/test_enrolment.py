"""Enrolment from dataset/<student>/*.jpg: reasons for skipped photos, incremental updates."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest
from PIL import Image

from conftest import NO_FACE, PROBES, STUDENTS, build_dataset, face_bytes, require_faces, run_cli
from smart_attendance.config import load_settings
from smart_attendance.service import build_service


@pytest.fixture
def messy_dataset(tmp_path: Path) -> Path:
    faces = require_faces()
    root = build_dataset(
        tmp_path / "dataset",
        {
            "obama": STUDENTS["obama"],
            "george_w_bush": STUDENTS["george_w_bush"][:2],
        },
    )
    shutil.copy(faces / NO_FACE, root / "obama" / "dogs.jpg")
    shutil.copy(faces / "knn/_group/2.jpg", root / "obama" / "group.jpg")
    small = Image.open(faces / "lfw/george_w_bush/3.jpg").resize((100, 100))
    small.save(root / "george_w_bush" / "tiny.jpg", quality=95)
    (root / "george_w_bush" / "broken.jpg").write_bytes(face_bytes(PROBES["george_w_bush"])[:900])
    (root / "george_w_bush" / "notes.txt").write_text("not a photo")
    (root / "bad\x07name").mkdir()
    shutil.copy(faces / "knn/biden/1.jpg", root / "bad\x07name" / "1.jpg")
    outside = tmp_path / "outside.jpg"
    shutil.copy(faces / "knn/biden/2.jpg", outside)
    (root / "obama" / "link.jpg").symlink_to(outside)
    return root


def test_enroll_reports_every_skipped_photo_with_its_reason(
    messy_dataset: Path, tmp_path: Path
) -> None:
    env = {
        "ATTENDANCE_DATASET_DIR": str(messy_dataset),
        "ATTENDANCE_DATA_DIR": str(tmp_path / "data"),
    }
    result = run_cli("enroll", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "2 students, 4 photos enrolled, 6 skipped (8 analysed, 0 from cache, 0 removed)" in out
    assert "obama/dogs.jpg: no face found" in out
    assert "obama/group.jpg: 2 faces found, need exactly one" in out
    assert "george_w_bush/tiny.jpg: face is" in out and "too small to trust" in out
    assert "george_w_bush/broken.jpg: the image cannot be decoded" in out
    assert "obama/link.jpg: link to a file outside the dataset" in out
    assert "folder name contains control characters" in out
    assert "notes.txt" not in out
    assert "Traceback" not in result.stderr


def test_enrolment_is_incremental(messy_dataset: Path, tmp_path: Path) -> None:
    env = {
        "ATTENDANCE_DATASET_DIR": str(messy_dataset),
        "ATTENDANCE_DATA_DIR": str(tmp_path / "data"),
    }
    assert run_cli("enroll", env=env, cwd=tmp_path).returncode == 0
    again = run_cli("enroll", env=env, cwd=tmp_path).stdout
    assert "2 students, 4 photos enrolled, 6 skipped (0 analysed, 8 from cache" in again

    faces = require_faces()
    shutil.copy(faces / "lfw/george_w_bush/5.jpg", messy_dataset / "george_w_bush" / "new.jpg")
    (messy_dataset / "obama" / "knn_obama_2.jpg").unlink()
    added = run_cli("enroll", env=env, cwd=tmp_path).stdout
    assert "2 students, 4 photos enrolled, 6 skipped (1 analysed, 7 from cache, 1 removed)" in added

    # A changed file (same name, new content) is re-read; a fixed photo is enrolled.
    fixed = messy_dataset / "george_w_bush" / "broken.jpg"
    fixed.write_bytes((faces / "lfw/george_w_bush/7.jpg").read_bytes())
    changed = run_cli("enroll", env=env, cwd=tmp_path).stdout
    assert "2 students, 5 photos enrolled, 5 skipped (1 analysed, 7 from cache" in changed
    assert "broken.jpg" not in changed


def test_student_names_are_untrusted_text(tmp_path: Path) -> None:
    """A folder named like a spreadsheet formula is enrolled but neutralised in the CSV files."""
    evil = '=HYPERLINK("x","<b>click")'
    dataset = build_dataset(tmp_path / "dataset", {evil: STUDENTS["obama"]})
    settings = load_settings(
        {
            "ATTENDANCE_DATASET_DIR": str(dataset),
            "ATTENDANCE_DATA_DIR": str(tmp_path / "data"),
            "ATTENDANCE_WORKERS": "1",
            "API_SECRET_KEY": "k",
        },
        env_file=None,
    )
    service = build_service(settings)
    try:
        report = service.enroll()
        assert report.students == 1
        body = service.recognize([face_bytes("knn/obama/3.jpg")])
        assert body["status"] == "success", body
        assert body["name"] == evil
    finally:
        service.close()
    day_file = next((tmp_path / "data" / "logs").glob("attendance_*.csv"))
    with open(day_file, newline="") as handle:
        [row] = list(csv.DictReader(handle))
    assert row["Name"] == "'" + evil  # a spreadsheet shows the text, it does not run it
    with open(tmp_path / "data" / "logs" / "student_statistics.csv", newline="") as handle:
        [stats] = list(csv.DictReader(handle))
    assert stats["Student Name"] == "'" + evil


def test_probe_decodes_with_exif_rotation(tmp_path: Path) -> None:
    """A phone photo stored sideways with an EXIF orientation tag is turned upright first."""
    from smart_attendance import imaging

    image = Image.open(io.BytesIO(face_bytes(PROBES["george_w_bush"])))
    rotated = image.rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 CW to view": undoes the rotation above
    out = io.BytesIO()
    rotated.save(out, format="JPEG", exif=exif, quality=95)
    upright = imaging.decode(out.getvalue(), 10**8)
    assert upright.shape[:2] == (image.height, image.width)
