"""Reading the messages of several sessions at once, within a budget of records.

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

What memory holds is bounded by records, not by sessions: a session can hold
100,000 messages, and forty sessions of 5,000 fit in the read-ahead of a few workers.
A worker hands each record to the prefetcher as it reads it, and waits while the
records held across all fetches reach :data:`RECORD_BUDGET`; the writer takes them
as they come. The fetch the writer is taking may always hold a page more, so a
session larger than the budget streams through, and one no worker has begun is read
by the writer itself: the writer never waits for a worker that waits for room.
"""

from __future__ import annotations

import collections
import threading
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from tap_zoom_sms import interrupts

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

Fetcher = t.Callable[[], t.Any]  # makes an object with get_records(context)
T = t.TypeVar("T")
#: :meth:`Prefetcher.beside`, as a worker's stream is given it
Beside = t.Callable[[t.Callable[[t.Any], t.Any]], "Future[t.Any] | None"]

#: Records fetched and not yet written, across every fetch (about 1.8 KB each as parsed
#: JSON: some 18 MB). Ordinary sessions hold a few to a few hundred messages, so the
#: read-ahead of even 64 workers (256 sessions) rarely reaches it.
RECORD_BUDGET = 10_000
#: A page at Zoom's largest page size: what the fetch being written may hold beyond the
#: budget, so that it always goes on, and what the writer takes off the budget at a time.
PAGE_RECORDS = 100


@dataclass(eq=False)
class _Fetch:
    """One context's records: queued until ``future`` is set, then held in ``records`` until taken."""

    context: Context
    future: Future[None] | None = None
    records: collections.deque[dict] = field(default_factory=collections.deque)
    #: the writer is taking its records: it may hold a page more than the budget
    taking: bool = False
    #: nobody will take it (a stream map filtered its session out): its worker stops reading
    dropped: bool = False


