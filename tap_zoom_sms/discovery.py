"""Message discovery: which months hold messages of which sessions, so a backfill reads only those.

A session is listed (``filter_type=last_message_time``) only in the month of its last
message, and its earlier messages lie in earlier months. The exhaustive walk reads
every month from the run's lower bound up to each session's last message: on a long
backfill most of those requests come back empty (four to six times the requests the
API needs). Zoom's session lists can also say which sessions *sent*
(``sent_message_time``) or *received* (``received_message_time``) a message in a
window: listing each month by both tells which sessions have messages in that month,
and their details are read there, once (``message_discovery: activity``).

Zoom documents each filter in one sentence, so the tap checks them as it goes, and
falls back to the exhaustive walk when they fall short:

- every session listed by its last message in a month must be among that month's
  active sessions (this costs nothing);
- a sample of the sessions of the backfill's latest months (listed by their last
  message, so they have the longest histories in the range) is walked exhaustively
  over the whole range, and the activity list of every month where the walk finds
  messages must name the session (about 5% of a backfill's requests). The walk runs
  in the background from the run's start, beside the months being read, and each
  month is checked before its bookmark is committed.

The sessions stream (``tap_zoom_sms.streams.phone``) reads month by month: two months'
active sessions at most are held at once, and the state holds no session.
"""

from __future__ import annotations

import logging
import math
import threading
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor

from tap_zoom_sms import interrupts
from tap_zoom_sms.client import ZoomStream
from tap_zoom_sms.windows import format_zoom_time

if t.TYPE_CHECKING:
    import datetime as dt

    from singer_sdk.helpers.types import Context

    from tap_zoom_sms.tap import TapZoomSms
    from tap_zoom_sms.windows import Window

#: The settings' values: read months the activity lists name, or every month.
MODES = ("activity", "exhaustive")
#: Share of the latest month's sessions sampled: a backfill reads about 2.5 months of
#: messages per session and the sample walks every month, so this keeps the check near
#: 5% of the backfill's requests.
SAMPLE_SHARE = 0.1
#: Bounds on the sample.
MIN_SAMPLE, MAX_SAMPLE = 2, 50
#: A run must span this many windows for the sample check: a shorter one is an incremental
#: run, and relies on the check that costs nothing.
SAMPLE_FROM_WINDOWS = 3
ACTIVITY_FILTERS = ("sent_message_time", "received_message_time")


class RequestCounter:
    """Counts the requests of the streams attached to it, from any thread (what the sample check cost)."""

    def __init__(self) -> None:
        """Start at zero."""
        self._lock = threading.Lock()
        self.count = 0

    def attach(self, stream: ZoomStream) -> None:
        """Count every response ``stream`` gets from now on, retries included."""
        stream.requests_session.hooks["response"].append(self._seen)

    def _seen(self, response: t.Any, *args: t.Any, **kwargs: t.Any) -> None:  # noqa: ARG002
        with self._lock:
            self.count += 1


#: Walks sessions' messages over a range, counting its requests, until ``cancelled`` is set:
#: ``(session_ids, since, until, counter, cancelled) -> {session_id: message times}``.
Walker = t.Callable[[list[str], str, str, RequestCounter, threading.Event], t.Mapping[str, t.Iterable[str]]]


class DiscoveryFellShortError(Exception):
    """Zoom's activity lists missed a session in a month where it has messages."""

    def __init__(self, session_id: str, month: str, how: str) -> None:
        """Name the session, the month (``yyyy-mm``) and how the miss was seen."""
        self.session_id, self.month = session_id, month
        super().__init__(f"Zoom's activity lists missed session {session_id} in {month} ({how})")


def sessions_path(config: t.Mapping[str, t.Any]) -> str:
    """Return the session list the tap reads: the account's, or a user's when ``user_ids`` is set."""
    return "/phone/users/{user_id}/sms/sessions" if config.get("user_ids") else "/phone/sms/sessions"


def month_of(instant: dt.datetime | str) -> str:
    """Return the ``yyyy-mm`` of an instant (a datetime, or a Zoom time string)."""
    return (instant if isinstance(instant, str) else format_zoom_time(instant))[:7]


