"""TLS: every request (token, API, file downloads) trusts the CA bundle the environment names.

The emulator serves HTTPS here, with a certificate signed by a CA made for the test
(with ``cryptography``), as a proxy or gateway that inspects TLS would present.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import logging
import select
import socket
import ssl
import subprocess
import threading
import time
import typing as t
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tap_zoom_sms.downloads import Downloader, FileStore
from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.emulator.data import file_bytes
from tap_zoom_sms.network import CA_BUNDLE_VARIABLES, plain_http_warning
from tap_zoom_sms.ratelimit import RateLimitedSession, RateLimiter
from tap_zoom_sms.tap import TapZoomSms
from tests.conftest import run_tap
from tests.test_cli import run_cli

ERROR_PREFIX = "tap-zoom-sms: error: "
#: A name that resolves nowhere: only the test's proxy knows it is 127.0.0.1, so a request
#: that reaches the emulator under this name went through the proxy.
PROXIED_HOST = "zoom.test"


@dataclass(frozen=True)
class Certificates:
    """A CA's certificate, and a server certificate for 127.0.0.1 it signed (PEM files)."""

    ca: Path
    server_chain: Path
    server_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, issuer: str, public_key: t.Any, signing_key: ec.EllipticCurvePrivateKey, *, ca: bool
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        names = [x509.IPAddress(IPv4Address("127.0.0.1")), x509.DNSName("localhost"), x509.DNSName(PROXIED_HOST)]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder = tmp_path_factory.mktemp("tls")
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("tap-zoom-sms test CA", "tap-zoom-sms test CA", ca_key.public_key(), ca_key, ca=True)
    server = _certificate("127.0.0.1", "tap-zoom-sms test CA", server_key.public_key(), ca_key, ca=False)
    paths = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.server_chain.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths.server_key.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


class HttpsEmulator(Emulator):
    """The emulator behind TLS: its API, token endpoint and download URLs are all https://{host}."""

    def __init__(self, spec: DatasetSpec, certificates: Certificates, host: str = "127.0.0.1") -> None:
        super().__init__(spec)
        self.host = host
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificates.server_chain, certificates.server_key)
        # the handshake happens in the request's thread, so a client that refuses it stops nothing
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True, do_handshake_on_connect=False)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self._server.server_port}"


class TunnelProxy(http.server.BaseHTTPRequestHandler):
    """An HTTPS proxy (CONNECT) that knows PROXIED_HOST is 127.0.0.1, and lists the tunnels it opened."""

    tunnels: t.ClassVar[list[str]] = []

    def do_CONNECT(self) -> None:
        host, port = self.path.rsplit(":", 1)
        if host not in (PROXIED_HOST, "127.0.0.1"):
            self.send_error(403)
            return
        self.tunnels.append(self.path)
        with socket.create_connection(("127.0.0.1", int(port)), timeout=30) as upstream:
            self.send_response(200, "Connection established")
            self.end_headers()
            self._pipe(upstream)
        self.close_connection = True

    def _pipe(self, upstream: socket.socket) -> None:
        """Copy bytes both ways until either side closes (or is quiet for 30 s)."""
        other = {self.connection: upstream, upstream: self.connection}
        while True:
            readable, _, _ = select.select(list(other), [], [], 30)
            if not readable:
                return
            for side in readable:
                data = side.recv(1 << 16)
                if not data:
                    return
                other[side].sendall(data)

    def log_message(self, *args: t.Any) -> None:
        pass


@pytest.fixture
def proxy() -> t.Iterator[tuple[str, list[str]]]:
    """A proxy on 127.0.0.1: its URL, and the tunnels it opened."""
    tunnels: list[str] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Proxy", (TunnelProxy,), {"tunnels": tunnels}))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tunnels
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def emulator(certificates: Certificates) -> t.Iterator[HttpsEmulator]:
    with HttpsEmulator(DatasetSpec(seed=5, sessions=25, engagements=4), certificates) as em:
        yield em


@pytest.fixture(autouse=True)
def no_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start from an environment that names no CA bundle and no proxy (each test sets what it needs)."""
    proxy_variables = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")
    for name in (*CA_BUNDLE_VARIABLES, "SSL_CERT_DIR", *proxy_variables):
        monkeypatch.delenv(name, raising=False)


def tap_config(em: Emulator, tmp_path: Path, **overrides: t.Any) -> dict[str, t.Any]:
    return em.tap_config(
        medium_requests_per_second=0,
        heavy_requests_per_second=0,
        attachments_download_path=str(tmp_path / "files"),
        **overrides,
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Return the run's one error line, checking it failed with that line alone and no traceback."""
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(ERROR_PREFIX)]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize("variable", CA_BUNDLE_VARIABLES)
def test_token_api_and_files_trust_the_ca_bundle_the_environment_names(
    emulator: HttpsEmulator, certificates: Certificates, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, str(certificates.ca))

    run = run_tap(tap_config(emulator, tmp_path))

    stats = emulator.stats.snapshot()
    assert stats["tokens_issued"] >= 1
    requests = stats["requests"]
    attachments = run.records["attachments"]
    assert attachments
    assert len(run.records["sms_sessions"]) == 25
    assert requests["file_download"] == len(attachments)
    for record in attachments:
        assert record["download_error"] is None
        content = Path(record["stored_path"]).read_bytes()
        assert hashlib.sha256(content).digest() == hashlib.sha256(file_bytes(record["id"], record["size"])).digest()


