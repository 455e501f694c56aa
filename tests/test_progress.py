"""Progress lines: one at a steady interval and one at the end, and no line per request or session."""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import typing as t

import pytest
import requests

from tap_zoom_sms import progress
from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.progress import Progress
from tap_zoom_sms.windows import UTC, Window
from tests.conftest import run_tap

LINE = re.compile(
    r"Progress: (?P<where>.+?); (?P<sessions>[\d,]+) sessions, (?P<messages>[\d,]+) messages, "
    r"(?P<attachments>[\d,]+) attachments, (?P<engagements>[\d,]+) engagements so far; "
    r"(?P<rate>[\d.]+ requests/s|[\d,]+ requests in \d+ s) \(limits Medium 20/s, Heavy 10/s\); "
    r"(?P<limited>[\d,]+) 429s waited out"
)


def test_a_run_logs_progress_at_an_interval_and_at_the_end(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "INTERVAL", 0.2)
    with Emulator(DatasetSpec(seed=3, sessions=30, engagements=8)) as emulator:
        emulator.config.latency_ms = 5
        emulator.config.medium_qps = 20
        config = emulator.tap_config(medium_requests_per_second=20, heavy_requests_per_second=10)
        with caplog.at_level(logging.INFO):
            run = run_tap(config)
        requests = emulator.stats.snapshot()["total_requests"]

    info = [r for r in caplog.records if r.levelno == logging.INFO]
    lines = [r.getMessage() for r in info if r.getMessage().startswith("Progress")]
    steady = [LINE.match(line) for line in lines[:-1]]
    assert len(steady) >= 3, lines  # a run of several seconds, a line every 0.2 s
    assert all(steady), lines
    assert any("sms_sessions window 20" in m["where"] and "more after it" in m["where"] for m in steady if m)
    assert any(re.search(r"; about [\d.]+ (s|min)[\w ]* left$", line) for line in lines[:-1]), lines
    final = lines[-1]
    counts = {stream: len(records) for stream, records in run.records.items()}
    assert final.startswith("Progress (end of run): done; ")
    assert (
        f"{counts['sms_sessions']:,} sessions, {counts['sms_messages']:,} messages, "
        f"{counts.get('attachments', 0):,} attachments, {counts['contact_center_sms']:,} engagements written"
    ) in final
    # no line per request, record or session: a few lines in all for hundreds of requests
    assert requests > 100
    assert len(info) - len(lines) < 20, [r.getMessage()[:80] for r in info][:40]


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def responded(seconds: float, status: int = 200) -> requests.Response:
    """A response that took ``seconds``."""
    response = requests.Response()
    response.status_code = status
    response.elapsed = dt.timedelta(seconds=seconds)
    return response


JANUARY, FEBRUARY, MARCH, APRIL = (dt.datetime(2024, month, 1, tzinfo=UTC) for month in (1, 2, 3, 4))
WINDOWS = (Window(JANUARY, FEBRUARY), Window(FEBRUARY, MARCH), Window(MARCH, APRIL))


def sessions_walk(tracker: Progress) -> t.Iterator[Window]:
    """The sessions stream's windows from January to April, as the tracker follows them.

    A pass begins as SmsSessionsStream.windows begins one: its work forgotten before anything is read.
    """
    tracker.work_begins("sms_sessions")
    return tracker.windows("sms_sessions", iter(WINDOWS), APRIL)


def test_the_estimate_follows_the_records_written_not_the_window_listed() -> None:
    clock = Clock(100.0)
    tracker = Progress(logging.getLogger("test"), {"Medium": 10, "Heavy": 0}, clock=clock)
    walk = sessions_walk(tracker)
    next(walk)  # the stream starts at 100 s
    tracker.record("sms_sessions", "2024-02-01T00:00:00Z")  # 31 of 91 days written
    tracker.record("sms_messages", "2024-03-20T00:00:00Z")  # a child's time is not the stream's
    next(walk)
    next(walk)  # the list has moved two months ahead of what is written (the read-ahead)
    clock.now = 160.0
    assert tracker.time_left(clock.now) == pytest.approx(60 * 60 / 31)  # 116.1 s
    line = tracker.line()
    assert "sms_sessions window 2024-03-01T00:00:00Z to 2024-04-01T00:00:00Z (0 more after it)" in line
    assert line.endswith("; about 1 min 55 s left")
    assert "limits Medium 10/s" in line


