"""Paging through Zoom's results window by window.

A page token carries the date window as well as Zoom's ``next_page_token``, so one
paginator walks every page of every window of a range, and the stream learns when
a window has been read in full (to advance its bookmark).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from singer_sdk.pagination import BaseAPIPaginator

from tap_zoom_sms.responses import zoom_json
from tap_zoom_sms.windows import Window

if t.TYPE_CHECKING:
    import requests

WindowDone = t.Callable[[Window, bool], None]


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

    ``on_window_done(window, last)`` is called once a window's last page has been
    read; by then the SDK has processed every record of that window (records are
    consumed before the paginator advances), so the stream can commit a bookmark.
    """

    def __init__(self, windows: t.Iterator[Window], on_window_done: WindowDone) -> None:
        """Start at the first page of the first window (``windows`` must not be empty)."""
        super().__init__(WindowPage(next(windows)))
        self._windows = windows
        self._on_window_done = on_window_done

    def continue_if_empty(self, response: requests.Response) -> bool:  # noqa: ARG002
        """Keep going after an empty page: an empty month says nothing of the next."""
        return True

    def get_next(self, response: requests.Response) -> WindowPage | None:
        """Return the next page of this window, else the first page of the next."""
        current = self.current_value
        token = next_page_token(zoom_json(response))
        if token:
            return WindowPage(current.window, token)
        following = next(self._windows, None)
        self._on_window_done(current.window, following is None)
        return None if following is None else WindowPage(following)