def test_behind_a_proxy_every_request_goes_through_it_and_trusts_its_ca(
    certificates: Certificates, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, proxy: tuple[str, list[str]]
) -> None:
    """A company network: HTTPS_PROXY and the CA bundle of its TLS inspection, for token, API and files alike.

    The emulator's name resolves only at the proxy, so every request that succeeded went through it.
    """
    proxy_url, tunnels = proxy
    monkeypatch.setenv("HTTPS_PROXY", proxy_url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificates.ca))
    spec = DatasetSpec(seed=5, sessions=25, engagements=4)
    with HttpsEmulator(spec, certificates, host=PROXIED_HOST) as emulator:
        run = run_tap(tap_config(emulator, tmp_path))
        stats = emulator.stats.snapshot()

    assert stats["tokens_issued"] >= 1
    assert run.records["contact_center_sms"]
    assert len(run.records["sms_sessions"]) == 25
    assert run.records["attachments"]
    assert stats["requests"]["file_download"] == len(run.records["attachments"])
    assert all(Path(r["stored_path"]).is_file() for r in run.records["attachments"])
    assert tunnels
    assert set(tunnels) == {urlsplit(emulator.url).netloc}


def test_without_the_ca_bundle_the_run_ends_with_one_line_naming_the_certificate(
    emulator: HttpsEmulator, tmp_path: Path
) -> None:
    """Verification is never turned off: the public CAs do not know the test's CA."""
    result = run_cli(tmp_path, tap_config(emulator, tmp_path))

    line = error_line(result)
    assert f"the TLS certificate of {emulator.url} could not be verified" in line
    assert "REQUESTS_CA_BUNDLE" in line
    assert emulator.stats.snapshot()["total_requests"] == 0
    assert not result.stdout.strip()


def test_api_requests_with_an_access_token_fail_at_once_on_an_unverified_certificate(
    emulator: HttpsEmulator, tmp_path: Path
) -> None:
    """No token request comes first here: the API request meets the certificate, and is not retried."""
    config = tap_config(emulator, tmp_path, access_token="a-token-from-elsewhere")
    for key in ("account_id", "client_id", "client_secret"):
        config.pop(key)

    result = run_cli(tmp_path, config)

    line = error_line(result)
    assert f"the TLS certificate of {emulator.url} could not be verified" in line
    assert "Retrying" not in result.stderr


def test_a_file_server_whose_certificate_fails_fails_that_file_not_the_run(
    emulator: HttpsEmulator, tmp_path: Path
) -> None:
    """The file is reported and owed to the next run, like any file that cannot be fetched."""
    attachment = {"id": "a1", "size": 10}
    url = f"{emulator.url}/file/download/a1?jwt={emulator.file_jwt(attachment, int(time.time()) + 3600)}"
    downloader = Downloader(
        FileStore(str(tmp_path)),
        lambda: RateLimitedSession(RateLimiter(0)),
        authenticate=lambda request: request,
        timeout=10,
        logger=logging.getLogger("test"),
        api_host="127.0.0.1",
    )

    result = downloader.download("s1", "m1", {**attachment, "download_url": url}, dict)

    assert result.stored_path is None
    assert result.download_error is not None
    assert result.download_error.startswith(f"the TLS certificate of {emulator.url} could not be verified")
    assert "jwt" not in result.download_error
    assert not list(tmp_path.iterdir())


def test_a_ca_bundle_that_does_not_exist_ends_the_run_with_one_line(emulator: HttpsEmulator, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"

    result = run_cli(tmp_path, tap_config(emulator, tmp_path), CURL_CA_BUNDLE=str(missing))

    assert error_line(result) == f"{ERROR_PREFIX}CURL_CA_BUNDLE names the CA bundle {missing}, which does not exist"


def test_requests_ca_bundle_comes_first(
    emulator: HttpsEmulator, certificates: Certificates, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in requests: REQUESTS_CA_BUNDLE, then CURL_CA_BUNDLE (then SSL_CERT_FILE, which requests ignores)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificates.ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "not-read.pem"))

    run = run_tap(tap_config(emulator, tmp_path))

    assert run.records["sms_sessions"]


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("http://zoom-gateway.example.com/v2", True),
        ("HTTP://10.1.2.3:8080/v2", True),
        ("https://api.zoom.us/v2", False),
        ("http://127.0.0.1:8765/v2", False),
        ("http://127.9.9.9/v2", False),
        ("http://localhost:8765/v2", False),
        ("http://[::1]:8765/v2", False),
    ],
)
def test_plain_http_to_another_machine_is_warned_about(url: str, warned: bool) -> None:
    assert (plain_http_warning("api_url", url) is not None) is warned


def test_a_plain_http_api_url_gets_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    config = {
        "access_token": "tok",
        "start_date": "2026-01-01T00:00:00Z",
        "api_url": "http://zoom-gateway.example.com/v2",
    }

    with caplog.at_level(logging.WARNING):
        TapZoomSms(config=config, validate_config=True)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "api_url http://zoom-gateway.example.com is plain HTTP: the access token and the data travel "
        "unencrypted; use https:// unless this is a test server"
    ]
