"""Retries: Retry-After in every form, sustained 429s, the daily cap, faults that do not go away."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import types

import pytest
import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_zoom_sms import auth, retries
from tap_zoom_sms.errors import DailyLimitError
from tap_zoom_sms.retries import MAX_FAULT_TRIES, retry_after_seconds
from tests.conftest import run_tap
from tests.fakezoom import FakeZoom, base_config

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 5, 31, 23, 59, 0, tzinfo=UTC)
QPS = {"code": 429, "message": "You have reached the maximum per-second rate limit for this API."}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        (email.utils.format_datetime(NOW + dt.timedelta(seconds=20), usegmt=True), 20.0),
        ("2026-06-01T00:00:00Z", 60.0),
        ("2026-05-31T23:00:00Z", 0.0),  # already past
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_in_every_form(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value, now=NOW) == seconds


def account(zoom: FakeZoom) -> None:
    zoom.add_session("s1")
    zoom.add_message("s1", "2024-02-02T00:00:00Z")
    zoom.add_message("s1", "2024-07-07T00:00:00Z", attachments=1)
    zoom.add_session("s2", "call_queue")
    zoom.add_message("s2", "2024-09-09T00:00:00Z")
    zoom.add_engagement("e1", "2024-03-03T00:00:00Z")
    zoom.add_engagement("e2", "2024-10-10T00:00:00Z")


def test_sustained_qps_429s_are_waited_out_as_retry_after_says(zoom: FakeZoom, no_retry_waits: list) -> None:
    account(zoom)
    for _ in range(90):  # a minute and a half of 429s on one request
        zoom.fail_next(r"/sessions/s1$", 429, QPS, headers={"X-RateLimit-Type": "QPS", "Retry-After": "1"})
    run = run_tap(base_config())

    assert run.ids("sms_messages", "message_id") == {"m00001", "m00002", "m00003"}
    assert len(no_retry_waits) == 90
    assert all(1 <= wait <= 1.25 for wait in no_retry_waits)
    assert sum(no_retry_waits) > 60


def test_429_without_headers_backs_off_with_jitter(zoom: FakeZoom, no_retry_waits: list) -> None:
    account(zoom)
    for _ in range(8):
        zoom.fail_next(r"/sessions$", 429, QPS)
    run = run_tap(base_config())

    assert run.ids("sms_sessions", "session_id") == {"s1", "s2"}
    assert len(no_retry_waits) == 8
    assert max(no_retry_waits) <= 32
    assert len(set(no_retry_waits)) > 1


@pytest.mark.parametrize(
    "headers",
    [
        {"X-RateLimit-Type": "Daily-limit", "Retry-After": "2026-06-01T00:00:00Z"},
        {},  # headers may be missing: Zoom's message still says so
    ],
)
def test_the_daily_cap_stops_its_label_and_the_rest_finishes(zoom: FakeZoom, headers: dict) -> None:
    account(zoom)
    daily = {"code": 429, "message": "You have reached the maximum daily rate limit for this API."}
    zoom.fail_next(
        r"/contact_center/sms$",
        429,
        daily,
        headers=headers,
        when=lambda request: request.qs["from"][0].startswith("2024-06"),
    )
    first = run_tap(base_config(), expect_error=True)

    assert isinstance(first.error, DailyLimitError)
    assert "daily limit for Heavy requests was reached" in str(first.error)
    if headers:
        assert "resets at 2026-06-01T00:00:00Z" in str(first.error)
    assert first.ids("sms_messages", "message_id") == {"m00001", "m00002", "m00003"}  # Medium finished
    assert first.ids("contact_center_sms", "engagement_id") == {"e1"}
    cc_requests = [qs for path, qs in zoom.requests if path.endswith("/contact_center/sms")]
    assert cc_requests[-1]["from"][0].startswith("2024-06")  # nothing asked of Heavy after the cap
    state = first.last_state
    assert state["bookmarks"]["contact_center_sms"]["replication_key_value"] == "2024-06-01T00:00:00Z"

    second = run_tap(base_config(), state=state)
    assert second.ids("contact_center_sms", "engagement_id") == {"e2"}


def test_a_fault_that_persists_ends_the_run_with_zoom_details(zoom: FakeZoom, no_retry_waits: list) -> None:
    account(zoom)
    for _ in range(MAX_FAULT_TRIES):
        zoom.fail_next(
            r"/sessions$", 503, {"code": 503, "message": "Service unavailable"}, headers={"x-zm-trackingid": "TRACK-9"}
        )
    # one list at a time: the months' lists read at once would share the faults, and each recover
    run = run_tap(base_config(max_concurrent_requests=1), expect_error=True)

    assert "HTTP 503 from GET /v2/phone/sms/sessions: code 503: Service unavailable" in str(run.error)
    assert "x-zm-trackingid TRACK-9" in str(run.error)
    assert len(no_retry_waits) == MAX_FAULT_TRIES - 1
    assert run.last_state is not None  # the contact center bookmark, for the next run


def test_timeouts_and_dropped_connections_are_retried(zoom: FakeZoom) -> None:
    account(zoom)
    zoom.fail_next(r"/sessions$", 0, requests.exceptions.ConnectTimeout("simulated"))
    zoom.fail_next(r"/sessions/s1$", 0, requests.exceptions.ConnectionError("simulated"))
    zoom.fail_next(r"/contact_center/sms$", 0, requests.exceptions.ReadTimeout("simulated"))
    run = run_tap(base_config())

    assert zoom.faults == []
    assert run.ids("sms_messages", "message_id") == {"m00001", "m00002", "m00003"}
    assert run.ids("contact_center_sms", "engagement_id") == {"e1", "e2"}


# --- the one retry loop (retries.call), with each caller's limits -------------------------------


class Clock:
    """Time that passes only while the retry loop waits: ten minutes of 429s take none."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(retries, "sleep", clock.sleep)
    monkeypatch.setattr(retries, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    return clock


def answer(status: int, headers: dict[str, str] | None = None, body: bytes = b"{}") -> RetriableAPIError:
    """The error the tap raises for a 429 or 5xx answer (as ZoomStream.validate_response does)."""
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    response._content = body  # as requests sets it from the wire
    return RetriableAPIError(f"HTTP {status}", response)


class Failing:
    """A request that fails with ``failures`` in turn (the last one for ever), then answers "ok"."""

    def __init__(self, *failures: Exception, then_ok_after: int | None = None) -> None:
        self.failures = failures
        self.then_ok_after = then_ok_after
        self.attempts = 0

    def __call__(self) -> str:
        self.attempts += 1
        if self.then_ok_after is not None and self.attempts > self.then_ok_after:
            return "ok"
        raise self.failures[min(self.attempts, len(self.failures)) - 1]


LOG = logging.getLogger("test")


@pytest.mark.parametrize(
    ("caller", "fault", "tries"),
    [
        ("API", answer(503), MAX_FAULT_TRIES),  # API requests and attachment files: six
        ("API", requests.exceptions.ReadTimeout("simulated"), MAX_FAULT_TRIES),
        ("token", requests.exceptions.ConnectTimeout("simulated"), 4),  # the token request: four
    ],
)
def test_a_fault_that_persists_gets_the_callers_attempts_and_backoff(
    clock: Clock, caller: str, fault: Exception, tries: int
) -> None:
    policy = retries.API if caller == "API" else auth.TOKEN_RETRIES
    send = Failing(fault)
    with pytest.raises(type(fault)) as raised:
        retries.call(send, policy, "GET /x", LOG, "Medium")

    assert raised.value is fault
    assert send.attempts == tries
    assert len(clock.waits) == tries - 1
    assert all(0 <= wait <= 2**n for n, wait in enumerate(clock.waits))  # 0-1 s, 0-2 s, 0-4 s, ...


def test_the_token_request_gives_up_within_4t_plus_7_seconds(clock: Clock) -> None:
    timeout = 5.0

    def times_out() -> None:
        clock.now += timeout  # each attempt waits request_timeout, then fails
        raise requests.exceptions.ReadTimeout("simulated")

    started = clock.now
    with pytest.raises(requests.exceptions.ReadTimeout):
        retries.call(times_out, auth.TOKEN_RETRIES, "POST /oauth/token", LOG)

    assert clock.now - started <= 4 * timeout + 7


def test_api_429s_are_waited_out_as_retry_after_says_for_ten_minutes_then_given_up(clock: Clock) -> None:
    qps = answer(429, {"X-RateLimit-Type": "QPS", "Retry-After": "30"})
    send = Failing(qps)
    with pytest.raises(RetriableAPIError) as raised:
        retries.call(send, retries.API, "GET /x", LOG, "Medium")

    assert raised.value is qps
    assert all(30 <= wait <= 30.25 for wait in clock.waits)
    assert sum(clock.waits[:-1]) <= retries.RATE_LIMITED_BUDGET < sum(clock.waits)
    assert send.attempts == len(clock.waits) + 1


def test_429s_do_not_use_up_the_attempts_a_fault_gets(clock: Clock) -> None:
    faults = [answer(500)] * (MAX_FAULT_TRIES - 1)
    send = Failing(*faults, *[answer(429, {"Retry-After": "1"})] * 40, then_ok_after=MAX_FAULT_TRIES - 1 + 40)

    assert retries.call(send, retries.API, "GET /x", LOG, "Medium") == "ok"
    assert len(clock.waits) == MAX_FAULT_TRIES - 1 + 40


def test_the_daily_cap_stops_at_once_naming_the_label(clock: Clock) -> None:
    send = Failing(answer(429, {"X-RateLimit-Type": "Daily-limit", "Retry-After": "2026-06-01T00:00:00Z"}))
    with pytest.raises(DailyLimitError) as raised:
        retries.call(send, retries.API, "GET /x", LOG, "Heavy")

    assert raised.value.label == "Heavy"
    assert raised.value.retry_after == "2026-06-01T00:00:00Z"
    assert send.attempts == 1
    assert clock.waits == []


def test_what_a_policy_does_not_retry_passes_through_at_once(clock: Clock) -> None:
    send = Failing(answer(503))
    with pytest.raises(RetriableAPIError):
        retries.call(send, auth.TOKEN_RETRIES, "POST /oauth/token", LOG)  # a 5xx of the API is not the token's

    assert send.attempts == 1
    assert clock.waits == []


def test_each_retry_is_one_line_naming_the_request_never_its_url(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    dropped = requests.exceptions.ConnectionError("https://file.zoom.us/f?jwt=secret-token: connection reset")
    send = Failing(dropped, answer(502), then_ok_after=2)
    with caplog.at_level(logging.WARNING):
        retries.call(send, retries.API, "GET attachment file", LOG, "Medium")

    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("Retrying GET attachment file in ")
    assert lines[0].endswith(" after ConnectionError")
    assert lines[1].endswith(" after HTTP 502")
    assert "secret-token" not in caplog.text
