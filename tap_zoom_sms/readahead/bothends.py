"""A session's window read from both ends when the rate limit has room: its newest page beside its next.

One session's pages in a window are a chain of cursors, a round trip each. The last
sessions of a backfill (and the few of an incremental run) end the run a round trip per
page after they begin, while the limit idles: a window of three pages that begins among
a backfill's last requests ends two round trips after them. Zoom's session details sort
either way (``sort``: 1 oldest first, 2 newest first), so when a window's first page says
there is more and the limiter has a turn nobody waits for, the window's newest page is
asked for in a thread of its own, beside the window's second page. The reading oldest
first goes on until it has passed the oldest message of the newest page; the newest
page's messages after the last one read are then written, oldest first, and the window
ends: a window of three pages takes two round trips, not three, and the same three
requests. A window of two pages costs one request more (its second page and its newest
hold the same messages), on a turn nobody else wanted.

Nothing that could lose a message is trusted. The newest page is used only if its
messages are newest first and its newest is at least as new as any read oldest first
(Zoom ignoring ``sort`` would send the oldest page again); the pages read oldest first
must be in that order too; the window ends early only once a message strictly newer than
the newest page's oldest was read (messages of the same second may be split across pages
in any order); and a newest page that fails, or whose messages lack an id or a time, is
set aside with a DEBUG line: the window is read to its end as it would have been.
"""

from __future__ import annotations

import itertools
import threading
import typing as t
from concurrent.futures import Future
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tap_zoom_sms.responses import MalformedResponseError, zoom_json
from tap_zoom_sms.windows import parse_time

if t.TYPE_CHECKING:
    import datetime as dt
    import logging

    import requests

#: The fields the meeting of the two ends is decided on.
ID_FIELD, TIME_FIELD = "message_id", "date_time"


def newest_first(first_page: str) -> str:
    """Return the URL of the newest page of the window whose first page (oldest first) is at ``first_page``."""
    parts = urlsplit(first_page)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in {"sort", "next_page_token"}]
    return urlunsplit(parts._replace(query=urlencode([*query, ("sort", "2")])))


class NewestPage:
    """A window's newest page, read by ``read`` in a thread of its own (daemon: nobody waits for it at exit)."""

    def __init__(self, read: t.Callable[[], requests.Response], records_key: str) -> None:
        """Start reading now; the page's records are under ``records_key``."""
        self._records_key = records_key
        self._future: Future[requests.Response] = Future()
        threading.Thread(target=self._read, args=(read,), name="zoom-newest-page", daemon=True).start()

    def _read(self, read: t.Callable[[], requests.Response]) -> None:
        try:
            self._future.set_result(read())
        except BaseException as exc:  # handed to the reader, who sets the page aside
            self._future.set_exception(exc)

    @property
    def response(self) -> requests.Response:
        """Return Zoom's answer (once read); raise what the reading raised."""
        return self._future.result()

    def records(self) -> list[t.Any]:
        """Return the page's records as Zoom sent them (newest first); raise what the reading raised."""
        records = zoom_json(self.response).get(self._records_key)
        if not isinstance(records, list):
            msg = f"its {self._records_key} is not an array"
            raise MalformedResponseError(msg)
        return records


class BothEnds:
    """One window read from both ends: the pages read oldest first so far, and the window's newest page."""

    def __init__(self, newest: NewestPage, logger: logging.Logger) -> None:
        """Follow the pages read oldest first, once ``newest`` is being read."""
        self.newest = newest
        self._logger = logger
        #: the newest time read oldest first, and the ids read at that time
        self._last: dt.datetime | None = None
        self._at_last: set[str] = set()
        #: False once anything seen rules the early end out (an order not kept, a page set aside)
        self.usable = True

    def read(self, page: t.Sequence[dict[str, t.Any]]) -> None:
        """Note a page read oldest first (its records as written)."""
        for record in page:
            when = _time(record)
            if when is None or (self._last is not None and when < self._last):
                self.usable = False  # not oldest first, or no time: no early end can be trusted
                return
            if when != self._last:
                self._last, self._at_last = when, set()
            self._at_last.add(str(record.get(ID_FIELD)))

    def rest(self) -> list[dict[str, t.Any]] | None:
        """Return the newest page's records not read yet, oldest first, if they end the window; else None.

        None while the pages read oldest first have not passed the newest page's oldest
        message (read on), or once the newest page was set aside (see the module).
        """
        if not self.usable or self._last is None:
            return None
        newest = self._newest_page()
        if newest is None:
            return None
        times = [t.cast("dt.datetime", _time(record)) for record in newest]
        if not times or times[0] < self._last:
            self._set_aside("it is empty, or older than a message read oldest first")
            return None
        if times[-1] >= self._last:
            return None  # not passed yet: read on
        rest = [
            record
            for record, when in zip(newest, times, strict=True)
            if when > self._last or (when == self._last and str(record.get(ID_FIELD)) not in self._at_last)
        ]
        return rest[::-1]

    def _newest_page(self) -> t.Sequence[dict[str, t.Any]] | None:
        """Return the newest page if it can be trusted (newest first, every record with an id and a time)."""
        try:
            records = self.newest.records()
        except Exception as exc:  # set aside: the window is read to its end
            self._set_aside(f"reading it failed: {exc}")
            return None
        times = [_time(record) if isinstance(record, dict) and record.get(ID_FIELD) else None for record in records]
        if None in times:
            self._set_aside("a message in it has no id or no time")
            return None
        if any(t.cast("dt.datetime", a) < t.cast("dt.datetime", b) for a, b in itertools.pairwise(times)):
            self._set_aside("it is not newest first")
            return None
        return records

    def _set_aside(self, why: str) -> None:
        """Read the window to its end, as without the newest page, and say why at DEBUG."""
        self.usable = False
        self._logger.debug("The newest page of a session's window was set aside (%s): reading the window on", why)


def _time(record: t.Any) -> dt.datetime | None:
    """Return the record's time, or None if it has none that parses."""
    value = record.get(TIME_FIELD) if isinstance(record, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None
