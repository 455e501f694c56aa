"""The command line: bad settings and refused credentials end with one clear line, exit 1."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path

import pytest

from tap_zoom_sms.auth import TOKEN_TRIES
from tests.conftest import run_tap
from tests.fakezoom import CLIENT_SECRET, OAUTH, FakeZoom, base_config

ERROR_PREFIX = "tap-zoom-sms: error: "


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: t.ClassVar[dict[tuple[str, str], tuple[int, dict]]] = {}

    def _answer(self, method: str) -> None:
        status, body = self.routes.get((method, self.path.split("?")[0]), (404, {"code": 404, "message": "?"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-zm-trackingid", "TRACK-123")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer("POST")

    def do_GET(self) -> None:
        self._answer("GET")

    def log_message(self, *args: t.Any) -> None:
        pass


@pytest.fixture
def local_zoom() -> t.Iterator[tuple[str, dict]]:
    """A tiny Zoom on 127.0.0.1 whose answers each test sets."""
    routes: dict[tuple[str, str], tuple[int, dict]] = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", routes
    finally:
        server.shutdown()
        server.server_close()


def run_cli(tmp_path: Path, config: dict, **environ: str) -> subprocess.CompletedProcess[str]:
    """Run the tap's command line with ``config``, in this process's environment plus ``environ``."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "tap_zoom_sms", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **environ},
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], expected: str) -> str:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(ERROR_PREFIX)]
    assert len(errors) == 1, result.stderr
    assert expected in errors[0]
    for secret in (CLIENT_SECRET, "wrong-secret-value-123", "tok-secret"):
        assert secret not in result.stderr
        assert secret not in result.stdout
    return errors[0]


def without(config: dict, key: str) -> dict:
    return {k: v for k, v in config.items() if k != key}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (without(base_config(), "client_secret"), "'client_secret' is a required property"),
        (without(base_config(), "account_id"), "'account_id' is a required property"),
        (without(base_config(), "start_date"), "'start_date' is a required property"),
        (base_config(start_date="2024-13-45"), "start_date '2024-13-45' is not a date-time"),
        (base_config(end_date="soon"), "end_date 'soon' is not a date-time"),
        (base_config(start_date="2024-06-01T00:00:00Z", end_date="2024-05-01"), "is after end_date"),
        (
            base_config(start_date="2999-01-01T00:00:00Z", end_date=None),
            "start_date 2999-01-01T00:00:00Z is in the future",
        ),
        (base_config(page_size=500), "page_size must be 1 to 100, not 500"),
        # what the schema lets through (1e9 is an integer to it, NaN and Infinity are JSON numbers to
        # Python) but the tap's arithmetic cannot hold: each ended in a traceback after records were written
        (
            base_config(contact_center_lookback_hours=1e9),
            "contact_center_lookback_hours must be 0 to 876000 (100 years), not 1000000000.0",
        ),
        (base_config(lookback_minutes=10**12), "lookback_minutes must be 0 to 52560000 (100 years), not 1000000000000"),
        (
            base_config(medium_requests_per_second=float("nan")),
            "medium_requests_per_second must be 0 (no limit) or 0.01 to 1000, not nan",
        ),
        (
            base_config(heavy_requests_per_second=float("inf")),
            "heavy_requests_per_second must be 0 (no limit) or 0.01 to 1000, not inf",
        ),
        (
            base_config(medium_requests_per_second=1e-300),  # one request, then a wait of 1e300 seconds
            "medium_requests_per_second must be 0 (no limit) or 0.01 to 1000, not 1e-300",
        ),
        (
            base_config(request_timeout=1e10),
            "request_timeout must be more than 0 and at most 3600 seconds, not 10000000000.0",
        ),
        (base_config(end_date="9999-12-31T23:59:59Z"), "end_date 9999-12-31T23:59:59Z is not before 2100-01-01"),
        (base_config(start_date="0001-01-01T00:00:00Z"), "start_date 0001-01-01T00:00:00Z is before 1970-01-01"),
        (base_config(session_type="everything"), "session_type"),
        (base_config(client_secret=12345), "invalid settings"),
    ],
)
def test_bad_settings_end_before_any_request(tmp_path: Path, config: dict, expected: str) -> None:
    config = {k: v for k, v in config.items() if v is not None}
    config["oauth_url"] = "http://127.0.0.1:9/never-called"
    result = run_cli(tmp_path, config)
    line = assert_one_clear_line(result, expected)
    assert line.startswith(ERROR_PREFIX + "invalid settings: ")
    assert "12345" not in result.stderr
    assert result.stdout == ""


