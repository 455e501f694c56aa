"""Progress of a long run: one INFO line every 30 seconds, and one at the end.

A first backfill of a large account runs for hours, paced by Zoom's rate limit. The
SDK's own log says nothing useful over that time, and too much per line: a METRIC line
for every request and two lines for every session synced. So those are kept off INFO
(:mod:`tap_zoom_sms.sdklogs`; the setting ``log_sdk_metrics`` brings the SDK's METRIC lines back), and this module
says, at a steady interval, where the run is: the window being read and how many are
left, the records written so far, the request rate against the limit, the 429s
waited out, and an estimate of the time left.

A run paced by Zoom's rate limit takes the time its requests take: the time left is
the requests still needed at the rate requests are being made. What the requests are
for is known ahead of the writing: each month's activity lists, read ahead, name the
sessions active in it, and each of those is one fetch of its messages there (see
:mod:`tap_zoom_sms.discovery`). So discovery tells the progress how many fetches
each month holds (:meth:`Progress.work_known`), each fetch is counted with
its requests as it ends (:meth:`Progress.fetch`), and the months not yet read are
taken to hold as many a day as those read.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import logging
import threading
import time
import typing as t
from http import HTTPStatus

from tap_zoom_sms.estimate import months_after, range_left, requests_left
from tap_zoom_sms.windows import format_zoom_time, utc_now

if t.TYPE_CHECKING:
    import requests

    from tap_zoom_sms.windows import Window

#: Seconds between two progress lines.
INTERVAL = 30.0
#: Seconds of the latest requests a rate is taken over: long enough to mean something, short
#: enough to show a change of pace.
RATE_WINDOW = 60.0
#: The least time a rate is given over: below it, a count says more (a run of two requests
#: does not go at "143.5 requests/s").
MIN_RATE_SPAN = 10.0
#: Seconds between two samples of how far a stream is written, the points its pace is fitted to.
SAMPLE_SECONDS = 0.5
#: Samples kept per stream: past it, every other one is let go (a run of hours keeps its whole span).
MAX_SAMPLES = 2000
#: Seconds of the latest requests the pace of the time left is taken over: the run's start and
#: its first fetches (a ramp of a few round trips) are soon out of it.
PACE_SECONDS = 15.0
#: Weight of each response's round trip in the run's typical one (a moving average).
ROUND_TRIP_WEIGHT = 0.1
#: How the records of each stream are named in the line.
NOUNS = {
    "sms_sessions": "sessions",
    "sms_messages": "messages",
    "attachments": "attachments",
    "contact_center_sms": "engagements",
}


@dataclasses.dataclass
class _FetchCount:
    """The requests one fetch has made so far (one object a fetch: a fetch within another keeps its own)."""

    requests: int = 0


class Progress:
    """Counts what a run has done, from every thread, and logs it in one line.

    The time left is the run's once its last top-level stream is being read: the
    requests its known work still needs, at the rate requests are made (see
    :meth:`time_left`); before that, the line names the streams still to come.
    """

    def __init__(
        self,
        logger: logging.Logger,
        limits: t.Mapping[str, float],
        interval: float | None = None,
        *,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        """Log to ``logger`` every ``interval`` seconds (:data:`INTERVAL`); ``limits``: requests/s per label.

        ``clock`` gives the seconds that rates and estimates are measured in (monotonic).
        """
        self._logger = logger
        self._limits = dict(limits)
        self._interval = INTERVAL if interval is None else interval
        self._clock = clock
        self._lock = threading.Lock()
        self.records: dict[str, int] = dict.fromkeys(NOUNS, 0)
        self.requests = 0
        self.rate_limited = 0
        self._started = clock()
        #: (time, requests so far) at each line and at the start: the rate's window
        self._marks: collections.deque[tuple[float, int]] = collections.deque([(self._started, 0)])
        self._plan: list[str] = []
        self._stream: str | None = None
        self._window: Window | None = None
        self._range: tuple[dt.datetime, dt.datetime | None] | None = None
        self._position: str = ""
        #: (when, seconds into the range) the stream's records were written, a sample a SAMPLE_SECONDS
        self._samples: list[tuple[float, float]] = []
        #: whether the stream's windows are all listed (its last sessions may still be written)
        self._listed_all = False
        self._stream_started = self._started
        #: (time, requests so far), a sample a SAMPLE_SECONDS over the latest PACE_SECONDS: the pace
        self._paced: collections.deque[tuple[float, int]] = collections.deque()
        #: seconds a request takes to be answered, of late (a moving average): the last answers' wait
        self._round_trip = 0.0
        #: fetches each window of _work_stream's range holds, as its activity lists said (see work_known)
        self._work: dict[Window, int] = {}
        self._work_stream: str | None = None
        #: fetches ended in the range of _work; fetches ended and their requests in the whole run
        self._fetched_in_range = self._fetched = self._fetch_requests = 0
        #: the _FetchCount of the fetch the calling thread is making, if any (see fetch)
        self._local = threading.local()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- counting (called by the streams and the sessions) ------------------
    def plan(self, streams: t.Iterable[str]) -> None:
        """Note the top-level streams the run will read, in order: the time left counts those still to come."""
        self._plan = list(streams)

    def record(self, stream: str, position: str | None = None) -> None:
        """Count a RECORD message of ``stream`` (written from the main thread only).

        ``position``: the record's replication key value (Zoom's time format). For the
        stream whose windows the line follows, the latest one is how far its range is
        written: the records read ahead but not yet written do not count.
        """
        self.records[stream] = self.records.get(stream, 0) + 1
        if position and stream == self._stream and position > self._position:
            self._position = position
            self._sample(position)

    def _sample(self, position: str) -> None:
        """Keep how far the stream is written now, if the last sample is SAMPLE_SECONDS old."""
        now = self._clock()
        if self._samples and now - self._samples[-1][0] < SAMPLE_SECONDS:
            return
        if (reached := _parse_position(position)) is None or self._range is None:
            return
        with self._lock:
            self._samples.append((now, (reached - self._range[0]).total_seconds()))
            if len(self._samples) > MAX_SAMPLES:
                self._samples = self._samples[::2]

    def response(self, response: requests.Response) -> None:
        """Count a response to a request (any thread); a 429 is one more wait."""
        now = self._clock()
        if (counting := getattr(self._local, "fetch", None)) is not None:
            counting.requests += 1
        with self._lock:
            self.requests += 1
            if response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
                self.rate_limited += 1
            took = response.elapsed.total_seconds()
            self._round_trip += (took - self._round_trip) * (ROUND_TRIP_WEIGHT if self._paced else 1.0)
            if not self._paced or now - self._paced[-1][0] >= SAMPLE_SECONDS:
                self._paced.append((now, self.requests))
            while len(self._paced) > 2 and now - self._paced[1][0] >= PACE_SECONDS:
                self._paced.popleft()

    def work_begins(self, stream: str) -> None:
        """Forget the work known so far: ``stream`` starts another pass over a range (main thread).

        Called before the pass reads anything, so that no count of this pass can come
        before it. A pass that learns no work (a range of one month, the exhaustive walk,
        a partition started again after discovery fell short) is then estimated from its
        records, not from the windows of the pass before it.
        """
        with self._lock:
            self._work, self._work_stream, self._fetched_in_range = {}, stream, 0

    def work_known(self, stream: str, window: Window, fetches: int) -> None:
        """Note that ``window`` of ``stream`` holds ``fetches`` fetches of messages (any thread).

        Told as each month's activity lists are read, months ahead of the writing: the
        work the run has still to do, which the position of the records written does not
        show (a month's sessions listed in later months are written with no session record).
        """
        with self._lock:
            if stream == self._work_stream:
                self._work[window] = fetches

    @contextlib.contextmanager
    def fetch(self) -> t.Iterator[None]:
        """Count the block as one fetch of a session's messages, and the requests this thread makes in it."""
        counting, outer = _FetchCount(), getattr(self._local, "fetch", None)
        self._local.fetch = counting
        try:
            yield
        finally:
            if self._local.fetch is counting:
                self._local.fetch = outer
            with self._lock:
                self._fetched += 1
                self._fetched_in_range += 1
                self._fetch_requests += counting.requests

    def windows(self, stream: str, windows: t.Iterator[Window], end: dt.datetime | None) -> t.Iterator[Window]:
        """Yield ``windows`` of ``stream``, a range up to ``end`` (None: now), noting the current one."""
        for window in windows:
            with self._lock:
                if self._stream != stream or self._range is None or self._listed_all:
                    self._stream, self._stream_started = stream, self._clock()
                    self._range, self._position, self._listed_all = (window.start, end), "", False
                    self._samples = []
                self._window = window
            yield window
        with self._lock:
            self._listed_all = True

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
        now = self._clock()
        with self._lock:
            requests, limited = self.requests, self.rate_limited
        counts = ", ".join(f"{self.records.get(stream, 0):,} {noun}" for stream, noun in NOUNS.items())
        limits = ", ".join(f"{label} {limit:g}/s" for label, limit in self._limits.items() if limit)
        parts = [
            f"Progress{' (end of run)' if final else ''}: {self._where() if not final else 'done'}",
            f"{counts} so far" if not final else f"{counts} written",
            f"{self._rate(now, requests, final=final)} ({'limits ' + limits if limits else 'no limit set'})",
            f"{limited:,} 429s waited out",
        ]
        if not final and (left := self.time_left(now)) is not None:
            parts.append(f"about {_duration(left)} left{self._to_come()}")
        return "; ".join(parts)

    def _rate(self, now: float, requests: int, *, final: bool) -> str:
        """Say the request rate over the latest RATE_WINDOW seconds (the whole run in the last line).

        Over less than MIN_RATE_SPAN seconds a rate means little: the count is given instead.
        """
        while len(self._marks) > 1 and now - self._marks[1][0] >= RATE_WINDOW:
            self._marks.popleft()
        since, before = (self._started, 0) if final else self._marks[0]
        self._marks.append((now, requests))
        if now - since < MIN_RATE_SPAN:
            return f"{requests - before:,} requests in {now - since:.0f} s"
        return f"{(requests - before) / (now - since):.1f} requests/s"

    def _where(self) -> str:
        window, stream = self._window, self._stream
        if window is None or stream is None or self._range is None:
            return "starting"
        if self._listed_all:
            return f"{stream} listed to the end, its last records being written"
        end = self._range[1] or utc_now()
        return (
            f"{stream} window {format_zoom_time(window.start)} to {format_zoom_time(window.end)}"
            f" ({months_after(window.end, end)} more after it)"
        )

    def _to_come(self) -> str:
        """Name the top-level streams still to come after the one being read: their time is not known yet.

        A stream's time is learned as it is read; before that nothing tells how many
        records it holds (Phone SMS lists give no totals), so a number would be a guess.
        """
        if self._stream not in self._plan:
            return ""
        later = self._plan[self._plan.index(self._stream) + 1 :]
        return f" in {self._stream}, then {' and '.join(later)}" if later else ""

    def time_left(self, now: float) -> float | None:
        """Estimate the seconds left in the run, or None before there is anything to go on.

        A stream whose work is known (the sessions, with the activity lists): the
        requests that work still needs (:meth:`_requests_left`) at the rate of the latest
        PACE_SECONDS of requests (a run paced by the limit makes them at a steady rate,
        whatever the months hold), and the round trip the last of them waits for. Any
        other stream (Contact Center, a run of one month, the exhaustive walk): how far its
        written records have come through its range (:meth:`_range_left`). The top-level
        streams still to come are named in the line, not counted (see :meth:`_to_come`).
        """
        needed = self._requests_left()
        if needed is None:
            return self._range_left(now)
        rate = self._pace(now)
        return needed / rate + self._round_trip if rate else None

    def _requests_left(self) -> float | None:
        """Return the requests the stream being read still needs, or None if none of its work is known yet.

        Each fetch not yet ended takes as many requests as the run's fetches have taken
        (a request a page of messages, and the retries); see :func:`estimate.requests_left`.
        """
        with self._lock:
            if self._stream != self._work_stream or not self._work or not self._fetched or self._range is None:
                return None
            work, fetched, per_fetch = dict(self._work), self._fetched_in_range, self._fetch_requests / self._fetched
            start, end = self._range[0], self._range[1] or utc_now()
        return requests_left(work, fetched, per_fetch, start, end)

    def _pace(self, now: float) -> float | None:
        """Return the requests a second over the latest PACE_SECONDS (since the first response, if sooner)."""
        with self._lock:
            if not self._paced:
                return None
            since, before = self._paced[0]
            requests = self.requests
        return (requests - before) / (now - since) if now > since else None

    def _range_left(self, now: float) -> float | None:
        """Estimate the seconds left in the stream from how far its written records have come, or None.

        How far the stream is comes from the records written, not from the window being
        listed, which runs ahead of the writing; see :func:`estimate.range_left`.
        """
        with self._lock:
            stream, span, window, samples = self._stream, self._range, self._window, list(self._samples)
        if stream is None or span is None or window is None:
            return None
        start, end = span[0], span[1] or utc_now()
        reached = min(_parse_position(self._position) or window.start, end)
        return range_left(now, start, end, reached, samples=samples, stream_started=self._stream_started)


def _parse_position(position: str) -> dt.datetime | None:
    """Read a replication key value as an aware datetime (None if it is not one)."""
    try:
        value = dt.datetime.fromisoformat(position.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def _duration(seconds: float) -> str:
    """Say a time left finely enough to be held to 25%: "45 s", "3 min 20 s", "2 h 05 min"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        minutes, rest = divmod(round(seconds / 5) * 5, 60)
        return f"{minutes:.0f} min {rest:.0f} s" if rest else f"{minutes:.0f} min"
    hours, rest = divmod(round(seconds / 60), 60)
    return f"{hours:.0f} h {rest:02.0f} min"
