"""Retrying what can be retried: faults, timeouts, rate limits, and stopping at the daily cap.

The SDK retries five times with backoff and ignores ``Retry-After``; Zoom's limits are
per account and shared with every other app of the account, so sustained 429s are
normal and must not end a run within a minute, while a daily cap must end it at once
(sleeping until midnight helps nobody).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import time
import typing as t
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


class Retrying:
    """The retry decisions for one request: how long to wait, or when to give up."""

    def __init__(self, logger: logging.Logger, what: str, label: str) -> None:
        """Retry ``what`` (e.g. "GET /phone/sms/sessions"), a request of rate-limit ``label``."""
        self._logger = logger
        self._what = what
        self._label = label
        self._faults = 0
        self._rate_limited = 0
        self._rate_limited_since: float | None = None

    def wait_after(self, exc: Exception) -> float:
        """Return the seconds to wait before the next attempt, or raise when it is time to stop."""
        response = getattr(exc, "response", None)
        if response is not None and response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
            return self._after_429(exc, response)
        self._faults += 1
        if self._faults >= MAX_FAULT_TRIES:
            raise exc
        return self._backoff(self._faults)

    def _after_429(self, exc: Exception, response: requests.Response) -> float:
        header = response.headers.get("Retry-After")
        if is_daily_limit(response):
            raise DailyLimitError(self._label, header)
        now = time.monotonic()
        self._rate_limited_since = self._rate_limited_since or now
        if now - self._rate_limited_since > RATE_LIMITED_BUDGET:
            raise exc
        self._rate_limited += 1
        told = retry_after_seconds(header)
        if told is None:
            return self._backoff(min(self._rate_limited, 6))
        return min(told, MAX_WAIT) + random.uniform(0, 0.25)  # noqa: S311 (spread the retries)

    @staticmethod
    def _backoff(attempt: int) -> float:
        """Exponential backoff with full jitter: 0-1 s, 0-2 s, 0-4 s, ... up to MAX_WAIT."""
        return random.uniform(0, min(MAX_WAIT, 2.0 ** (attempt - 1)))  # noqa: S311

    def log(self, exc: Exception, wait: float) -> None:
        """Say what is retried and when (never the URL's query or any header)."""
        self._logger.warning("Retrying %s in %.1fs after %s", self._what, wait, _short(exc))


def _short(exc: Exception) -> str:
    if isinstance(exc, RetriableAPIError):
        return str(exc)
    return type(exc).__name__
