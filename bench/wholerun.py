"""Whole-run utilization: what a user waits for, against the best the rate limit allows.

Each row is one backfill of an emulated account by the installed tap, run to its end as a
user runs it: the emulator enforcing the same Medium limit as the tap's rate settings
(everything else default), with latency added to every request, Contact Center deselected
(its Heavy label is another limit). For each row:

- utilization, whole run: Medium requests / (process exit - process start) / limit;
- best possible: the tap paces at 95% of the limit and a run pays a fixed start (process,
  token, first list: a few round trips), so R requests at latency L take at best
  R / (0.95 x limit) + 3 L + 1 s; the gap is the run's time beyond that, in seconds and in
  round trips;
- steady: Medium requests over the time from the first to the last of them;
- 429s; the worst error of the tap's time-left estimate once a fifth of the run has passed
  (its progress lines, every 2 s here, read against the time the run actually took after each);
- the load average (1 minute) when the row began: the 0 ms rows are the ones CPU can slow.

A second table gives each account's requests beside the API minimum (see :func:`api_minimum`).

Run: .venv/bin/python -m bench.wholerun [--quick]   (the full matrix: three accounts, 0, 150,
500 and 1,000 ms, 10 and 20/s, and one giant session; prints Markdown tables)

The rows the time left is held to (issue 20, item 4), the three accounts at 0 and 500 ms at 20/s:
.venv/bin/python -m bench.wholerun --latency 0 --latency 500 --limit 20 --no-giant
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import math
import os
import re
import tempfile
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

from bench.runner import Run, run_tap
from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.tap import TapZoomSms
from tap_zoom_sms.windows import month_windows

#: The share of the limit the tap paces at (``HEADROOM`` in tap_zoom_sms/ratelimit.py).
PACE = 0.95
#: Round trips and seconds of a run's fixed start (process, token, first list) in the best possible time.
START_ROUND_TRIPS = 3
START_SECONDS = 1.0
#: Seconds between the tap's progress lines in these runs (30 by default: too few for a short run).
PROGRESS_EVERY = 2.0
#: Run before the tap's entry point in its process: the tap of ``--tap-source`` (its PYTHONPATH, which
#: ``python -c`` puts after the working directory, a checkout of the tap itself), and progress lines
#: every PROGRESS_EVERY seconds.
PRELUDE = (
    "import os, sys\n"
    "sys.path[:0] = [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]\n"
    f"import tap_zoom_sms.progress as progress\nprogress.INTERVAL = {PROGRESS_EVERY}\n"
)
#: The share of the run after which its time-left estimates are held to the truth.
ETA_FROM = 0.2
#: Seconds left below which an estimate, in whole seconds from a line every 2 s, is also shown apart.
ETA_NEAR_END = 10.0
LATENCIES = (0, 150, 500, 1000)
LIMITS = (10, 20)
ESTIMATE = re.compile(r"about ((?:[\d.]+ (?:h|min|s) ?)+) left")
UNITS = {"h": 3600.0, "min": 60.0, "s": 1.0}


@dataclass(frozen=True)
class Shape:
    """An account to back-fill: its name in the tables and what the emulator generates."""

    name: str
    spec: DatasetSpec


SHAPES = (
    Shape("sparse: 13 months, 300 sessions", DatasetSpec(seed=9, sessions=300, engagements=0, months=13)),
    Shape("dense: 45 days, 900 sessions", DatasetSpec(seed=9, sessions=900, engagements=0, days=45)),
    Shape("25 months, 1,000 sessions", DatasetSpec(seed=9, sessions=1000, engagements=0, months=25)),
)
#: One session's pages are a chain of cursors: bound by latency, not by the limit (reported, no target).
GIANT = Shape(
    "one session of 10,000 messages",
    DatasetSpec(seed=5, sessions=1, engagements=0, months=1, messages_per_session=10_000),
)


@dataclass
class Measured:
    """One run of the matrix: its time, its Medium requests, and how true its estimates were."""

    latency_ms: int
    limit: int
    seconds: float
    medium: int
    limited: int
    steady: float
    requests: dict[str, int]
    eta_error: float | None
    eta_error_far: float | None
    eta_lines: int
    load: float

    @property
    def best_seconds(self) -> float:
        """The least time these requests allow: paced at 95% of the limit, plus the fixed start."""
        return self.medium / (PACE * self.limit) + START_ROUND_TRIPS * self.latency_ms / 1000 + START_SECONDS

    def row(self, name: str) -> str:
        """The Markdown row of the whole-run table."""
        gap = self.seconds - self.best_seconds
        trips = f"{gap / (self.latency_ms / 1000):.1f}" if self.latency_ms else "-"
        eta = _eta_cell(self.eta_error, self.eta_error_far, self.eta_lines)
        share = self.limited / max(1, self.medium + self.limited)
        return (
            f"| {name} | {self.latency_ms} ms | {self.limit} | {self.medium:,} | {self.seconds:.1f} "
            f"| {self.medium / self.seconds / self.limit:.2f} | {self.best_seconds:.1f} "
            f"| {self.medium / self.best_seconds / self.limit:.2f} | {gap:.1f} | {trips} "
            f"| {self.steady / self.limit:.2f} | {self.limited} ({share:.1%}) | {eta} | {self.load:.2f} |"
        )


WHOLE_RUN_HEADER = [
    "| account | latency | limit/s | Medium requests | seconds | utilization, whole run "
    "| best possible: seconds | utilization | gap: s | round trips | steady | 429s "
    "| time left: worst error after 20% (with 10 s or more left) | load |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
]


def phone_only_catalog(emulator: Emulator) -> dict:
    """A catalog with contact_center_sms deselected: utilization is about the Medium label."""
    catalog = TapZoomSms(config=emulator.tap_config(), validate_config=False).catalog_dict
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] != "contact_center_sms"
    return catalog


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
        "active_months": len(details),
        "windows": len(windows),
    }
    return {**pages, "total": pages["session_details"] + pages["sessions"] + pages["contact_center_sms"]}


def parse_duration(text: str) -> float:
    """Seconds of an estimate as the progress line writes it ("45 s", "2 min", "1 min 20 s", "1.5 h")."""
    parts = text.split()
    return sum(float(number) * UNITS[unit] for number, unit in zip(parts[::2], parts[1::2], strict=True))


def eta_error(run: Run) -> tuple[float | None, float | None, int]:
    """The worst relative error of the run's time-left estimates after ETA_FROM of it, how many there were.

    Each progress line's estimate is held against the time from the line's arrival to the
    process's exit; a line after ETA_FROM of the run with no estimate counts as wholly wrong.
    The second figure leaves out the lines with less than ETA_NEAR_END seconds left, where
    a whole second is a large share.
    """
    errors: list[tuple[float, float]] = []
    for when, line in run.stderr_lines:
        if "Progress:" not in line or when < ETA_FROM * run.seconds:
            continue
        remaining = run.seconds - when
        found = ESTIMATE.search(line)
        errors.append((remaining, abs(parse_duration(found.group(1)) - remaining) / remaining if found else 1.0))
    far = [error for remaining, error in errors if remaining >= ETA_NEAR_END]
    return max((e for _, e in errors), default=None), max(far, default=None), len(errors)


def _eta_cell(worst: float | None, far: float | None, lines: int) -> str:
    if worst is None:
        return "-"
    return f"{worst:.0%} ({'-' if far is None else f'{far:.0%}'}; {lines} lines)"


def measure(
    emulator: Emulator, workdir: Path, catalog: dict, latency: int, limit: int, *, env: dict[str, str] | None
) -> Measured:
    """Back-fill the emulator's account once at this latency and limit, to the end."""
    emulator.config.latency_ms = latency
    emulator.config.medium_qps = limit
    config = emulator.tap_config(medium_requests_per_second=limit, heavy_requests_per_second=limit)
    time.sleep(1)  # the last run's requests leave the emulator's one-second window
    emulator.stats.reset()
    load = os.getloadavg()[0]
    run = run_tap(emulator, workdir, config, catalog=catalog, prelude=PRELUDE, env=env)
    assert run.returncode == 0, run.stderr[-2000:]  # noqa: S101
    stats = emulator.stats.snapshot()
    limited = stats["statuses"].get("429", 0)
    requests = dict(stats["requests"])
    medium = sum(n for route, n in requests.items() if route != "contact_center_sms") - limited
    error, far, lines = eta_error(run)
    return Measured(
        latency, limit, run.seconds, medium, limited, emulator.stats.rate("Medium"), requests, error, far, lines, load
    )


