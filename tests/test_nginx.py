"""The shipped reverse-proxy configuration (``deploy/nginx/smart-attendance.conf``) in a real
nginx, in front of a real server on real faces.

The file is the one shipped, with a few values of the test put in (ports, the certificate, the
upstream's port; the IPv6 ``listen`` lines left out) and included from a small wrapper that
keeps nginx's files in a temporary folder, as ``sites-enabled/`` is included from Debian's
``nginx.conf``. The wrapper makes nginx connect to the server from 127.0.0.2 while the
client connects from 127.0.0.1, so the address the server reports can only have come from
X-Forwarded-For. The certificate is self-signed, made here with ``cryptography``.

Needs Debian's nginx (``make install`` brings it): skipped without it, a failure in CI.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import (
    API_KEY,
    PROBES,
    ROOT,
    ServerProcess,
    build_dataset,
    face_bytes,
    free_port,
    require_faces,
)

pytestmark = pytest.mark.real

NGINX = "/usr/sbin/nginx"
SITE = ROOT / "deploy" / "nginx" / "smart-attendance.conf"
UPLOAD_LIMIT = 10 * 1024 * 1024  # client_max_body_size 10m, ATTENDANCE_MAX_UPLOAD_MB's default
PROXY_ADDRESS = "127.0.0.2"  # where nginx connects to the server from (proxy_bind)


def require_nginx() -> None:
    """Skip without nginx (``make install`` brings Debian's); fail in CI."""
    if os.path.exists(NGINX):
        return
    reason = f"{NGINX} not installed (make install: nginx)"
    if os.environ.get("CI") or os.environ.get("REQUIRE_SHARED_DATA") == "1":
        pytest.fail(reason + " in CI")
    pytest.skip(reason)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and localhost) and its key, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(timezone.utc)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def render_site(https_port: int, http_port: int, upstream_port: int, cert: Path, key: Path) -> str:
    """The shipped file with the test's values in place of the production ones."""
    text = SITE.read_text(encoding="utf-8")
    replacements = {
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "server 127.0.0.1:5000;": f"server 127.0.0.1:{upstream_port};",
        "/etc/letsencrypt/live/attendance.example.org/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/attendance.example.org/privkey.pem": str(key),
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, f"{old!r} is no longer in {SITE.name}: update this test"
        text = text.replace(old, new)
    # IPv6 may be off where the tests run; the IPv4 lines are the same server blocks.
    return "\n".join(line for line in text.splitlines() if "listen [::]:" not in line) + "\n"


def temp_paths(folder: Path) -> str:
    """nginx's temporary files in ``folder`` (Debian's are under /var/lib/nginx, root's)."""
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    return "".join(f"    {kind}_temp_path {folder / kind};\n" for kind in kinds)


def wrapper(folder: Path, site: Path) -> str:
    # As root (a container), nginx's workers would switch to "nobody", who cannot enter the
    # test's temporary folders: they stay root here. A user account runs nginx as itself.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes 1;\n"
        f"error_log {folder / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"    access_log {folder / 'access.log'};\n"
        f"{temp_paths(folder)}"
        f"    proxy_bind {PROXY_ADDRESS};\n"
        f"    include {site};\n"
        "}\n"
    )


def nginx_command(folder: Path, conf: Path, *extra: str, prefix: Path | None = None) -> list[str]:
    prefix_args = [] if prefix is None else ["-p", str(prefix)]
    return [NGINX, *prefix_args, "-e", str(folder / "error.log"), "-c", str(conf), *extra]


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nginx not listening on {port} in {timeout_s}s")


