"""Enrolment from dataset/<student>/*.jpg: reasons for skipped photos, incremental updates.

In process with scripted faces (every reason, the cache, untrusted names), and once on real
photos with dlib in this process (``real_analyzer``), through the ``enroll`` command.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import (
    NO_FACE,
    PROBES,
    STUDENTS,
    Kit,
    build_dataset,
    face_bytes,
    make_kit,
    run_cli,
)
from scripted import ScriptedFace, identity, near
from smart_attendance import app as app_module
from smart_attendance.cli import main as cli_main
from smart_attendance.engine import imaging
from smart_attendance.models import Analyzer, Box

EVIL = '=HYPERLINK("x","<b>click")'


def _truncated_jpeg() -> bytes:
    """The first 200 bytes of a JPEG: its header promises more than the file holds."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 20, 30)).save(out, format="JPEG")
    return out.getvalue()[:200]


class ScriptedDataset:
    """A dataset folder of scripted photos: each file's bytes are registered with the kit's
    analyzer with the faces the test chooses."""

    def __init__(self, kit: Kit) -> None:
        self.kit = kit
        self.root = kit.settings.dataset_dir
        self.people = {"obama": identity(1), "george_w_bush": identity(2)}
        self.edits = 0

    def photo(self, rel: str, *faces: ScriptedFace) -> Path:
        self.edits += 1
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.kit.analyzer.add(f"photo:{rel}:{self.edits}".encode(), *faces))
        return path

    def face(self, name: str, seed: int, box: Box | None = None) -> ScriptedFace:
        descriptor = near(self.people[name], 0.1, seed)
        return ScriptedFace(descriptor) if box is None else ScriptedFace(descriptor, box)

    def messy(self, outside: Path) -> None:
        """Two good photos each, and one of every problem the old test had on real photos."""
        for name in self.people:
            self.photo(f"{name}/1.jpg", self.face(name, 1))
            self.photo(f"{name}/2.jpg", self.face(name, 2))
        self.photo("obama/dogs.jpg")  # an image without a face
        left, right = Box(40, 100, 200, 260), Box(400, 100, 560, 260)
        self.photo(
            "obama/group.jpg", ScriptedFace(identity(7), left), ScriptedFace(identity(8), right)
        )
        self.photo("george_w_bush/tiny.jpg", self.face("george_w_bush", 3, Box(10, 10, 50, 50)))
        (self.root / "george_w_bush" / "broken.jpg").write_bytes(_truncated_jpeg())
        (self.root / "george_w_bush" / "notes.txt").write_text("not a photo")
        self.photo("bad\x07name/1.jpg", ScriptedFace(identity(9)))
        outside.write_bytes(self.kit.analyzer.add(b"outside", ScriptedFace(identity(10))))
        (self.root / "obama" / "link.jpg").symlink_to(outside)


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[ScriptedDataset]:
    kit = make_kit(tmp_path, students=(), enrol=False)
    dataset = ScriptedDataset(kit)
    dataset.messy(tmp_path / "outside.jpg")
    yield dataset
    kit.services.close()


def _reasons(report: Any) -> dict[str, str]:
    return {skipped.path: skipped.reason for skipped in report.skipped}


def test_every_skipped_photo_has_its_reason(scripted: ScriptedDataset) -> None:
    report = scripted.kit.services.enrolment.enroll()
    assert report.summary().startswith(
        "2 students, 4 photos enrolled, 6 skipped (8 analysed, 0 from cache, 0 removed)"
    )
    reasons = _reasons(report)
    assert reasons == {
        "obama/dogs.jpg": "no face found",
        "obama/group.jpg": "2 faces found, need exactly one",
        "george_w_bush/tiny.jpg": "face is 40 px wide, too small to trust (minimum 60 px)",
        "george_w_bush/broken.jpg": reasons["george_w_bush/broken.jpg"],
        "obama/link.jpg": "link to a file outside the dataset",
        "bad\x07name/": "folder name contains control characters",
    }
    assert reasons["george_w_bush/broken.jpg"].startswith("the image cannot be decoded")
    assert scripted.kit.services.enrolment.enrolled() == ["george_w_bush", "obama"]


def test_enrolment_is_incremental(scripted: ScriptedDataset) -> None:
    enrolment = scripted.kit.services.enrolment
    enrolment.enroll()
    again = enrolment.enroll().summary()
    assert "2 students, 4 photos enrolled, 6 skipped (0 analysed, 8 from cache" in again

    scripted.photo("george_w_bush/new.jpg", scripted.face("george_w_bush", 5))
    (scripted.root / "obama" / "2.jpg").unlink()
    added = enrolment.enroll().summary()
    assert "2 students, 4 photos enrolled, 6 skipped (1 analysed, 7 from cache, 1 removed)" in added

    # A changed file (same name, new content) is re-read; a fixed photo is enrolled.
    scripted.photo("george_w_bush/broken.jpg", scripted.face("george_w_bush", 7))
    report = enrolment.enroll()
    assert "2 students, 5 photos enrolled, 5 skipped (1 analysed, 7 from cache" in report.summary()
    assert "george_w_bush/broken.jpg" not in _reasons(report)