class Prefetcher:
    """Fetches records for contexts in worker threads, each worker with its own stream object.

    Fetches start in the order they are queued, while fewer than twice ``workers`` are running (a request in
    flight per worker, and as many waiting, so a worker never waits for work) and
    fewer than four times ``workers`` are held, started and not yet taken; together they hold
    at most ``budget`` records, and the fetch being taken a page more (see the module).
    """

    def __init__(self, make_fetcher: Fetcher, workers: int, budget: int = RECORD_BUDGET) -> None:
        """Start ``workers`` threads; each makes its own fetcher on first use (streams are not thread-safe)."""
        self._make_fetcher = make_fetcher
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="zoom-prefetch")
        self._local = threading.local()
        self._fetches: dict[str, collections.deque[_Fetch]] = collections.defaultdict(collections.deque)
        self.max_running, self.max_held = 2 * workers, 4 * workers
        self.budget = budget
        # re-entrant: a fetch that finishes at once runs its callback in the thread that started it
        self._lock = threading.RLock()
        #: workers wait here for room in the budget, the writer for records or a fetch's end
        self._room, self._arrived = threading.Condition(self._lock), threading.Condition(self._lock)
        self._queued: collections.deque[_Fetch] = collections.deque()
        self.running = self.held = self.records_held = 0
        self._workers = workers
        #: jobs run beside the fetches (see beside), running now
        self._beside = 0
        self._closed = False

    def queue(self, key: str, context: Context) -> None:
        """Fetch the records of ``context`` once there is room (see the class), to be taken later by ``key``."""
        with self._lock:
            self._queued.append(self._add(key, context))
            self._start_queued()

    def beside(self, job: t.Callable[[t.Any], T]) -> Future[T] | None:
        """Run ``job(fetcher)`` now on a worker no fetch keeps busy, with its stream object; None if there is none.

        A worker's stream keeps its connection to Zoom open between requests: a request
        sent beside a fetch from an idle worker does not pay for a new connection (at a
        second of latency, two or three round trips) the way a new stream object would.
        """
        with self._lock:
            if self._closed or self.running + self._beside >= self._workers:
                return None
            self._beside += 1
            return self._pool.submit(self._run_beside, job)

    def _run_beside(self, job: t.Callable[[t.Any], T]) -> T:
        try:
            return job(self._fetcher())
        finally:
            with self._lock:
                self._beside -= 1

    def take(self, key: str) -> t.Iterator[dict] | None:
        """Return the records fetched for ``key``, as they arrive; None if the caller is to read them itself.

        None when no fetch was asked for ``key``, or when no worker has begun it (still
        queued, or waiting for a free worker): every worker may be waiting for room, which
        only the writer frees. An error raised while fetching is raised by the iterator, in
        the thread that writes the output.
        """
        with self._lock:
            fetch = self._pop(key)
            if fetch is None:
                return None
            if fetch.future is None:
                self._queued.remove(fetch)
                return None
            self.held -= 1
            begun = not fetch.future.cancel()
            if begun:
                fetch.taking = True
                self._room.notify_all()  # its worker may be waiting for room: it now has a page of its own
            self._start_queued()
        return self._stream(fetch) if begun else None

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
                return
            fetch.dropped = True
            fetch.future.cancel()
            self._free(len(fetch.records))
            fetch.records.clear()
            self.held -= 1
            self._start_queued()

    def _stream(self, fetch: _Fetch) -> t.Iterator[dict]:
        """Yield the records of a begun fetch as its worker hands them over, then raise its error, if any."""
        future = fetch.future
        assert future is not None  # noqa: S101 (begun)
        while True:
            with self._lock:
                while not fetch.records and not future.done():
                    self._arrived.wait()
                # a page at a time: what is freed here for the workers to fill is still in memory until written
                records = [fetch.records.popleft() for _ in range(min(len(fetch.records), PAGE_RECORDS))]
                self._free(len(records))
            if not records:
                future.result()
                return
            yield from records

    def _free(self, count: int) -> None:
        """Take ``count`` records off the budget and wake the workers waiting for room (holding the lock)."""
        if count:
            self.records_held -= count
            self._room.notify_all()

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
        fetch.future = self._pool.submit(self._fetch, fetch)
        fetch.future.add_done_callback(self._finished)

    def _start_queued(self) -> None:
        while self._queued and self.running < self.max_running and self.held < self.max_held and not self._closed:
            self._start(self._queued.popleft())

    def _finished(self, _future: Future[None]) -> None:
        """Wake the writer, and start the next queued fetch (in the worker that finished, or at close)."""
        with self._lock:
            self.running -= 1
            self._arrived.notify_all()
            if not interrupts.STOP.is_set():
                self._start_queued()

    def _fetch(self, fetch: _Fetch) -> None:
        """Read the fetch's records, handing each over as it comes; stop once nobody will take them."""
        for record in self._fetcher().get_records(fetch.context):
            if not self._put(fetch, record):
                return

    def _fetcher(self) -> t.Any:
        """Return this worker thread's fetcher, made on first use."""
        fetcher = getattr(self._local, "fetcher", None)
        if fetcher is None:
            fetcher = self._local.fetcher = self._make_fetcher()
        return fetcher

    def _put(self, fetch: _Fetch, record: dict) -> bool:
        """Hold ``record`` for the writer once there is room; False if nobody will take it."""
        with self._lock:
            while not (fetch.dropped or self._closed or self._has_room(fetch)):
                self._room.wait()
            if fetch.dropped or self._closed:
                return False
            fetch.records.append(record)
            self.records_held += 1
            if fetch.taking:
                self._arrived.notify_all()
            return True

    def _has_room(self, fetch: _Fetch) -> bool:
        """Say whether ``fetch`` may hold one more record: within the budget, or the writer's within its page."""
        return self.records_held < self.budget or (fetch.taking and len(fetch.records) < PAGE_RECORDS)

    def close(self) -> None:
        """Stop the workers, dropping fetches nobody will take (after a stop signal, without waiting)."""
        with self._lock:
            self._closed = True
            self._queued.clear()
            # fetches not begun are cancelled first: a worker woken here must find none to begin
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._room.notify_all()
        if not interrupts.STOP.is_set():
            self._pool.shutdown(wait=True)
        self._fetches.clear()
