"""Where a whole run falls behind the pace: one backfill against the emulator, request by request.

Run: .venv/bin/python -m bench.timeline [--account sparse] [--latency 1000] [--limit 20] [--tap-source DIR]

The emulator notes when each request arrives (before the latency it adds), on the clock the
tap's process was started by. The run's time beyond the best possible (see
:mod:`bench.wholerun`) is then told apart: the process's start (to its token request), the
lag behind the pace from the first Medium request to the last (the seconds by which the i-th
request comes later than i requests at 95% of the limit would), printed for each second in
which it grew by a tenth of a second or more with what was asked then, and the time from the
last request to the process's exit.
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time
import typing as t
from pathlib import Path

from bench import wholerun
from bench.runner import run_tap
from tap_zoom_sms.emulator import Emulator

#: A second in which the lag grows by this much or more is shown.
SHOWN_GROWTH = 0.1


def arrivals(emulator: Emulator) -> list[tuple[float, str]]:
    """Note (time, route) of every request ``emulator`` receives from now on, in the list returned."""
    noted: list[tuple[float, str]] = []
    count = emulator.stats.count

    def noting(counter: str, key: str) -> None:
        if counter == "arrivals":
            noted.append((time.monotonic(), key))
        count(counter, key)

    emulator.stats.count = noting  # type: ignore[method-assign]
    return noted


def main(argv: t.Sequence[str] | None = None) -> None:
    """Run one backfill and print its timeline."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--account", default="sparse", choices=[wholerun._first_word(s) for s in wholerun.SHAPES])
    parser.add_argument("--latency", type=int, default=1000, help="ms added to every request")
    parser.add_argument("--limit", type=int, default=20, help="Medium requests/s, the emulator's and the tap's")
    parser.add_argument("--tap-source", type=Path, help="run the tap from this source tree")
    args = parser.parse_args(argv)
    shape = next(s for s in wholerun.SHAPES if wholerun._first_word(s) == args.account)
    env = None if args.tap_source is None else {**os.environ, "PYTHONPATH": str(args.tap_source.resolve())}
    with Emulator(shape.spec) as emulator, tempfile.TemporaryDirectory() as workdir:
        catalog = wholerun.phone_only_catalog(emulator)
        emulator.config.latency_ms = args.latency
        emulator.config.medium_qps = args.limit
        config = emulator.tap_config(medium_requests_per_second=args.limit, heavy_requests_per_second=args.limit)
        noted = arrivals(emulator)
        started = time.monotonic()
        run = run_tap(emulator, Path(workdir), config, catalog=catalog, prelude=wholerun.PRELUDE, env=env)
        assert run.returncode == 0, run.stderr[-2000:]  # noqa: S101
        limited = emulator.stats.snapshot()["statuses"].get("429", 0)
    latency, pace = args.latency / 1000, wholerun.PACE * args.limit
    token = next(at - started for at, route in noted if route == "token")
    medium = [(at - started, route) for at, route in noted if route not in {"token", "contact_center_sms"}]
    best = (len(medium) - limited) / pace + wholerun.START_ROUND_TRIPS * latency + wholerun.START_SECONDS
    lines = [
        f"{shape.name}, {args.latency} ms, {args.limit}/s: {run.seconds:.2f} s, best possible {best:.2f} s, "
        f"gap {run.seconds - best:+.2f} s; {len(medium)} Medium requests, {limited} 429s",
        f"  process start to token request {token:.2f} s; Medium requests from {medium[0][0]:.2f} s "
        f"to {medium[-1][0]:.2f} s ({(len(medium) - 1) / pace:.2f} s at the pace); "
        f"exit {run.seconds - medium[-1][0]:.2f} s after the last",
    ]
    seconds: dict[int, list[tuple[float, str]]] = collections.defaultdict(list)
    for index, (at, route) in enumerate(medium):
        seconds[int(at)].append((at - medium[0][0] - index / pace, route))
    before = 0.0
    for second, lags in sorted(seconds.items()):
        grew, before = lags[-1][0] - before, lags[-1][0]
        if grew >= SHOWN_GROWTH:
            asked = dict(collections.Counter(route for _, route in lags))
            lines.append(f"  {second:4d} s: lag {before - grew:.2f} -> {before:.2f} s (+{grew:.2f}); asked {asked}")
    print("\n".join(lines))  # noqa: T201


if __name__ == "__main__":
    main()
