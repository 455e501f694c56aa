"""The client-side limiter: even spacing, turns in order, list pages and pages after a first one ahead of the rest.

The limiter reads a clock the tests hold still and move by hand, so which caller
passes when depends on nothing but the order of events.
"""

from __future__ import annotations

import threading
import time
import typing as t

import pytest
import requests

from tap_zoom_sms import interrupts
from tap_zoom_sms.errors import DailyLimitError
from tap_zoom_sms.ratelimit import (
    HEADROOM,
    LIST_PAGE,
    NEW_WORK,
    NEXT_PAGE,
    SLACK_SECONDS,
    RateLimitedSession,
    RateLimiter,
    continues_a_chain,
)

RATE = 10
INTERVAL = 1 / (RATE * HEADROOM)


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def eventually(done: t.Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


class Callers:
    """Threads that each wait for one slot, and the order in which they got it."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self.passed: list[str] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, name: str, *, priority: int = NEW_WORK) -> None:
        """Start a caller and wait until it is in the limiter's queue."""
        waiting = len(self.limiter._queue)
        thread = threading.Thread(target=self._call, args=(name, priority), daemon=True)
        thread.start()
        self._threads.append(thread)
        eventually(lambda: len(self.limiter._queue) == waiting + 1, f"{name} never queued")

    def _call(self, name: str, priority: int) -> None:
        try:
            self.limiter.acquire(priority=priority)
        except BaseException as exc:  # reported to the test
            self.errors.append(exc)
            return
        with self._lock:
            self.passed.append(name)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=60)
            assert not thread.is_alive()


def waiting(*names: str, limiter_class: type[RateLimiter] = RateLimiter) -> tuple[Clock, RateLimiter, Callers]:
    """A limiter on a held clock whose first slot is taken, and callers ``names`` queued in that order."""
    clock = Clock()
    limiter = limiter_class(RATE, clock=clock)
    limiter.acquire()
    callers = Callers(limiter)
    for name in names:
        callers.start(name)
    return clock, limiter, callers


def let_through(clock: Clock, callers: Callers, total: int) -> None:
    """Move the clock one slot at a time, each letting exactly one more caller pass, until ``total`` have."""
    while len(callers.passed) < total:
        count = len(callers.passed) + 1
        clock.now += INTERVAL
        eventually(lambda count=count: len(callers.passed) == count, "the next caller never passed")


def test_slots_are_spaced_by_the_interval_and_nobody_passes_before_its_slot() -> None:
    clock, _, callers = waiting("a", "b", "c")
    time.sleep(3 * 0.25)  # they look at the clock every WAKE_SECONDS at the latest: it has not moved
    assert callers.passed == []
    let_through(clock, callers, 3)
    callers.join()
    assert callers.passed == ["a", "b", "c"]


def test_a_caller_that_goes_first_passes_ahead_of_those_waiting() -> None:
    clock, _, callers = waiting("worker-1", "worker-2", "worker-3")
    callers.start("list-page", priority=LIST_PAGE)
    let_through(clock, callers, 4)
    callers.join()
    # it took the next slot, not an extra one: the spacing is the same for everybody
    assert callers.passed == ["list-page", "worker-1", "worker-2", "worker-3"]


def test_list_pages_go_first_then_pages_after_a_first_one_each_in_their_order() -> None:
    clock, _, callers = waiting("worker-1", "worker-2")
    callers.start("page-2 of a session", priority=NEXT_PAGE)
    callers.start("list-page", priority=LIST_PAGE)
    callers.start("page-3 of another", priority=NEXT_PAGE)
    callers.start("worker-3")
    callers.start("list-page-2", priority=LIST_PAGE)
    let_through(clock, callers, 7)
    callers.join()
    assert callers.passed == [
        "list-page",
        "list-page-2",
        "page-2 of a session",
        "page-3 of another",
        "worker-1",
        "worker-2",
        "worker-3",
    ]


def test_the_limiter_has_room_only_for_a_turn_nobody_waits_for() -> None:
    clock = Clock()
    limiter = RateLimiter(RATE, clock=clock)
    assert limiter.has_room()
    limiter.acquire()
    assert not limiter.has_room()  # the next slot has not come
    clock.now += INTERVAL
    assert limiter.has_room()
    callers = Callers(limiter)
    clock.now -= INTERVAL / 2  # a caller waits for the slot
    callers.start("worker")
    assert not limiter.has_room()
    clock.now += INTERVAL
    callers.join()
    assert not limiter.has_room()  # it took the slot
    clock.now += INTERVAL
    assert limiter.has_room()
    assert not RateLimiter(0).has_room()  # no limit: no idle turn to speak of


