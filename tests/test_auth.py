"""Server-to-Server OAuth: the grant, early renewal, renewal on 401, refused credentials."""

from __future__ import annotations

import datetime as dt
import time
import typing as t

import pytest

from tap_zoom_sms.auth import ZoomS2SAuthenticator
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
    run = run_tap(base_config(), expect_error=True)

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