def whole_run(
    workdir: Path,
    *,
    shapes: t.Sequence[Shape] = SHAPES,
    latencies: t.Sequence[int] = LATENCIES,
    limits: t.Sequence[int] = LIMITS,
    env: dict[str, str] | None = None,
) -> list[str]:
    """The whole-run table, then each account's requests beside the API minimum."""
    rows = list(WHOLE_RUN_HEADER)
    minimum_rows = [
        "| account | months read | sessions | sessions active a month | API minimum | Medium requests | x minimum |",
        "|---|---|---|---|---|---|---|",
    ]
    for shape in shapes:
        with Emulator(shape.spec) as emulator:
            catalog = phone_only_catalog(emulator)
            runs = []
            for latency in latencies:
                for limit in limits:
                    runs.append(measure(emulator, workdir, catalog, latency, limit, env=env))
                    rows.append(runs[-1].row(shape.name))
                    print(rows[-1], flush=True)  # noqa: T201 (a long matrix shows its rows as they come)
            least = api_minimum(emulator, emulator.account.start - dt.timedelta(days=1))
        phone = least["total"] - least["contact_center_sms"]
        made = sorted({r.medium for r in runs})
        spread = f"{made[0]:,}" if len(made) == 1 else f"{made[0]:,} to {made[-1]:,}"
        ratios = f"{made[0] / phone:.2f}" if len(made) == 1 else f"{made[0] / phone:.2f} to {made[-1] / phone:.2f}"
        minimum_rows.append(
            f"| {shape.name} | {least['windows']} | {shape.spec.sessions:,} "
            f"| {least['active_months'] / least['windows']:.0f} | {phone:,} | {spread} | {ratios} |"
        )
    return [*rows, "", *minimum_rows]