def test_wrong_credentials_end_with_one_line(tmp_path: Path, local_zoom: tuple[str, dict]) -> None:
    url, routes = local_zoom
    routes[("POST", "/oauth/token")] = (
        400,
        {"reason": "Invalid client_id or client_secret", "error": "invalid_client"},
    )
    config = base_config(oauth_url=f"{url}/oauth/token", api_url=f"{url}/v2", client_secret="wrong-secret-value-123")
    result = run_cli(tmp_path, config)
    assert_one_clear_line(result, "Zoom rejected the client credentials (invalid_client)")
    assert '"type":"RECORD"' not in result.stdout.replace(" ", "")


def test_unreachable_token_endpoint_ends_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the tap runs: nothing listens
    result = run_cli(tmp_path, base_config(oauth_url=f"http://127.0.0.1:{port}/oauth/token"))
    assert_one_clear_line(result, "could not reach Zoom's token endpoint")


def test_a_fatal_api_error_names_code_message_and_tracking_id(tmp_path: Path, local_zoom: tuple[str, dict]) -> None:
    url, routes = local_zoom
    routes[("POST", "/oauth/token")] = (200, {"access_token": "tok-secret", "expires_in": 3599})
    routes[("GET", "/v2/contact_center/sms")] = (200, {"sms": [], "next_page_token": ""})
    routes[("GET", "/v2/phone/sms/sessions")] = (404, {"code": 2001, "message": "Account does not exist."})
    config = base_config(oauth_url=f"{url}/oauth/token", api_url=f"{url}/v2")
    result = run_cli(tmp_path, config)
    assert_one_clear_line(
        result,
        "HTTP 404 from GET /v2/phone/sms/sessions: code 2001: Account does not exist. (x-zm-trackingid TRACK-123)",
    )
    states = [json.loads(line) for line in result.stdout.splitlines() if '"STATE"' in line]
    assert states[-1]["value"]["bookmarks"]["contact_center_sms"]["replication_key_value"]


@pytest.fixture
def silent_server() -> t.Iterator[tuple[str, list[socket.socket]]]:
    """A server on 127.0.0.1 that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        listener.close()
        for connection in accepted:
            connection.close()


def test_a_token_endpoint_that_never_answers_fails_within_request_timeout(
    tmp_path: Path, silent_server: tuple[str, list[socket.socket]]
) -> None:
    url, accepted = silent_server
    config = base_config(oauth_url=f"{url}/oauth/token", request_timeout=1)
    started = time.monotonic()
    result = run_cli(tmp_path, config)
    elapsed = time.monotonic() - started

    assert_one_clear_line(result, "could not reach Zoom's token endpoint")
    assert "ReadTimeout" in result.stderr
    assert len(accepted) == TOKEN_TRIES  # each attempt gave up after request_timeout, then retried
    # 4 tries of 1 s and backoff waits of at most 7 s, plus start-up; the SDK's own 60 s would take 240 s
    assert elapsed < 4 * 60


def test_the_token_request_is_sent_with_request_timeout(requests_mock: t.Any) -> None:
    zoom = FakeZoom().install(requests_mock)
    run_tap(base_config(request_timeout=7))
    token_requests = [r for r in requests_mock.request_history if r.url.startswith(OAUTH)]
    assert zoom.tokens_issued == 1
    assert [r.timeout for r in token_requests] == [7]
