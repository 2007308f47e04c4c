"""Forwarded addresses believed only from the proxy: ``ATTENDANCE_PROXY_HOPS`` says how many
proxies stand in front of the server, ``ATTENDANCE_TRUSTED_PROXIES`` which addresses they
connect from.

On a connection from a trusted proxy, werkzeug's ``ProxyFix`` takes the client's address and
scheme from ``X-Forwarded-For`` and ``X-Forwarded-Proto`` (``hops`` of them). On any other
connection (someone on the LAN reaching the server's port directly, around the proxy) the
``X-Forwarded-*`` headers are deleted and the connection's own address counts: a forged header
changes nothing, neither the key and sign-in throttles nor the logs nor the ``Secure`` cookie.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix

FORWARDED = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PREFIX",
    "HTTP_FORWARDED",
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The networks proxies connect from (``ATTENDANCE_TRUSTED_PROXIES``)."""

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in networks
        )

    def trusts(self, address: str | None) -> bool:
        """Whether a connection from ``address`` is one of the proxies'."""
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 on a dual-stack socket
        return any(ip.version == n.version and ip in n for n in self.networks)


class ForwardedFromProxies:
    """WSGI middleware: ``ProxyFix`` for the proxies' connections, the ``X-Forwarded-*``
    headers deleted from everybody else's."""

    def __init__(self, app: Any, hops: int, proxies: TrustedProxies) -> None:
        self.direct = app
        self.fixed = ProxyFix(app, x_for=hops, x_proto=hops)
        self.proxies = proxies

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.proxies.trusts(environ.get("REMOTE_ADDR")):
            return self.fixed(environ, start_response)
        for name in FORWARDED:
            environ.pop(name, None)
        return self.direct(environ, start_response)
