"""Sends queued scans to the server in capture order, in a background thread, with back-off
while the server is unreachable; reports the connection state and the last answer. A scan is a
burst of frames (``POST /recognize``) or a badge read at the door (``POST /checkin``); a badge
the server refuses (403) is answered like a refused scan: shown, and not kept in the queue.

The HTTP session can be passed in (``session``): the tests hand it a ``requests.Session``
whose transport is the app in the same process, so the queue is tested without sockets."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import requests

from ..models import Recognition
from .outbox import Outbox, Scan

log = logging.getLogger(__name__)


class Uploader:
    def __init__(
        self,
        outbox: Outbox,
        server: str,
        key: str,
        on_answer: Callable[[Scan, Recognition], None] | None = None,
        timeout_s: float = 15.0,
        session: requests.Session | None = None,
    ) -> None:
        self.outbox = outbox
        self.url = server.rstrip("/") + "/recognize"
        self.checkin_url = server.rstrip("/") + "/checkin"
        self.key = key
        self.on_answer = on_answer
        self.timeout_s = timeout_s
        self.state = "connecting"  # online | offline | denied
        self.sent = 0
        # One keep-alive connection for every scan, instead of a TCP handshake per scan.
        self._session = session if session is not None else requests.Session()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():  # stopping an uploader that never started is fine
            self._thread.join(timeout=5)
        self._session.close()

    def check(self) -> None:
        """Ask the server's /health, for the HUD's connection state while idle."""
        try:
            response = self._session.get(self.url.removesuffix("/recognize") + "/health", timeout=3)
        except requests.RequestException:
            self.state = "offline"
            return
        self.state = "online" if response.status_code in (200, 503) else "offline"

    def _run(self) -> None:
        delay = 0.5
        last_check = 0.0
        while not self._stop.is_set():
            scans = self.outbox.pending()
            if not scans:
                if time.monotonic() - last_check > 5:
                    self.check()
                    last_check = time.monotonic()
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            ok = self.send(scans[0])
            if ok:
                delay = 0.5
                continue
            self._stop.wait(delay)
            delay = min(delay * 2, 30.0)

    def send(self, scan: Scan) -> bool:
        """Send one scan; True when the server gave a final answer (the scan is removed)."""
        try:
            response = self._post(scan)
        except requests.RequestException as exc:
            self.state = "offline"
            log.info(
                "server unreachable (%s); %d scan(s) queued", type(exc).__name__, len(self.outbox)
            )
            return False
        if response.status_code == 401:
            self.state = "denied"
            log.error("the server refused the API key; scans stay queued")
            return False
        if response.status_code >= 500 or response.status_code == 429:
            self.state = "offline"
            return False
        self.state = "online"
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"status": "error", "error": f"HTTP {response.status_code}"}
        answer = Recognition.from_json(body)
        if response.status_code >= 400:
            kind = "badge" if scan.badge else "scan"
            log.warning("the server refused a %s: %s", kind, answer.reason)
        self.outbox.done(scan)
        self.sent += 1
        if self.on_answer:
            self.on_answer(scan, answer)
        return True

    def _post(self, scan: Scan) -> requests.Response:
        headers = {"X-API-KEY": self.key}
        if scan.badge is not None:
            body = {
                "badge": scan.badge,
                "camera": scan.camera,
                "event_id": scan.event_id,
                "captured_at": scan.captured_at,
            }
            return self._session.post(
                self.checkin_url, json=body, headers=headers, timeout=self.timeout_s
            )
        files = [
            ("image", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(scan.frames())
        ]
        form = {
            "camera": scan.camera,
            "event_id": scan.event_id,
            "captured_at": scan.captured_at,
            "fps": f"{scan.fps:g}",
        }
        return self._session.post(
            self.url, files=files, data=form, headers=headers, timeout=self.timeout_s
        )
