"""Client-side rate limits, one per Zoom rate-limit label (Medium, Heavy).

Zoom's limits are per account and per label, shared by every request of the
process; pacing requests here keeps a run from drawing 429s in the first place.
"""

from __future__ import annotations

import collections
import threading
import time
import typing as t
from urllib.parse import parse_qs, urlsplit

import requests

from tap_zoom_sms import interrupts
from tap_zoom_sms.network import EnvironmentSession

#: Share of the limit the requests are paced at. Zoom counts arrivals on its own
#: clock: requests sent exactly 1/rate apart arrive with jitter, and a second
#: holding rate + 1 of them is answered 429.
HEADROOM = 0.95


#: How late a slot may be taken without moving the slots after it, in seconds (at most half
#: the interval, so no two requests go out back to back). A waiting caller wakes a little
#: after its slot (the sleep's overshoot, the other threads' hold on the interpreter): a
#: fraction of a millisecond, now and then a few. When each such delay pushed every later slot
#: back, a 25-month backfill at 20/s ran 0.9 s behind the pace by its end. It takes 10 ms of
#: the headroom's margin (a second of slots at 0.95 of the limit leaves about 52 ms for the
#: jitter of arrivals): any second still holds at most floor(1.01 x 0.95 x rate) + 1 slots,
#: never more than the limit.
SLACK_SECONDS = 0.01


#: Longest a caller waiting for its turn sleeps before it looks for a stop signal.
WAKE_SECONDS = 0.25


#: Who goes ahead of whom at the limiter (see :class:`RateLimiter`): a list's page, then a page after
#: a first one, then new work.
LIST_PAGE, NEXT_PAGE, NEW_WORK = 2, 1, 0


class RateLimiter:
    """Spaces requests evenly, a little under ``rate`` per second, in turns (thread-safe).

    Callers wait in a queue and each takes the next slot when it reaches the head, so
    a caller can go ahead of those already waiting (``acquire(priority=...)``) without
    changing the spacing; callers of one priority keep their order. A list's pages go
    first (:data:`LIST_PAGE`): the workers' next fetches depend on them, and behind two
    dozen workers' turns a page would wait over a second. Then every page after a first
    one (:data:`NEXT_PAGE`, see :func:`continues_a_chain`): a chain of pages cannot be
    asked faster than a round trip a page, and each wait at the limiter lengthens it,
    where a new fetch's first page loses nothing by waiting while other work keeps the
    limit busy.
    """

    def __init__(self, rate: float, *, clock: t.Callable[[], float] = time.monotonic) -> None:
        """Allow about ``rate`` requests per second; ``rate <= 0`` disables the limit."""
        self._interval = 1.0 / (rate * HEADROOM) if rate > 0 else 0.0
        self._slack = min(SLACK_SECONDS, self._interval / 2)
        self._clock = clock
        self._next_slot = 0.0
        self._lock = threading.Lock()
        self._queue: collections.deque[threading.Event] = collections.deque()
        #: the priority of each turn waiting: the queue is in descending order of it
        self._priority: dict[threading.Event, int] = {}
        self._closed_by: Exception | None = None

    def close(self, reason: Exception) -> None:
        """Refuse every later request with ``reason`` (Zoom's daily cap for the label is reached)."""
        self._closed_by = reason

    def has_room(self) -> bool:
        """Say whether a request now would take a turn nobody waits for (never without a limit).

        Without a limit there is no idle turn to speak of: whatever is sent goes at once.
        """
        with self._lock:
            return bool(self._interval) and not self._queue and self._clock() >= self._next_slot

    def acquire(self, *, priority: int = NEW_WORK) -> None:
        """Block until this caller's slot comes (after those of its ``priority`` or above); raise if closed."""
        if self._closed_by is not None:
            raise self._closed_by
        if not self._interval:
            return
        turn = threading.Event()
        try:
            with self._lock:
                self._priority[turn] = priority
                ahead = next((i for i, other in enumerate(self._queue) if self._priority[other] < priority), None)
                self._queue.insert(len(self._queue) if ahead is None else ahead, turn)
            while (wait := self._take(turn)) > 0:
                turn.wait(min(wait, WAKE_SECONDS))
                interrupts.check()
        except BaseException:
            with self._lock:
                self._leave(turn)
            raise

    def _take(self, turn: threading.Event) -> float:
        """Take the slot if ``turn`` is at the head and the slot has come, else say how long to wait."""
        with self._lock:
            # set when it reaches the head; cleared at each look, under this lock, so that no wake is
            # lost and a head waiting for its slot sleeps rather than spins
            turn.clear()
            now = self._clock()
            if self._queue[0] is not turn:
                return WAKE_SECONDS
            if now < self._next_slot:
                return self._next_slot - now
            # a slot taken a little late keeps the pace (see SLACK_SECONDS); one taken later (the
            # limit idle, or a long stall) starts the pace again from now: idle time is not lent
            on_pace = now - self._next_slot <= self._slack
            self._next_slot = (self._next_slot if on_pace else now) + self._interval
            self._leave(turn)
            return 0.0

    def _leave(self, turn: threading.Event) -> None:
        """Take ``turn`` out of the queue and wake the caller now at its head (holding the lock)."""
        if turn in self._queue:
            self._queue.remove(turn)
        self._priority.pop(turn, None)
        if self._queue:
            self._queue[0].set()


def continues_a_chain(request: requests.PreparedRequest) -> bool:
    """Say whether ``request`` asks for a page after the first: it carries Zoom's page token.

    Its page could not be asked for before the one before it was answered, so it goes
    ahead of the callers waiting (see :class:`RateLimiter`): a session of five pages that
    begins among a backfill's last requests would otherwise end five waits at the limiter
    and five round trips after them, which is the run's end.
    """
    return bool(parse_qs(urlsplit(request.url or "").query).get("next_page_token"))


class RateLimitedSession(EnvironmentSession):
    """A session whose every send, retries included, waits for the limiter.

    It sends with the environment's CA bundle and proxies (see :mod:`tap_zoom_sms.network`).
    """

    def __init__(
        self,
        limiter: RateLimiter,
        on_response: t.Callable[[requests.Response], None] | None = None,
        *,
        first: bool = False,
    ) -> None:
        """Send through ``limiter`` (``first``: a list's pages, ahead of all); ``on_response`` sees each response.

        The run's progress counts the responses.
        """
        super().__init__()
        self._limiter = limiter
        self._first = first
        self._on_response = on_response

    def send(self, request: requests.PreparedRequest, **kwargs: t.Any) -> requests.Response:
        """Wait for a slot (a list's page, then a page after a first one, ahead of the rest), then send."""
        priority = LIST_PAGE if self._first else NEXT_PAGE if continues_a_chain(request) else NEW_WORK
        self._limiter.acquire(priority=priority)
        response = super().send(request, **kwargs)
        if self._on_response is not None:
            self._on_response(response)
        return response