def test_the_line_names_the_streams_still_to_come_and_the_last_ones_estimate_is_the_runs() -> None:
    clock = Clock(0.0)
    tracker = Progress(logging.getLogger("test"), {"Medium": 20, "Heavy": 10}, clock=clock)
    tracker.plan(["contact_center_sms", "sms_sessions"])  # the SDK syncs its streams by name
    engagements = tracker.windows(
        "contact_center_sms", iter([Window(JANUARY, FEBRUARY), Window(FEBRUARY, APRIL)]), APRIL
    )
    next(engagements)
    tracker.record("contact_center_sms", "2024-02-01T00:00:00Z")  # 31 of 91 days in 6 s
    clock.now = 6.0
    assert tracker.line().endswith("; about 12 s left in contact_center_sms, then sms_sessions")
    for _ in engagements:
        pass
    walk = sessions_walk(tracker)
    next(walk)
    tracker.record("sms_sessions", "2024-02-01T00:00:00Z")
    clock.now = 66.0
    assert tracker.line().endswith("; about 1 min 55 s left")  # the sessions' 60 s * 60 / 31: the run's


def test_no_estimate_before_anything_is_written_or_listed() -> None:
    tracker = Progress(logging.getLogger("test"), {"Medium": 10}, clock=Clock(5.0))
    assert tracker.time_left(5.0) is None
    assert "left" not in tracker.line()


def test_a_short_run_gives_a_count_not_a_rate() -> None:
    clock = Clock(1000.0)
    tracker = Progress(logging.getLogger("test"), {"Medium": 10}, clock=clock)
    for _ in range(2):
        tracker.response(responded(0.01))
    clock.now = 1000.014
    final = tracker.line(final=True)
    assert "2 requests in 0 s (limits Medium 10/s)" in final
    assert "requests/s" not in final


def test_the_rate_is_over_the_latest_minute() -> None:
    clock = Clock(0.0)
    tracker = Progress(logging.getLogger("test"), {"Medium": 20}, clock=clock)
    for now, total in ((30.0, 300), (90.0, 1500), (120.0, 2100)):
        while tracker.requests < total:
            tracker.response(responded(0.1, 429 if tracker.requests % 100 == 0 else 200))
        clock.now = now
        line = tracker.line()
    # the last line's rate: from the line at 30 s (300 requests) to 120 s, not since the start
    assert "20.0 requests/s (limits Medium 20/s)" in line
    assert "21 429s waited out" in line
    clock.now = 140.0
    assert "15.0 requests/s" in tracker.line(final=True)  # the whole run's: 2,100 in 140 s


def test_the_estimate_goes_on_while_the_last_sessions_are_written() -> None:
    clock = Clock(0.0)
    tracker = Progress(logging.getLogger("test"), {"Medium": 10}, clock=clock)
    walk = sessions_walk(tracker)
    next(walk)
    clock.now = 10.0
    tracker.record("sms_sessions", "2024-01-01T00:00:00Z")  # the first record, at 10 s: the pace starts here
    for _ in walk:  # every window listed; the read-ahead still holds the last sessions
        pass
    tracker.record("sms_sessions", "2024-03-01T00:00:00Z")
    clock.now = 70.0
    # 60 days written in 60 s since the first record: 31 days left, 31 s
    assert tracker.time_left(clock.now) == pytest.approx(31.0)
    assert "sms_sessions listed to the end, its last records being written" in tracker.line()


def test_past_half_a_minute_the_pace_is_a_line_fitted_through_the_months_steps() -> None:
    clock = Clock(0.0)
    tracker = Progress(logging.getLogger("test"), {"Medium": 20}, clock=clock)
    walk = sessions_walk(tracker)
    next(walk)
    for step in range(11):  # a day a second, written in steps of 4 days every 4 s, from 10 s to 50 s
        clock.now = 10.0 + 4 * step
        written = JANUARY + dt.timedelta(days=1 + 4 * step)
        tracker.record("sms_sessions", written.strftime("%Y-%m-%dT%H:%M:%SZ"))
    clock.now = 52.0
    # the line through the steps is at day 43 now: 48 days left at a day a second (the pace since the
    # first record, 40 days in 40 s from day 1, would say 50 days from day 41, not the line's 48)
    assert tracker.time_left(clock.now) == pytest.approx(48.0)


def made(tracker: Progress, clock: Clock, count: int, *, every: float, took: float = 0.0) -> None:
    """Answer ``count`` requests, one every ``every`` seconds of the clock, each after ``took`` seconds."""
    for _ in range(count):
        clock.now += every
        tracker.response(responded(took))


def fetches(tracker: Progress, clock: Clock, count: int, *, pages: int, every: float) -> None:
    """End ``count`` fetches of ``pages`` requests each, a request every ``every`` seconds."""
    for _ in range(count):
        with tracker.fetch():
            made(tracker, clock, pages, every=every)


