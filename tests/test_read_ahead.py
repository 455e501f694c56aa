"""The read-ahead is bounded by records, not by sessions: sessions larger than it stream through."""

from __future__ import annotations

import collections
import threading
import typing as t

import pytest

from bench.runner import truth
from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.readahead import prefetch
from tap_zoom_sms.streams import sessions as sessions_stream
from tests.conftest import run_tap
from tests.test_concurrency import wait_until

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

#: Longest a test's fetcher waits for the test to let it go on (only reached if the prefetcher is broken).
PATIENCE = 60


class Sessions:
    """A fetcher of sessions by size (``{"n": ..., "size": ...}``): records ``{"n", "k"}``, counted as read.

    A session with ``"hold_after"`` stops after that many records until :meth:`release` lets it go on.
    """

    def __init__(self) -> None:
        self.read: collections.Counter[int] = collections.Counter()
        self.changed = threading.Condition()
        self.released: set[int] = set()

    def get_records(self, context: Context) -> t.Iterator[dict]:
        for k in range(context["size"]):
            if k == context.get("hold_after"):
                with self.changed:
                    assert self.changed.wait_for(lambda: context["n"] in self.released, PATIENCE), "never released"
            with self.changed:
                self.read[context["n"]] += 1
                self.changed.notify_all()
            yield {"n": context["n"], "k": k}

    def release(self, n: int) -> None:
        with self.changed:
            self.released.add(n)
            self.changed.notify_all()


class PeakPrefetcher(prefetch.Prefetcher):
    """A prefetcher that remembers the most records it ever held."""

    def __init__(self, make_fetcher: prefetch.Fetcher, workers: int, budget: int = prefetch.RECORD_BUDGET) -> None:
        super().__init__(make_fetcher, workers, budget)
        self.peak = 0

    def _put(self, fetch: prefetch._Fetch, record: dict) -> bool:
        kept = super()._put(fetch, record)
        with self._lock:
            self.peak = max(self.peak, self.records_held)
        return kept


def expected(n: int, size: int) -> list[dict]:
    return [{"n": n, "k": k} for k in range(size)]


def queued(workers: int, budget: int, sizes: list[int], **extra: int) -> tuple[Sessions, PeakPrefetcher]:
    """A prefetcher with sessions ``s0, s1, ...`` of these sizes queued (``extra`` goes into every context)."""
    sessions = Sessions()
    fetcher = PeakPrefetcher(lambda: sessions, workers=workers, budget=budget)
    for n, size in enumerate(sizes):
        fetcher.queue(f"s{n}", {"n": n, "size": size, **extra})
    return sessions, fetcher


def take(fetcher: prefetch.Prefetcher, key: str) -> list[dict]:
    records = fetcher.take(key)
    assert records is not None, f"{key} was not fetched ahead"
    return list(records)


def test_a_session_larger_than_the_budget_streams_through() -> None:
    sessions, fetcher = queued(workers=2, budget=50, sizes=[1000, 300])
    try:
        # nobody takes yet: the workers stop at the budget, whatever the sessions' sizes
        wait_until(fetcher._lock, lambda: fetcher.records_held == 50)
        assert sum(sessions.read.values()) <= 50 + 2  # a record in hand per worker, waiting for room
        assert take(fetcher, "s0") == expected(0, 1000)
        assert take(fetcher, "s1") == expected(1, 300)
        assert fetcher.peak <= 50 + prefetch.PAGE_RECORDS
    finally:
        fetcher.close()


def test_held_records_never_exceed_the_budget_plus_a_page() -> None:
    """Twenty sessions of 300 records, four workers, a budget of 500: 6,000 records through 600 of room."""
    sessions, fetcher = queued(workers=4, budget=500, sizes=[300] * 20)
    try:
        wait_until(fetcher._lock, lambda: fetcher.records_held == 500)
        assert [take(fetcher, f"s{n}") for n in range(20)] == [expected(n, 300) for n in range(20)]
        assert 500 <= fetcher.peak <= 500 + prefetch.PAGE_RECORDS
        assert fetcher.records_held == 0
        assert sum(sessions.read.values()) == 6000
    finally:
        fetcher.close()


