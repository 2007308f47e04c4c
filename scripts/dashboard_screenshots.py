"""Screenshots of the dashboard for docs/dashboard.md, made from synthetic data only: a made-up
school whose students are drawn placeholder portraits (no real face), faces recognised by the
tests' scripted analyzer, a fixed clock. The real app is served on loopback and photographed by
headless Chromium (Debian's) at 360 px and 1280 px.

    .venv/bin/python scripts/dashboard_screenshots.py [--out docs/img]

Needs the dev install (tests/ on the path: the scripted analyzer and the browser helpers).
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import threading
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from PIL import Image, ImageDraw  # noqa: E402

from browser import screenshot, set_width, start_browser, wait_for  # noqa: E402
from scripted import ScriptedAnalyzer, ScriptedFace, identity, near  # noqa: E402
from smart_attendance.app import build_services  # noqa: E402
from smart_attendance.config import Settings  # noqa: E402
from smart_attendance.web import create_app  # noqa: E402

PARIS = ZoneInfo("Europe/Paris")
TODAY = datetime(2026, 11, 26, 9, 40, tzinfo=PARIS)  # a Thursday, during the second period
PASSWORD = "documentation only"  # noqa: S105 - a throwaway school in a temporary folder
CLASSES = {
    "5A": [
        "amara_okafor",
        "ben_carter",
        "chloe_dubois",
        "diego_santos",
        "emma_novak",
        "farid_haddad",
    ],
    "5B": ["grace_lee", "hugo_martin", "ines_moreau", "jonas_berg", "kira_ivanova"],
}
TIMETABLE = """
[[class]]
name = "5A"
teachers = ["a.teacher@school.example"]
students = [{a}]
  [[class.period]]
  days = ["mon", "tue", "wed", "thu", "fri"]
  start = "08:30"
  end = "09:25"
  late_after_minutes = 10
  [[class.period]]
  days = ["mon", "tue", "wed", "thu", "fri"]
  start = "09:35"
  end = "10:30"
  late_after_minutes = 5

[[class]]
name = "5B"
students = [{b}]
  [[class.period]]
  days = ["mon", "tue", "wed", "thu", "fri"]
  start = "08:30"
  end = "09:25"
  late_after_minutes = 10
