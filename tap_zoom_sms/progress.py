"""Progress of a long run: one INFO line every 30 seconds, and one at the end.

A first backfill of a large account runs for hours, paced by Zoom's rate limit. The
SDK's own log says nothing useful over that time, and too much per line: a METRIC line
for every request and two lines for every session synced. So those are kept off INFO
(the setting ``log_sdk_metrics`` brings the SDK's METRIC lines back), and this module
says, at a steady interval, where the run is: the window being read and how many are
left, the records written so far, the request rate against the limit, the 429s
waited out, and an estimate of the time left.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import typing as t
from http import HTTPStatus

from tap_zoom_sms.windows import format_zoom_time, next_month_start, utc_now

if t.TYPE_CHECKING:
    import requests

    from tap_zoom_sms.windows import Window

#: Seconds between two progress lines.
INTERVAL = 30.0
#: How the records of each stream are named in the line.
NOUNS = {
    "sms_sessions": "sessions",
    "sms_messages": "messages",
    "attachments": "attachments",
    "contact_center_sms": "engagements",
}
#: Lines of the SDK that come once per session synced, kept off INFO (see SessionNoise).
PER_SESSION_LINES = ("Beginning sync of ", "Starting incremental sync of ")


class Progress:
    """Counts what a run has done, from every thread, and logs it in one line."""

    def __init__(self, logger: logging.Logger, limits: t.Mapping[str, float], interval: float | None = None) -> None:
        """Log to ``logger`` every ``interval`` seconds (:data:`INTERVAL`); ``limits``: requests/s per label."""
        self._logger = logger
        self._limits = dict(limits)
        self._interval = INTERVAL if interval is None else interval
        self._lock = threading.Lock()
        self.records: dict[str, int] = dict.fromkeys(NOUNS, 0)
        self.requests = 0
        self.rate_limited = 0
        self._started = self._last_time = time.monotonic()
        self._last_requests = 0
        self._stream: str | None = None
        self._window: Window | None = None
        self._range: tuple[dt.datetime, dt.datetime | None] | None = None
        self._stream_started = self._started
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- counting (called by the streams and the sessions) ------------------
    def record(self, stream: str) -> None:
        """Count a RECORD message of ``stream`` (written from the main thread only)."""
        self.records[stream] = self.records.get(stream, 0) + 1

    def response(self, response: requests.Response) -> None:
        """Count a response to a request (any thread); a 429 is one more wait."""
        with self._lock:
            self.requests += 1
            if response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
                self.rate_limited += 1

    def windows(self, stream: str, windows: t.Iterator[Window], end: dt.datetime | None) -> t.Iterator[Window]:
        """Yield ``windows`` of ``stream``, a range up to ``end`` (None: now), noting the current one."""
        for window in windows:
            with self._lock:
                if self._stream != stream or self._range is None:
                    self._stream, self._stream_started = stream, time.monotonic()
                    self._range = (window.start, end)
                self._window = window
            yield window
        with self._lock:
            self._range = None

    # --- the line ---------------------------------------------------------
    def start(self) -> None:
        """Log a line every interval, from a background thread, until :meth:`finish`."""
        self._thread = threading.Thread(target=self._loop, name="zoom-progress", daemon=True)
        self._thread.start()

    def finish(self, *notes: str) -> None:
        """Stop the interval lines and log the last one, with ``notes`` (those not empty) after it."""
        self._stop.set()
        self._logger.info("%s", "; ".join([self.line(final=True), *filter(None, notes)]))

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._logger.info("%s", self.line())

    def line(self, *, final: bool = False) -> str:
        """Return the progress line: where the run is, what it wrote, its rate, and the time left."""
        now = time.monotonic()
        with self._lock:
            requests, limited = self.requests, self.rate_limited
            rate = (requests - self._last_requests) / max(now - self._last_time, 1e-9)
            self._last_requests, self._last_time = requests, now
        if final:
            rate = requests / max(now - self._started, 1e-9)
        counts = ", ".join(f"{self.records.get(stream, 0):,} {noun}" for stream, noun in NOUNS.items())
        limits = ", ".join(f"{label} {limit:g}/s" for label, limit in self._limits.items() if limit)
        parts = [
            f"Progress{' (end of run)' if final else ''}: {self._where() if not final else 'done'}",
            f"{counts} so far" if not final else f"{counts} written",
            f"{rate:.1f} requests/s ({'limits ' + limits if limits else 'no limit set'})",
            f"{limited:,} 429s waited out",
        ]
        if not final and (left := self._time_left(now)):
            parts.append(left)
        return "; ".join(parts)

    def _where(self) -> str:
        window, stream = self._window, self._stream
        if window is None or stream is None or self._range is None:
            return "starting"
        end = self._range[1] or utc_now()
        return (
            f"{stream} window {format_zoom_time(window.start)} to {format_zoom_time(window.end)}"
            f" ({_months_after(window.end, end)} more after it)"
        )

    def _time_left(self, now: float) -> str:
        """Estimate the time left in the current stream from the share of its range read so far."""
        window, span = self._window, self._range
        if window is None or span is None:
            return ""
        start, end = span[0], span[1] or utc_now()
        total = (end - start).total_seconds()
        done = (window.start - start).total_seconds()
        if total <= 0 or done <= 0:
            return ""
        seconds = (now - self._stream_started) * (total - done) / done
        return f"about {_duration(seconds)} left for {self._stream}"


def _months_after(instant: dt.datetime, end: dt.datetime) -> int:
    """Count the calendar-month windows that follow one ending at ``instant``, up to ``end``."""
    count = 0
    boundary = instant
    while boundary < end:
        boundary = next_month_start(boundary)
        count += 1
    return count


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class SessionNoise(logging.Filter):
    """Keeps the SDK's per-session lines ("Beginning sync of 'sms_messages' ...") off INFO.

    The SDK writes two INFO lines each time a child stream syncs one parent record:
    for the messages stream, two lines per session, thousands in a backfill. They
    pass at DEBUG (set ``TAP_ZOOM_SMS_LOGLEVEL=DEBUG``).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop an INFO record that is one of those lines, unless DEBUG is on."""
        if record.levelno != logging.INFO or not str(record.msg).startswith(PER_SESSION_LINES):
            return True
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
