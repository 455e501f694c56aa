"""Zoom's clock, as the ``Date`` header of its responses tells it.

The tap's clock is not Zoom's. A bookmark is a claim that everything Zoom holds up
to that instant has been read, so it must be an instant of Zoom's clock: taken from
the tap's, a tap running a few seconds ahead would claim messages Zoom had not yet
stamped, and never read them.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import typing as t

from tap_zoom_sms.windows import UTC, utc_now

if t.TYPE_CHECKING:
    import requests


def response_date(response: requests.Response) -> dt.datetime | None:
    """Return the response's ``Date`` header as an aware UTC datetime, or None if missing or unreadable."""
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


class ZoomClock:
    """Zoom's time, as this machine's clock plus the offset the latest ``Date`` header showed."""

    def __init__(self) -> None:
        """Start with no offset (Zoom's clock unknown: the tap's own is used)."""
        self._offset = dt.timedelta(0)
        self.known = False

    def observe(self, response: requests.Response, *args: t.Any, **kwargs: t.Any) -> None:  # noqa: ARG002
        """Learn the offset from a response (usable as a requests response hook)."""
        when = response_date(response)
        if when is not None:
            self._offset = when - utc_now()
            self.known = True

    def now(self) -> dt.datetime:
        """Return Zoom's current time, to the second (the tap's, if no Date header was seen)."""
        return utc_now() + self._offset
