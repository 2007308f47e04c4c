"""The HTTP server of ``attendance serve``: waitress, with limits for idle, slow and greedy
clients.

Waitress reads requests in its event loop and hands a request to a thread only once it has
arrived whole, so a held connection costs a socket, not a thread. What is added here:

* **Connections**: up to ``ATTENDANCE_MAX_CONNECTIONS`` at once (waitress's default, 100, was
  filled by a hundred idle sockets), watched with ``poll`` (no 1024-descriptor ceiling), and
  the process's open-file limit (``RLIMIT_NOFILE``) raised to fit them at start, up to the
  hard limit (when the hard limit is lower, the connection limit is lowered to fit, and said).
* **Slow senders**: a request's headers must arrive within ``ATTENDANCE_CHANNEL_TIMEOUT_S``
  in all, however steadily they trickle in. Its body is timed on progress, not in all: it must
  bring at least ``MIN_BODY_BYTES_PER_S`` on average over every ``ATTENDANCE_CHANNEL_TIMEOUT_S``
  (2 KB/s: a camera on weak Wi-Fi sending 1.4 MB at 50 KB/s takes 28 s and gets through; a
  body trickled a few bytes at a time is closed). An idle connection is closed after the
  channel timeout. Checked every ``cleanup_interval_s`` seconds.
* **One address**: one client address holds at most half of the connections; more are
  answered 503 at once and closed. Behind a proxy (``ATTENDANCE_PROXY_HOPS``) the proxies'
  addresses (``ATTENDANCE_TRUSTED_PROXIES``) have no such cap, as every client comes through
  them (the proxy's own limits apply); anyone reaching the port directly still has it.
* **Bodies**: the largest body is the upload limit (``ATTENDANCE_MAX_UPLOAD_MB``). A larger
  ``Content-Length`` is refused as soon as the headers are in, before any of the body is read
  (and before the key is checked); a chunked body as soon as it passes the limit. Waitress's
  own refusals are JSON like the app's: ``{"status": "too_large", "error": ...}``.
* **The key before the body**: once a request's headers are in, the gate (``KeyGate``,
  ``web.body_gate``) says in the event loop, without the database, whether its route needs the
  API key and the key is not one known to be valid (the admin key, a camera key read at start
  or seen since). Such a request's body waits (nothing more is read from the connection) while
  a request thread asks the database: a valid key's body is then read as any other; a missing
  or wrong key's request goes to the app at once with an empty body and the ``BODY_WITHHELD``
  header (which a client cannot send: it is deleted from every request), so it is answered 401
  (or 429) before the body has arrived; what arrives of it after is read and dropped, never
  kept, so the client gets its answer and the connection stays usable. A client waiting for
  ``100 Continue`` gets it once its key is found valid; otherwise the answer instead, and the
  connection is closed after it.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from waitress import create_server
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask

from ..config import Settings
from .proxies import TrustedProxies

log = logging.getLogger(__name__)

# Descriptors kept for everything but client connections: the listening socket, waitress's
# trigger, the database, logs, worker pipes, temporary files of uploads in flight.
RESERVED_FILES = 128
MAX_HEADER_BYTES = 64 * 1024  # request line and headers (waitress's default: 256 KB)
MIN_BODY_BYTES_PER_S = 2048  # a body slower than this over a channel timeout is cut


@dataclass(frozen=True)
class Limits:
    """What the server is built with (the connection limit after the open-file limit)."""

    connections: int
    per_address: int  # connections one client address may hold (the proxies' are uncapped)
    open_files: int | None  # the soft RLIMIT_NOFILE now (None: not known on this system)
    channel_timeout_s: int
    cleanup_interval_s: int
    max_body_bytes: int
    note: str = ""  # why the connection limit is lower than asked, if it is
    uncapped: tuple[str, ...] = ()  # the trusted proxies' networks, behind a proxy


def raise_open_files(wanted: int) -> int | None:
    """Raise this process's soft open-file limit to ``wanted`` (at most the hard limit);
    the soft limit now in effect, or None where there is no such limit (Windows)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted if soft == resource.RLIM_INFINITY else soft
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open-file limit to %d: %s", new, exc)
        return soft
    return new