def sample_size(latest: int) -> int:
    """Size the sample from the number of sessions the latest month lists (see :data:`SAMPLE_SHARE`)."""
    return max(MIN_SAMPLE, min(MAX_SAMPLE, math.ceil(SAMPLE_SHARE * latest)))


class SessionActivity(ZoomStream):
    """The ids of the sessions that sent, or received, a message in a window (no records emitted).

    Reads the same list as the sessions stream (the account's, or a user's), with
    ``filter_type`` set to one of :data:`ACTIVITY_FILTERS`. It shares the sessions
    stream's schema and name, and never touches the state.
    """

    name = "sms_sessions"
    primary_keys = ("session_id",)
    replication_key = "last_access_time"
    records_key = "sms_sessions"
    paced_first = True  # the workers wait on its pages for sessions to fetch
    shows_progress = False  # the sessions stream's own windows are the run's progress

    def __init__(self, tap: TapZoomSms, filter_type: str) -> None:
        """List sessions of ``tap``'s account by ``filter_type``."""
        super().__init__(tap=tap)
        self._filter_type = filter_type
        self._window: Window | None = None

    @property
    def path(self) -> str:  # type: ignore[override]
        """Return the account's list, or a user's when ``user_ids`` is set."""
        return sessions_path(self.config)

    def windows(self, context: Context | None) -> t.Iterator[Window]:  # noqa: ARG002
        """Read the one window asked of :meth:`session_ids`."""
        return iter([self._window] if self._window else [])

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        """Ask for every session type, by this list's filter."""
        return {
            **super().get_url_params(context, next_page_token),
            "session_type": self.config["session_type"],
            "filter_type": self._filter_type,
        }

    def sessions(self, window: Window, context: Context | None) -> dict[str, dict[str, t.Any]]:
        """Return the sessions this filter lists in ``window``, by id (a stream map's filter is applied to them)."""
        self._window = window
        return {record["session_id"]: record for record in self.get_records(context)}

    def session_ids(self, window: Window, context: Context | None) -> set[str]:
        """Return the ids of the sessions this filter lists in ``window``."""
        return set(self.sessions(window, context))


