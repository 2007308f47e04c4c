"""The dashboard in a real Chromium (Debian's, driven by Selenium) against a real server
process on real faces: sign in with the keyboard, a face posted to /recognize shows on Today
without a reload, corrections and their history, excusing, what a teacher may not open,
enrolment from an uploaded photo and from the browser's camera, the review of an intruder, and
the exports downloaded and opened. Every page is also opened at 360 px and 1280 px: screenshots
go to tests/.cache/screens (look at them) and each width is checked for sideways scrolling,
unlabelled fields and contrast under WCAG AA."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from browser import (
    browser,
    check_page,
    document_width,
    require_chromium,
    screenshot,
    serving,
    set_width,
    start_browser,
    wait_for,
    y4m_clip,
)
from conftest import (
    API_KEY,
    FACES,
    PROBES,
    STUDENTS,
    TEST_DATA,
    ServerProcess,
    build_dataset,
    face_bytes,
    require_faces,
    run_cli,
)

pytestmark = [pytest.mark.real, pytest.mark.browser]

SCREENS = TEST_DATA / "screens"
PASSWORD = "a long enough password"
# Two classes that run all day, every day (the server runs on the real clock): nobody is Late.
TIMETABLE = """
[[class]]
name = "room-a"
students = ["obama", "biden", "george_w_bush"]
  [[class.period]]
  days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
  start = "00:00"
  end = "23:59"
  late_after_minutes = 1439

[[class]]
name = "room-b"
students = ["colin_powell", "donald_rumsfeld", "al_gore", "john_howard"]
  [[class.period]]
  days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
  start = "00:00"
  end = "23:59"
  late_after_minutes = 1439
"""


@dataclass
class School:
    server: ServerProcess
    driver: Any
    base: Path

    def open(self, path: str) -> None:
        self.driver.get(self.server.url + path)

    def sign_in(self, name: str) -> None:
        """Sign ``name`` in from a fresh session, with the keyboard only."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        self.driver.delete_all_cookies()
        self.open("/login")
        field = self.driver.find_element(By.ID, "username")
        field.send_keys(name)
        field.send_keys(Keys.TAB)
        active = self.driver.switch_to.active_element
        assert active.get_attribute("id") == "password"  # the next field in tab order
        active.send_keys(PASSWORD + Keys.ENTER)
        wait_for(lambda: "/login" not in self.driver.current_url, what="signed in")

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        body: str = self.driver.find_element(By.TAG_NAME, "body").text
        return body


def _add_user(server: ServerProcess, name: str, role: str, classes: str = "") -> None:
    """``attendance users add`` in a child process, on the server's data folder."""
    args = ["users", "add", name, "--role", role, "--password-stdin"]
    if classes:
        args += ["--classes", classes]
    env = {
        "ATTENDANCE_DATA_DIR": str(server.data_dir),
        "ATTENDANCE_DATASET_DIR": str(server.dataset),
        "ATTENDANCE_TIMETABLE": server.env["ATTENDANCE_TIMETABLE"],
    }
    done = run_cli(*args, env=env, cwd=server.data_dir, input=PASSWORD + "\n", timeout_s=120)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[School]:
    require_chromium()
    require_faces()
    base = tmp_path_factory.mktemp("browser")
    timetable = base / "timetable.toml"
    timetable.write_text(TIMETABLE, encoding="utf-8")
    server = ServerProcess(
        build_dataset(base / "dataset", STUDENTS),
        base / "data",
        env={"ATTENDANCE_TIMETABLE": str(timetable), "ATTENDANCE_INTRUDER_THRESHOLD": "2"},
    )
    server.data_dir.mkdir(parents=True, exist_ok=True)
    for name, role, classes in (
        ("ada", "admin", ""),
        ("olga", "office", ""),
        ("tom", "teacher", "room-a"),
    ):
        _add_user(server, name, role, classes)
    server.start()
    server.joined_today(list(STUDENTS))
    driver = start_browser(download_dir=base / "downloads")
    try:
        yield School(server, driver, base)
    finally:
        driver.quit()
        server.stop()


def _board_status(school: School, student: str) -> list[str]:
    """The status words on Today for ``student`` (one per period)."""
    from selenium.webdriver.common.by import By

    found = []
    for row in school.driver.find_elements(By.CSS_SELECTOR, "#board .roster > li"):
        if row.find_element(By.CSS_SELECTOR, ".name").text == student:
            found.append(row.find_element(By.CSS_SELECTOR, ".chip").text)
    return found


