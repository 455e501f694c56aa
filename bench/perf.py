"""The performance benchmark: the installed tap against the emulator, all figures from one run.

1. Rate-limit utilization: Medium requests/s over the configured limit, at 0, 50, 150, 500 ms
   and 1 s of emulator latency and limits of 10 and 20/s (the emulator enforces the same
   limit), with default settings (concurrency sized from the limit) and with 8 concurrent
   requests (the former default): over the whole run, and steady (after its first 5 seconds:
   start-up and the session list's first pages); 429s counted, and the tap's peak RSS.
2. Requests per 1,000 messages for a 13-month backfill, beside the minimum the API allows
   for that data set (pages per month-long window, from the ground truth).
3. CPU throughput (records per CPU-second of the tap process), zero latency and no limit,
   beside the stock SDK path (json writer flushed per message, recursive conformance).
4. Peak RSS of the tap at 10x and 100x the data; and (4b) with one session of 100,000 messages
   and with 40 sessions of 5,000, at 10 and 20/s, default workers and 64.
5. Attachment files: downloads at 150 ms latency and 20 Medium requests/s, with 8 concurrent
   requests and sequential: wall time, Medium requests/s (API and files), MB/s, peak RSS.

Run: .venv/bin/python -m bench.perf [--quick]   (prints Markdown tables)
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import math
import re
import tempfile
import time
import typing as t
from pathlib import Path

from bench.runner import Run, run_tap, truth
from tap_zoom_sms.concurrency import message_workers
from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.tap import TapZoomSms
from tap_zoom_sms.windows import month_windows

#: Seconds of a utilization run left out of its steady rate (see SteadyRate).
WARMUP_SECONDS = 5

STOCK_PATH = (
    "from singer_sdk.helpers.conform import TypeConformanceLevel\n"
    "from singer_sdk.io_base import SingerWriter\n"
    "from tap_zoom_sms.basestream import BaseStream\n"
    "from tap_zoom_sms.tap import TapZoomSms\n"
    "TapZoomSms.message_writer_class = SingerWriter\n"
    "BaseStream.TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.RECURSIVE\n"
)


def phone_only_catalog(emulator: Emulator) -> dict:
    """A catalog with contact_center_sms deselected: utilization is about the Medium label."""
    catalog = TapZoomSms(config=emulator.tap_config(), validate_config=False).catalog_dict
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] != "contact_center_sms"
    return catalog


class SteadyRate:
    """A ``stop_when`` for run_tap: stops the run after ``seconds``, counting Medium arrivals after ``warmup``.

    A run's first seconds hold a fixed cost, not a rate: start-up, the token, and the
    session list's first pages (one latency each) before any session is known. At 1 s
    of latency that is a third of a 10-second run; this measures the rate after it.
    """

    def __init__(self, emulator: Emulator, warmup: float, seconds: float) -> None:
        """Count from ``warmup`` seconds after the first call to ``seconds`` after it."""
        self._emulator = emulator
        self._warmup = warmup
        self._seconds = seconds
        self._began: float | None = None
        self._marks: list[tuple[float, int]] = []

    def _count(self) -> int:
        return self._emulator.stats.label_times.get("Medium", (0.0, 0.0, 0))[2]

    def __call__(self) -> bool:
        """Note the count at the warm-up's end and at the end; say whether the run is over."""
        now = time.monotonic()
        self._began = now if self._began is None else self._began
        elapsed = now - self._began
        if not self._marks and elapsed >= self._warmup:
            self._marks.append((now, self._count()))
        if elapsed >= self._seconds:
            self._marks.append((now, self._count()))
            return True
        return False

    @property
    def rate(self) -> float:
        """Medium requests per second from the end of the warm-up to the end of the run."""
        (start, first), (end, last) = self._marks[0], self._marks[-1]
        return (last - first) / (end - start) if end > start else 0.0


