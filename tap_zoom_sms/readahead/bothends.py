"""A session's window read from both ends when the rate limit has room: its newest page beside its next.

One session's pages in a window are a chain of cursors, a round trip each. The last
sessions of a backfill (and the few of an incremental run) end the run a round trip per
page after they begin, while the limit idles: a window of three pages that begins among
a backfill's last requests ends two round trips after them. Zoom's session details sort
either way (``sort``: 1 oldest first, 2 newest first), so when a window's first page says
there is more and the limiter has a turn nobody waits for, the window's newest page is
asked for beside the window's second page, by a worker of the read-ahead that no fetch
keeps busy (over its open connection: a new one would cost more round trips than it saves). The reading oldest
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
in any order); and a newest page that fails, or whose messages lack an id or a time in
Zoom's own form, is set aside with a DEBUG line: the window is read to its end as it would
have been. Nor does the reading wait for the newest page: a page that comes later than the
pages oldest first is used by the first of them after it comes, or not at all.
"""

from __future__ import annotations

import itertools
import re
import typing as t
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tap_zoom_sms.responses import MalformedResponseError, zoom_json
from tap_zoom_sms.windows import parse_time

if t.TYPE_CHECKING:
    import datetime as dt
    import logging
    from concurrent.futures import Future

    import requests

#: The fields the meeting of the two ends is decided on.
ID_FIELD, TIME_FIELD = "message_id", "date_time"
#: The most messages of one window followed for an early end (a hundred pages): a longer window is
#: read to its end, and what is held to compare stays small.
MAX_READ = 10_000
#: Zoom's own form of a time: UTC, to the second (fractions allowed).
_ZOOM_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")


def newest_first(first_page: str) -> str:
    """Return the URL of the newest page of the window whose first page (oldest first) is at ``first_page``."""
    parts = urlsplit(first_page)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in {"sort", "next_page_token"}]
    return urlunsplit(parts._replace(query=urlencode([*query, ("sort", "2")])))


class NewestPage:
    """A window's newest page, being read by an idle worker (see :meth:`Prefetcher.beside`)."""

    def __init__(self, future: Future[requests.Response], records_key: str) -> None:
        """Follow the reading ``future``; the page's records are under ``records_key``."""
        self._future = future
        self._records_key = records_key

    def done(self) -> bool:
        """Say whether Zoom has answered (or the reading failed)."""
        return self._future.done()

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
        #: the newest time read oldest first, and every message read so, by id (up to MAX_READ)
        self._last: dt.datetime | None = None
        self._read: dict[str, dt.datetime] = {}
        #: False once anything seen rules the early end out (an order not kept, a page set aside)
        self.usable = True

    def read(self, page: t.Sequence[dict[str, t.Any]]) -> None:
        """Note a page read oldest first (its records as written)."""
        for record in page:
            when = _time(record)
            if when is None or (self._last is not None and when < self._last) or len(self._read) >= MAX_READ:
                self.usable = False  # not oldest first, no time, or a window too long to follow
                return
            self._last = when
            self._read[str(record.get(ID_FIELD))] = when

    def rest(self) -> list[dict[str, t.Any]] | None:
        """Return the newest page's records not read yet, oldest first, if they end the window; else None.

        None while the pages read oldest first have not passed the newest page's oldest
        message (read on), or once the newest page was set aside (see the module). Every
        message of the newest page not read oldest first is written, whatever its time;
        and every message read oldest first that the newest page should hold (newer than
        its oldest) must be there, or the page is set aside.
        """
        if not self.usable or self._last is None or not self.newest.done():
            return None  # (an answer still to come: the window reads on, rather than wait for it)
        newest = self._newest_page()
        if newest is None:
            return None
        times = [t.cast("dt.datetime", _time(record)) for record in newest]
        if not times or times[0] < self._last:
            self._set_aside("it is empty, or older than a message read oldest first")
            return None
        oldest = times[-1]
        if oldest >= self._last:
            return None  # not passed yet: read on
        held = {str(record.get(ID_FIELD)) for record in newest}
        if any(when > oldest and key not in held for key, when in self._read.items()):
            self._set_aside("it lacks a message read oldest first")
            return None
        rest = [
            (when, record)
            for record, when in zip(newest, times, strict=True)
            if str(record.get(ID_FIELD)) not in self._read
        ]
        return [record for _, record in sorted(reversed(rest), key=lambda pair: pair[0])]

    def _newest_page(self) -> t.Sequence[dict[str, t.Any]] | None:
        """Return the newest page if it can be trusted (newest first, every record with an id and a time)."""
        try:
            records = self.newest.records()
        except Exception as exc:  # set aside: the window is read to its end
            self._set_aside(f"reading it failed: {exc}")
            return None
        times = [_zoom_time(record) if _has_id(record) else None for record in records]
        if None in times:
            self._set_aside("a message in it has no id, or no time in Zoom's own form")
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
    """Return a written record's time, or None if it has none that parses."""
    value = record.get(TIME_FIELD) if isinstance(record, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except (ValueError, TypeError, OverflowError):
        return None


def _zoom_time(record: dict[str, t.Any]) -> dt.datetime | None:
    """Return the time of a record as Zoom sent it, only if in Zoom's own form (``2024-05-01T10:00:00Z``).

    The newest page's records are compared before they are conformed: a time in any
    other form (epoch milliseconds, an offset) could be read otherwise than the record
    checks read it, and place a message wrongly, so the page is set aside instead.
    """
    value = record.get(TIME_FIELD)
    return _time(record) if isinstance(value, str) and _ZOOM_TIME.fullmatch(value) else None


def _has_id(record: t.Any) -> bool:
    """Say whether a record as Zoom sent it has a message id (a string or a number, not empty)."""
    value = record.get(ID_FIELD) if isinstance(record, dict) else None
    return isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) != ""
