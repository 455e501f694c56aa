"""Lists read ahead: the next windows while the current one is written, and Contact Center beside the Phone streams."""

from __future__ import annotations

import datetime as dt
import threading
import typing as t

import pytest

from tap_zoom_sms.auth import ZoomS2SAuthenticator
from tap_zoom_sms.errors import ZoomAPIError
from tap_zoom_sms.readahead.background import ListInBackground, WindowEnded
from tap_zoom_sms.readahead.windows import WindowsAhead
from tap_zoom_sms.windows import Window
from tests.conftest import run_tap
from tests.fakezoom import FakeZoom, base_config

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

#: A failure guard only: every wait below ends as soon as what it waits for happens.
PATIENCE = 10.0
START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
WINDOWS = [Window(START + dt.timedelta(days=31 * i), START + dt.timedelta(days=31 * (i + 1))) for i in range(8)]


class Reader:
    """Reads a window's two records once the test lets it; notes which windows were asked for."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def read_window(
        self, window: Window, context: Context | None, covered: dict[Window, dt.datetime]
    ) -> t.Iterator[dict[str, t.Any]]:
        index = WINDOWS.index(window)
        self.log.asked(index)
        assert self.log.release[index].wait(PATIENCE)
        if index in self.log.fail:
            raise self.log.fail[index]
        yield {"window": index, "n": 0}
        yield {"window": index, "n": 1}
        covered[window] = window.end

    def read_windows(
        self, context: Context | None, windows: t.Iterator[Window], on_window_done: t.Callable[..., None]
    ) -> t.Iterator[dict[str, t.Any]]:
        ahead = list(windows)
        for position, window in enumerate(ahead):
            covered: dict[Window, dt.datetime] = {}
            yield from self.read_window(window, context, covered)
            on_window_done(window, position == len(ahead) - 1, covered[window])


class Log:
    """What the readers were asked, from any thread, and when each window may be read."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.windows: list[int] = []
        self.release = [threading.Event() for _ in WINDOWS]
        self.fail: dict[int, Exception] = {}

    def asked(self, index: int) -> None:
        with self.lock:
            self.windows.append(index)
            self.lock.notify_all()

    def wait_for(self, count: int) -> list[int]:
        with self.lock:
            assert self.lock.wait_for(lambda: len(self.windows) >= count, PATIENCE), self.windows
            return sorted(self.windows)

    def release_all(self) -> None:
        for event in self.release:
            event.set()


def answered_when(event: threading.Event) -> t.Callable[[t.Callable[[], bool]], bool]:
    """The run's first answer, as RunServices.await_answer gives it: wait for ``event`` unless stopped."""

    def wait(stopped: t.Callable[[], bool]) -> bool:
        while not event.wait(0.01):
            if stopped():
                return False
        return True

    return wait


def test_the_next_windows_lists_are_read_while_the_current_one_is_still_being_read() -> None:
    log = Log()
    ahead = WindowsAhead(lambda: Reader(log), iter(WINDOWS), None, depth=3)
    try:
        windows = ahead.windows()
        assert next(windows) == WINDOWS[0]
        # window 0 cannot end yet, and the lists of the three windows after it are asked for already
        assert log.wait_for(4) == [0, 1, 2, 3]
        log.release_all()
        records = list(ahead.records(WINDOWS[0], Reader(log)))
        assert records == [{"window": 0, "n": 0}, {"window": 0, "n": 1}]
        assert ahead.covered(WINDOWS[0]) == WINDOWS[0].end
        assert not ahead.last
    finally:
        ahead.close()


def test_records_come_window_by_window_in_order_whatever_order_the_reads_end_in() -> None:
    log = Log()
    ahead = WindowsAhead(lambda: Reader(log), iter(WINDOWS), None, depth=3)
    try:
        got: list[tuple[int, int]] = []
        for position, window in enumerate(ahead.windows()):
            if position == 0:
                log.wait_for(4)
                for later in (3, 2, 1, 0):  # the later windows are read first
                    log.release[later].set()
                for later in range(4, len(WINDOWS)):
                    log.release[later].set()
            got += [(r["window"], r["n"]) for r in ahead.records(window, Reader(log))]
            assert ahead.covered(window) == window.end
            assert ahead.last == (window == WINDOWS[-1])
    finally:
        ahead.close()
    assert got == [(w, n) for w in range(len(WINDOWS)) for n in (0, 1)]


def test_the_first_windows_lists_go_out_together_before_any_is_answered() -> None:
    """No list waits for the run's first answer: its round trip would idle the limit (see readahead.windows)."""
    log = Log()
    ahead = WindowsAhead(lambda: Reader(log), iter(WINDOWS), None, depth=3)
    try:
        assert log.wait_for(4) == [0, 1, 2, 3]  # none of them answered yet
    finally:
        log.release_all()
        ahead.close()


