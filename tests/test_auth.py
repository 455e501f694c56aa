"""Server-to-Server OAuth: the grant, early renewal, renewal on 401, refused credentials."""

from __future__ import annotations

import datetime as dt
import threading
import time
import typing as t

import pytest
import requests

from tap_zoom_sms import interrupts, retries
from tap_zoom_sms.auth import TOKEN_TRIES, ZoomS2SAuthenticator
from tap_zoom_sms.errors import AuthError
from tests.conftest import run_tap
from tests.fakezoom import ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET, OAUTH, FakeZoom, base_config

UTC = dt.timezone.utc


def authenticator() -> ZoomS2SAuthenticator:
    return ZoomS2SAuthenticator(
        account_id=ACCOUNT_ID, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, auth_endpoint=OAUTH
    )


def test_grant_is_account_credentials_with_basic_auth(zoom: FakeZoom, requests_mock: t.Any) -> None:
    auth = authenticator()
    auth.update_access_token()

    token_request = requests_mock.request_history[-1]
    assert token_request.method == "POST"
    assert "grant_type=account_credentials" in token_request.text
    assert f"account_id={ACCOUNT_ID}" in token_request.text
    assert token_request.headers["Authorization"].startswith("Basic ")
    assert auth.access_token == "tok-1"


@pytest.mark.parametrize(
    ("age", "lifetime", "valid"),
    [(0, 3599, True), (3200, 3599, True), (3400, 3599, False), (4000, 3599, False), (4, 5, True), (4.6, 5, False)],
)
def test_token_is_renewed_before_it_expires(age: float, lifetime: int, valid: bool) -> None:
    auth = authenticator()
    auth.access_token = "tok"
    auth.expires_in = lifetime
    auth.last_refreshed = dt.datetime.now(UTC) - dt.timedelta(seconds=age)
    assert auth.is_token_valid() is valid


def test_an_expiring_token_is_renewed_during_a_run(zoom: FakeZoom) -> None:
    zoom.token_ttl = 1
    zoom.add_session("s")
    zoom.add_message("s", "2024-05-01T00:00:00Z")
    # the run outlives its first token: one request waits out the second
    slept: list[bool] = []

    def outlive_the_token(request: t.Any) -> bool:
        if not slept:
            time.sleep(1)
            slept.append(True)
        return False

    zoom.fail_next(r"/sessions$", 200, {}, when=outlive_the_token)
    run = run_tap(base_config())
    assert run.ids("sms_messages", "message_id") == {"m00001"}
    assert zoom.tokens_issued > 1  # a 1-second token is renewed as the run goes


@pytest.mark.parametrize(
    ("pattern", "stream"),
    [(r"/phone/sms/sessions/s$", "sms_messages"), (r"/contact_center/sms$", "contact_center_sms")],
)
def test_a_401_mid_run_renews_the_token_once(zoom: FakeZoom, pattern: str, stream: str) -> None:
    zoom.add_session("s")
    zoom.add_message("s", "2024-05-01T00:00:00Z")
    zoom.add_engagement("e", "2024-05-01T00:00:00Z")

    revoked: list[bool] = []

    def revoke(request: t.Any) -> bool:
        if not revoked:  # once: Zoom revokes every token, and answers 401 in the endpoint's shape
            zoom.valid_tokens.clear()
            revoked.append(True)
        return False

    zoom.fail_next(pattern, 200, {}, when=revoke)
    run = run_tap(base_config())

    assert zoom.tokens_issued == 2
    assert run.records[stream]
    assert run.ids("sms_messages", "message_id") == {"m00001"}