"""
# The names the pages show (the folders keep theirs); accents as a school has them.
DISPLAY = {"chloe_dubois": "Chloé Dubois", "ines_moreau": "Inès Moreau", "jonas_berg": "Jonas Berg"}
SKIN = ["#f1c27d", "#e0ac69", "#c68642", "#8d5524", "#ffdbac", "#d1a17a"]
HAIR = ["#2b1b0e", "#4a2f1b", "#b5651d", "#111111", "#d6b370", "#6b3e26"]
BACKDROP = ["#dbeafe", "#dcfce7", "#fef3c7", "#fce7f3", "#e0e7ff", "#f3f4f6"]


def portrait(seed: int, size: tuple[int, int] = (320, 400), variant: int = 0) -> bytes:
    """A drawn placeholder portrait (no real face): head, hair, eyes, a smile; ``variant``
    changes only the backdrop (another photo of the same made-up person)."""
    rng = random.Random(seed)
    w, h = size
    image = Image.new("RGB", size, BACKDROP[(seed + variant) % len(BACKDROP)])
    rng.random()
    draw = ImageDraw.Draw(image)
    skin, hair = rng.choice(SKIN), rng.choice(HAIR)
    draw.ellipse(
        (w * 0.18, h * 0.78, w * 0.82, h * 1.3),
        fill=rng.choice(["#1d4ed8", "#15803d", "#7c2d12", "#374151"]),
    )
    draw.ellipse((w * 0.25, h * 0.14, w * 0.75, h * 0.7), fill=hair)
    draw.ellipse((w * 0.29, h * 0.22, w * 0.71, h * 0.72), fill=skin)
    draw.chord((w * 0.27, h * 0.12, w * 0.73, h * 0.42), 180, 360, fill=hair)
    for x in (0.41, 0.59):
        draw.ellipse((w * x - 9, h * 0.43 - 6, w * x + 9, h * 0.43 + 6), fill="#ffffff")
        draw.ellipse((w * x - 4, h * 0.43 - 4, w * x + 4, h * 0.43 + 4), fill="#1f2937")
    draw.arc((w * 0.42, h * 0.52, w * 0.58, h * 0.62), 20, 160, fill="#7f1d1d", width=4)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()


def build_school(base: Path) -> tuple[object, object, ScriptedAnalyzer]:
    """Services and app over a synthetic school with three weeks of marks."""
    from conftest import FixedClock

    quoted = {k: ", ".join(f'"{s}"' for s in v) for k, v in CLASSES.items()}
    timetable = base / "timetable.toml"
    timetable.write_text(TIMETABLE.format(a=quoted["5A"], b=quoted["5B"]), encoding="utf-8")
    settings = Settings(
        api_key="documentation-key-0123456789",
        session_secret="documentation-session-key",  # noqa: S106 - throwaway
        dataset_dir=base / "dataset",
        data_dir=base / "data",
        timezone="Europe/Paris",
        timetable=timetable,
        intruder_threshold=2,
        session_idle_minutes=24 * 60,
    )
    analyzer = ScriptedAnalyzer()
    people = {}
    names = [n for roster in CLASSES.values() for n in roster]
    for i, name in enumerate(names):
        people[name] = identity(i)
        folder = settings.dataset_dir / name
        folder.mkdir(parents=True)
        for n in (1, 2):
            photo = portrait(i, variant=n)
            analyzer.add(photo, ScriptedFace(near(people[name], 0.1, n)))
            (folder / f"{n}.jpg").write_bytes(photo)
    clock = FixedClock(TODAY - timedelta(days=25))
    services = build_services(settings, clock=clock, analyzer=analyzer)
    services.enrolment.enroll()  # nobody yet: consent first
    refused = names[-1]
    services.consent.record(
        [n for n in names if n != refused], "given", "their parents", "forms 2026", "cli:office"
    )
    services.consent.record([refused], "refused", "their father", "", "cli:office")
    app = create_app(services)
    client = app.test_client()
    for name in names:
        shown = DISPLAY.get(name) or name.replace("_", " ").title()
        client.patch(
            f"/students/{name}",
            json={"display_name": shown},
            headers={"X-API-KEY": settings.api_key},
        )
    rng = random.Random(7)

    def scan(name: str | None, when: datetime, seed: int) -> None:
        clock.set(when)
        if name is None:
            data = analyzer.add(portrait(900 + seed), ScriptedFace(identity(5000 + seed)))
        else:
            data = analyzer.add(
                f"probe:{name}:{seed}".encode(), ScriptedFace(near(people[name], 0.15, seed))
            )
        client.post(
            "/recognize",
            data={"image": [(io.BytesIO(data), "f.jpg")], "camera": "door-5a"},
            headers={"X-API-KEY": settings.api_key},
        )

    day = (TODAY - timedelta(days=24)).replace(hour=8, minute=0)
    seed = 0
    while day.date() <= TODAY.date():
        if day.weekday() < 5:
            last = day.date() == TODAY.date()
            for name in names:
                seed += 1
                roll = rng.random() - (0.25 if name in ("diego_santos", "kira_ivanova") else 0)
                if roll < 0.08:
                    continue  # absent
                minute = rng.randint(20, 29) if roll > 0.2 else rng.randint(41, 50)
                if last and name in ("emma_novak", "jonas_berg"):
                    continue  # not yet seen today
                scan(name, day.replace(hour=8, minute=minute), seed)
                if name in CLASSES["5A"] and not last:
                    scan(name, day.replace(hour=9, minute=rng.randint(30, 38)), seed + 5000)
        day += timedelta(days=1)
    for n in range(2):  # a stranger at the door this morning: photographed
        scan(None, TODAY.replace(hour=8, minute=47, second=n), 1)
    # A face near a student but not near enough to name her: queued for a person to decide.
    clock.set(TODAY.replace(hour=9, minute=36))
    near_miss = analyzer.add(
        portrait(3, variant=3), ScriptedFace(near(people["diego_santos"], 0.5, 77))
    )
    client.post(
        "/recognize",
        data={"image": [(io.BytesIO(near_miss), "f.jpg")], "camera": "door-5a"},
        headers={"X-API-KEY": settings.api_key},
    )
    # The office excused an absence and corrected a mark.
    from smart_attendance.attendance import corrections

    for name, day, status, reason in (
        ("diego_santos", TODAY.date() - timedelta(days=7), "Excused", "doctor's note"),
        ("diego_santos", TODAY.date() - timedelta(days=3), "Present", "camera missed him"),
        ("hugo_martin", TODAY.date(), "Excused", "family emergency, phoned in"),
    ):
        clock.set(TODAY.replace(hour=9, minute=30))
        corrections.correct(
            services.attendance,
            services.files,
            name=name,
            day=day,
            status=status,
            reason=reason,
            by="user:office",
            class_name="5A" if name == "diego_santos" else "5B",
            period="08:30",
        )
    clock.set(TODAY)
    return services, app, analyzer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    from werkzeug.serving import make_server

    with tempfile.TemporaryDirectory() as folder:
        services, app, _ = build_school(Path(folder))
        services.accounts.add("admin", "admin", PASSWORD)  # type: ignore[attr-defined]
        services.accounts.add("m.teacher", "teacher", PASSWORD, ["5A"])  # type: ignore[attr-defined]
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}"
        driver = start_browser()
        try:
            driver.get(url + "/login")
            driver.find_element("id", "username").send_keys("admin")
            driver.find_element("id", "password").send_keys(PASSWORD + "\n")
            wait_for(lambda: "/login" not in driver.current_url, what="sign-in")
            pages = {
                "today": "/",
                "student": "/student/diego_santos",
                "class": "/class/5A",
                "review": "/review",
                "enrol": "/enrol/amara_okafor",
                "enrol-list": "/enrol",
                "reports": "/reports?class=5A",
                "admin": "/admin",
                "audit": "/admin/audit",
            }
            args.out.mkdir(parents=True, exist_ok=True)
            for name, path in pages.items():
                for width in (360, 1280):
                    set_width(driver, width)
                    driver.get(url + path)
                    target = args.out / f"dashboard-{name}-{width}.png"
                    screenshot(driver, target)
                    shrink(target, 1800 if width == 360 else 1500)
                    print(target.relative_to(ROOT) if target.is_relative_to(ROOT) else target)
            driver.delete_all_cookies()
            set_width(driver, 360)
            driver.get(url + "/login")
            target = args.out / "dashboard-login-360.png"
            screenshot(driver, target)
            shrink(target, 900)
        finally:
            driver.quit()
            server.shutdown()
            services.close()  # type: ignore[attr-defined]


def shrink(path: Path, max_height: int) -> None:
    """Keep the top of a long page and 256 colours: small files for the docs."""
    image = Image.open(path).convert("RGB")
    if image.height > max_height:
        image = image.crop((0, 0, image.width, max_height))
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


if __name__ == "__main__":
    main()
