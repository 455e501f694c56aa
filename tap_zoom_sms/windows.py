"""Date windows: how a requested range is cut into requests Zoom answers in full.

Zoom's list endpoints return at most one month of data per request and cut a longer
range without saying so; without ``from``/``to`` they return only the last 30 days
(24 hours for Contact Center). So every request carries an explicit window of at
most one calendar month, and consecutive windows share their boundary instant
(Zoom's bounds are taken as inclusive): a record on a boundary is read twice rather
than never.
"""

from __future__ import annotations

import datetime as dt
import re
import typing as t
from dataclasses import dataclass

UTC = dt.timezone.utc
ZOOM_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: The ISO 8601 forms the stdlib reads as pendulum does (Zoom's times, the usual settings): a date, or a
#: date-time with seconds, an optional fraction and an optional ``Z`` or ``+HH:MM``. Anything else, and
#: anything the stdlib refuses (a day out of range, a leap second), goes to pendulum, imported then: ~20 ms
#: of the process's start that most runs never need.
_PLAIN_ISO = re.compile(  # re.ASCII: no other script's digits
    r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?)?", re.ASCII
)


@dataclass(frozen=True)
class Window:
    """An inclusive UTC range ``[start, end]`` sent to Zoom as ``from``/``to``."""

    start: dt.datetime
    end: dt.datetime

    def params(self) -> dict[str, str]:
        """Return the window as Zoom's ``from``/``to`` query parameters."""
        return {"from": format_zoom_time(self.start), "to": format_zoom_time(self.end)}


def utc_now() -> dt.datetime:
    """Return the current UTC time, truncated to Zoom's one-second resolution."""
    return dt.datetime.now(UTC).replace(microsecond=0)


def parse_time(value: str | dt.datetime) -> dt.datetime:
    """Parse an ISO 8601 date or date-time as an aware UTC datetime.

    A value without an offset is taken as UTC, which is what Zoom sends and what
    the tap's settings document. Raises ValueError on anything else.
    """
    if isinstance(value, dt.datetime):
        parsed = value
    elif (plain := _plain_iso(value)) is not None:
        parsed = plain
    else:
        import pendulum  # noqa: PLC0415 (see _PLAIN_ISO)

        read = pendulum.parse(value, strict=False, tz="UTC")
        if not isinstance(read, dt.datetime):
            msg = f"{value!r} is not a date-time"
            raise ValueError(msg)  # noqa: TRY004 (callers expect ValueError for bad input)
        parsed = read
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return dt.datetime.fromtimestamp(parsed.timestamp(), UTC).replace(microsecond=0)


def _plain_iso(value: str) -> dt.datetime | None:
    """Read a date or date-time of :data:`_PLAIN_ISO`'s forms, or None (pendulum reads it, or says what is wrong)."""
    if not isinstance(value, str) or _PLAIN_ISO.fullmatch(value) is None:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_zoom_time(value: dt.datetime) -> str:
    """Format as ``yyyy-MM-ddTHH:mm:ssZ`` in UTC, the form every Zoom endpoint accepts."""
    return value.astimezone(UTC).strftime(ZOOM_TIME_FORMAT)


def next_month_start(value: dt.datetime) -> dt.datetime:
    """Return 00:00:00 UTC on the first day of the month after ``value``."""
    if value.month == 12:
        return dt.datetime(value.year + 1, 1, 1, tzinfo=UTC)
    return dt.datetime(value.year, value.month + 1, 1, tzinfo=UTC)


def month_windows(
    start: dt.datetime,
    end: dt.datetime | None = None,
    *,
    now: t.Callable[[], dt.datetime] = utc_now,
) -> t.Iterator[Window]:
    """Cut ``[start, end]`` into calendar-month windows that share their boundaries.

    Windows are aligned on calendar months (``[Jan 15, Feb 1]``, ``[Feb 1, Mar 1]``,
    ...), so each lies within one month however Zoom counts one. ``end`` is
    clamped to the present, which is read again as each window is made: without
    an ``end``, the last window reaches the moment it is requested, so a session
    active while a long run goes on is still listed in this run.

    Yields nothing if ``start`` lies after ``end``.
    """
    lower = start
    while True:
        upper = now() if end is None else min(end, now())
        if lower > upper:
            return
        boundary = next_month_start(lower)
        if boundary >= upper:
            yield Window(lower, upper)
            return
        yield Window(lower, boundary)
        lower = boundary


class WindowDedupe:
    """Emits each record of a window once, and a record on a shared boundary once.

    A window read again from its first page (its page token expired) gives again
    the records it already gave; consecutive windows overlap on their boundary, so
    a record stamped exactly there comes in both (for a session, that would mean
    reading its whole message history twice). Memory: the keys of one window.
    """

    def __init__(self, key_fields: t.Sequence[str], time_field: str) -> None:
        """Identify records by ``key_fields`` and place them in time by ``time_field``."""
        self._key_fields = tuple(key_fields)
        self._time_field = time_field
        self._window: Window | None = None
        self._start = self._end = ""
        self._seen: set[tuple[t.Any, ...]] = set()
        self._carried: set[tuple[t.Any, ...]] = set()
        self._at_end: set[tuple[t.Any, ...]] = set()

    def first_sighting(self, record: t.Mapping[str, t.Any], window: Window) -> bool:
        """Say whether ``record``, read in ``window``, is new to this window and the one before."""
        if window != self._window:
            follows = self._window is not None and self._window.end == window.start
            self._carried = self._at_end if follows else set()
            self._seen, self._at_end = set(), set()
            self._window = window
            self._start, self._end = format_zoom_time(window.start), format_zoom_time(window.end)
        key = tuple(record.get(field) for field in self._key_fields)
        when = record.get(self._time_field)
        if key in self._seen or (when == self._start and key in self._carried):
            return False
        self._seen.add(key)
        if when == self._end:
            self._at_end.add(key)
        return True
