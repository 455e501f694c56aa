"""Retrying what can be retried: one loop for API requests, token requests and file downloads.

The SDK retries five times with backoff and ignores ``Retry-After``; Zoom's limits are
per account and shared with every other app of the account, so sustained 429s are
normal and must not end a run within a minute, while a daily cap must end it at once
(sleeping until midnight helps nobody).

:func:`call` is the one retry loop of the tap; each caller says what it retries and how
many attempts a fault gets in a :class:`RetryPolicy` (:data:`API` here, for API requests
and attachment files; ``auth.TOKEN_RETRIES`` for the token endpoint). Every wait goes
through :func:`sleep`, which a stop signal ends at once, in whichever thread it waits.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import time
import typing as t
from dataclasses import dataclass
from http import HTTPStatus

import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_zoom_sms import interrupts
from tap_zoom_sms.errors import DailyLimitError
from tap_zoom_sms.windows import parse_time

if t.TYPE_CHECKING:
    import logging

#: What a retry may fix: a 429 or 5xx (or a body that is not JSON), a broken or slow connection.
TRANSIENT: tuple[type[Exception], ...] = (
    RetriableAPIError,
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    ConnectionResetError,
)
#: Attempts at one request that fails with faults (5xx, connection, timeout, bad body).
MAX_FAULT_TRIES = 6
#: How long one request keeps retrying while Zoom answers 429 per second.
RATE_LIMITED_BUDGET = 600.0
#: Longest wait between two attempts.
MAX_WAIT = 60.0

sleep = interrupts.sleep  # ends early on SIGTERM/SIGINT; tests replace it

T = t.TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """What one kind of request retries, and how many attempts a fault that persists gets.

    The rest is the same for every caller: backoff with full jitter (0-1 s, 0-2 s, 0-4 s,
    ...), and for a request of a rate-limit label, 429s waited out as ``Retry-After`` says
    for :data:`RATE_LIMITED_BUDGET` seconds and the daily cap raised at once.
    """

    retry_on: tuple[type[Exception], ...]
    fault_tries: int


#: API requests and attachment files: every transient failure, six attempts at a fault.
API = RetryPolicy(TRANSIENT, MAX_FAULT_TRIES)


def call(
    send: t.Callable[[], T],
    policy: RetryPolicy,
    what: str,
    logger: logging.Logger,
    label: str | None = None,
) -> T:
    """Return what ``send`` returns, calling it again after each failure ``policy`` retries.

    Each retry is logged as one line naming ``what`` (e.g. "GET /phone/sms/sessions",
    never a URL's query or a header) and waited for with :func:`sleep`. When it is time
    to stop, the last failure is raised, or :class:`DailyLimitError` at Zoom's daily cap
    for ``label`` (the request's rate-limit label; a request without one, the token
    endpoint's, counts a 429 as a fault). Failures ``policy`` does not retry pass through.
    """
    attempts = _Attempts(policy, label)
    while True:
        try:
            return send()
        except policy.retry_on as exc:
            wait = attempts.wait_after(exc)
            logger.warning("Retrying %s in %.1fs after %s", what, wait, describe(exc))
            sleep(wait)


def describe(exc: Exception) -> str:
    """Say what failed without a URL: Zoom's answer for an API error, else the exception's name.

    A connection error's text names the URL, and a download URL carries a credential (its JWT).
    """
    if isinstance(exc, RetriableAPIError):
        return str(exc)
    return type(exc).__name__


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Read ``Retry-After`` as seconds, an HTTP date, or an ISO date-time (Zoom sends each)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    now = now or dt.datetime.now(dt.timezone.utc)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        try:
            when = parse_time(value)
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def is_daily_limit(response: requests.Response) -> bool:
    """Say whether a 429 is the daily cap (by header, or by Zoom's message when headers are missing)."""
    kind = response.headers.get("X-RateLimit-Type", "")
    if kind:
        return kind.lower().startswith("daily")
    return b"daily rate limit" in (response.content or b"").lower()


class _Attempts:
    """The retry decisions for one request: how long to wait, or when to give up."""

    def __init__(self, policy: RetryPolicy, label: str | None) -> None:
        """Count the attempts at one request, retried by ``policy``, of rate-limit ``label``."""
        self._policy = policy
        self._label = label
        self._faults = 0
        self._rate_limited = 0
        self._rate_limited_since: float | None = None

    def wait_after(self, exc: Exception) -> float:
        """Return the seconds to wait before the next attempt, or raise when it is time to stop."""
        response = getattr(exc, "response", None)
        if self._label is not None and response is not None and response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
            return self._after_429(exc, response, self._label)
        self._faults += 1
        if self._faults >= self._policy.fault_tries:
            raise exc
        return _backoff(self._faults)

    def _after_429(self, exc: Exception, response: requests.Response, label: str) -> float:
        header = response.headers.get("Retry-After")
        if is_daily_limit(response):
            raise DailyLimitError(label, header)
        now = time.monotonic()
        if self._rate_limited_since is None:
            self._rate_limited_since = now
        if now - self._rate_limited_since > RATE_LIMITED_BUDGET:
            raise exc
        self._rate_limited += 1
        told = retry_after_seconds(header)
        if told is None:
            return _backoff(min(self._rate_limited, 6))
        return min(told, MAX_WAIT) + random.uniform(0, 0.25)  # noqa: S311 (spread the retries)


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: 0-1 s, 0-2 s, 0-4 s, ... up to MAX_WAIT."""
    return random.uniform(0, min(MAX_WAIT, 2.0 ** (attempt - 1)))  # noqa: S311