def utilization(workdir: Path, quick: bool) -> list[str]:
    """Table 1: default settings beside the former default of 8 workers."""
    rows = [
        "| latency | limit/s | default: workers | req/s, whole run | utilization, whole run "
        "| req/s, steady | utilization, steady | 429s | peak RSS | 8 workers: utilization, steady | 429s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    seconds = 10 if quick else 15
    with Emulator(DatasetSpec(seed=3, sessions=400, engagements=1)) as emulator:
        catalog = phone_only_catalog(emulator)
        for latency in (0, 50, 150, 500, 1000):
            for limit in (10, 20):
                emulator.config.latency_ms = latency
                emulator.config.medium_qps = limit
                config = emulator.tap_config(medium_requests_per_second=limit, heavy_requests_per_second=limit)
                cells = [str(message_workers(config))]
                for workers in (None, 8):
                    emulator.stats.reset()
                    overrides = {} if workers is None else {"max_concurrent_requests": workers}
                    steady = SteadyRate(emulator, WARMUP_SECONDS, seconds)
                    run = run_tap(emulator, workdir, config | overrides, catalog=catalog, stop_when=steady)
                    # the killed tap's requests still in the emulator are answered, and leave its
                    # one-second window, before the next run is counted (they took its 429s)
                    time.sleep(latency / 1000 + 1)
                    stats = emulator.stats.snapshot()
                    limited = stats["statuses"].get("429", 0)
                    share = limited / max(1, stats["total_requests"])
                    if workers is None:
                        rate = emulator.stats.rate("Medium")
                        cells += [f"{rate:.1f}", f"{rate / limit:.2f}", f"{steady.rate:.1f}"]
                    cells += [f"{steady.rate / limit:.2f}", f"{limited} ({share:.1%})"]
                    if workers is None:
                        cells.append(f"{run.max_rss_mb:.0f} MB")
                rows.append(f"| {latency} ms | {limit} | " + " | ".join(cells) + " |")
    return rows


def api_minimum(emulator: Emulator, start: dt.datetime) -> dict[str, int]:
    """Fewest requests the API needs for the data set, by endpoint, over the run's calendar-month windows.

    One details request per page of a session's messages in each window that holds any,
    plus the session list's pages (by last message) and Contact Center's pages, at least
    one per window each.
    """
    account = emulator.account
    windows = list(month_windows(start))

    def window_of(when: str) -> int:
        instant = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
        return next(i for i, w in enumerate(windows) if w.start <= instant <= w.end)

    details: collections.Counter[tuple[str, int]] = collections.Counter()
    listed: collections.Counter[int] = collections.Counter()
    for stream, record in account.truth():
        if stream == "sms_messages":
            details[record["session_id"], window_of(record["date_time"])] += 1
        elif stream == "sms_sessions":
            listed[window_of(record["last_access_time"])] += 1
    engagements = collections.Counter(window_of(e["start_time"]) for e in account.engagements())
    pages = {
        "session_details": sum(math.ceil(n / 100) for n in details.values()),
        "sessions": sum(max(1, math.ceil(listed[i] / 100)) for i in range(len(windows))),
        "contact_center_sms": sum(max(1, math.ceil(engagements[i] / 100)) for i in range(len(windows))),
    }
    return {**pages, "total": sum(pages.values())}


def backfill_requests(workdir: Path, quick: bool) -> list[str]:
    """Table 2: a backfill's requests with discovery and with the exhaustive walk, beside the API's minimum."""
    rows = [
        "| months | sessions | messages | API minimum | activity: requests | x minimum | sample check "
        "| exhaustive (the walk before): requests | x minimum | wall time at Business limits: activity | exhaustive |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for months, sessions in ((13, 100), (25, 300)) if quick else ((13, 300), (25, 2000)):
        spec = DatasetSpec(seed=9, sessions=sessions, engagements=100, months=months)
        with Emulator(spec) as emulator:
            start = emulator.account.start - dt.timedelta(days=1)
            made = {}
            for mode in ("activity", "exhaustive"):
                emulator.stats.reset()
                config = emulator.tap_config(
                    medium_requests_per_second=0, heavy_requests_per_second=0, message_discovery=mode
                )
                run = run_tap(emulator, workdir, config)
                assert run.returncode == 0, run.stderr[-2000:]  # noqa: S101
                made[mode] = emulator.stats.snapshot()["requests"]
                if mode == "activity":
                    sample = sample_requests(run)
            least = api_minimum(emulator, start)
            messages = len(truth(emulator)["sms_messages"])
        total = {mode: sum(counts.values()) for mode, counts in made.items()}
        wall = {mode: business_seconds(counts) for mode, counts in made.items()}
        rows.append(
            f"| {months} | {sessions} | {messages:,} | {least['total']:,} | {total['activity']:,} "
            f"| {total['activity'] / least['total']:.2f} | {sample} ({sample / total['activity']:.1%}) "
            f"| {total['exhaustive']:,} | {total['exhaustive'] / least['total']:.2f} "
            f"| {_minutes(wall['activity'])} | {_minutes(wall['exhaustive'])} |"
        )
    return rows


def sample_requests(run: Run) -> int:
    """Requests of the sample check, as the tap's log line about it says (0 if it made none)."""
    found = re.search(r"Discovery sample: .*? \((\d+) requests\)", run.stderr)
    return int(found.group(1)) if found else 0


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def business_seconds(requests: t.Mapping[str, int]) -> float:
    """Wall time of these requests paced at Business limits (the tap paces at 95% of 20 and 10 per second)."""
    heavy = requests.get("contact_center_sms", 0)
    return heavy / (10 * 0.95) + (sum(requests.values()) - heavy) / (20 * 0.95)


def cpu_throughput(workdir: Path, quick: bool) -> list[str]:
    """Table 3: records per CPU-second of the tap, its start-up (imports, discovery) taken out."""
    rows = [
        "| output path | records | tap CPU seconds (best of 3) | less start-up | records per CPU-second |",
        "|---|---|---|---|---|",
    ]
    paths = (
        ("tap-zoom-sms (msgspec, flush at STATE, no conformance)", None),
        ("stock SDK path (json writer, flush per message, recursive conformance)", STOCK_PATH),
    )
    # busy sessions within a month: pages of 100 messages, so the per-record path is what is timed
    spec = DatasetSpec(seed=4, sessions=40 if quick else 150, engagements=50, months=1, busy_share=1.0)
    rates = []
    with Emulator(spec) as emulator:
        config = emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0)
        start_up = min(
            run_tap(emulator, workdir, config, prelude="import sys; sys.argv.append('--discover')").cpu_seconds
            for _ in range(3)
        )
        for name, prelude in paths:
            runs = [run_tap(emulator, workdir, config, prelude=prelude) for _ in range(3)]
            best = min(runs, key=lambda r: r.cpu_seconds)
            assert best.returncode == 0, best.stderr[-2000:]  # noqa: S101
            work = best.cpu_seconds - start_up
            rates.append(best.record_count / work)
            rows.append(f"| {name} | {best.record_count} | {best.cpu_seconds:.2f} | {work:.2f} | {rates[-1]:,.0f} |")
    rows.append(f"| ratio | | | | {rates[0] / rates[1]:.2f}x |")
    rows.append(f"\nStart-up (imports and discovery, taken out above): {start_up:.2f} CPU seconds.")
    return rows


def memory(workdir: Path, quick: bool) -> list[str]:
    """Table 4."""
    rows = ["| data | sessions | records | peak RSS of the tap |", "|---|---|---|---|"]
    base = 10 if quick else 20
    for factor in (1, 10, 100):
        with Emulator(DatasetSpec(seed=6, sessions=base * factor, engagements=10)) as emulator:
            config = emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0)
            run = run_tap(emulator, workdir, config)
            assert run.returncode == 0, run.stderr[-2000:]  # noqa: S101
            rows.append(f"| {factor}x | {base * factor} | {run.record_count} | {run.max_rss_mb:.0f} MB |")
    return rows