def test_sign_in_with_the_keyboard_and_a_scan_appears_on_today_without_reload(
    school: School,
) -> None:
    school.sign_in("ada")
    assert "Today" in school.driver.title
    assert _board_status(school, "george_w_bush") == ["Not yet seen"]
    school.driver.execute_script("window.notReloaded = 'yes'")
    answer = school.server.recognize(face_bytes(PROBES["george_w_bush"]), camera="door-a")
    assert answer.json()["name"] == "george_w_bush"
    wait_for(
        lambda: _board_status(school, "george_w_bush") == ["Present"],
        timeout_s=20,
        what="the board to show the scan",
    )
    assert school.driver.execute_script("return window.notReloaded") == "yes"


def test_correct_a_mark_then_see_its_history_and_excuse_an_absence(school: School) -> None:
    from selenium.webdriver.common.by import By

    school.sign_in("olga")
    school.open("/?class=room-b")
    # The board refreshes itself: on a busy machine the roster may still be on its way.
    row = wait_for(
        lambda: next(
            (
                r
                for r in school.driver.find_elements(By.CSS_SELECTOR, "#board .roster > li")
                if r.find_element(By.CSS_SELECTOR, ".name").text == "colin_powell"
            ),
            None,
        ),
        what="colin_powell on the room-b board",
    )
    row.find_element(By.XPATH, ".//button[normalize-space()='Late']").click()
    wait_for(lambda: _board_status(school, "colin_powell") == ["Late"], what="Late by hand")
    assert "colin_powell: Late in room-b" in school.text()
    # Excuse another student, with the reason typed in the disclosure.
    row = next(
        r
        for r in school.driver.find_elements(By.CSS_SELECTOR, "#board .roster > li")
        if r.find_element(By.CSS_SELECTOR, ".name").text == "donald_rumsfeld"
    )
    row.find_element(By.TAG_NAME, "summary").click()
    reason = row.find_element(By.NAME, "reason")
    reason.send_keys("dentist")
    row.find_element(By.XPATH, ".//button[normalize-space()='Excuse']").click()
    wait_for(lambda: _board_status(school, "donald_rumsfeld") == ["Excused"], what="Excused")
    # The student's page lists the correction.
    school.open("/student/colin_powell")
    wait_for(lambda: "user:olga" in school.text(), what="the history on the student page")
    assert "Late" in school.text()


def test_a_teacher_cannot_open_another_class_nor_the_admin_pages(school: School) -> None:
    school.sign_in("tom")
    school.open("/")
    assert "room-a" in school.text() and "room-b" not in school.text()
    for path in ("/class/room-b", "/admin", "/student/colin_powell", "/?class=room-b"):
        school.open(path)
        assert "Not allowed" in school.text(), path
    school.open("/class/room-a")
    assert "Not allowed" not in school.text()


def _student_recognised(school: School, photo: str, name: str) -> None:
    answer = school.server.recognize(face_bytes(photo), camera="door-b").json()
    assert answer["name"] == name, answer


def test_enrol_a_student_from_an_uploaded_photo_then_recognise_them(school: School) -> None:
    from selenium.webdriver.common.by import By

    school.sign_in("olga")
    school.open("/enrol")
    school.driver.find_element(By.ID, "new-name").send_keys("al_gore")
    school.driver.find_element(By.CSS_SELECTOR, "input[name=classes][value=room-b]").click()
    school.driver.find_element(By.XPATH, "//button[normalize-space()='Add student']").click()
    wait_for(lambda: school.driver.current_url.endswith("/enrol/al_gore"), what="student page")
    upload = school.driver.find_element(By.ID, "photo-files")
    upload.send_keys(str(FACES / "lfw/al_gore/1.jpg"))
    school.driver.find_element(By.CSS_SELECTOR, "[data-upload-form] button[type=submit]").click()
    wait_for(
        lambda: "Enrolled" in school.driver.find_element(By.CSS_SELECTOR, "[data-photos]").text,
        timeout_s=30,
        what="the uploaded photo enrolled",
    )
    _student_recognised(school, "lfw/al_gore/2.jpg", "al_gore")


def test_enrol_a_student_from_the_browsers_camera_then_recognise_them(school: School) -> None:
    import cv2
    from selenium.webdriver.common.by import By

    clip = y4m_clip(cv2.imread(str(FACES / "lfw/john_howard/1.jpg")), school.base / "camera.y4m")
    with browser(fake_camera=clip) as driver:
        cam = School(school.server, driver, school.base)
        cam.sign_in("olga")
        cam.open("/enrol")
        driver.find_element(By.ID, "new-name").send_keys("john_howard")
        driver.find_element(By.XPATH, "//button[normalize-space()='Add student']").click()
        wait_for(lambda: driver.current_url.endswith("/enrol/john_howard"), what="student page")
        driver.find_element(By.CSS_SELECTOR, "[data-camera-start]").click()
        take = driver.find_element(By.CSS_SELECTOR, "[data-camera-take]")
        wait_for(take.is_enabled, what="the camera to start")
        time.sleep(0.5)  # a few frames of the clip
        take.click()
        feedback = driver.find_element(By.CSS_SELECTOR, "[data-feedback]")
        wait_for(lambda: "sharp" in feedback.text.lower(), timeout_s=30, what="the checks")
        text = feedback.text
        assert "fail" not in text.lower() and "refused" not in text.lower(), text
        wait_for(
            lambda: "Enrolled" in driver.find_element(By.CSS_SELECTOR, "[data-photos]").text,
            what="the photo in the list",
        )
    _student_recognised(school, "lfw/john_howard/2.jpg", "john_howard")


