"""How many sessions' messages are fetched at once: sized from the Medium limit unless the settings say."""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import threading
import time
import typing as t

import pytest

from bench.runner import KEYS, truth
from tap_zoom_sms.concurrency import (
    MAX_WORKERS,
    UNLIMITED_WORKERS,
    default_workers,
    message_workers,
)
from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.errors import SettingsError
from tap_zoom_sms.ratelimit import HEADROOM
from tap_zoom_sms.readahead import prefetch
from tap_zoom_sms.readahead.queue import Activity
from tap_zoom_sms.streams import sessions
from tap_zoom_sms.tap import TapZoomSms
from tests.conftest import run_tap
from tests.fakezoom import base_config

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

#: Zoom's Medium limits: Pro, Business, and the higher ones Zoom grants on request.
ZOOM_LIMITS = (10, 20, 40)


@pytest.mark.parametrize(("limit", "workers"), [(10, 15), (20, 30), (0, UNLIMITED_WORKERS), (0.5, 1), (100, 64)])
def test_the_default_is_the_limit_times_the_latency_budget(limit: float, workers: int) -> None:
    assert default_workers(limit) == workers


@pytest.mark.parametrize("limit", ZOOM_LIMITS)
@pytest.mark.parametrize("latency", [0.05, 0.15, 0.5, 1.0])
def test_the_default_holds_zooms_limits_up_to_one_second_a_request(limit: int, latency: float) -> None:
    paced = limit * HEADROOM
    # Little's law, with a fifth more for the client's own time per request and the list's requests
    assert default_workers(limit) >= paced * latency * 1.2
    # the queued half of the read-ahead outlasts a list page's latency (see concurrency.py)
    assert default_workers(limit) / paced > latency


def test_an_explicit_setting_wins_over_the_default() -> None:
    assert message_workers({"medium_requests_per_second": 20, "max_concurrent_requests": 3}) == 3
    assert message_workers({"medium_requests_per_second": 20, "max_concurrent_requests": 1}) == 1
    assert message_workers({"medium_requests_per_second": 20}) == 30


def test_the_tap_sizes_from_its_settings_and_the_schema_has_no_fixed_default() -> None:
    schema = TapZoomSms.config_jsonschema["properties"]["max_concurrent_requests"]
    assert "default" not in schema
    assert TapZoomSms(config=base_config(medium_requests_per_second=10)).services.workers == 15
    assert TapZoomSms(config=base_config(medium_requests_per_second=10)).config.get("max_concurrent_requests") is None
    assert TapZoomSms(config=base_config(max_concurrent_requests=5)).services.workers == 5


@pytest.mark.parametrize("value", [0, MAX_WORKERS + 1])
def test_an_explicit_setting_out_of_range_is_refused(value: int) -> None:
    with pytest.raises(SettingsError, match="max_concurrent_requests must be 1 to 64"):
        TapZoomSms(config=base_config(max_concurrent_requests=value), validate_config=True)


class RecordingPrefetcher(prefetch.Prefetcher):
    """A prefetcher that remembers its size and the most fetches ever begun and not yet taken."""

    instances: t.ClassVar[list[RecordingPrefetcher]] = []

    def __init__(self, make_fetcher: prefetch.Fetcher, workers: int) -> None:
        super().__init__(make_fetcher, workers)
        self.workers = workers
        self.begun = self.peak = 0
        self.count_lock = threading.Lock()
        self.instances.append(self)

    def _fetch(self, fetch: prefetch._Fetch) -> None:
        with self.count_lock:
            self.begun += 1
            self.peak = max(self.peak, self.begun)
        super()._fetch(fetch)

    def take(self, key: str) -> t.Iterator[dict] | None:
        records = super().take(key)
        if records is not None:  # None: no worker began it
            with self.count_lock:
                self.begun -= 1
        return records


@pytest.mark.parametrize(
    ("settings", "workers", "months"),
    [({}, 30, 1), ({"max_concurrent_requests": 4}, 4, 1), ({"max_concurrent_requests": 4}, 4, 6)],
    ids=["default", "4-workers", "4-workers-discovery"],
)
def test_a_run_fetches_with_the_sized_workers_and_a_bounded_read_ahead(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, int], workers: int, months: int
) -> None:
    monkeypatch.setattr(sessions, "Prefetcher", RecordingPrefetcher)
    RecordingPrefetcher.instances = []
    spec = DatasetSpec(seed=12, sessions=150, engagements=0, months=months, busy_share=0.0)
    with Emulator(spec) as emulator:
        # 20/s: 30 workers by default, whose bound (4 x 30 fetches held) is below the 150 sessions
        config = emulator.tap_config(medium_requests_per_second=20, heavy_requests_per_second=0, **settings)
        run = run_tap(config)
        expected = truth(emulator)
    got = collections.defaultdict(set)
    for stream, records in run.records.items():
        got[stream] = {tuple(r[k] for k in KEYS[stream]) for r in records}
    assert got["sms_messages"] == expected["sms_messages"]
    assert got["sms_sessions"] == expected["sms_sessions"]
    (used,) = RecordingPrefetcher.instances
    assert used.workers == workers
    # the sessions held in memory are bounded by the workers, not by the account (with discovery,
    # a month's active sessions are queued at once: hundreds, in a real backfill)
    assert used.peak <= 4 * workers + 1 < len(expected["sms_sessions"])