def limits(settings: Settings) -> Limits:
    """The server's limits from ``settings``, raising the open-file limit to fit (a side
    effect on this process, meant for ``attendance serve``)."""
    wanted = settings.max_connections
    open_files = raise_open_files(wanted + RESERVED_FILES)
    connections, note = wanted, ""
    if open_files is not None and open_files < wanted + RESERVED_FILES:
        connections = max(10, open_files - RESERVED_FILES)
        note = (
            f"the open-file limit is {open_files} (ulimit -n, hard limit): accepting at most "
            f"{connections} connections, not ATTENDANCE_MAX_CONNECTIONS={wanted}"
        )
    timeout_s = max(1, round(settings.channel_timeout_s))
    return Limits(
        connections=connections,
        per_address=max(1, connections // 2),
        open_files=open_files,
        channel_timeout_s=timeout_s,
        cleanup_interval_s=max(1, min(5, timeout_s // 4)),
        max_body_bytes=settings.max_upload_bytes,
        note=note,
        uncapped=settings.trusted_proxies if settings.proxy_hops else (),
    )


class _Addresses:
    """Open connections per client address (the event loop opens them; closing may happen in
    a request thread, hence the lock)."""

    def __init__(self, cap: int | None, uncapped: TrustedProxies | None = None) -> None:
        self.cap = cap
        self.uncapped = uncapped or TrustedProxies(())
        self._open: Counter[str] = Counter()
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def opened(self, host: str) -> bool:
        """Count one more connection from ``host``; False when it is over the cap."""
        with self._lock:
            self._open[host] += 1
            if self.cap is None or self._open[host] <= self.cap or self.uncapped.trusts(host):
                return True
            first = host not in self._warned
            self._warned.add(host)
        if first:
            log.warning(
                "address %s holds %d connections (at most half of the limit): refusing more",
                host,
                self.cap,
            )
        return False

    def closed(self, host: str) -> None:
        with self._lock:
            left = self._open[host] - 1
            if left > 0:
                self._open[host] = left
            else:
                del self._open[host]
            if self.cap is not None and left < self.cap // 2:
                self._warned.discard(host)

    def count(self, host: str) -> int:
        with self._lock:
            return self._open.get(host, 0)


_BUSY_BODY = json.dumps(
    {"status": "busy", "error": "too many connections from this address; retry later"}
).encode()
BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(_BUSY_BODY)
) + _BUSY_BODY


class JsonErrorTask(ErrorTask):  # type: ignore[misc]
    """Waitress's own refusals (body too large, bad request line, headers too large) as the
    app's JSON errors."""

    upload_mb: ClassVar[float] = 0.0

    def execute(self) -> None:
        error = self.request.error
        if error.code == 413:
            status, message = "too_large", f"upload larger than {self.upload_mb:g} MB"
        else:
            status, message = "bad_request", str(error.body)
        body = json.dumps({"status": status, "error": message}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


WITHHELD_KEY = "X_ATTENDANCE_BODY_WITHHELD"  # web.BODY_WITHHELD as waitress keeps headers


class KeyGate(Protocol):
    """What the server asks about a request's key before it reads the body (``web.body_gate``)."""

    def unsure(self, method: str, path: str, key: str) -> bool:
        """In the event loop, without the database: whether the route needs the API key and
        ``key`` is not one known to be valid (the body then waits for ``valid``)."""

    def valid(self, key: str) -> bool:
        """In a request thread, with the database: whether ``key`` opens the API."""


class _Dropped:
    """Where a withheld body goes: nowhere (a receiver's buffer that keeps nothing)."""

    def __len__(self) -> int:
        return 0

    def append(self, data: bytes) -> None:
        """Drop ``data``."""

    def getfile(self) -> io.BytesIO:
        return io.BytesIO()

    def close(self) -> None:
        """Nothing kept, nothing to free."""


class KeyFirstParser(HTTPRequestParser):  # type: ignore[misc]
    """Waitress's request parser, which asks the gate once the headers are in whether the key
    must be checked before a body that follows is read (``unsure``)."""

    gates: ClassVar[tuple[KeyGate, ...]] = ()  # the server's gate, if it has one
    unsure = False  # the key is checked (GuardedChannel.service) before the body is read
    wants_continue = False  # the client waits for "100 Continue", sent once the key is valid
    withheld = False  # the body is dropped: the request is served before it has arrived

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        self.headers.pop(WITHHELD_KEY, None)  # only this server says so
        key = self.headers.get("X_API_KEY", "")
        if getattr(self, "body_rcv", None) is None:
            return
        try:
            self.unsure = any(gate.unsure(self.command, self.path, key) for gate in self.gates)
        except Exception:  # never the event loop's end: the body is read, the app decides
            log.exception("the key check before the body failed")
            return
        if self.unsure and self.headers.get("EXPECT", "").lower() == "100-continue":
            self.expect_continue, self.wants_continue = False, True

    def key_valid(self, key: str) -> bool:
        return any(gate.valid(key) for gate in self.gates)

    def withhold_body(self) -> None:
        """Drop the body, what is buffered of it and what is still to come, and tell the app
        (``BODY_WITHHELD``): the request is answered without it."""
        self.withheld, self.unsure, self.empty = True, False, True  # completion queues nothing
        self.body_rcv.getbuf().close()
        self.body_rcv.buf = _Dropped()
        self.headers["CONTENT_LENGTH"] = "0"
        self.headers[WITHHELD_KEY] = "1"
        if self.wants_continue:  # no body will come: the connection closes after the answer
            self.headers["CONNECTION"] = "close"


class GuardedChannel(HTTPChannel):  # type: ignore[misc]
    """A connection whose request must arrive whole within the channel timeout, counted
    against its address's cap."""

    error_task_class = JsonErrorTask
    addresses: ClassVar[_Addresses] = _Addresses(None)

    def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
        super().__init__(server, sock, addr, adj, map)
        self.host = str(addr[0]) if isinstance(addr, tuple) and addr else str(addr)
        self.timed: Any = None  # the request being timed (waitress's parser)
        self.request_started: float | None = None
        # the body's progress: when it last brought enough bytes, and how many came since
        self.body_progress_at: float | None = None
        self.body_bytes = 0
        self.body_step = max(1, round(MIN_BODY_BYTES_PER_S * float(adj.channel_timeout)))
        self.key_check: KeyFirstParser | None = None  # a request whose key is being checked
        self.counted = True
        if not self.addresses.opened(self.host):
            self.refuse()

    def refuse(self) -> None:
        """Answer 503 without reading anything, then close."""
        with self.outbuf_lock:
            self.outbufs[-1].append(BUSY_ANSWER)
            self.current_outbuf_count += len(BUSY_ANSWER)
            self.total_outbufs_len += len(BUSY_ANSWER)
        self.close_when_flushed = True

    def readable(self) -> bool:
        return bool(super().readable()) and self.key_check is None

    def received(self, data: bytes) -> bool:
        result: bool = super().received(data)
        request = self.request
        if request is not None and request.unsure and request is not self.key_check:
            if self.requests:  # a request of this connection is being served: no second task
                self._withhold(request)
            else:  # the key is checked in a request thread; nothing more is read meanwhile
                self.key_check = request
                self.server.add_task(self)
        if self.request is None:  # nothing half-received
            self.timed, self.request_started, self.body_progress_at = None, None, None
            return result
        now = time.time()
        if self.timed is not self.request:  # a new request (perhaps after a pipelined one)
            self.timed, self.request_started, self.body_progress_at = self.request, now, None
        if not self.request.headers_finished:
            # Headers on their way: the idle clock runs from their first bytes, so waitress's
            # own check (every cleanup interval) closes the connection at the channel timeout,
            # however steadily they trickle in.
            self.last_activity = self.request_started
            return result
        # The body: the clock starts again each time it brought body_step more bytes (the
        # channel timeout at MIN_BODY_BYTES_PER_S), so a slow but steady upload goes on and a
        # trickle is closed a channel timeout after its last step.
        if self.body_progress_at is None:
            self.body_progress_at, self.body_bytes = now, 0
        else:
            self.body_bytes += len(data)
            if self.body_bytes >= self.body_step:
                self.body_progress_at, self.body_bytes = now, 0
        self.last_activity = self.body_progress_at
        return result

    def _withhold(self, request: KeyFirstParser) -> None:
        """Serve ``request`` now, without its body (dropped as it arrives)."""
        with self.requests_lock:
            request.withhold_body()
            self.requests.append(request)
            if len(self.requests) == 1:
                self.server.add_task(self)

    def service(self) -> None:
        request = self.key_check
        if request is None:
            super().service()
            return
        try:  # the database may be asked: this is a request thread, not the event loop
            valid = request.key_valid(request.headers.get("X_API_KEY", ""))
        except Exception:  # the app answers (503 when the database is down)
            log.exception("the key check before the body failed")
            valid = False
        if valid:
            request.unsure = False
            if request.wants_continue:
                request.expect_continue = True
                self.send_continue()
        else:
            self._withhold(request)
        self.key_check = None
        self.server.pull_trigger()  # read again (the body, or the next request)

    def del_channel(self, map: Any = None) -> None:
        super().del_channel(map)
        if self.counted:
            self.counted = False
            self.addresses.closed(self.host)


def _servers(server: Any) -> list[Any]:
    """The listening servers of what ``create_server`` answered (one, or several)."""
    if isinstance(server, BaseWSGIServer):
        return [server]
    return [s for s in server.map.values() if isinstance(s, BaseWSGIServer)]


def make_server(
    app: Any, settings: Settings, found: Limits | None = None, gate: KeyGate | None = None
) -> Any:
    """Waitress serving ``app`` on ``settings.host``/``port`` with ``limits(settings)``, the
    key of a request checked by ``gate`` (``web.body_gate(app)``) before its body is read;
    raises ``OSError`` when it cannot listen."""
    found = found or limits(settings)
    error_task = type("Errors", (JsonErrorTask,), {"upload_mb": settings.max_upload_mb})
    parser = type("Parser", (KeyFirstParser,), {"gates": (gate,) if gate else ()})
    channel = type(
        "Channel",
        (GuardedChannel,),
        {
            "addresses": _Addresses(found.per_address, TrustedProxies(found.uncapped)),
            "error_task_class": error_task,
            "parser_class": parser,
        },
    )
    server = create_server(
        app,
        host=settings.host,
        port=settings.port,
        threads=settings.threads,
        connection_limit=found.connections,
        channel_timeout=found.channel_timeout_s,
        cleanup_interval=found.cleanup_interval_s,
        # ">=" in waitress: a body of exactly the upload limit is still read (Flask's limit).
        max_request_body_size=found.max_body_bytes + 1,
        max_request_header_size=MAX_HEADER_BYTES,
        asyncore_use_poll=True,  # select() cannot watch descriptors past 1024
        # Behind a proxy the app reads X-Forwarded-For/-Proto (ProxyFix, ATTENDANCE_PROXY_HOPS
        # hops); waitress would otherwise delete them first (its default since 2.0).
        clear_untrusted_proxy_headers=not settings.proxy_hops,
        ident="smart-attendance",
    )
    for listener in _servers(server):
        listener.channel_class = channel
    return server
