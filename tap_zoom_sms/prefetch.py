"""Reading the messages of several sessions at once.

The SDK syncs a child stream inline, one parent record at a time: one session's
messages, then the next's, one request at a time. A sequential tap waiting 150 ms
per request reaches about 6 requests/s, a third of a Business account's Medium
budget. The sessions stream reads a few sessions ahead and hands each to a pool
of workers that fetch its messages; the SDK still writes each session's messages
in order, together, and every request still goes through the shared limiter.

Fetches are queued, and start as earlier ones finish, from the worker that finished:
a backfill learns a month's active sessions all at once (see
:mod:`tap_zoom_sms.discovery`), hundreds of them, more than memory should hold
fetched, and the workers must stay busy while the sessions stream's own thread waits
for a page of the session list (a second or more at high latency).
"""

from __future__ import annotations

import collections
import threading
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from tap_zoom_sms import interrupts

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

Fetcher = t.Callable[[], t.Any]  # makes an object with get_records(context)


@dataclass(eq=False)
class _Fetch:
    """One context's records: queued until ``future`` is set."""

    context: Context
    future: Future[list[dict]] | None = None


class Prefetcher:
    """Fetches records for contexts in worker threads, each worker with its own stream object.

    Fetches start in the order they are queued, while fewer than twice ``workers`` are running (a request in
    flight per worker, and as many waiting, so a worker never waits for work) and
    fewer than four times ``workers`` are held, started and not yet taken: what a run holds
    in memory is bounded by the workers, not by the account.
    """

    def __init__(self, make_fetcher: Fetcher, workers: int) -> None:
        """Start ``workers`` threads; each makes its own fetcher on first use (streams are not thread-safe)."""
        self._make_fetcher = make_fetcher
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="zoom-prefetch")
        self._local = threading.local()
        self._fetches: dict[str, collections.deque[_Fetch]] = collections.defaultdict(collections.deque)
        self.max_running, self.max_held = 2 * workers, 4 * workers
        # re-entrant: a fetch that finishes at once runs its callback in the thread that started it
        self._lock = threading.RLock()
        self._queued: collections.deque[_Fetch] = collections.deque()
        self.running = self.held = 0
        self._closed = False

    def queue(self, key: str, context: Context) -> None:
        """Fetch the records of ``context`` once there is room (see the class), to be taken later by ``key``."""
        with self._lock:
            self._queued.append(self._add(key, context))
            self._start_queued()

    def take(self, key: str) -> list[dict] | None:
        """Return the records fetched for ``key`` (waiting for them), or None if none were asked for.

        A fetch still queued starts now. An error raised while fetching is raised
        here, in the thread that writes the output.
        """
        with self._lock:
            fetch = self._pop(key)
            if fetch is None:
                return None
            if fetch.future is None:
                self._queued.remove(fetch)
                self._start(fetch)
            self.held -= 1
            self._start_queued()
            future = fetch.future
        assert future is not None  # noqa: S101 (started above)
        return future.result()

    def discard(self, key: str) -> None:
        """Drop the oldest fetch for ``key`` if nobody took it (a stream map filtered its session out).

        The SDK syncs no children for a record a stream map filters out: its fetch would
        be held to the end of the run, and enough of them would leave no room to fetch ahead.
        """
        with self._lock:
            fetch = self._pop(key)
            if fetch is None:
                return
            if fetch.future is None:
                self._queued.remove(fetch)
            else:
                fetch.future.cancel()
                self.held -= 1
                self._start_queued()

    def _pop(self, key: str) -> _Fetch | None:
        """Take the oldest fetch asked for ``key`` off its list (holding the lock), or None."""
        fetches = self._fetches.get(key)
        if not fetches:
            return None
        fetch = fetches.popleft()
        if not fetches:
            del self._fetches[key]
        return fetch

    def _add(self, key: str, context: Context) -> _Fetch:
        fetch = _Fetch(dict(context))
        self._fetches[key].append(fetch)
        return fetch

    def _start(self, fetch: _Fetch) -> None:
        self.running += 1
        self.held += 1
        fetch.future = self._pool.submit(self._fetch, fetch.context)
        fetch.future.add_done_callback(self._finished)

    def _start_queued(self) -> None:
        while self._queued and self.running < self.max_running and self.held < self.max_held and not self._closed:
            self._start(self._queued.popleft())

    def _finished(self, _future: Future[list[dict]]) -> None:
        """Start the next queued fetch (in the worker that finished, or at close for a cancelled one)."""
        with self._lock:
            self.running -= 1
            if not interrupts.STOP.is_set():
                self._start_queued()

    def _fetch(self, context: Context) -> list[dict]:
        fetcher = getattr(self._local, "fetcher", None)
        if fetcher is None:
            fetcher = self._local.fetcher = self._make_fetcher()
        return list(fetcher.get_records(context))

    def close(self) -> None:
        """Stop the workers, dropping fetches nobody will take (after a stop signal, without waiting)."""
        with self._lock:
            self._closed = True
            self._queued.clear()
        self._pool.shutdown(wait=not interrupts.STOP.is_set(), cancel_futures=True)
        self._fetches.clear()
