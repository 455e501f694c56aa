"""Which sessions have messages in each month of one run (one partition) of the sessions stream, checked."""

from __future__ import annotations

import threading
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor

from tap_zoom_sms import interrupts
from tap_zoom_sms.discovery.lists import ACTIVITY_FILTERS, DiscoveryFellShortError, SessionActivity, month_of
from tap_zoom_sms.discovery.sample import MessageWalker, SampleCheck
from tap_zoom_sms.readahead.windows import DEPTH

if t.TYPE_CHECKING:
    import logging

    from singer_sdk.helpers.types import Context

    from tap_zoom_sms.run import RunServices
    from tap_zoom_sms.windows import Window


class Discovery:
    """The activity lists of each window, read ahead in the background, and the checks that they hold."""

    def __init__(
        self,
        services: RunServices,
        context: Context | None,
        *,
        stream: str,
        new_walker: t.Callable[[], MessageWalker] | None = None,
    ) -> None:
        """Discover in the sessions list of ``context``; with ``new_walker``, run the sample check (:mod:`.sample`).

        ``stream``: the sessions stream's name, whose work each window's active sessions are in the run's progress.
        """
        self._context = context
        self._stream = stream
        self._services = services
        self._closed = threading.Event()
        #: each reader thread's own activity list streams (stream objects are not thread-safe)
        self._local = threading.local()
        self._sample = (
            SampleCheck(
                services.new_stream(SessionActivity, filter_type="last_message_time"),
                context,
                new_walker,
                services,
            )
            if new_walker is not None
            else None
        )
        #: the lists of the windows being read, read in the background, as many windows at once as
        #: the months' session lists read ahead (see :mod:`tap_zoom_sms.readahead.windows`)
        self._reader = ThreadPoolExecutor(DEPTH + 1, thread_name_prefix="zoom-activity-ahead")
        self._ahead: dict[Window, Future[dict[str, dict[str, t.Any]]]] = {}

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
        self._closed.set()
        if self._sample is not None:
            self._sample.close()
        self._reader.shutdown(wait=not interrupts.STOP.is_set(), cancel_futures=True)

    def _read(self, window: Window) -> dict[str, dict[str, t.Any]]:
        """Read both activity lists of ``window`` at once (from a reader thread only).

        They go out with the run's first request, not after Zoom's first answer, as the
        months' session lists do (see :mod:`tap_zoom_sms.readahead.windows`).
        """
        if self._closed.is_set():
            return {}  # the run ended: nobody will ask for the window
        lists = self._lists()
        pool = ThreadPoolExecutor(len(lists), thread_name_prefix="zoom-activity")
        try:
            found: dict[str, dict[str, t.Any]] = {}
            for sessions in pool.map(lambda activity: activity.sessions(window, self._context), lists):
                found |= sessions
            # each active session is a fetch of its messages in the window: the run's work, known ahead
            self._services.progress.work_known(self._stream, window, len(found))
            return found
        finally:  # after a stop signal, not waiting for a list blocked in a read
            pool.shutdown(wait=not interrupts.STOP.is_set(), cancel_futures=True)

    def _lists(self) -> list[SessionActivity]:
        """Return this reader thread's activity lists, one per filter."""
        lists = getattr(self._local, "lists", None)
        if lists is None:
            lists = self._local.lists = [
                self._services.new_stream(SessionActivity, filter_type=f) for f in ACTIVITY_FILTERS
            ]
        return lists

    def start_sample(self, windows: t.Sequence[Window], logger: logging.Logger) -> None:
        """Start the sample check over the range of ``windows`` in the background (see :mod:`.sample`)."""
        if self._sample is not None and windows:
            self._sample.start(windows, logger)

    def sampled_among(self, active: set[str]) -> frozenset[str]:
        """Return the sampled sessions among a window's ``active`` ones (once the sample is chosen)."""
        return frozenset() if self._sample is None else self._sample.sampled_among(active)

    def check(self, window: Window, active: set[str], listed: set[str]) -> None:
        """Raise :class:`DiscoveryFellShortError` if ``window``'s activity lists missed a session it lists.

        ``listed`` are the sessions listed in ``window`` by their last message: each
        must be active there. This costs nothing, and runs as soon as the window is read.
        """
        month = month_of(window.start)
        for session_id in sorted(listed - active):
            raise DiscoveryFellShortError(session_id, month, "its last message is there")

    def check_sample(self, window: Window, sampled_active: frozenset[str]) -> None:
        """Raise :class:`DiscoveryFellShortError` if the sample's walk found messages ``window``'s lists missed."""
        if self._sample is not None:
            self._sample.check(window, sampled_active)