def test_a_stopped_read_ahead_sends_nothing_more() -> None:
    log = Log()
    ahead = WindowsAhead(lambda: Reader(log), iter(WINDOWS), None, depth=3)
    assert next(ahead.windows()) == WINDOWS[0]
    assert log.wait_for(4) == [0, 1, 2, 3]
    log.release_all()
    ahead.close()
    assert list(ahead.windows()) == []
    assert sorted(log.windows) == [0, 1, 2, 3]


def test_a_list_read_in_the_background_waits_for_zoom_then_hands_over_in_order() -> None:
    log, answered = Log(), threading.Event()
    log.release_all()
    early = ListInBackground(Reader(log), iter(WINDOWS[:3]), None, answered_when(answered))
    try:
        with log.lock:
            assert not log.lock.wait_for(lambda: log.windows, 0.2)  # nothing before Zoom answers the run
        answered.set()
        items = list(early.items())
    finally:
        early.close()
    expected: list[t.Any] = []
    for position, window in enumerate(WINDOWS[:3]):
        expected += [{"window": position, "n": 0}, {"window": position, "n": 1}]
        expected.append(WindowEnded(window, position == 2, window.end))
    assert items == expected


def test_a_list_read_in_the_background_starts_when_its_turn_comes_even_if_zoom_never_answered() -> None:
    log = Log()
    log.release_all()
    early = ListInBackground(Reader(log), iter(WINDOWS[:2]), None, answered_when(threading.Event()))
    try:
        assert len(list(early.items())) == 6
    finally:
        early.close()


def test_an_error_in_the_background_is_raised_after_the_windows_before_it() -> None:
    log, answered = Log(), threading.Event()
    answered.set()
    log.release_all()
    log.fail[1] = RuntimeError("daily cap")
    early = ListInBackground(Reader(log), iter(WINDOWS[:3]), None, answered_when(answered))
    got: list[t.Any] = []
    try:
        with pytest.raises(RuntimeError, match="daily cap"):
            got.extend(early.items())
    finally:
        early.close()
    assert got == [{"window": 0, "n": 0}, {"window": 0, "n": 1}, WindowEnded(WINDOWS[0], False, WINDOWS[0].end)]
    assert log.windows == [0, 1]  # nothing asked after the failure


def test_a_background_list_nobody_takes_stops_when_closed() -> None:
    log, answered = Log(), threading.Event()
    answered.set()
    log.release_all()
    early = ListInBackground(Reader(log), iter(WINDOWS), None, answered_when(answered), budget=1)
    log.wait_for(1)
    early.close()
    early._thread.join(PATIENCE)
    assert not early._thread.is_alive()
    assert log.windows == [0]  # it waited for room, and stopped there


def build_account(zoom: FakeZoom) -> None:
    """Three sessions a month over six months, and an engagement in February and May."""
    for month in ("01", "02", "03", "04", "05", "06"):
        for i in range(3):
            zoom.add_session(f"s{month}{i}")
            zoom.add_message(f"s{month}{i}", f"2024-{month}-1{i}T10:00:00Z")
    zoom.add_engagement("e1", "2024-02-02T10:00:00Z")
    zoom.add_engagement("e2", "2024-05-02T10:00:00Z")


def test_an_error_of_one_endpoint_stops_its_stream_and_the_others_still_run(zoom: FakeZoom) -> None:
    build_account(zoom)
    refused = {"code": 300, "message": "Invalid parameter"}
    april = lambda request: request.qs.get("from", [""])[0].startswith("2024-04")  # noqa: E731
    zoom.fail_next(r"/phone/sms/sessions$", 400, refused, when=april)

    run = run_tap(base_config(max_concurrent_requests=4), expect_error=True)

    assert isinstance(run.error, ZoomAPIError)
    assert "Invalid parameter" in str(run.error)
    assert run.ids("contact_center_sms", "engagement_id") == {"e1", "e2"}  # the other stream still ran
    listed = run.ids("sms_sessions", "session_id")
    assert {f"s01{i}" for i in range(3)} <= listed
    assert not any(s.startswith(("s04", "s05", "s06")) for s in listed)  # nothing past the refused month
    bookmark = run.last_state["bookmarks"]["sms_sessions"]["replication_key_value"]  # type: ignore[index]
    assert "2024-02-01T00:00:00Z" <= bookmark <= "2024-04-01T00:00:00Z"  # it stops before the refused month
    # and claims no session it did not write (those held ahead of it are read again by the next run)
    months_before = {m for m in ("01", "02", "03") if f"2024-{m}-31" < bookmark or f"2024-{m}-30" < bookmark}
    assert {f"s{m}{i}" for m in months_before for i in range(3)} <= listed


def test_a_token_zoom_refused_is_forgotten_once_whichever_thread_says_so_first() -> None:
    auth = ZoomS2SAuthenticator(account_id="a", client_id="c", client_secret="s", auth_endpoint="http://127.0.0.1:9/")
    auth.access_token, auth.last_refreshed = "renewed", dt.datetime.now(dt.timezone.utc)
    auth.invalidate("refused-before")  # a second thread's 401, for the token the first one renewed already
    assert auth.access_token == "renewed"
    auth.invalidate("renewed")
    assert auth.access_token is None
