"""The sample check: a few sessions walked month by month over the whole range, to check the activity lists.

The sessions of the backfill's latest months (listed by their last message, so they have
the longest histories in the range) are walked exhaustively over the whole range, and the
activity list of every month where the walk finds messages must name the session (about
5% of a backfill's requests). The walk runs in the background from the run's start, beside
the months being read, and each month is checked before its bookmark is committed.
"""

from __future__ import annotations

import logging
import math
import threading
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor

from tap_zoom_sms import interrupts
from tap_zoom_sms.discovery.lists import DiscoveryFellShortError, SessionActivity, month_of
from tap_zoom_sms.windows import format_zoom_time, month_windows, parse_time

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context

    from tap_zoom_sms.run import RunServices
    from tap_zoom_sms.windows import Window

#: Share of the latest month's sessions sampled: a backfill reads about 2.5 months of
#: messages per session and the sample walks every month, so this keeps the check near
#: 5% of the backfill's requests.
SAMPLE_SHARE = 0.1
#: Bounds on the sample.
MIN_SAMPLE, MAX_SAMPLE = 2, 50
#: A run must span this many windows for the sample check: a shorter one is an incremental
#: run, and relies on the check that costs nothing.
SAMPLE_FROM_WINDOWS = 3


class MessageWalker(t.Protocol):
    """A messages stream, as the walk uses it: the times of a session's messages over a range."""

    requests_session: requests.Session

    def message_times(self, session_id: str, since: str, until: str) -> list[str]:
        """Return the times of the session's messages in ``[since, until]``, month by month."""


def sample_size(latest: int) -> int:
    """Size the sample from the number of sessions the latest month lists (see :data:`SAMPLE_SHARE`)."""
    return max(MIN_SAMPLE, min(MAX_SAMPLE, math.ceil(SAMPLE_SHARE * latest)))


class RequestCounter:
    """Counts the requests of the streams attached to it, from any thread (what the sample check cost)."""

    def __init__(self) -> None:
        """Start at zero."""
        self._lock = threading.Lock()
        self.count = 0

    def attach(self, stream: MessageWalker | SessionActivity) -> None:
        """Count every response ``stream`` gets from now on, retries included."""
        stream.requests_session.hooks["response"].append(self._seen)

    def _seen(self, response: t.Any, *args: t.Any, **kwargs: t.Any) -> None:  # noqa: ARG002
        with self._lock:
            self.count += 1


class SampleCheck:
    """The sample check of one run (one partition) of the sessions stream, in a background thread."""

    def __init__(
        self,
        latest: SessionActivity,
        context: Context | None,
        new_walker: t.Callable[[], MessageWalker],
        services: RunServices,
    ) -> None:
        """Sample from ``latest`` (the list by last message) in ``context``; walk with the run's workers."""
        self._latest = latest
        self._context = context
        self._new_walker = new_walker
        self._workers = services.workers
        self._requests = RequestCounter()
        self._requests.attach(latest)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="zoom-sample-check")
        self._chosen: Future[list[str]] | None = None
        self._walked: Future[dict[str, set[str]]] | None = None
        #: set at close: a run that ends early (an error, a fallback) does not wait for the walk
        self._cancelled = threading.Event()

    def start(self, windows: t.Sequence[Window], logger: logging.Logger) -> None:
        """Choose the sample and walk it over the range of ``windows``, in the background.

        The sample comes from the latest windows (scanned back until it is full), by
        their last message. Run before the first month, it would leave the workers idle
        for a few latencies (its list pages, then the first month's list after the
        walk): beside the months, it only delays the first bookmark. Its list goes out with
        the run's first request, as the months' lists do: the first month's active sessions
        wait for the sample to be chosen (:meth:`sampled_among`).
        """
        self._chosen = self._thread.submit(self._choose, windows)
        self._walked = self._thread.submit(self._walk_sample, windows, logger)

    def close(self) -> None:
        """Stop the walk (after a stop signal, without waiting for a read)."""
        self._cancelled.set()
        self._thread.shutdown(wait=not interrupts.STOP.is_set(), cancel_futures=True)

    def sampled_among(self, active: set[str]) -> frozenset[str]:
        """Return the sampled sessions among a window's ``active`` ones (once the sample is chosen)."""
        if self._chosen is None:
            return frozenset()
        return frozenset(session_id for session_id in self._chosen.result() if session_id in active)

    def check(self, window: Window, sampled_active: frozenset[str]) -> None:
        """Raise :class:`DiscoveryFellShortError` if the walk found messages ``window``'s lists missed.

        ``sampled_active`` are the sampled sessions among the window's active ones
        (:meth:`sampled_among`). Waits for the walk: run before the window's bookmark
        is committed.
        """
        if self._walked is None:
            return
        month = month_of(window.start)
        for session_id, months in sorted(self._walked.result().items()):
            if month in months and session_id not in sampled_active:
                raise DiscoveryFellShortError(session_id, month, "the exhaustive walk of a sample found messages")

    def _choose(self, windows: t.Sequence[Window]) -> list[str]:
        chosen: list[str] = []
        if self._cancelled.is_set():
            return chosen  # the run ended: nobody will ask for the sample
        size = 0
        for window in reversed(windows):
            listed = sorted(self._latest.session_ids(window, self._context))
            size = size or (sample_size(len(listed)) if listed else 0)
            chosen += listed[: size - len(chosen)]
            if size and len(chosen) >= size:
                break
        return chosen

    def _walk_sample(self, windows: t.Sequence[Window], logger: logging.Logger) -> dict[str, set[str]]:
        assert self._chosen is not None  # noqa: S101 (submitted before this, to the same thread)
        chosen = self._chosen.result()
        since, until = format_zoom_time(windows[0].start), format_zoom_time(windows[-1].end)
        walks = self._walk(chosen, since, until)
        if self._cancelled.is_set():
            return {}
        logger.info(
            "Discovery sample: %d sessions walked over %d windows to check Zoom's activity lists (%d requests)",
            len(chosen),
            len(windows),
            self._requests.count,
        )
        return {session_id: {month_of(when) for when in walks[session_id]} for session_id in chosen}

    def _walk(self, session_ids: list[str], since: str, until: str) -> dict[str, list[str]]:
        """Return the message times of each session over ``[since, until]``, every window of every session at once.

        A walk is a request per window: one session at a time, or even one window after
        another, the sample check would leave the workers idle for tens of seconds at a
        second of latency.
        """
        local = threading.local()
        windows = [
            (format_zoom_time(w.start), format_zoom_time(w.end))
            for w in month_windows(parse_time(since), parse_time(until))
        ]
        tasks = [(session_id, lo, hi) for session_id in session_ids for lo, hi in windows]

        def walk(task: tuple[str, str, str]) -> list[str]:
            if self._cancelled.is_set():  # the run is over: nobody will check the result
                return []
            if not hasattr(local, "walker"):
                local.walker = self._new_walker()
                self._requests.attach(local.walker)
            return local.walker.message_times(*task)

        found: dict[str, list[str]] = {session_id: [] for session_id in session_ids}
        pool = ThreadPoolExecutor(max(1, min(len(tasks), self._workers)), "zoom-sample")
        try:
            for (session_id, _, _), times in zip(tasks, pool.map(walk, tasks), strict=True):
                found[session_id] += times
        finally:  # after a stop signal, not waiting for walks blocked in a read
            pool.shutdown(wait=not interrupts.STOP.is_set(), cancel_futures=True)
        return found