def test_the_writer_takes_a_sessions_records_while_the_rest_is_still_being_fetched() -> None:
    """The first 5 records come out before the fetch reads on: a session is not held whole before it is written."""
    sessions, fetcher = queued(workers=2, budget=10_000, sizes=[10], hold_after=5)
    try:
        records = fetcher.take("s0")
        assert records is not None
        first = [next(records) for _ in range(5)]
        assert sessions.read[0] == 5
        sessions.release(0)
        assert first + list(records) == expected(0, 10)
    finally:
        fetcher.close()


def test_the_writers_fetch_never_starves() -> None:
    """Later sessions fill the budget while the first waits; taking the first lets its worker past the budget."""
    sessions = Sessions()
    fetcher = PeakPrefetcher(lambda: sessions, workers=3, budget=100)
    try:
        fetcher.queue("s0", {"n": 0, "size": 1000, "hold_after": 1})
        # s0 holds its first record before the others start: had they filled the budget first, s0
        # would wait for room with that record in hand, not at its hold (the test's timing, not the code's)
        wait_until(fetcher._lock, lambda: fetcher.records_held == 1)
        fetcher.queue("s1", {"n": 1, "size": 500})
        fetcher.queue("s2", {"n": 2, "size": 500})
        wait_until(fetcher._lock, lambda: fetcher.records_held == 100)
        sessions.release(0)
        # s0's worker now waits for room too, and only the writer frees room
        wait_until(sessions.changed, lambda: sessions.read[0] == 2)
        assert [take(fetcher, f"s{n}") for n in range(3)] == [expected(0, 1000), expected(1, 500), expected(2, 500)]
        assert fetcher.peak <= 100 + prefetch.PAGE_RECORDS
    finally:
        fetcher.close()


def test_a_fetch_no_worker_has_begun_is_left_to_the_writer() -> None:
    """The only worker waits for room in s0: s1, started but not begun, is for the writer to read itself."""
    sessions, fetcher = queued(workers=1, budget=10, sizes=[1000, 3])
    try:
        wait_until(fetcher._lock, lambda: fetcher.records_held == 10)
        assert fetcher.take("s1") is None
        assert fetcher.take("s1") is None
        assert take(fetcher, "s0") == expected(0, 1000)
        assert sessions.read[1] == 0
    finally:
        fetcher.close()


def test_discarding_a_fetch_stops_its_worker_and_frees_its_room() -> None:
    sessions, fetcher = queued(workers=1, budget=10, sizes=[1000, 3])
    try:
        wait_until(fetcher._lock, lambda: fetcher.records_held == 10)
        fetcher.discard("s0")
        # the worker stops reading s0 and fetches s1
        wait_until(fetcher._lock, lambda: fetcher.running == 0)
        assert sessions.read[0] <= 11
        assert take(fetcher, "s1") == expected(1, 3)
        assert fetcher.take("s0") is None
        assert fetcher.records_held == 0
    finally:
        fetcher.close()


def test_an_error_is_raised_in_the_writer_after_the_records_before_it() -> None:
    class Failing(Sessions):
        def get_records(self, context: Context) -> t.Iterator[dict]:
            yield from super().get_records(context)
            raise RuntimeError("Zoom said no")

    fetcher = prefetch.Prefetcher(Failing, workers=2, budget=5)
    try:
        fetcher.queue("s0", {"n": 0, "size": 20})
        records = fetcher.take("s0")
        assert records is not None
        got = []
        with pytest.raises(RuntimeError, match="Zoom said no"):
            got.extend(records)
        assert got == expected(0, 20)
    finally:
        fetcher.close()


def test_closing_wakes_the_workers_waiting_for_room() -> None:
    """Closing, without a stop signal, waits for the workers: those waiting for room stop reading at once."""
    sessions, fetcher = queued(workers=4, budget=100, sizes=[10_000] * 8)
    wait_until(fetcher._lock, lambda: fetcher.records_held == 100)
    fetcher.close()
    assert fetcher.running == 0
    assert sum(sessions.read.values()) <= 100 + 4