def test_student_names_are_untrusted_text(tmp_path: Path) -> None:
    """A folder named like a spreadsheet formula is enrolled but neutralised in the CSV files."""
    kit = make_kit(tmp_path, students=(EVIL,))
    try:
        assert kit.services.enrolment.enrolled() == [EVIL]
        body = kit.recognize(kit.probe(EVIL)).get_json()
        assert body["status"] == "success", body
        assert body["name"] == EVIL
    finally:
        kit.services.close()
    day_file = next(kit.logs.glob("attendance_*.csv"))
    with open(day_file, newline="") as handle:
        [row] = list(csv.DictReader(handle))
    assert row["Name"] == "'" + EVIL  # a spreadsheet shows the text, it does not run it
    with open(kit.logs / "student_statistics.csv", newline="") as handle:
        [stats] = list(csv.DictReader(handle))
    assert stats["Student Name"] == "'" + EVIL


def test_probe_decodes_with_exif_rotation() -> None:
    """A phone photo stored sideways with an EXIF orientation tag is turned upright first."""
    upright = np.full((200, 300, 3), 200, np.uint8)
    upright[:50, :50] = (255, 0, 0)  # a red corner, top left when upright
    image = Image.fromarray(upright)
    rotated = image.rotate(90, expand=True)  # stored turned a quarter counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": undoes the rotation above
    out = io.BytesIO()
    rotated.save(out, format="JPEG", exif=exif, quality=95)
    decoded = imaging.decode(out.getvalue(), 10**8)
    assert decoded.shape[:2] == (image.height, image.width)
    assert decoded[5:45, 5:45, 0].mean() > 230 and decoded[5:45, 5:45, 1].mean() < 40
    assert decoded[-45:, -45:, 0].mean() < 230  # not the corner it was stored in


# --- real photos, dlib in this process --------------------------------------------------------


@pytest.fixture
def messy_dataset(tmp_path: Path, faces: Path) -> Path:
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


class Borrowed:
    """The session's analyzer, lent to a command that closes what it is given."""

    def __init__(self, analyzer: Analyzer) -> None:
        self._analyzer = analyzer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._analyzer, name)

    def close(self) -> None:
        """Kept open for the other tests."""


@pytest.mark.real
def test_enroll_command_reports_every_skipped_real_photo(
    messy_dataset: Path,
    tmp_path: Path,
    real_analyzer: Analyzer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_module, "make_analyzer", lambda *_args: Borrowed(real_analyzer))
    for name in [n for n in os.environ if n.startswith("ATTENDANCE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    env = {
        "ATTENDANCE_DATASET_DIR": str(messy_dataset),
        "ATTENDANCE_DATA_DIR": str(tmp_path / "data"),
        "ATTENDANCE_REQUIRE_CONSENT": "0",
    }
    result = CliRunner().invoke(cli_main, ["enroll"], env=env)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "2 students, 4 photos enrolled, 6 skipped (8 analysed, 0 from cache, 0 removed)" in out
    assert "obama/dogs.jpg: no face found" in out
    assert "obama/group.jpg: 2 faces found, need exactly one" in out
    assert "george_w_bush/tiny.jpg: face is" in out and "too small to trust" in out
    assert "george_w_bush/broken.jpg: the image cannot be decoded" in out
    assert "obama/link.jpg: link to a file outside the dataset" in out
    assert "folder name contains control characters" in out
    assert "notes.txt" not in out
    again = CliRunner().invoke(cli_main, ["enroll"], env=env)
    assert "2 students, 4 photos enrolled, 6 skipped (0 analysed, 8 from cache" in again.stdout


@pytest.mark.real
def test_the_enroll_command_prints_its_answer_and_no_log_noise(tmp_path: Path) -> None:
    """A child process, so the command sets up its own logging (here, pytest's would)."""
    (tmp_path / "dataset" / "bob_hope").mkdir(parents=True)
    (tmp_path / "dataset" / "bob_hope" / "1.jpg").write_bytes(b"never read: no consent yet")
    env = {"ATTENDANCE_WORKERS": "1"}  # consent required: nobody's photo is read
    result = run_cli("enroll", env=env, cwd=tmp_path, timeout_s=120)
    assert result.returncode == 0, result.stderr
    # No Alembic plug-in or migration lines, no INFO lines of the server's log.
    assert result.stderr.splitlines() == [
        f"Data folder: {tmp_path / 'data'}",
        f"Dataset folder: {tmp_path / 'dataset'}",
    ]
    assert result.stdout.startswith(
        "Enrolment: 0 students, 0 photos enrolled, 0 skipped, 1 awaiting"
    )