class Discovery:
    """Which sessions have messages in each window of one run (one partition) of the sessions stream."""

    def __init__(self, tap: TapZoomSms, context: Context | None, *, sample: bool) -> None:
        """Discover for ``tap``'s sessions list in ``context``; ``sample``: run the sample check too."""
        self._context = context
        self._lists = [SessionActivity(tap, filter_type) for filter_type in ACTIVITY_FILTERS]
        self._latest = SessionActivity(tap, "last_message_time") if sample else None
        #: the lists of the windows being read, read in the background (one window at a time)
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="zoom-activity-ahead")
        self._ahead: dict[Window, Future[dict[str, dict[str, t.Any]]]] = {}
        #: the sample check, in the background: which sessions, then the months their walk found
        self._sampler = ThreadPoolExecutor(1, thread_name_prefix="zoom-sample-check")
        self._chosen: Future[list[str]] | None = None
        self._walked: Future[dict[str, set[str]]] | None = None
        self._sample_requests = RequestCounter()
        #: set at close: a run that ends early (an error, a fallback) does not wait for the walk
        self._cancelled = threading.Event()

    def read_ahead(self, window: Window) -> None:
        """Start reading ``window``'s activity lists now, while its sessions are listed.

        At a second of latency, reading them only once the window's list is done would
        stall the workers for that second, once a month of the range.
        """
        self._ahead[window] = self._reader.submit(self._read, window)

    def active(self, window: Window) -> dict[str, dict[str, t.Any]]:
        """Return the sessions that sent or received a message in ``window``, by id."""
        future = self._ahead.pop(window, None) or self._reader.submit(self._read, window)
        return future.result()

    def close(self) -> None:
        """Stop reading ahead and the sample's walk (after a stop signal, without waiting for a read)."""
        self._cancelled.set()
        for pool in (self._reader, self._sampler):
            pool.shutdown(wait=not interrupts.STOP.is_set(), cancel_futures=True)

    def _read(self, window: Window) -> dict[str, dict[str, t.Any]]:
        """Read both activity lists of ``window`` at once (from the reader's thread only)."""
        pool = ThreadPoolExecutor(len(self._lists), thread_name_prefix="zoom-activity")
        try:
            found: dict[str, dict[str, t.Any]] = {}
            for sessions in pool.map(lambda activity: activity.sessions(window, self._context), self._lists):
                found |= sessions
            return found
        finally:  # after a stop signal, not waiting for a list blocked in a read
            pool.shutdown(wait=not interrupts.STOP.is_set(), cancel_futures=True)

    def start_sample(self, windows: t.Sequence[Window], walk: Walker, logger: logging.Logger) -> None:
        """Start the sample check over the range of ``windows`` in the background (once per run).

        The sample comes from the latest windows (scanned back until it is full), by
        their last message; each is walked with ``walk`` over the whole range. Run
        before the first month, it would leave the workers idle for a few latencies
        (its list pages, then the first month's list after the walk): beside the
        months, it only delays the first bookmark.
        """
        if self._latest is None or not windows:
            return
        self._sample_requests.attach(self._latest)
        self._chosen = self._sampler.submit(self._choose, self._latest, windows)
        self._walked = self._sampler.submit(self._walk_sample, windows, walk, logger)

    def _choose(self, latest: SessionActivity, windows: t.Sequence[Window]) -> list[str]:
        chosen: list[str] = []
        size = 0
        for window in reversed(windows):
            listed = sorted(latest.session_ids(window, self._context))
            size = size or (sample_size(len(listed)) if listed else 0)
            chosen += listed[: size - len(chosen)]
            if size and len(chosen) >= size:
                break
        return chosen

    def _walk_sample(self, windows: t.Sequence[Window], walk: Walker, logger: logging.Logger) -> dict[str, set[str]]:
        assert self._chosen is not None  # noqa: S101 (submitted before this, to the same thread)
        chosen = self._chosen.result()
        since, until = format_zoom_time(windows[0].start), format_zoom_time(windows[-1].end)
        walks = walk(chosen, since, until, self._sample_requests, self._cancelled)
        if self._cancelled.is_set():
            return {}
        logger.info(
            "Discovery sample: %d sessions walked over %d windows to check Zoom's activity lists (%d requests)",
            len(chosen),
            len(windows),
            self._sample_requests.count,
        )
        return {session_id: {month_of(when) for when in walks[session_id]} for session_id in chosen}

    def sampled_among(self, active: set[str]) -> frozenset[str]:
        """Return the sampled sessions among a window's ``active`` ones (once the sample is chosen)."""
        if self._chosen is None:
            return frozenset()
        return frozenset(session_id for session_id in self._chosen.result() if session_id in active)

    def check(self, window: Window, active: set[str], listed: set[str]) -> None:
        """Raise :class:`DiscoveryFellShortError` if ``window``'s activity lists missed a session it lists.

        ``listed`` are the sessions listed in ``window`` by their last message: each
        must be active there. This costs nothing, and runs as soon as the window is read.
        """
        month = month_of(window.start)
        for session_id in sorted(listed - active):
            raise DiscoveryFellShortError(session_id, month, "its last message is there")

    def check_sample(self, window: Window, sampled_active: frozenset[str]) -> None:
        """Raise :class:`DiscoveryFellShortError` if the sample's walk found messages ``window``'s lists missed.

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


class BoundaryMessages:
    """Writes a message stamped on the instant two windows share once, though discovery reads each month apart.

    Windows share their boundary instant (bounds are taken as inclusive), so a
    message stamped exactly at 00:00:00 on the 1st is read with the month before and
    with its own. The exhaustive walk reads both windows of a session in one sync and
    drops the repeat there; discovery reads them in separate syncs, so the ids of the
    messages stamped on the latest boundaries are kept here (a few at most).
    """

    def __init__(self) -> None:
        """Start with no boundary seen."""
        self._seen: dict[str, set[str]] = {}

    def first_sighting(self, message: t.Mapping[str, t.Any]) -> bool:
        """Say whether ``message`` is to be written: not a repeat of one stamped on a month's first instant."""
        when = str(message.get("date_time") or "")
        if not when.endswith("-01T00:00:00Z"):
            return True
        seen = self._seen.setdefault(when, set())
        if len(self._seen) > 2:  # windows are read in order: older boundaries cannot come again
            del self._seen[min(self._seen)]
        if message.get("message_id") in seen:
            return False
        seen.add(str(message.get("message_id")))
        return True
