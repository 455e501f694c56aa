"""What values the settings may hold beyond what a JSON schema can say, each problem in one line.

The SDK checks the settings against their JSON schema; these checks add what a schema
cannot express (dates that parse, a start before the end, numbers within what Zoom
accepts and the tap's arithmetic holds), so that a bad value is refused with one line
before any request instead of ending a run with a traceback after records were written.
"""

from __future__ import annotations

import datetime as dt
import math
import typing as t

from tap_zoom_sms.concurrency import MAX_WORKERS
from tap_zoom_sms.network import plain_http_warning
from tap_zoom_sms.settings.schema import CREDENTIALS, MAX_PAGE_SIZE
from tap_zoom_sms.settings.sources import unknown_settings
from tap_zoom_sms.windows import parse_time, utc_now

#: The settings that hold secrets: never in an error or a log line.
SECRETS = ("client_secret", "access_token")

# What the tap's arithmetic on settings can hold. A value outside these ranges passed the
# JSON schema (1e9 is an integer to it; NaN and Infinity are numbers to Python's JSON) and
# then ended a run with a traceback after records were written; now it is refused first.

#: The earliest start_date, and the earliest bookmark that means anything: Zoom holds nothing
#: older, and a year before 1000 is not even written as Zoom's dates are (``1-01-01T...``).
EARLIEST_DATE = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
#: The latest end_date: a later one is a placeholder for "no end" (leave end_date unset for
#: that), and the tap's month arithmetic ends in year 9999.
LATEST_END_DATE = dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)
#: The longest look-back (``lookback_minutes``, ``contact_center_lookback_hours``): a longer one
#: reads from start_date anyway, and a bookmark less it must stay a date.
MAX_LOOKBACK = dt.timedelta(days=100 * 365)
#: The client-side rates accepted besides 0 (no limit), in requests per second: from one request
#: in 100 seconds to far beyond any Zoom plan's limit.
RATE_RANGE = (0.01, 1000)
#: The longest request_timeout, in seconds: a Zoom response slower than an hour is a hung connection.
MAX_REQUEST_TIMEOUT = 3600


def finite_number(value: t.Any) -> bool:
    """Say whether ``value`` is a JSON number the tap can compute with (not a boolean, NaN or infinite)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def setting_errors(config: t.Mapping[str, t.Any]) -> list[str]:
    """Return the problems of ``config`` a JSON schema cannot express."""
    return access_errors(config) + date_errors(config) + number_errors(config)


def setting_warnings(config: t.Mapping[str, t.Any], schema: dict[str, t.Any]) -> list[str]:
    """Return what is worth a warning but runs: unknown settings, plain-HTTP URLs off this machine."""
    warnings = unknown_settings(config, schema)
    for url_setting in ("api_url", "oauth_url"):
        if plain := plain_http_warning(url_setting, str(config.get(url_setting) or "")):
            warnings.append(plain)
    return warnings


def without_secrets(errors: list[str], config: t.Mapping[str, t.Any]) -> list[str]:
    """Return ``errors`` with every secret of ``config`` replaced by ``***``."""
    for key in SECRETS:
        if secret := config.get(key):
            errors = [error.replace(str(secret), "***") for error in errors]
    return errors


def access_errors(config: t.Mapping[str, t.Any]) -> list[str]:
    """Server-to-Server credentials or a token, and a usable list of users."""
    errors = []
    if not config.get("access_token"):
        errors += [
            f"'{key}' is a required property (or set access_token)" for key in CREDENTIALS if not config.get(key)
        ]
    user_ids = config.get("user_ids")
    if user_ids is not None and (not user_ids or not all(isinstance(u, str) and u.strip() for u in user_ids)):
        errors.append("user_ids must be a non-empty list of user IDs or emails (or me)")
    elif user_ids and len(set(user_ids)) < len(user_ids):
        errors.append("user_ids lists a user twice (each user has one bookmark)")
    return errors


def date_errors(config: t.Mapping[str, t.Any]) -> list[str]:
    """Dates that parse, within the years the tap reads, a start_date not in the future nor after end_date."""
    errors = []
    dates = {}
    for key in ("start_date", "end_date"):
        value = config.get(key)
        if not value:
            continue
        try:
            dates[key] = parse_time(value)
        except (ValueError, TypeError, OverflowError):
            errors.append(f"{key} {value!r} is not a date-time (e.g. 2024-01-31T00:00:00Z)")
    start, end = dates.get("start_date"), dates.get("end_date")
    if start and start < EARLIEST_DATE:
        errors.append(
            f"start_date {config['start_date']} is before {EARLIEST_DATE:%Y-%m-%d} (Zoom holds nothing older)"
        )
    if start and start > utc_now():
        errors.append(f"start_date {config['start_date']} is in the future")
    if end and end >= LATEST_END_DATE:
        errors.append(
            f"end_date {config['end_date']} is not before {LATEST_END_DATE:%Y-%m-%d}: "
            "leave end_date unset to extract up to now"
        )
    if start and end and start > end:
        errors.append(f"start_date {start:%Y-%m-%dT%H:%M:%SZ} is after end_date {end:%Y-%m-%dT%H:%M:%SZ}")
    return errors


def number_errors(config: t.Mapping[str, t.Any]) -> list[str]:
    """Numbers within what Zoom accepts and the tap's arithmetic holds (see the ranges above)."""
    errors = []
    page_size = config.get("page_size", MAX_PAGE_SIZE)
    if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        errors.append(f"page_size must be 1 to {MAX_PAGE_SIZE}, not {page_size!r}")
    low, high = RATE_RANGE
    for key in ("medium_requests_per_second", "heavy_requests_per_second"):
        value = config.get(key)
        if value is not None and not (finite_number(value) and (value == 0 or low <= value <= high)):
            errors.append(f"{key} must be 0 (no limit) or {low} to {high}, not {value!r}")
    for key, unit in (("lookback_minutes", "minutes"), ("contact_center_lookback_hours", "hours")):
        value = config.get(key)
        most = MAX_LOOKBACK // dt.timedelta(**{unit: 1})
        if value is not None and not (finite_number(value) and 0 <= value <= most):
            errors.append(f"{key} must be 0 to {most} ({MAX_LOOKBACK.days // 365} years), not {value!r}")
    workers = config.get("max_concurrent_requests")
    if workers is not None and (not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS):
        errors.append(f"max_concurrent_requests must be 1 to {MAX_WORKERS}, not {workers!r}")
    timeout = config.get("request_timeout")
    if timeout is not None and not (finite_number(timeout) and 0 < timeout <= MAX_REQUEST_TIMEOUT):
        errors.append(f"request_timeout must be more than 0 and at most {MAX_REQUEST_TIMEOUT} seconds, not {timeout!r}")
    return errors
