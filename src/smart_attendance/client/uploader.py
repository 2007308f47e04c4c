"""Sends queued scans to the server in capture order, in a background thread; reports the
connection state and the last answer. A scan is a burst of frames (``POST /recognize``) or a
badge read at the door (``POST /checkin``).

What each answer does to the scan (``send``):

* 2xx with the server's JSON answer: answered; shown, the scan deleted.
* 4xx but 401, 404, 405, 408, 429 (a bad camera id, a capture time out of the server's window,
  a revoked badge...): refused; shown as "Refused", logged with the server's reason, the scan
  moved to ``rejected/`` with it (``Outbox.reject``).
* 401: the key is wrong; every scan kept as it is, sending paused (``server: denied``) and tried
  again every ``paused_s``. 404, 405 (not this server's route: a wrong server URL): the same
  (``server: wrong url``).
* 408, 429, 5xx, a read timeout, or a 2xx that is not the server's JSON answer: kept; this scan
  backs off (``retry.json``: attempts, ``next_attempt_at``; exponential with jitter, from
  ``base_s`` up to ``cap_s``, at least the server's Retry-After) while the scans behind it are
  sent: the oldest *due* scan goes first.
* No connection (refused, DNS, connect timeout): kept and still due (no scan's fault, and the
  capture order is kept); the whole sender waits.

What stops scans from being sent (a refused key, a wrong URL, a server that cannot be reached
or is busy) is kept in ``problem`` and logged once when it starts, at WARNING or above (the
client's default log level), so a headless client is never silent about it; the client's stop
summary repeats it. A refused key is said with where the key came from (``key_from``).

After any try that got no final answer the sender also waits a little before the next one
(0.5 s, doubling up to 30 s, back to 0.5 s at the next final answer), so a server that is down
or overloaded is not hammered by every queued scan in turn.

The HTTP session can be passed in (``session``): the tests hand it a ``requests.Session``
whose transport is the app in the same process, so the queue is tested without sockets."""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from ..models import LIVENESS_FAILED, RECOGNISED, UNKNOWN, Recognition
from .outbox import Outbox, Retry, Scan

log = logging.getLogger(__name__)

ANSWERED = "answered"  # the server's answer: the scan deleted
REJECTED = "rejected"  # refused: the scan moved to rejected/
RETRY = "retry"  # kept, this scan in back-off
UNREACHABLE = "unreachable"  # kept, no connection
PAUSED = "paused"  # kept, sending paused (the key or the URL must be fixed)
GONE = "gone"  # the scan was moved away while being sent (by hand, or quarantined)
FINAL = frozenset({ANSWERED, REJECTED})

PAUSE_STATES = {401: "denied", 404: "wrong url", 405: "wrong url"}


def _retry_after_s(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(raw)) if raw else None
    except ValueError:
        return None  # an HTTP date: the back-off decides


def key_refused(key_from: str = "") -> str:
    """What a 401 means for the client: which key was refused and how to fix it."""
    if key_from == "API_SECRET_KEY":
        what = "the API key in API_SECRET_KEY"
    elif key_from:
        what = f"the key read from {key_from}"
    else:
        what = "the API key"
    return (
        f"the server refused {what} (HTTP 401): set API_SECRET_KEY, in the environment or "
        ".env, to this camera's key (`attendance keys add NAME` on the server prints one) or "
        "the server's own key (its data/api_key)"
    )


def unreachable(server: str, error: str) -> str:
    """What a failed connection means for the client."""
    return (
        f"cannot reach the server at {server} ({error}): check that it runs and the URL "
        "(--server, ATTENDANCE_SERVER_URL)"
    )