def test_a_job_beside_the_fetches_runs_on_an_idle_worker_with_its_own_fetcher() -> None:
    sessions = Sessions()

    class Fetcher:
        """A worker's fetcher, which notes the thread that made it."""

        def __init__(self) -> None:
            self.thread = threading.current_thread()

        def get_records(self, context: Context) -> t.Iterator[dict]:
            return sessions.get_records(context)

    fetcher = prefetch.Prefetcher(Fetcher, workers=2)
    try:
        fetcher.queue("s0", {"n": 0, "size": 5, "hold_after": 1})
        wait_until(fetcher._lock, lambda: fetcher.running == 1)
        job = fetcher.beside(lambda reader: (threading.current_thread(), reader))
        assert job is not None
        thread, reader = job.result(timeout=PATIENCE)
        assert reader.thread is thread  # that worker's own fetcher (its stream, its connection)
        assert thread.name.startswith("zoom-prefetch")
        assert fetcher._beside == 0
        sessions.release(0)
        assert take(fetcher, "s0") == expected(0, 5)
    finally:
        fetcher.close()


def test_no_job_runs_beside_the_fetches_when_no_worker_is_idle() -> None:
    sessions, fetcher = queued(workers=2, budget=1000, sizes=[5, 5], hold_after=1)
    try:
        wait_until(fetcher._lock, lambda: fetcher.running == 2)
        assert fetcher.beside(lambda _reader: "ran") is None
        sessions.release(0)
        assert take(fetcher, "s0") == expected(0, 5)
        wait_until(fetcher._lock, lambda: fetcher.running == 1)
        job = fetcher.beside(lambda _reader: "ran")
        assert job is not None
        assert job.result(timeout=PATIENCE) == "ran"
        sessions.release(1)
    finally:
        fetcher.close()
    assert fetcher.beside(lambda _reader: "ran") is None  # closed


class Counted:
    """A worker's stream object whose records are counted as they are read."""

    def __init__(self, stream: t.Any, prefetcher: CountingPrefetcher) -> None:
        self._stream = stream
        self._prefetcher = prefetcher

    def get_records(self, context: Context) -> t.Iterator[dict]:
        for record in self._stream.get_records(context):
            self._prefetcher.note(read=1)
            yield record


class CountingPrefetcher(prefetch.Prefetcher):
    """The tap's prefetcher with a budget of 300 records, a fifth of a session, counting what is read and not written.

    Records read by the workers and not yet handed to the writer are in memory, wherever the
    prefetcher keeps them: the most at once is what the budget bounds.
    """

    instances: t.ClassVar[list[CountingPrefetcher]] = []

    def __init__(self, make_fetcher: prefetch.Fetcher, workers: int) -> None:
        super().__init__(lambda: Counted(make_fetcher(), self), workers, budget=300)
        self.workers = workers
        self.read = self.taken = self.peak = 0
        self.count_lock = threading.Lock()
        self.instances.append(self)

    def note(self, read: int = 0, taken: int = 0) -> None:
        with self.count_lock:
            self.read += read
            self.taken += taken
            self.peak = max(self.peak, self.read - self.taken)

    def take(self, key: str) -> t.Iterator[dict] | None:
        records = super().take(key)
        return None if records is None else self._counting(records)

    def _counting(self, records: t.Iterable[dict]) -> t.Iterator[dict]:
        for record in records:
            self.note(taken=1)
            yield record


def test_a_run_writes_sessions_larger_than_the_budget_whole_and_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions_stream, "Prefetcher", CountingPrefetcher)
    CountingPrefetcher.instances = []
    spec = DatasetSpec(seed=14, sessions=8, engagements=0, months=1, messages_per_session=1500)
    with Emulator(spec) as emulator:
        config = emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0)
        run = run_tap({**config, "max_concurrent_requests": 4})
        expected_ids = truth(emulator)["sms_messages"]
        sessions = [sid for (sid,) in truth(emulator)["sms_sessions"]]
        order = {sid: [m["message_id"] for m in emulator.account.messages(sid)] for sid in sessions}
    messages = run.records["sms_messages"]
    assert {(m["message_id"],) for m in messages} == expected_ids
    assert len(messages) == 8 * 1500
    # each session's messages together and in order, as Zoom lists them
    written = [m["session_id"] for m in messages]
    assert [sid for n, sid in enumerate(written) if n == 0 or written[n - 1] != sid] == list(dict.fromkeys(written))
    for sid, ids in order.items():
        assert [m["message_id"] for m in messages if m["session_id"] == sid] == ids
    (used,) = CountingPrefetcher.instances
    # held, the page being written, and a record in each worker's hand: never a whole session of 1,500
    assert used.peak <= 300 + 2 * prefetch.PAGE_RECORDS + used.workers