def test_a_slot_taken_a_little_late_keeps_the_pace_and_an_idle_one_starts_it_again() -> None:
    clock = Clock()
    limiter = RateLimiter(RATE, clock=clock)
    start = clock.now
    limiter.acquire()
    clock.now = start + INTERVAL + SLACK_SECONDS / 2  # the caller woke late, within the slack
    limiter.acquire()
    clock.now = start + 2 * INTERVAL - 1e-6
    assert not limiter.has_room()  # nobody passes before a slot
    clock.now = start + 2 * INTERVAL + 1e-9
    assert limiter.has_room()  # the late one did not push the slots after it back
    limiter.acquire()
    clock.now = start + 3 * INTERVAL + SLACK_SECONDS + 0.01  # nobody took the slot: the limit was idle
    limiter.acquire()
    clock.now += INTERVAL - 1e-6
    assert not limiter.has_room()  # the idle time is not lent to the next ones
    clock.now += 2e-6
    assert limiter.has_room()


def test_at_a_high_rate_a_late_slot_never_lets_the_next_one_out_right_behind_it() -> None:
    clock = Clock()
    rate = 200  # slots 5.3 ms apart: a 10 ms slack would let the next slot come at once
    interval = 1 / (rate * HEADROOM)
    limiter = RateLimiter(rate, clock=clock)
    start = clock.now
    limiter.acquire()
    clock.now = start + interval + 0.75 * interval  # late by more than half an interval
    limiter.acquire()
    clock.now += interval / 2
    assert not limiter.has_room()  # the pace started again from the late slot
    clock.now += interval / 2 + 1e-9
    assert limiter.has_room()


@pytest.mark.parametrize(
    ("url", "continues"),
    [
        ("https://api.zoom.us/v2/phone/sms/sessions/s1?page_size=100&from=a&to=b&sort=1", False),
        ("https://api.zoom.us/v2/phone/sms/sessions/s1?page_size=100&next_page_token=abc&sort=1", True),
        ("https://api.zoom.us/v2/phone/sms/sessions?next_page_token=", False),  # an empty token asks for page 1
        ("https://api.zoom.us/v2/phone/next_page_token=x/sms", False),  # in the path, not the query
    ],
)
def test_a_page_after_the_first_is_one_that_carries_zooms_page_token(url: str, continues: bool) -> None:
    assert continues_a_chain(requests.Request("GET", url).prepare()) is continues


def test_a_page_after_the_first_goes_ahead_of_the_callers_waiting() -> None:
    clock, limiter, callers = waiting("worker-1", "worker-2")
    sent: list[str] = []

    class Adapter(requests.adapters.BaseAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: t.Any) -> requests.Response:
            sent.append(str(request.url))
            response = requests.Response()
            response.status_code = 200
            return response

        def close(self) -> None:
            pass

    session = RateLimitedSession(limiter)
    session.mount("https://", Adapter())
    url = "https://api.zoom.us/v2/phone/sms/sessions/s1?next_page_token=abc"
    thread = threading.Thread(target=session.get, args=(url,), daemon=True)
    thread.start()
    eventually(lambda: len(limiter._queue) == 3, "the page never queued")
    clock.now += INTERVAL
    eventually(lambda: sent == [url], "the page did not pass first")
    thread.join(timeout=60)
    assert callers.passed == []
    let_through(clock, callers, 2)
    callers.join()


def test_a_stop_signal_wakes_every_caller_waiting() -> None:
    clock, limiter, callers = waiting("a", "b")
    try:
        interrupts.STOP.set()
        callers.join()
    finally:
        interrupts.STOP.clear()
    assert callers.passed == []
    assert [type(exc) for exc in callers.errors] == [interrupts.Interrupted, interrupts.Interrupted]
    assert len(limiter._queue) == 0  # they left the queue: the next caller is not stuck behind them
    clock.now += INTERVAL
    limiter.acquire()


def test_a_closed_label_refuses_at_once_and_no_limit_never_waits() -> None:
    limiter = RateLimiter(RATE)
    limiter.close(DailyLimitError("Medium", None))
    with pytest.raises(DailyLimitError):
        limiter.acquire()
    unlimited = RateLimiter(0, clock=Clock())
    for _ in range(1000):
        unlimited.acquire()


class CountingLimiter(RateLimiter):
    """Counts how often callers look at the queue and the clock."""

    looks = 0

    def _take(self, turn: threading.Event) -> float:
        self.looks += 1
        return super()._take(turn)


def test_a_caller_waiting_for_its_slot_sleeps_rather_than_spins() -> None:
    clock, limiter, callers = waiting("a", "b", "c", limiter_class=CountingLimiter)
    let_through(clock, callers, 1)
    # "b" is woken as the new head, before its slot: it must go back to sleep until then
    assert isinstance(limiter, CountingLimiter)
    looks = limiter.looks
    time.sleep(1.0)
    # each sleeps its slot's distance (INTERVAL, the clock being held) or WAKE_SECONDS between looks:
    # about 10 + 4 in a second; a caller spinning on a set event looks hundreds of thousands of times
    assert limiter.looks - looks < 50
    let_through(clock, callers, 3)
    callers.join()
    assert callers.passed == ["a", "b", "c"]