def test_review_an_intruder_photo_and_name_the_student(school: School) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    for n in (1, 2):  # ATTENDANCE_INTRUDER_THRESHOLD=2 unknown frames in a row: photographed
        answer = school.server.recognize(face_bytes(f"lfw/keanu_reeves/{n}.jpg"), camera="door-a")
        assert answer.json()["status"] == "unknown"
    school.sign_in("olga")
    school.open("/review")
    forms = school.driver.find_elements(By.CSS_SELECTOR, "form select[name=student]")
    assert len(forms) == 1, school.text()
    Select(forms[0]).select_by_value("obama")
    school.driver.find_element(By.XPATH, "//button[normalize-space()='This is…']").click()
    wait_for(lambda: "obama" in school.text() and "marked" in school.text().lower(), what="flash")
    day = school.server.get("/attendance?class=room-a").json()
    [entry] = [
        s for p in day["classes"][0]["periods"] for s in p["students"] if s["name"] == "obama"
    ]
    assert entry["status"] == "Present" and entry["source"] == "review:olga"


def test_download_the_exports_and_open_them(school: School) -> None:
    from openpyxl import load_workbook
    from selenium.webdriver.common.by import By

    downloads = school.base / "downloads"
    school.sign_in("olga")
    school.open("/reports?class=room-b")
    for label in ("Download CSV", "Download Excel (XLSX)"):
        school.driver.find_element(By.LINK_TEXT, label).click()
    csv_file = wait_for(lambda: next(downloads.glob("*.csv"), None), what="the CSV file")
    xlsx_file = wait_for(lambda: next(downloads.glob("*.xlsx"), None), what="the XLSX file")
    wait_for(lambda: not list(downloads.glob("*.crdownload")), what="downloads to finish")
    with csv_file.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    powell = [r for r in rows if r["Student"] == "colin_powell"]
    assert powell and powell[0]["Status"] == "Late" and powell[0]["Class"] == "room-b"
    sheet = load_workbook(xlsx_file)["Register"]
    header = [c.value for c in sheet[1]]
    students = {
        row[header.index("Student")] for row in sheet.iter_rows(min_row=2, values_only=True)
    }
    assert {"colin_powell", "donald_rumsfeld"} <= students


def test_every_page_reads_at_360_and_1280_px(school: School) -> None:
    """Screenshots in tests/.cache/screens; no sideways scrolling, labelled fields, AA."""
    school.sign_in("ada")
    for name, path in (
        ("today", "/"),
        ("student", "/student/colin_powell"),
        ("class", "/class/room-b"),
        ("review", "/review"),
        ("enrol", "/enrol"),
        ("enrol-student", "/enrol/al_gore"),
        ("reports", "/reports?class=room-b"),
        ("admin", "/admin"),
        ("audit", "/admin/audit"),
    ):
        check_page(school.driver, school.server.url + path, name, SCREENS)
    school.driver.delete_all_cookies()
    check_page(school.driver, school.server.url + "/login", "login", SCREENS)
    set_width(school.driver, 1280)


# --- every page fits a phone, with the widest content a school has ------------------------------