class Gate:
    """A fetcher whose fetches return their context at once, counting how many began (thread-safe)."""

    def __init__(self) -> None:
        self.began = 0
        self.changed = threading.Condition()

    def get_records(self, context: Context) -> list[dict]:
        with self.changed:
            self.began += 1
            self.changed.notify_all()
        return [dict(context)]


def wait_until(lock: threading.Condition | t.ContextManager[t.Any], done: t.Callable[[], bool]) -> None:
    """Wait until ``done()`` (checked holding ``lock``): on the condition when it is one, else polling."""
    deadline = time.monotonic() + 60
    while True:
        with lock:
            if done():
                return
            if isinstance(lock, threading.Condition):
                lock.wait(timeout=1)
        assert time.monotonic() < deadline, "the workers never got there"
        if not isinstance(lock, threading.Condition):
            time.sleep(0.01)


def filled(workers: int, count: int) -> tuple[Gate, prefetch.Prefetcher]:
    """A prefetcher with ``count`` fetches queued, once its workers have started all they may and stopped.

    Nobody takes anything: the workers start queued fetches themselves, up to 4 x workers
    held. A fetch starts only in a finishing one's callback, which counts it finished
    under the same lock: once none is running, none can start.
    """
    gate = Gate()
    fetcher = prefetch.Prefetcher(lambda: gate, workers=workers)
    for n in range(count):
        fetcher.queue(f"s{n}", {"n": n})
    wait_until(gate.changed, lambda: gate.began >= fetcher.max_held)
    wait_until(fetcher._lock, lambda: fetcher.running == 0)
    return gate, fetcher


def test_queued_fetches_start_as_workers_finish_up_to_the_held_bound() -> None:
    gate, fetcher = filled(workers=2, count=20)
    try:
        assert gate.began == fetcher.max_held == 8
        assert list(fetcher.take("s0") or ()) == [{"n": 0}]
        wait_until(gate.changed, lambda: gate.began == 9)
        # taken out of order, a fetch still queued is left to the writer to read itself
        assert fetcher.take("s15") is None
        for n in (n for n in range(1, 20) if n != 15):
            wait_until(fetcher._lock, lambda: fetcher.running == 0)  # begun, so not left to the writer
            assert list(fetcher.take(f"s{n}") or ()) == [{"n": n}]  # each with its own records
        assert fetcher.take("s0") is None
        assert gate.began == 19
    finally:
        fetcher.close()


def test_months_that_list_no_session_do_not_pile_up_in_the_read_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every session's last message is in the latest month: the earlier months list none, only activity.

    No listed session comes to hand records to the SDK in those months; the read-ahead
    must still hold two months at most, not every month of the range.
    """
    held: list[tuple[int, int]] = []  # (window ends, active sessions) read ahead, after each window
    on_window_done = sessions.SmsSessionsStream.on_window_done

    def recording(self: sessions.SmsSessionsStream, *args: t.Any) -> None:
        on_window_done(self, *args)
        ahead = self._ahead
        held.append((ahead.windows, ahead.count(Activity)) if ahead is not None else (0, 0))

    monkeypatch.setattr(sessions.SmsSessionsStream, "on_window_done", recording)
    with Emulator(DatasetSpec(seed=21, sessions=120, engagements=0, months=8, busy_share=0.0)) as emulator:
        latest = emulator.account.anchor - dt.timedelta(minutes=5)
        for (session_id,) in truth(emulator)["sms_sessions"]:
            emulator.account.add_message(session_id, latest)
        config = emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0)
        run = run_tap({**config, "max_concurrent_requests": 2})
        expected = truth(emulator)
    got = {(r["message_id"],) for r in run.records["sms_messages"]}
    assert got == expected["sms_messages"]
    active: dict[str, set[str]] = collections.defaultdict(set)
    for record in run.records["sms_messages"]:
        active[record["date_time"][:7]].add(record["session_id"])
    months = [len(active[month]) for month in sorted(active)]
    assert len(held) >= 8
    assert max(ends for ends, _ in held) <= 2
    assert max(sessions for _, sessions in held) <= max(map(sum, itertools.pairwise(months)))


def test_a_fetch_nobody_takes_is_discarded_and_frees_its_room() -> None:
    """A stream map that filters sessions out leaves their fetches untaken: discarding them keeps fetching ahead."""
    gate, fetcher = filled(workers=1, count=10)
    try:
        assert gate.began == fetcher.max_held == 4
        for n in range(4):
            fetcher.discard(f"s{n}")  # fetched, never taken
        wait_until(gate.changed, lambda: gate.began == 8)
        fetcher.discard("s9")  # still queued: never fetched
        for n in range(4, 9):
            wait_until(fetcher._lock, lambda: fetcher.running == 0)  # begun, so not left to the writer
            assert list(fetcher.take(f"s{n}") or ()) == [{"n": n}]
        assert fetcher.take("s0") is None
        assert fetcher.take("s9") is None
        assert gate.began == 9
    finally:
        fetcher.close()
