"""Paging through Zoom's results window by window.

A page token carries the date window as well as Zoom's ``next_page_token``, so one
paginator walks every page of every window of a range, and the stream learns when
a window has been read in full (to advance its bookmark), and up to which instant
of Zoom's clock that reading covers.

Zoom's tokens are trusted only as far as they lead somewhere new: a token already
seen in the window (tokens going round in a circle), or more pages than any real
window holds, ends the run with one line instead of looping for ever.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from singer_sdk.pagination import BaseAPIPaginator

from tap_zoom_sms.errors import ZoomAPIError
from tap_zoom_sms.responses import zoom_json
from tap_zoom_sms.windows import Window, format_zoom_time
from tap_zoom_sms.zoomclock import response_date

if t.TYPE_CHECKING:
    import datetime as dt

    import requests

#: ``on_window_done(window, last, covered)``: ``covered`` is the window's end, or the
#: Zoom time of its first page if earlier (what Zoom could have shown then).
WindowDone = t.Callable[[Window, bool, "dt.datetime"], None]
#: More pages than this in one window is taken for a paging loop: 5,000,000 records
#: at page_size 100, far beyond any month of one account's sessions or one session.
MAX_PAGES_PER_WINDOW = 50_000


class _WindowRead(dict):
    """The type of :data:`WINDOW_READ` (a dict, so it can travel with the records)."""


#: Yielded among a list's records after the last record of each window, by a stream that
#: asks for it (``marks_windows``), before the paginator moves on: there its consumer can
#: still hand records to the SDK, which it cannot from ``on_window_done``.
WINDOW_READ: dict[str, t.Any] = _WindowRead()


class PagingLoopError(ZoomAPIError):
    """Zoom's page tokens of a window go round in a circle (or never end)."""


@dataclass(frozen=True)
class WindowPage:
    """Which page to request: a window and Zoom's token within it (None: first page)."""

    window: Window
    next_page_token: str | None = None


def next_page_token(body: t.Mapping[str, t.Any]) -> str | None:
    """Return the token of the next page, or None on the last page.

    Session details has been seen answering with its token under ``sync_token``
    instead of ``next_page_token``: reading either keeps such a session from being
    cut short after its first page.
    """
    return body.get("next_page_token") or body.get("sync_token") or None


class WindowPaginator(BaseAPIPaginator[WindowPage]):
    """Follows ``next_page_token`` to the end of a window, then starts the next one.

    ``on_window_done(window, last, covered)`` is called once a window's last page
    has been read; by then the SDK has processed every record of that window
    (records are consumed before the paginator advances), so the stream can commit
    a bookmark. ``covered`` caps the window's end by the ``Date`` of its first page:
    Zoom cannot have listed anything it stamped after it answered, whatever the
    tap's own clock said when it made the window.
    """

    def __init__(
        self,
        windows: t.Iterator[Window],
        on_window_done: WindowDone,
        what: str = "Zoom's list",
        max_pages: int = MAX_PAGES_PER_WINDOW,
    ) -> None:
        """Start at the first page of the first window (``windows`` must not be empty).

        ``what`` (e.g. "GET /v2/phone/sms/sessions") names the endpoint in errors.
        """
        super().__init__(WindowPage(next(windows)))
        self._windows = windows
        self._on_window_done = on_window_done
        self._what = what
        self._max_pages = max_pages
        self._start_window()

    def _start_window(self) -> None:
        self._tokens: set[str] = set()
        self._pages = 0
        self._zoom_time: dt.datetime | None = None
        self._read_otherwise = False

    def end_window(self) -> None:
        """Take the page being read as its window's last: the stream read the rest another way.

        (A session's window read from both ends, see :mod:`tap_zoom_sms.readahead.bothends`.)
        """
        self._read_otherwise = True

    def continue_if_empty(self, response: requests.Response) -> bool:  # noqa: ARG002
        """Keep going after an empty page: an empty month says nothing of the next."""
        return True

    def get_next(self, response: requests.Response) -> WindowPage | None:
        """Return the next page of this window, else the first page of the next."""
        current = self.current_value
        self._pages += 1
        answered = response_date(response)
        if answered is not None and (self._zoom_time is None or answered < self._zoom_time):
            self._zoom_time = answered
        token = None if self._read_otherwise else next_page_token(zoom_json(response))
        if token:
            self._check_progress(current.window, token)
            return WindowPage(current.window, token)
        covered = current.window.end if self._zoom_time is None else min(current.window.end, self._zoom_time)
        self._start_window()
        following = next(self._windows, None)
        self._on_window_done(current.window, following is None, covered)
        return None if following is None else WindowPage(following)

    def _check_progress(self, window: Window, token: str) -> None:
        """Refuse a token already seen in this window, or a page beyond the bound."""
        where = f"{self._what}, window {format_zoom_time(window.start)} to {format_zoom_time(window.end)}"
        if token in self._tokens:
            msg = f"Zoom's page tokens went round in a circle on {where}: page {self._pages} gave a token seen before"
            raise PagingLoopError(msg)
        if self._pages >= self._max_pages:
            msg = f"Zoom gave more than {self._max_pages} pages on {where}: taken for a paging loop"
            raise PagingLoopError(msg)
        self._tokens.add(token)