@dataclass
class Proxied:
    server: ServerProcess
    https: str
    http: str
    cert: Path
    folder: Path

    def error_log(self) -> str:
        return (self.folder / "error.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    """nginx with the shipped site on free ports, in front of ``attendance serve`` with
    ATTENDANCE_PROXY_HOPS=1 (class start 00:00, a whole day's grace: nobody is Late)."""
    require_nginx()
    require_faces()
    base = tmp_path_factory.mktemp("nginx")
    folder = base / "nginx"
    folder.mkdir()
    cert, key = self_signed(folder)
    server = ServerProcess(
        build_dataset(base / "dataset"),
        base / "data",
        env={
            "ATTENDANCE_PROXY_HOPS": "1",
            "ATTENDANCE_TRUSTED_PROXIES": PROXY_ADDRESS,  # nginx only, not the test's 127.0.0.1
            "ATTENDANCE_CLASS_START": "00:00",
            "ATTENDANCE_LATE_AFTER_MINUTES": "1440",
        },
    ).start()
    https_port, http_port = free_port(), free_port()
    site = folder / "smart-attendance.conf"
    site.write_text(render_site(https_port, http_port, server.port, cert, key), encoding="utf-8")
    conf = folder / "nginx.conf"
    conf.write_text(wrapper(folder, site), encoding="utf-8")
    pid = f"pid {folder / 'nginx.pid'};"
    checked = subprocess.run(
        nginx_command(folder, conf, "-t", "-g", pid, prefix=folder),
        capture_output=True,
        text=True,
        check=False,
    )
    if checked.returncode != 0:
        server.stop()
        pytest.fail(f"nginx -t refused the configuration:\n{checked.stderr}")
    proc = subprocess.Popen(
        nginx_command(folder, conf, "-g", f"daemon off; {pid}", prefix=folder),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(https_port, proc)
        yield Proxied(
            server, f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}", cert, folder
        )
    finally:
        proc.terminate()  # nginx's fast shutdown
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        server.stop()


def recognize(proxied: Proxied, *images: bytes) -> requests.Response:
    files = [("image", (f"frame{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]
    return requests.post(
        proxied.https + "/recognize",
        files=files,
        data={"camera": "door-1"},
        headers={"X-API-KEY": API_KEY},
        verify=str(proxied.cert),
        timeout=60,
    )


def test_a_recognition_goes_through_nginx_over_https(proxied: Proxied) -> None:
    answer = recognize(proxied, face_bytes(PROBES["colin_powell"]))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "success" and body["name"] == "colin_powell"
    assert body["attendance"] == "Present"
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=")
    # The key's own errors come through as the server wrote them.
    denied = requests.get(proxied.https + "/students", verify=str(proxied.cert), timeout=30)
    assert denied.status_code == 401 and denied.json()["status"] == "denied"


def test_tls_is_1_2_or_newer(proxied: Proxied) -> None:
    port = int(proxied.https.rsplit(":", 1)[1])

    def handshake(highest: ssl.TLSVersion) -> str | None:
        context = ssl.create_default_context(cafile=str(proxied.cert))
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = highest
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # this side would try anything
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                return tls.version()
        except (ssl.SSLError, ConnectionError):
            return None

    assert handshake(ssl.TLSVersion.MAXIMUM_SUPPORTED) == "TLSv1.3"
    assert handshake(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # naming the old versions
        assert handshake(ssl.TLSVersion.TLSv1_1) is None
        assert handshake(ssl.TLSVersion.TLSv1) is None


def test_plain_http_is_redirected_to_https(proxied: Proxied) -> None:
    for method in ("GET", "POST"):
        answer = requests.request(
            method, proxied.http + "/recognize?x=1", allow_redirects=False, timeout=30
        )
        assert answer.status_code == 301
        assert answer.headers["Location"] == "https://127.0.0.1/recognize?x=1"


def test_an_upload_over_the_limit_is_refused_by_nginx(proxied: Proxied) -> None:
    before = proxied.server.output()
    too_big = b"\xff" * (UPLOAD_LIMIT + 1)
    answer = requests.post(
        proxied.https + "/recognize",
        data=too_big,
        headers={"X-API-KEY": API_KEY, "Content-Type": "image/jpeg"},
        verify=str(proxied.cert),
        timeout=60,
    )
    assert answer.status_code == 413
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["status"] == "too_large"
    assert "refused by the proxy" in answer.json()["error"]
    assert proxied.server.output() == before  # the server never saw it
    # At the limit, nginx passes it on: the server answers (its multipart check).
    answer = requests.post(
        proxied.https + "/recognize",
        data=too_big[:-1],
        headers={"X-API-KEY": API_KEY, "Content-Type": "image/jpeg"},
        verify=str(proxied.cert),
        timeout=60,
    )
    assert answer.status_code == 400 and answer.json()["status"] == "bad_request"


def test_the_server_sees_the_clients_address_and_https(proxied: Proxied) -> None:
    """With ATTENDANCE_PROXY_HOPS=1 the server takes the address from X-Forwarded-For: the
    client's 127.0.0.1, not nginx's 127.0.0.2; and HTTPS from X-Forwarded-Proto: the session
    cookie is Secure, and the dashboard's CSRF check (Host against Referer) passes."""
    earlier = len(proxied.server.output())  # the lines of the module's other tests
    wrong = requests.get(
        proxied.https + "/students",
        headers={"X-API-KEY": "not-the-key", "X-Forwarded-For": "203.0.113.9"},
        verify=str(proxied.cert),
        timeout=30,
    )
    assert wrong.status_code == 401
    session = requests.Session()  # verify= per request: REQUESTS_CA_BUNDLE overrides a session's
    page = session.get(proxied.https + "/login", verify=str(proxied.cert), timeout=30)
    assert page.status_code == 200
    assert re.search(r"attendance_session=[^;]+;.*Secure", page.headers["Set-Cookie"], re.I)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    refused = session.post(
        proxied.https + "/login",
        data={"username": "hunter2-typed", "password": "wrong password", "csrf_token": token[1]},
        headers={"Referer": proxied.https + "/login"},
        verify=str(proxied.cert),
        timeout=30,
    )
    assert refused.status_code == 401  # a wrong password, not a CSRF failure (400)
    deadline = time.monotonic() + 10
    while "failed sign-in (name #" not in proxied.server.output():
        assert time.monotonic() < deadline, proxied.server.output()[-2000:]
        time.sleep(0.1)
    # Around the proxy, straight to the server's port: a forged header is not believed.
    direct = requests.get(
        proxied.server.url + "/students",
        headers={"X-API-KEY": "not-the-key", "X-Forwarded-For": "198.51.100.7"},
        timeout=30,
    )
    assert direct.status_code == 401
    log = proxied.server.output()[earlier:]
    assert re.search(r"failed sign-in \(name #[0-9a-f]{8}\) from 127\.0\.0\.1\b", log)
    assert "hunter2-typed" not in log  # the name typed is not logged: it may be a password
    assert log.count("api key refused from 127.0.0.1") == 2
    assert PROXY_ADDRESS not in log and "203.0.113.9" not in log and "198.51.100.7" not in log


def test_bursts_of_scans_from_one_address_are_limited(proxied: Proxied) -> None:
    """A few scans a second from a door pass; a flood gets the proxy's 429 (JSON)."""
    statuses = []
    with requests.Session() as session:
        for _ in range(30):
            answer = session.post(
                proxied.https + "/checkin",
                json={"badge": "not-a-badge"},
                headers={"X-API-KEY": API_KEY},
                verify=str(proxied.cert),
                timeout=30,
            )
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert answer.json()["status"] == "too_many_requests"
                assert answer.headers["Retry-After"] == "1"
    assert statuses[:5] == [403] * 5  # through to the server: the badge is unknown
    assert 429 in statuses
    assert "limiting requests" in proxied.error_log()


def test_the_file_loads_in_debians_nginx_conf(proxied: Proxied, tmp_path: Path) -> None:
    """Debian's own nginx.conf with the site included as from sites-enabled/: no directive
    of the file clashes with Debian's http-level ones (nginx -t)."""
    debian = Path("/etc/nginx/nginx.conf")
    if not debian.is_file():
        pytest.skip("no /etc/nginx/nginx.conf (not Debian's nginx)")
    text = debian.read_text(encoding="utf-8")
    site = proxied.folder / "smart-attendance.conf"
    for pattern, new in (
        (r"(?m)^\s*include /etc/nginx/sites-enabled/\*;", f"include {site};"),
        (r"(?m)^pid .*;", ""),
        (r"(?m)^\s*error_log .*;", ""),
        (r"(?m)^\s*access_log .*;", f"access_log {tmp_path / 'access.log'};"),
        (r"(?m)^http \{", "http {\n" + temp_paths(tmp_path)),
    ):
        text, found = re.subn(pattern, new, text)
        assert found or "_log" in pattern, f"{pattern} not in {debian}"
    conf = tmp_path / "debian.conf"
    conf.write_text(text, encoding="utf-8")
    checked = subprocess.run(
        nginx_command(tmp_path, conf, "-t", "-g", f"pid {tmp_path / 'nginx.pid'};"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
