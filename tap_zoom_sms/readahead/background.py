"""A stream's list read from the run's start in a background thread, while the streams before it sync.

Contact Center engagements are on Zoom's Heavy label, a limit of their own that idles
while the Phone streams use the Medium one; a backfill's months are a round trip each
even when empty (13 to 25 of them). Read in turn, after the Phone streams, they added
those round trips to every run. Here the same reading runs beside them, window after
window exactly as in turn (so a daily cap still stops it where its last window ended,
and nothing is asked of the label after the cap), and its records wait, bounded by
:data:`~tap_zoom_sms.readahead.prefetch.RECORD_BUDGET`, for the stream's turn.

It sends nothing before Zoom has answered a data request of the run with success (or
before the stream's turn comes), so a refused token ends the run on one request.
"""

from __future__ import annotations

import queue
import threading
import typing as t
from dataclasses import dataclass

from tap_zoom_sms.pagination import WINDOW_READ
from tap_zoom_sms.readahead.prefetch import RECORD_BUDGET

if t.TYPE_CHECKING:
    import datetime as dt

    from singer_sdk.helpers.types import Context

    from tap_zoom_sms.pagination import WindowDone
    from tap_zoom_sms.windows import Window

#: How often the reader, waiting for room at a window's end, checks whether it was stopped.
PUT_POLL_SECONDS = 0.1


class ListReader(t.Protocol):
    """A list stream, as the background reads it (its own object: streams are not thread-safe)."""

    def read_windows(
        self, context: Context | None, windows: t.Iterator[Window], on_window_done: WindowDone
    ) -> t.Iterator[dict[str, t.Any]]:
        """Read ``windows`` one after another, calling ``on_window_done`` after each."""


class ListStream(t.Protocol):
    """The stream the records read are handed over to."""

    @property
    def marks_windows(self) -> bool:
        """Whether WINDOW_READ follows each window's records."""

    def on_window_done(self, window: Window, last: bool, covered: dt.datetime) -> None:
        """Run once every record of ``window`` is out."""


@dataclass(frozen=True)
class WindowEnded:
    """Every record of ``window`` is before this in the list read: its bookmark may move to ``covered``."""

    window: Window
    last: bool
    covered: dt.datetime


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class _Stopped(Exception):  # noqa: N818 (a signal within this module)
    """Nobody will take what is read: the reader ends."""


_END = object()


class ListInBackground:
    """Reads ``windows`` of ``context`` with ``reader`` in a thread of its own, from now on."""

    def __init__(
        self,
        reader: ListReader,
        windows: t.Iterator[Window],
        context: Context | None,
        answered: t.Callable[[t.Callable[[], bool]], bool],
        budget: int = RECORD_BUDGET,
    ) -> None:
        """Start reading; once ``budget`` records wait, the reading pauses at its next window's end."""
        self._queue: queue.Queue[t.Any] = queue.Queue()
        self._budget = budget
        self._stopped = threading.Event()
        self._taking = threading.Event()
        self._thread = threading.Thread(
            target=self._read,
            args=(reader, windows, context, answered),
            name="zoom-list-early",
            daemon=True,  # never keeps a run that ended from exiting
        )
        self._thread.start()

    def items(self) -> t.Iterator[dict[str, t.Any] | WindowEnded]:
        """Yield the records read, each window's end after its records; raise what the reading raised."""
        self._taking.set()
        while (item := self._queue.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def hand_over(self, stream: ListStream) -> t.Iterator[dict[str, t.Any]]:
        """Yield the records read to ``stream``'s sync, each window done once its records are out."""
        try:
            for item in self.items():
                if not isinstance(item, WindowEnded):
                    yield item
                    continue
                if stream.marks_windows:
                    yield WINDOW_READ
                stream.on_window_done(item.window, item.last, item.covered)
        finally:
            self.close()

    def close(self) -> None:
        """Stop reading (the thread ends at its next record, or its next wait)."""
        self._stopped.set()

    def _read(
        self,
        reader: ListReader,
        windows: t.Iterator[Window],
        context: Context | None,
        answered: t.Callable[[t.Callable[[], bool]], bool],
    ) -> None:
        if not answered(lambda: self._stopped.is_set() or self._taking.is_set()) and self._stopped.is_set():
            return

        def ended(window: Window, last: bool, covered: dt.datetime) -> None:
            self._put(WindowEnded(window, last, covered))
            self._wait_for_room()  # before the next window's first page

        try:
            for record in reader.read_windows(context, windows, ended):
                if record is not WINDOW_READ:
                    self._put(record)
        except _Stopped:
            return
        except Exception as exc:  # raised again in the thread that takes the items
            self._put_last(_Failed(exc))
            return
        except BaseException:  # a stop signal: the main thread ends the run, and says so
            return
        self._put_last(_END)

    def _put(self, item: t.Any) -> None:
        """Queue ``item``; raise :class:`_Stopped` if nobody will take it."""
        if self._stopped.is_set():
            raise _Stopped
        self._queue.put(item)

    def _wait_for_room(self) -> None:
        """Wait while the budget's records wait; raise :class:`_Stopped` if stopped meanwhile."""
        while self._queue.qsize() >= self._budget:
            if self._stopped.wait(PUT_POLL_SECONDS):
                raise _Stopped

    def _put_last(self, item: t.Any) -> None:
        try:
            self._put(item)
        except _Stopped:
            return
