"""Progress lines: one at a steady interval and one at the end, and no line per request or session."""

from __future__ import annotations

import datetime as dt
import logging
import re

import pytest

from tap_zoom_sms import progress
from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.progress import Progress
from tap_zoom_sms.windows import UTC, Window
from tests.conftest import run_tap

LINE = re.compile(
    r"Progress: (?P<where>.+?); (?P<sessions>[\d,]+) sessions, (?P<messages>[\d,]+) messages, "
    r"(?P<attachments>[\d,]+) attachments, (?P<engagements>[\d,]+) engagements so far; "
    r"(?P<rate>[\d.]+) requests/s \(limits Medium 20/s, Heavy 10/s\); (?P<limited>[\d,]+) 429s waited out"
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
    assert any("left for sms_sessions" in line for line in lines[:-1])
    final = lines[-1]
    counts = {stream: len(records) for stream, records in run.records.items()}
    assert final.startswith("Progress (end of run): done; ")
    assert (
        f"{counts['sms_sessions']:,} sessions, {counts['sms_messages']:,} messages, "
        f"{counts.get('attachments', 0):,} attachments, {counts['contact_center_sms']:,} engagements written"
    ) in final
    # no line per request, record or session: a few lines in all for hundreds of requests
    assert requests > 200
    assert len(info) - len(lines) < 20, [r.getMessage()[:80] for r in info][:40]


def test_the_estimate_follows_the_share_of_the_range_read(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 100.0, 160.0, 160.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    tracker = Progress(logging.getLogger("test"), {"Medium": 10, "Heavy": 0})
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    february, march = dt.datetime(2024, 2, 1, tzinfo=UTC), dt.datetime(2024, 3, 1, tzinfo=UTC)
    windows = [Window(start, february), Window(february, march)]
    end = dt.datetime(2024, 4, 1, tzinfo=UTC)
    walk = tracker.windows("sms_sessions", iter(windows), end)
    next(walk)
    next(walk)  # 31 of 91 days read in 60 s
    line = tracker.line()
    assert "sms_sessions window 2024-02-01T00:00:00Z to 2024-03-01T00:00:00Z (1 more after it)" in line
    assert "about 2 min left for sms_sessions" in line  # 60 s * 60 / 31 = 116 s
    assert "limits Medium 10/s" in line
