"""The order in which sessions read ahead are handed to the SDK, and bookmarks committed.

The sessions stream lists sessions window by window (a month each) while workers fetch
their messages (:mod:`.prefetch`). What it listed waits here, in the order it came, as
three kinds of item:

- a session, handed to the SDK to be written (and its messages with it, taken from the
  workers' fetch);
- a session *active* in a window that does not list it (its last message is later:
  see :mod:`tap_zoom_sms.discovery`), whose messages in that window are written then;
- the end of a window, where the window's bookmark is committed: only once every
  item before it has been written, so a STATE is safe to resume from at any moment.

The queue holds as many sessions as the workers can hold fetches, and never more than
two windows: when a window's list is read, the windows before it are handed out even
where months list no session, so a backfill's earlier months do not pile up here.
"""

from __future__ import annotations

import collections
import typing as t
from dataclasses import dataclass

if t.TYPE_CHECKING:
    import datetime as dt

    from tap_zoom_sms.readahead.prefetch import Prefetcher
    from tap_zoom_sms.windows import Window

#: Where a session read ahead carries the context its messages were fetched for, until it is written.
CHILD_CONTEXT_KEY = "_tap_zoom_sms_child_context"


def fetch_key(context: t.Mapping[str, t.Any]) -> str:
    """Name one fetch of a session's messages: its session and range (a session can be fetched twice in a run)."""
    return f"{context['session_id']} {context['messages_since']} {context['messages_until']}"


@dataclass(frozen=True)
class WindowEnd:
    """The place, among the sessions read ahead, where a window of the session list ended."""

    window: Window
    last: bool
    covered: dt.datetime
    #: the sessions of discovery's sample check that the window's activity lists name
    sampled: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Activity:
    """A session with messages in a window that does not list it (its last message is later)."""

    context: dict[str, str]


Item = dict[str, t.Any] | WindowEnd | Activity


class ReadAhead:
    """Sessions listed ahead of the SDK, their fetches, and the ends of their windows, released in order.

    ``commit`` is called with each :class:`WindowEnd` released, ``sync_children`` with
    the context of each :class:`Activity` released; sessions are yielded to the caller,
    which hands them to the SDK.
    """

    def __init__(
        self,
        prefetcher: Prefetcher,
        *,
        commit: t.Callable[[WindowEnd], None],
        sync_children: t.Callable[[dict[str, str]], None],
    ) -> None:
        """Hold as many sessions as ``prefetcher`` holds fetches.

        When the list's next page is asked for, the sessions behind it then hold that
        many fetches of work, seconds of it, longer than the page takes.
        """
        self._prefetcher = prefetcher
        self._commit = commit
        self._sync_active = sync_children
        self._items: collections.deque[Item] = collections.deque()
        self._bound = prefetcher.max_held
        #: how many windows' ends are among the items
        self.windows = 0

    def count(self, kind: type) -> int:
        """Return how many items of ``kind`` are held (:class:`Activity`, :class:`WindowEnd` or dict)."""
        return sum(isinstance(item, kind) for item in self._items)

    def session(self, record: dict[str, t.Any], child: dict[str, t.Any] | None) -> t.Iterator[dict[str, t.Any]]:
        """Hold a session just listed, fetching its messages for ``child`` (unless None); release beyond the bound."""
        if child is not None:
            self._prefetcher.queue(fetch_key(child), child)
        self._items.append({**record, CHILD_CONTEXT_KEY: child})
        while len(self._items) > self._bound:
            yield from self._release()

    def activity(self, context: dict[str, str]) -> None:
        """Hold a session active in a window that does not list it, fetching its messages for ``context``."""
        self._prefetcher.queue(fetch_key(context), context)
        self._items.append(Activity(context))

    def window_end(self, done: WindowEnd) -> None:
        """Hold the end of a window, to be committed once everything before it is written."""
        self._items.append(done)
        self.windows += 1

    def window_read(self) -> t.Iterator[dict[str, t.Any]]:
        """Release what came before the window still being read and its predecessor (two months at most)."""
        while self.windows > 1:
            yield from self._release()

    def drain(self) -> t.Iterator[dict[str, t.Any]]:
        """Release everything held (the list is read)."""
        while self._items:
            yield from self._release()

    def take(self, context: t.Mapping[str, t.Any]) -> t.Iterator[dict] | None:
        """Return the messages fetched for ``context``, as they arrive; None if the caller is to read them itself."""
        return self._prefetcher.take(fetch_key(context))

    def close(self) -> None:
        """Stop the workers (see :meth:`Prefetcher.close`)."""
        self._items.clear()
        self._prefetcher.close()

    def _release(self) -> t.Iterator[dict[str, t.Any]]:
        """Hand the oldest session to the caller, or commit the window that ended, or sync an active session."""
        item = self._items.popleft()
        if isinstance(item, WindowEnd):
            self.windows -= 1
            self._commit(item)
            return
        if isinstance(item, Activity):
            self._sync_active(item.context)
            return
        child = item[CHILD_CONTEXT_KEY]
        yield item
        # the SDK has written it, and its messages were taken (a stream map filtering a session out
        # after it was read ahead: a stream map of the user's, see carries, whose result can differ)
        if child is not None:
            self._prefetcher.discard(fetch_key(child))
