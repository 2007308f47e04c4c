"""A real Chromium for the dashboard's tests: Debian's ``chromium`` and ``chromium-driver``
(installed by ``make install``), driven by Selenium with the system driver, so nothing is
downloaded at test time (Selenium Manager is never asked).

Also: screenshots at phone and desktop width, and checks a person would otherwise make by
eye: no sideways scrolling, every form field labelled, text contrast at WCAG AA.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
WIDTHS = (360, 1280)
HEIGHT = 900


def require_chromium() -> None:
    """Skip without Chromium and its driver (``make install`` brings them); fail in CI."""
    missing = [p for p in (CHROMIUM, DRIVER) if not (os.path.exists(p) or shutil.which(p))]
    if not missing:
        return
    reason = f"{' and '.join(missing)} not installed (make install: chromium, chromium-driver)"
    if os.environ.get("CI") or os.environ.get("REQUIRE_SHARED_DATA") == "1":
        pytest.fail(reason + " in CI")
    pytest.skip(reason)


def start_browser(
    download_dir: Path | None = None, fake_camera: Path | None = None, width: int = 1280
) -> Any:
    """A headless Chromium. ``fake_camera``: a Y4M clip served as the webcam, with the
    permission prompt answered yes."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        f"--window-size={width},{HEIGHT}",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    if fake_camera is not None:
        options.add_argument("--use-fake-device-for-media-stream")
        options.add_argument("--use-fake-ui-for-media-stream")
        options.add_argument(f"--use-file-for-fake-video-capture={fake_camera}")
    if download_dir is not None:
        options.add_experimental_option(
            "prefs",
            {
                "download.default_directory": str(download_dir),
                "download.prompt_for_download": False,
                "safebrowsing.enabled": False,
            },
        )
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


@contextmanager
def browser(**kwargs: Any) -> Iterator[Any]:
    driver = start_browser(**kwargs)
    try:
        yield driver
    finally:
        driver.quit()


def set_width(driver: Any, width: int, height: int = HEIGHT, mobile: bool | None = None) -> None:
    """Make the page's viewport ``width`` CSS pixels wide. Headless Chromium keeps windows at
    least 500 px wide, so a phone's width is emulated (DevTools' device metrics, as its
    device toolbar does): the page then lays out for exactly ``width``. ``mobile`` (default:
    under 500 px) also emulates a phone's zoom: a page wider than the screen is zoomed out,
    which widens the viewport; without it the viewport stays ``width`` whatever the page."""
    driver.set_window_size(max(width, 500) + 16, height + 120)
    phone = width < 500 if mobile is None else mobile
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": phone},
    )
    inner = driver.execute_script("return window.innerWidth")
    assert inner == width, f"viewport {inner} px, wanted {width}"


def screenshot(driver: Any, path: Path, mobile: bool | None = None) -> Path:
    """The whole page (not only the viewport) as a PNG, at the current width (``mobile`` as
    ``set_width``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width = driver.execute_script("return window.innerWidth")
    full = driver.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
    )
    set_width(driver, width, min(max(HEIGHT, int(full)), 6000), mobile)
    time.sleep(0.2)
    driver.save_screenshot(str(path))
    set_width(driver, width, mobile=mobile)
    return path


def wait_for(condition: Callable[[], Any], timeout_s: float = 15, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except Exception as exc:  # the page may be between two states
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what or condition}: last {last!r}")


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` (a Flask app of this process: the tests' kit, its fixed clock) served on a free
    loopback port by a thread; its URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def document_width(driver: Any) -> int:
    """How wide the page is laid out, in CSS pixels: wider than the window means the reader
    scrolls sideways (or, on a phone, the page zooms out)."""
    width: int = driver.execute_script("return document.documentElement.scrollWidth")
    return width


# --- what a reviewer checks by eye ---------------------------------------------------------------

PAGE_PROBLEMS_JS = (Path(__file__).parent / "page_checks.js").read_text(encoding="utf-8")


def page_problems(driver: Any) -> list[str]:
    """What fails at this width: sideways scrolling, unlabelled fields, low contrast."""
    found: list[str] = driver.execute_script(PAGE_PROBLEMS_JS)
    return found


def check_page(
    driver: Any, url: str, name: str, folder: Path, widths: Sequence[int] = WIDTHS
) -> None:
    """Open ``url`` at each width, screenshot it as ``folder/NAME-WIDTH.png`` and assert no
    problem a reviewer would see."""
    for width in widths:
        set_width(driver, width)
        driver.get(url)
        problems = page_problems(driver)
        screenshot(driver, folder / f"{name}-{width}.png")
        assert problems == [], f"{name} at {width} px: {problems}"


# --- a fake webcam --------------------------------------------------------------------------------


def y4m_clip(
    image: np.ndarray, path: Path, frames: int = 20, size: tuple[int, int] = (640, 480)
) -> Path:
    """A still photo (BGR) as a Y4M clip for ``--use-file-for-fake-video-capture``: the photo
    letterboxed into ``size``, repeated ``frames`` times at 10 fps."""
    import cv2

    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(
        image, (int(image.shape[1] * scale) // 2 * 2, int(image.shape[0] * scale) // 2 * 2)
    )
    canvas = np.full((height, width, 3), 40, dtype=np.uint8)
    top = (height - resized.shape[0]) // 2
    left = (width - resized.shape[1]) // 2
    canvas[top : top + resized.shape[0], left : left + resized.shape[1]] = resized
    yuv = cv2.cvtColor(canvas, cv2.COLOR_BGR2YUV_I420).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n")
            out.write(yuv)
    return path
