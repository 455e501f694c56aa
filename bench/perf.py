"""The performance benchmark: the installed tap against the emulator, all figures from one run.

1. Whole-run utilization (see bench/wholerun.py): whole backfills of three accounts at 0, 150,
   500 ms and 1 s of emulator latency and limits of 10 and 20/s, against the best the limit
   allows, with 429s, each account's requests beside the API minimum, and how true the tap's
   time-left estimates were; and one giant session.
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
import datetime as dt
import re
import tempfile
import typing as t
from pathlib import Path

from bench.runner import Run, run_tap, truth
from bench.wholerun import SHAPES, api_minimum, giant_session, phone_only_catalog, whole_run
from tap_zoom_sms.concurrency import message_workers
from tap_zoom_sms.emulator import DatasetSpec, Emulator

STOCK_PATH = (
    "from singer_sdk.helpers.conform import TypeConformanceLevel\n"
    "from singer_sdk.io_base import SingerWriter\n"
    "from tap_zoom_sms.basestream import BaseStream\n"
    "from tap_zoom_sms.tap import TapZoomSms\n"
    "TapZoomSms.message_writer_class = SingerWriter\n"
    "BaseStream.TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.RECURSIVE\n"
)


def utilization(workdir: Path, quick: bool) -> list[str]:
    """Table 1: whole runs (see :mod:`bench.wholerun`): the matrix, or its quick subset, and the giant session."""
    if quick:
        rows = whole_run(workdir, shapes=SHAPES[:2], latencies=(0, 500), limits=(20,))
        return [*rows, "", *giant_session(workdir, latencies=(150,))]
    return [*whole_run(workdir), "", *giant_session(workdir)]


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
        "utilization": ("1. Whole-run utilization (Medium), and requests beside the API minimum", utilization),
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