def test_the_time_left_is_the_requests_the_known_work_needs_at_the_rate_they_are_made() -> None:
    clock = Clock(10.0)
    tracker = Progress(logging.getLogger("test"), {"Medium": 20}, clock=clock)
    walk = sessions_walk(tracker)
    next(walk)
    # every month's activity lists read ahead: 600 fetches of messages in the range
    for window, active in zip(
        (Window(JANUARY, FEBRUARY), Window(FEBRUARY, MARCH), Window(MARCH, APRIL)), (100, 300, 200), strict=True
    ):
        tracker.work_known("sms_sessions", window, active)
    made(tracker, clock, 21, every=0.05)  # the lists and the sample check: not fetches, done
    fetches(tracker, clock, 50, pages=2, every=0.05)  # 50 of 600 fetches, two pages each, at 20 requests/s
    tracker.record("sms_sessions", "2024-01-05T00:00:00Z")  # the sessions written stall in January
    assert clock.now == pytest.approx(16.05)  # from the first answer, at 10.05 s: 120 more in 6 s
    # 550 fetches left at 2 requests each, at 20/s: 55 s (by the position written: 4 days in 6 s, 87 left, 130 s)
    assert tracker.time_left(clock.now) == pytest.approx(55.0, rel=0.01)
    assert tracker.line().endswith("; about 55 s left")


def test_the_last_answers_add_a_round_trip() -> None:
    clock = Clock(0.0)
    tracker = Progress(logging.getLogger("test"), {"Medium": 20}, clock=clock)
    next(sessions_walk(tracker))
    tracker.work_known("sms_sessions", Window(JANUARY, APRIL), 110)
    for _ in range(100):  # a fetch of one page every 0.1 s, each answered after 0.5 s
        with tracker.fetch():
            made(tracker, clock, 1, every=0.1, took=0.5)
    # 10 fetches of a request at 10/s: 1 s, and the last answer comes half a second after it is asked
    assert tracker.time_left(clock.now) == pytest.approx(1.5, rel=0.02)


def test_the_months_not_read_yet_hold_as_many_fetches_a_day_as_those_read() -> None:
    clock = Clock(0.0)
    tracker = Progress(logging.getLogger("test"), {"Medium": 10}, clock=clock)
    walk = sessions_walk(tracker)
    next(walk)
    tracker.work_known("sms_sessions", Window(JANUARY, FEBRUARY), 62)  # 31 days of 91 read: 2 fetches a day
    fetches(tracker, clock, 2, pages=1, every=0.1)
    made(tracker, clock, 8, every=0.1)
    # 62 + 2 a day for the 60 days not read = 182 fetches, 180 left at a request each, and the two
    # months not read cost their lists, 3 requests each: 186 requests at 10/s
    assert tracker.time_left(clock.now) == pytest.approx(18.6, rel=0.01)


def test_the_pace_is_the_latest_requests_not_the_runs_slow_start() -> None:
    clock = Clock(0.0)
    tracker = Progress(logging.getLogger("test"), {"Medium": 20}, clock=clock)
    next(sessions_walk(tracker))
    tracker.work_known("sms_sessions", Window(JANUARY, APRIL), 1000)
    fetches(tracker, clock, 10, pages=1, every=2.0)  # a slow start: a request every 2 s for 20 s
    fetches(tracker, clock, 400, pages=1, every=0.05)  # then 20/s for 20 s
    # 590 fetches left at the latest pace, 20/s (over the whole run, 410 in 40 s, it would say 57.6 s)
    assert tracker.time_left(clock.now) == pytest.approx(29.5, rel=0.01)


def test_a_fetch_counts_the_requests_of_its_own_thread_only() -> None:
    clock = Clock(0.0)
    tracker = Progress(logging.getLogger("test"), {"Medium": 20}, clock=clock)
    next(sessions_walk(tracker))
    tracker.work_known("sms_sessions", Window(JANUARY, APRIL), 30)
    for _ in range(10):
        with tracker.fetch():
            made(tracker, clock, 1, every=0.05)
            # another thread's request (a list read ahead) made while the fetch runs is not the fetch's
            beside = threading.Thread(target=made, args=(tracker, clock, 1), kwargs={"every": 0.05})
            beside.start()
            beside.join()
    assert tracker.requests == 20
    # 20 fetches left at one request each (not two), at 20/s
    assert tracker.time_left(clock.now) == pytest.approx(1.0, rel=0.02)