#: Large sessions: (sessions, messages each). One session larger than any read-ahead, and many
#: sessions whose messages together are more than the read-ahead, each session a few pages.
LARGE_SESSIONS = ((1, 100_000), (40, 5_000))
#: Peak RSS the tap must stay within, whatever the sizes of sessions (issue 18).
RSS_CEILING_MB = 120


def large_sessions(workdir: Path, quick: bool) -> list[str]:
    """Table 4b: peak RSS with sessions of thousands of messages, at 10 and 20/s, default workers and 64.

    Paced by the tap (the emulator answers at once): the run lasts the requests over the
    limit, long enough for the read-ahead to fill while the output is written.
    """
    rows = [
        "| sessions | messages each | limit/s | workers | records | seconds | req/s | peak RSS of the tap | within |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for sessions, each in LARGE_SESSIONS:
        spec = DatasetSpec(seed=5, sessions=sessions, engagements=0, months=1, messages_per_session=each)
        with Emulator(spec) as emulator:
            catalog = phone_only_catalog(emulator)
            expected = sum(len(keys) for keys in truth(emulator).values())
            for limit in (20,) if quick else (10, 20):
                for workers in (None, 64):
                    config = emulator.tap_config(medium_requests_per_second=limit, heavy_requests_per_second=limit)
                    if workers is not None:
                        config["max_concurrent_requests"] = workers
                    emulator.stats.reset()
                    run = run_tap(emulator, workdir, config, catalog=catalog)
                    assert run.returncode == 0, run.stderr[-2000:]  # noqa: S101
                    assert run.record_count == expected, (run.record_count, expected)  # noqa: S101
                    within = "yes" if run.max_rss_mb <= RSS_CEILING_MB else "**no**"
                    rows.append(
                        f"| {sessions} | {each:,} | {limit} | {message_workers(config)} | {run.record_count:,} "
                        f"| {run.seconds:.0f} | {emulator.stats.rate('Medium'):.1f} | {run.max_rss_mb:.0f} MB "
                        f"| {within} |"
                    )
    return rows


def downloads(workdir: Path, quick: bool) -> list[str]:
    """Table 5."""
    rows = [
        "| concurrent | files | MB stored | seconds | Medium req/s | utilization | MB/s | peak RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    limit = 20
    with Emulator(DatasetSpec(seed=8, sessions=15 if quick else 40, engagements=1)) as emulator:
        catalog = phone_only_catalog(emulator)
        emulator.config.latency_ms = 150
        emulator.config.medium_qps = limit
        for workers in (8, 1):
            files = workdir / f"files-{workers}"
            config = emulator.tap_config(
                medium_requests_per_second=limit,
                max_concurrent_requests=workers,
                attachments_download_path=str(files),
            )
            emulator.stats.reset()
            run = run_tap(emulator, workdir, config, catalog=catalog)
            assert run.returncode == 0, run.stderr[-2000:]  # noqa: S101
            stored = [p.stat().st_size for p in files.rglob("*") if p.is_file()]
            megabytes = sum(stored) / 1e6
            rate = emulator.stats.rate("Medium")
            rows.append(
                f"| {workers} | {len(stored)} | {megabytes:.1f} | {run.seconds:.1f} | {rate:.1f} | {rate / limit:.2f} "
                f"| {megabytes / run.seconds:.2f} | {run.max_rss_mb:.0f} MB |"
            )
    return rows


def main(argv: t.Sequence[str] | None = None) -> None:
    """Run the measurements and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller data sets and shorter runs")
    parser.add_argument(
        "--only",
        choices=("utilization", "requests", "cpu", "memory", "large-sessions", "downloads"),
        action="append",
    )
    args = parser.parse_args(argv)
    parts = {
        "utilization": ("1. Rate-limit utilization (Medium)", utilization),
        "requests": ("2. Requests for a backfill", backfill_requests),
        "cpu": ("3. CPU throughput, zero latency, no limit", cpu_throughput),
        "memory": ("4. Peak RSS", memory),
        "large-sessions": (f"4b. Peak RSS with large sessions (goal: within {RSS_CEILING_MB} MB)", large_sessions),
        "downloads": ("5. Attachment files (150 ms latency, 20 Medium requests/s)", downloads),
    }
    with tempfile.TemporaryDirectory() as workdir:
        for key in args.only or list(parts):
            title, measure = parts[key]
            print(f"\n{title}\n")  # noqa: T201
            print("\n".join(measure(Path(workdir), args.quick)), flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