def test_a_second_401_in_a_row_ends_the_run_clearly(zoom: FakeZoom) -> None:
    zoom.add_session("s")
    zoom.add_message("s", "2024-05-01T00:00:00Z")
    for _ in range(3):
        zoom.fail_next(r"/phone/sms/sessions$", 401, {"code": 124, "message": "Invalid access token."})
    # one list at a time: which 401 each of several lists read at once meets is up to the threads
    # (that case: test_pipeline's test_a_token_zoom_refused_is_forgotten_once_whichever_thread_says_so_first)
    run = run_tap(base_config(max_concurrent_requests=1), expect_error=True)

    assert isinstance(run.error, AuthError)
    assert "Zoom refused a freshly issued access token" in str(run.error)
    assert zoom.tokens_issued == 2


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"client_secret": "wrong-secret-value-123"}, "Zoom rejected the client credentials (invalid_client)"),
        ({"client_id": "nobody"}, "Zoom rejected the client credentials (invalid_client)"),
        ({"account_id": "other"}, "check account_id"),
    ],
)
def test_refused_credentials_end_the_run_before_any_data_request(
    zoom: FakeZoom, overrides: dict, expected: str
) -> None:
    run = run_tap(base_config(**overrides), expect_error=True)

    assert isinstance(run.error, AuthError)
    assert expected in str(run.error)
    assert "\n" not in str(run.error)
    assert CLIENT_SECRET not in str(run.error)
    assert "wrong-secret" not in str(run.error)
    assert zoom.requests == []
    assert not [m for m in run.messages if m["type"] == "RECORD"]


def test_a_token_endpoint_fault_is_retried(zoom: FakeZoom, requests_mock: t.Any) -> None:
    requests_mock.post(
        OAUTH,
        [
            {"status_code": 503, "text": "<html>busy</html>"},
            {"json": {"access_token": "tok-9", "expires_in": 3599}},
        ],
    )
    auth = authenticator()
    auth.update_access_token()
    assert auth.access_token == "tok-9"


def test_a_token_endpoint_that_keeps_failing_gets_four_attempts_and_waits_of_at_most_1_2_4_seconds(
    requests_mock: t.Any, no_retry_waits: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    """The token request is retried by the tap's one retry loop: its waits are the interruptible ones."""
    requests_mock.post(OAUTH, exc=requests.exceptions.ConnectTimeout("https://zoom.test/oauth/token?x=1"))

    with caplog.at_level("WARNING"), pytest.raises(AuthError) as raised:
        authenticator().update_access_token()

    assert "could not reach Zoom's token endpoint" in str(raised.value)
    assert requests_mock.call_count == TOKEN_TRIES == 4
    assert len(no_retry_waits) == 3
    assert all(0 <= wait <= limit for wait, limit in zip(no_retry_waits, (1, 2, 4), strict=True))
    retried = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Retrying")]
    assert len(retried) == 3
    assert all(line.startswith("Retrying POST /oauth/token in ") for line in retried)
    assert all(line.endswith(" after ConnectTimeout") for line in retried)


def test_a_stop_signal_during_a_token_request_backoff_ends_the_wait_at_once(
    requests_mock: t.Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in a message worker renewing the token: the signal's STOP ends the wait, no further attempt is made.

    The SIGTERM handler raises only in the main thread; every other thread learns of the
    signal through ``interrupts.STOP``, which the signal's watch sets whichever thread
    the kernel delivered it to.
    """
    requests_mock.post(OAUTH, status_code=503, text="<html>busy</html>")
    waits: list[float] = []

    def signal_arrives_during_the_wait(seconds: float) -> None:
        waits.append(seconds)
        interrupts.STOP.set()
        interrupts.sleep(seconds)

    monkeypatch.setattr(retries, "sleep", signal_arrives_during_the_wait)
    outcome: list[BaseException] = []

    def renew() -> None:
        try:
            authenticator().update_access_token()
        except BaseException as exc:  # the worker's outcome, checked below
            outcome.append(exc)

    try:
        worker = threading.Thread(target=renew)
        worker.start()
        worker.join(timeout=60)
    finally:
        interrupts.STOP.clear()

    assert not worker.is_alive()
    assert [type(exc) for exc in outcome] == [interrupts.Interrupted]
    assert requests_mock.call_count == 1  # the first attempt only: the wait after it ended the request
    assert len(waits) == 1
    assert 0 <= waits[0] <= 1