class Uploader:
    def __init__(
        self,
        outbox: Outbox,
        server: str,
        key: str,
        on_answer: Callable[[Scan, Recognition], None] | None = None,
        timeout_s: float = 15.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
        key_from: str = "",
    ) -> None:
        self.outbox = outbox
        self.server = server.rstrip("/")
        self.key_from = key_from  # where the key came from: API_SECRET_KEY or a key file
        self.url = server.rstrip("/") + "/recognize"
        self.checkin_url = server.rstrip("/") + "/checkin"
        self.key = key
        self.on_answer = on_answer  # every final answer, a refusal too
        self.timeout_s = timeout_s
        self.clock = clock or outbox.clock  # seconds since the epoch: back-off outlives restarts
        self.rng = rng or random.Random()
        self.base_s = 2.0  # a scan's first back-off: 1-2 s, then doubling, with jitter
        self.cap_s = 600.0
        self.paused_s = 60.0  # a wrong key or URL: try again this often
        self.state = "connecting"  # online | offline | busy | denied | wrong url
        self.sent = 0  # answered by the server this run
        self.rejected = 0  # refused by the server this run: moved to rejected/
        self.problem = ""  # what keeps scans from being sent now ("": nothing known)
        # Students' display names as the server's answers gave them (folder name -> name).
        self.display_names: dict[str, str] = {}
        self._pause_s = 0.5  # the whole sender's wait after a try with no final answer
        self._hold_until = float("-inf")  # no try before this (clock)
        # One keep-alive connection for every scan, instead of a TCP handshake per scan.
        self._session = session if session is not None else requests.Session()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)

    @property
    def session(self) -> requests.Session:
        """The HTTP session (also used to ask for liveness challenges)."""
        return self._session

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
        except requests.RequestException as exc:
            self.state = "offline"
            self.trouble(unreachable(self.server, type(exc).__name__))
            return
        self.state = "online" if response.status_code in (200, 503) else "offline"
        if self.state == "online" and self.problem.startswith("cannot reach"):
            self.trouble("")  # reachable again (a refused key is not cleared by /health)

    def trouble(self, problem: str, level: int | None = logging.WARNING) -> None:
        """What keeps scans from being sent now ("": nothing); logged at ``level`` when it
        changes (None: not logged, the caller says it)."""
        if problem and problem != self.problem and level is not None:
            queued = len(self.outbox)
            log.log(level, "%s; %d scan(s) queued, kept until it is fixed", problem, queued)
        elif not problem and self.problem:
            log.warning("the server answers again: sending the queued scans")
        self.problem = problem

    def _run(self) -> None:
        last_check = float("-inf")
        while not self._stop.is_set():
            try:
                outcome = self.send_next()
            except Exception:  # a bug or a disk error must not end sending for good
                log.exception("sending a queued scan failed")
                outcome = RETRY
                self._stop.wait(self._pause_s)
            if outcome is not None:
                continue
            now = self.clock()
            if now >= self._hold_until and time.monotonic() - last_check > 5:
                if not len(self.outbox):
                    self.check()
                last_check = time.monotonic()
            _, due_in = self.outbox.next_due(now)
            waits = [1.0, self._hold_until - now if self._hold_until > now else 1.0]
            self._wake.wait(max(0.05, min(waits + ([due_in] if due_in is not None else []))))
            self._wake.clear()

    def send_next(self) -> str | None:
        """Send the oldest scan that is due (not in back-off), unless sending is held (no
        connection, a busy server, a wrong key); what became of it, or None when nothing
        was sent."""
        now = self.clock()
        if now < self._hold_until:
            return None
        scan, _ = self.outbox.next_due(now)
        if scan is None:
            return None
        return self._send(scan)

    def send(self, scan: Scan) -> bool:
        """Send one scan now; True when the server gave a final answer (the scan is then
        deleted, or moved to rejected/ when refused)."""
        return self._send(scan) in FINAL

    def backoff_s(self, attempts: int, retry_after_s: float | None = None) -> float:
        """A scan's wait after its ``attempts``-th failed try: half to all of
        ``base_s * 2**(attempts-1)``, at most ``cap_s``; at least the server's Retry-After."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(attempts - 1, 30))
        delay = ceiling / 2 + self.rng.uniform(0, ceiling / 2)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.cap_s))
        return delay

    def _hold(self, seconds: float | None = None) -> None:
        """No try for a while; without ``seconds``, the growing pause (with jitter)."""
        if seconds is None:
            seconds = self._pause_s * self.rng.uniform(0.5, 1.0)
            self._pause_s = min(self._pause_s * 2, 30.0)
        self._hold_until = self.clock() + seconds

    def _back_off(self, scan: Scan, error: str, delay: bool, retry_after_s: float | None) -> None:
        before = self.outbox.retry(scan)
        attempts = before.attempts + 1
        now = self.clock()
        wait_s = self.backoff_s(attempts, retry_after_s) if delay else 0.0
        self.outbox.set_retry(scan, Retry(attempts, now + wait_s, error))
        kind = "badge" if scan.badge else "scan"
        if delay:
            log.info(
                "%s %s not taken (%s, try %d); next try in %.0f s; the others go on",
                kind,
                scan.event_id,
                error,
                attempts,
                wait_s,
            )

    def _send(self, scan: Scan) -> str:
        try:
            response = self._post(scan)
        except requests.RequestException as exc:
            return self._unreachable(scan, exc)
        except OSError as exc:  # a frame unreadable, or the folder moved away meanwhile
            self.outbox.set_aside(scan, f"a frame cannot be read ({exc.strerror or exc})")
            return GONE
        code = response.status_code
        if code in PAUSE_STATES:
            return self._paused(scan, code)
        body = self._json(response)
        if 200 <= code < 300 and body is not None and "status" in body:
            self.state = "online"
            self.trouble("")
            self._pause_s, self._hold_until = 0.5, float("-inf")
            answer = Recognition.from_json(body)
            self._learn_names(body)
            self.outbox.done(scan)
            self.sent += 1
            if self.on_answer:
                self.on_answer(scan, answer)
            return ANSWERED
        if 400 <= code < 500 and code not in (408, 429):
            return self._refused(scan, code, body, response)
        # 408, 429, 5xx, or something that is not the server's answer (a proxy, a portal).
        self.state = "busy"
        status = str(body.get("status") or "") if body else ""
        answered = f"HTTP {code} {status}".strip()
        self.trouble(f"the server at {self.server} cannot take scans now ({answered})")
        self._back_off(scan, answered, True, _retry_after_s(response))
        self._hold()
        return RETRY

    def _unreachable(self, scan: Scan, exc: Exception) -> str:
        # A read timeout may be this scan's doing (a server that chokes on it): it backs off.
        # A connection that cannot be made is no scan's fault: it stays due, the sender waits.
        scan_specific = isinstance(exc, requests.Timeout) and not isinstance(
            exc, requests.ConnectionError
        )
        self.state = "offline"
        self.trouble(unreachable(self.server, type(exc).__name__))
        self._back_off(scan, f"unreachable ({type(exc).__name__})", scan_specific, None)
        self._hold()
        log.info("server unreachable (%s); %d scan(s) queued", type(exc).__name__, len(self.outbox))
        return UNREACHABLE

    def _paused(self, scan: Scan, code: int) -> str:
        state = PAUSE_STATES[code]
        if code == 401:
            self.refused_key()
        else:
            url = self.checkin_url if scan.badge else self.url
            self.trouble(
                f"the server answered HTTP {code} for {url}: check the server URL "
                "(--server, ATTENDANCE_SERVER_URL)",
                logging.ERROR,
            )
        self.state = state
        self._hold(self.paused_s)
        return PAUSED

    def refused_key(self, logged: bool = True) -> None:
        """The server answered 401: sending waits for the key to be fixed (logged once,
        unless not ``logged``: the caller says it)."""
        self.state = "denied"
        self.trouble(key_refused(self.key_from), logging.ERROR if logged else None)

    def _refused(
        self, scan: Scan, code: int, body: dict[str, Any] | None, response: requests.Response
    ) -> str:
        self.state = "online"
        self.trouble("")
        self._pause_s, self._hold_until = 0.5, float("-inf")
        answer = Recognition.from_json(body or {"status": "refused", "error": f"HTTP {code}"})
        if answer.status in (RECOGNISED, UNKNOWN, LIVENESS_FAILED):  # not an answer: a refusal
            answer = dataclasses.replace(answer, status="refused")
        reason = {
            "http_status": code,
            "status": answer.status,
            "reason": answer.reason,
            "answer": body if body is not None else response.text[:500],
            "endpoint": "/checkin" if scan.badge else "/recognize",
            "event_id": scan.event_id,
            "captured_at": scan.captured_at,
            "camera": scan.camera,
        }
        where = self.outbox.reject(scan, reason)
        self.rejected += 1
        log.warning(
            "the server refused %s %s (HTTP %d %s: %s); kept in %s",
            "badge" if scan.badge else "scan",
            scan.event_id,
            code,
            answer.status,
            answer.reason or "no reason given",
            where,
        )
        if self.on_answer:
            self.on_answer(scan, answer)
        return REJECTED

    def _learn_names(self, body: dict[str, Any]) -> None:
        """Keep the display names of the students an answer names (``marks[].display_name``;
        the top-level ``display_name`` for the first)."""
        marks = body.get("marks")
        entries = [m for m in marks if isinstance(m, dict)] if isinstance(marks, list) else []
        for entry in [*entries, body]:
            name, shown = entry.get("name"), entry.get("display_name")
            # A display name equal to the folder name is none (the server sends one always).
            if isinstance(name, str) and isinstance(shown, str) and shown.strip() not in ("", name):
                self.display_names[name] = shown.strip()

    @staticmethod
    def _json(response: requests.Response) -> dict[str, Any] | None:
        """The server's JSON answer (an object), or None."""
        try:
            body = response.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

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
        if scan.nonce is not None:
            form["nonce"] = scan.nonce
        return self._session.post(
            self.url, files=files, data=form, headers=headers, timeout=self.timeout_s
        )
