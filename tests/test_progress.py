"""Progress lines: one at a steady interval and one at the end, and no line per request or session."""

from __future__ import annotations

import datetime as dt
import logging
import re
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


def sessions_walk(tracker: Progress) -> t.Iterator[Window]:
    """The sessions stream's windows from January to April, as the tracker follows them."""
    windows = [Window(JANUARY, FEBRUARY), Window(FEBRUARY, MARCH), Window(MARCH, APRIL)]
    return tracker.windows("sms_sessions", iter(windows), APRIL)


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