NARROW = 360
LONG_NAME = "maximiliana_vanderbergh_oyelaran"  # a folder name with no space to break at
CROWDED_TIMETABLE = f"""
[[class]]
name = "year-7-mathematics-and-science"
teachers = ["head.of.mathematics@greenfield-secondary.example"]
students = ["{LONG_NAME}", "ana_lima", "ben_ito", "Zoe_Martin"]
  [[class.period]]
  days = ["mon", "tue", "wed", "thu", "fri"]
  start = "08:30"
  end = "09:25"
  late_after_minutes = 10
  [[class.period]]
  days = ["mon", "tue", "wed", "thu", "fri"]
  start = "09:30"
  end = "10:25"

[[class]]
name = "art-and-design"
students = ["{LONG_NAME}", "ben_ito", "cleo_park"]
  [[class.period]]
  days = ["mon"]
  start = "09:00"
  end = "10:00"
"""


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, Any]]:
    """A school whose pages are as wide as they get: a long folder name, display names, a
    student in two classes, consent required (and awaited), corrections with a long reason, an
    uncertain face and an intruder photo, a camera key. Scripted faces and a fixed clock: the
    app of this process served on loopback (no real face needed). (kit, URL, browser)."""
    require_chromium()
    import io as _io

    from PIL import Image

    from conftest import PARIS, make_kit
    from scripted import ScriptedFace, identity, near
    from smart_attendance.attendance import corrections

    def jpeg(seed: int) -> bytes:
        out = _io.BytesIO()
        Image.new("RGB", (320, 240), (seed * 40 % 256, 120, 90)).save(out, format="JPEG")
        return out.getvalue()

    base = tmp_path_factory.mktemp("crowded")
    timetable = base / "timetable.toml"
    timetable.write_text(CROWDED_TIMETABLE, encoding="utf-8")
    monday = datetime(2026, 11, 23, 8, 20, tzinfo=PARIS)
    kit = make_kit(
        base,
        students=("ana_lima", "ben_ito", "cleo_park", LONG_NAME, "Zoe_Martin"),
        now=monday,
        timetable=timetable,
        require_consent=True,
        session_idle_minutes=24 * 60,
    )
    services = kit.services
    services.accounts.add("ada", "admin", PASSWORD)
    services.keys.add("door-north-building-main-entrance")
    for name, shown in (
        (LONG_NAME, "Maximiliana van der Bergh-Oyelaran"),
        ("Zoe_Martin", "Zoë Martín"),
        ("ana_lima", "Ana Lima"),
    ):
        kit.client.patch(
            f"/students/{name}", json={"display_name": shown}, headers={"X-API-KEY": API_KEY}
        )
    services.consent.record(["ana_lima", "ben_ito"], "given", "their parents", "F-1", "cli:t")
    kit.clock.set(monday.replace(hour=8, minute=35))
    kit.recognize(kit.probe("ana_lima"), camera="door-north-building-main-entrance")
    near_ana = kit.analyzer.add(jpeg(1), ScriptedFace(near(kit.people["ana_lima"], 0.49, 3)))
    kit.recognize(near_ana, camera="door-north-building-main-entrance")
    for n in range(kit.settings.intruder_threshold):
        stranger = kit.analyzer.add(jpeg(10 + n), ScriptedFace(identity(20_000 + n)))
        kit.recognize(stranger, camera="gate")
    kit.clock.set(monday.replace(hour=9, minute=40))
    for name, status, reason in (
        ("ben_ito", "Excused", "orthodontist appointment, letter from the parents on file"),
        (LONG_NAME, "Late", ""),
    ):
        corrections.correct(
            services.attendance,
            services.files,
            name=name,
            day=monday.date(),
            status=status,
            reason=reason,
            by="user:ada",
            class_name="year-7-mathematics-and-science",
            period="08:30",
        )
    with serving(kit.client.application) as url:
        driver = start_browser()
        try:
            yield kit, url, driver
        finally:
            driver.quit()
            services.close()


def test_every_page_fits_a_phone_with_long_names_and_consent_awaited(
    crowded: tuple[Any, str, Any],
) -> None:
    """At 360 px (and 1280 px) no page is wider than the screen: the Enrol page was 437 px on a
    phone, its Photos column and the Add form cut off. Screenshots of each page at both
    widths: tests/.cache/screens/crowded-NAME-WIDTH.png."""
    from selenium.webdriver.common.by import By

    _kit, url, driver = crowded
    pages = {
        "today": "/?date=2026-11-23",
        "student": f"/student/{LONG_NAME}?from=2026-11-23&to=2026-11-23",
        "class": "/class/year-7-mathematics-and-science?from=2026-11-23&to=2026-11-23",
        "review": "/review?date=2026-11-23",
        "enrol": "/enrol",
        "enrol-student": f"/enrol/{LONG_NAME}",
        "reports": "/reports?from=2026-11-23&to=2026-11-23",
        "admin": "/admin",
        "audit": "/admin/audit",
        "login": "/login",
    }
    wide = {}
    for width in (NARROW, 1280):
        # Not zoomed out as a phone zooms out a page too wide: the viewport stays this wide.
        set_width(driver, width, mobile=False)
        driver.delete_all_cookies()
        driver.get(url + "/login")
        driver.find_element(By.ID, "username").send_keys("ada")
        driver.find_element(By.ID, "password").send_keys(PASSWORD + "\n")
        wait_for(lambda: "/login" not in driver.current_url, what="signed in")
        for name, path in pages.items():
            if name == "login":
                driver.delete_all_cookies()
            driver.get(url + path)
            assert "Smart Attendance" in driver.title, (name, driver.title)
            if document_width(driver) > width:
                wide[f"{name} at {width} px"] = document_width(driver)
            screenshot(driver, SCREENS / f"crowded-{name}-{width}.png", mobile=False)
    assert wide == {}, f"pages wider than the screen: {wide}"