def giant_session(
    workdir: Path, *, latencies: t.Sequence[int] = LATENCIES, env: dict[str, str] | None = None
) -> list[str]:
    """One session of 10,000 messages at 20/s: a chain of cursors, one round trip a page (no target)."""
    rows = [
        "| account | latency | limit/s | Medium requests | seconds | req/s | utilization, whole run "
        "| seconds a request | 429s | time left: worst error after 20% (with 10 s or more left) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    with Emulator(GIANT.spec) as emulator:
        catalog = phone_only_catalog(emulator)
        for latency in latencies:
            run = measure(emulator, workdir, catalog, latency, 20, env=env)
            eta = _eta_cell(run.eta_error, run.eta_error_far, run.eta_lines)
            rows.append(
                f"| {GIANT.name} | {latency} ms | 20 | {run.medium:,} | {run.seconds:.1f} "
                f"| {run.medium / run.seconds:.1f} | {run.medium / run.seconds / 20:.2f} "
                f"| {run.seconds / run.medium:.3f} | {run.limited} | {eta} |"
            )
            print(rows[-1], flush=True)  # noqa: T201
    return rows


def _first_word(shape: Shape) -> str:
    """The word an account is chosen by on the command line: sparse, dense, 25."""
    return shape.name.split(":")[0].split()[0]


def main(argv: t.Sequence[str] | None = None) -> None:
    """Run the matrix (or its quick subset) and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="sparse and dense accounts at 0 and 500 ms, 20/s")
    parser.add_argument("--latency", type=int, action="append", help="only these latencies, in ms (repeatable)")
    parser.add_argument("--limit", type=int, action="append", help="only these limits, per second (repeatable)")
    parser.add_argument(
        "--account",
        action="append",
        choices=[_first_word(shape) for shape in SHAPES],
        help="only these accounts, by the first word of their name (repeatable)",
    )
    parser.add_argument("--no-giant", action="store_true", help="leave the giant session out")
    parser.add_argument(
        "--tap-source", type=Path, help="run the tap from this source tree (another commit's checkout): before/after"
    )
    args = parser.parse_args(argv)
    env = None if args.tap_source is None else {**os.environ, "PYTHONPATH": str(args.tap_source.resolve())}
    started = time.monotonic()
    print(f"load average at the start: {os.getloadavg()[0]:.2f}", flush=True)  # noqa: T201
    with tempfile.TemporaryDirectory() as workdir:
        if args.quick:
            tables = whole_run(Path(workdir), shapes=SHAPES[:2], latencies=(0, 500), limits=(20,), env=env)
            giant = giant_session(Path(workdir), latencies=(150,), env=env)
        else:
            latencies, limits = args.latency or LATENCIES, args.limit or LIMITS
            shapes = [shape for shape in SHAPES if args.account is None or _first_word(shape) in args.account]
            tables = whole_run(Path(workdir), shapes=shapes, latencies=latencies, limits=limits, env=env)
            giant = [] if args.no_giant else giant_session(Path(workdir), latencies=latencies, env=env)
    print("\nWhole-run utilization (Medium), and requests beside the API minimum\n")  # noqa: T201
    print("\n".join(tables))  # noqa: T201
    if giant:
        print("\nOne giant session (bound by latency: no target)\n")  # noqa: T201
        print("\n".join(giant))  # noqa: T201
    minutes = (time.monotonic() - started) / 60
    print(f"\n{minutes:.0f} min; load average at the end: {os.getloadavg()[0]:.2f}")  # noqa: T201


if __name__ == "__main__":
    main()