def test_a_fetch_within_a_fetch_leaves_the_outer_ones_count_whole() -> None:
    clock = Clock(0.0)
    tracker = Progress(logging.getLogger("test"), {"Medium": 10}, clock=clock)
    next(sessions_walk(tracker))
    tracker.work_known("sms_sessions", Window(JANUARY, APRIL), 12)
    with tracker.fetch():
        made(tracker, clock, 2, every=0.1)
        with tracker.fetch():  # one message fetched again on the same thread (fresh file URLs)
            made(tracker, clock, 1, every=0.1)
        made(tracker, clock, 3, every=0.1)  # the outer fetch goes on counting
    made(tracker, clock, 4, every=0.1)  # no fetch: a list read between fetches
    # two fetches ended with 6 requests between them (not the outer's 5 dropped after the inner
    # ended, nor the list's 4): 10 fetches left at 3 requests each, at 10/s
    assert tracker.time_left(clock.now) == pytest.approx(3.0, rel=0.02)


def test_another_partitions_work_starts_when_its_pass_begins() -> None:
    clock = Clock(0.0)
    tracker = Progress(logging.getLogger("test"), {"Medium": 10}, clock=clock)
    first = sessions_walk(tracker)
    next(first)
    tracker.work_known("sms_sessions", Window(JANUARY, APRIL), 50)
    fetches(tracker, clock, 50, pages=1, every=0.1)
    for _ in first:  # the first user's range is listed to its end
        pass
    second = sessions_walk(tracker)
    next(second)
    for window, count in zip(WINDOWS, (5, 5, 10), strict=True):  # the next user's, month by month
        tracker.work_known("sms_sessions", window, count)
    fetches(tracker, clock, 5, pages=1, every=0.1)
    # 15 of the next user's 20 fetches left at 10/s: the first user's 50 are neither known nor done
    assert tracker.time_left(clock.now) == pytest.approx(1.5, rel=0.02)


def test_a_pass_that_learns_no_work_is_estimated_from_its_records() -> None:
    clock = Clock(0.0)
    tracker = Progress(logging.getLogger("test"), {"Medium": 10}, clock=clock)
    first = sessions_walk(tracker)
    next(first)
    tracker.work_known("sms_sessions", Window(JANUARY, APRIL), 500)
    fetches(tracker, clock, 10, pages=1, every=0.1)
    for _ in first:
        pass
    # the next user's pass reads no activity lists (one month, the exhaustive walk, or a fallback)
    clock.now = 10.0
    second = sessions_walk(tracker)
    next(second)
    tracker.record("sms_sessions", "2024-01-11T00:00:00Z")  # 10 days of 91 written in 10 s
    clock.now = 20.0
    # its range at its records' pace: 81 days left at a day a second (not the first user's 490
    # fetches left, at the pace of the latest requests)
    assert tracker.time_left(clock.now) == pytest.approx(81.0)


def test_another_streams_time_left_is_not_the_sessions_work() -> None:
    clock = Clock(0.0)
    tracker = Progress(logging.getLogger("test"), {"Medium": 10}, clock=clock)
    for _ in sessions_walk(tracker):
        pass
    tracker.work_known("sms_sessions", Window(JANUARY, APRIL), 500)
    fetches(tracker, clock, 10, pages=1, every=0.1)
    engagements = tracker.windows("contact_center_sms", iter([Window(JANUARY, APRIL)]), APRIL)
    next(engagements)  # at 1 s
    tracker.record("contact_center_sms", "2024-01-02T00:00:00Z")
    clock.now = 20.0
    # its own range's pace: a day of 91 written in 19 s, 90 days left (not the sessions' 490 fetches at 10/s)
    assert tracker.time_left(clock.now) == pytest.approx(19.0 * 90)


def test_a_run_tells_its_progress_each_fetch_its_activity_lists_named(monkeypatch: pytest.MonkeyPatch) -> None:
    known: list[int] = []
    ended: list[int] = []
    work_known, fetch = Progress.work_known, Progress.fetch

    def noted(self: Progress, stream: str, window: Window, count: int) -> None:
        assert stream == "sms_sessions"
        known.append(count)
        work_known(self, stream, window, count)

    def counted(self: Progress) -> t.ContextManager[None]:
        ended.append(1)
        return fetch(self)

    monkeypatch.setattr(Progress, "work_known", noted)
    monkeypatch.setattr(Progress, "fetch", counted)
    # eight months: more than the windows read ahead at the first request, so some are queued as the run goes
    with Emulator(DatasetSpec(seed=3, sessions=40, engagements=0, months=8)) as emulator:
        run_tap(emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0))
        active_months = {
            (record["session_id"], record["date_time"][:7])
            for stream, record in emulator.account.truth()
            if stream == "sms_messages"
        }
    # every window's count, read ahead, is the fetches the run made: a session's messages in a month each
    # (a session with a message on a month's first instant is active in both months the instant ends and starts)
    assert len(known) >= 5
    assert sum(known) == len(ended)
    assert len(ended) >= len(active_months)
