"""The next windows of a list read while the current one is written: no round trip idles at a month boundary.

A list is read window by window (a month each), and a window's pages are a chain of
cursors, one round trip after another. Read one window after another, a backfill waits
a round trip or more at every month boundary for the next month's list, and the rate
limit idles meanwhile: at a second of latency (a tap in Europe or Asia against Zoom's
US API) a fifth of a 13-month backfill. So the lists of the next windows are read in
worker threads (each with its own stream object: they are not thread-safe) while the
stream writes the current one. Records are still handed over window by window, in
order, and each window's bookmark is still committed by the stream once every record
of the window is out. What is held is bounded by records, not by windows (the
prefetcher's budget, see :mod:`.prefetch`).

The windows read ahead send their first request at once, beside the run's first,
rather than after Zoom's first answer: at a second of latency that answer is a second
in which the limit would idle, at the start of every backfill. What it costs is a
misconfigured run's: a refused token or scope, or a wrong URL, meets the error on each
list read at once (the next five months' and their activity lists), and the run still
ends with that one error (see docs/reliability.md).
"""

from __future__ import annotations

import collections
import typing as t

from tap_zoom_sms.pagination import WINDOW_READ
from tap_zoom_sms.readahead.prefetch import Prefetcher
from tap_zoom_sms.windows import WindowDedupe

if t.TYPE_CHECKING:
    import datetime as dt

    from singer_sdk.helpers.types import Context

    from tap_zoom_sms.windows import Window

#: Windows read ahead of the one being written. A month's list is a page or two for most
#: accounts, and its records are written in a fraction of a round trip: three windows
#: ahead keep the lists ahead of the writer at a second of latency. Five, because the first
#: second of a backfill has only lists to send: the six months' session lists, their activity
#: lists and the sample check's, 19 requests, fill a second at 0.95 of Business's 20/s, the
#: round trip before Zoom's first answer from a far region (13 of them, with three, left the
#: limit idle for 0.3 s of it).
DEPTH = 5

#: What each window's reading covered (see :class:`~tap_zoom_sms.pagination.WindowPaginator`).
Covered = dict["Window", "dt.datetime"]


class WindowReader(t.Protocol):
    """A list stream, as the pipeline reads it: one window's records, noting what the reading covered."""

    def read_window(self, window: Window, context: Context | None, covered: Covered) -> t.Iterator[dict[str, t.Any]]:
        """Yield the records of ``window`` (each once), then set ``covered[window]``."""


class ListStream(WindowReader, t.Protocol):
    """The stream the records read ahead are handed over to, window by window."""

    current_window: Window

    @property
    def primary_keys(self) -> t.Sequence[str] | None:
        """The fields that identify a record."""

    @property
    def replication_key(self) -> str | None:
        """The field that places a record in time."""

    @property
    def marks_windows(self) -> bool:
        """Whether WINDOW_READ follows each window's records."""

    def on_window_done(self, window: Window, last: bool, covered: dt.datetime) -> None:
        """Run once every record of ``window`` is out."""


class _WindowFetch:
    """Reads the window a fetch names with a reader of its own (one per worker thread)."""

    def __init__(self, reader: WindowReader, ahead: WindowsAhead) -> None:
        self._reader = reader
        self._ahead = ahead

    def get_records(self, fetch: Context) -> t.Iterator[dict[str, t.Any]]:
        return self._reader.read_window(fetch["window"], fetch["context"], self._ahead.covered_by)


def _key(window: Window) -> str:
    return f"{window.start.isoformat()} {window.end.isoformat()}"


class WindowsAhead:
    """Reads the lists of up to ``depth`` windows ahead of the one being written, in order."""

    def __init__(
        self,
        new_reader: t.Callable[[], WindowReader],
        windows: t.Iterator[Window],
        context: Context | None,
        depth: int = DEPTH,
    ) -> None:
        """Start reading the first of ``windows`` of ``context`` now, with readers made by ``new_reader``.

        ``depth + 1`` threads read: the current window's and the next ``depth``'s, all at once.
        """
        self.covered_by: Covered = {}
        self._prefetcher = Prefetcher(lambda: _WindowFetch(new_reader(), self), depth + 1)
        self._windows = windows
        self._context = context
        self._depth = depth
        self._queued: collections.deque[Window] = collections.deque()
        #: whether the window last yielded by :meth:`windows` is the last of the range
        self.last = False
        self._fill(depth + 1)

    def windows(self) -> t.Iterator[Window]:
        """Yield the windows in order, each one's list (and the next ``depth``'s) being read already."""
        while self._queued:
            window = self._queued.popleft()
            self._fill(self._depth)  # the next windows' lists start before this one is written
            self.last = not self._queued
            yield window

    def hand_over(
        self, stream: ListStream, shown: t.Callable[[t.Iterator[Window]], t.Iterator[Window]]
    ) -> t.Iterator[dict[str, t.Any]]:
        """Yield the records window by window to ``stream``'s sync, each window done once its records are out.

        ``shown`` notes the windows in the run's progress as they are written. A record
        on the boundary two windows share is yielded once (:class:`WindowDedupe`), and
        :data:`~tap_zoom_sms.pagination.WINDOW_READ` follows each window's records if the
        stream ``marks_windows``.
        """
        dedupe = WindowDedupe(stream.primary_keys or (), str(stream.replication_key))
        try:
            for window in shown(self.windows()):
                stream.current_window = window
                yield from (r for r in self.records(window, stream) if dedupe.first_sighting(r, window))
                if stream.marks_windows:
                    yield WINDOW_READ
                stream.on_window_done(window, self.last, self.covered(window))
        finally:
            self.close()

    def records(self, window: Window, here: WindowReader) -> t.Iterator[dict[str, t.Any]]:
        """Return ``window``'s records as they are read; ``here`` reads it if no worker has begun it."""
        fetched = self._prefetcher.take(_key(window))
        if fetched is not None:
            return fetched
        return here.read_window(window, self._context, self.covered_by)

    def covered(self, window: Window) -> dt.datetime:
        """Return what the reading of ``window`` covered (once its records are all taken)."""
        return self.covered_by.pop(window)

    def close(self) -> None:
        """Stop reading ahead (see :meth:`Prefetcher.close`)."""
        self._queued.clear()
        self._prefetcher.close()

    def _fill(self, count: int) -> None:
        """Queue windows until ``count`` are queued (or the range ends)."""
        while len(self._queued) < count and (window := next(self._windows, None)) is not None:
            self._prefetcher.queue(_key(window), {"window": window, "context": self._context})
            self._queued.append(window)
