"""``zoom-sms-emulator``: run the Zoom emulator on 127.0.0.1 until interrupted."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import typing as t
from pathlib import Path

from tap_zoom_sms.emulator.data import DatasetSpec
from tap_zoom_sms.emulator.server import Emulator, EmulatorConfig

#: The length of a month in the dataset's history (DatasetSpec.months).
DAYS_PER_MONTH = 30.44


def parse_args(argv: t.Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(prog="zoom-sms-emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated account")
    parser.add_argument("--sessions", type=int, default=200, help="SMS sessions to generate")
    parser.add_argument("--engagements", type=int, default=60, help="Contact Center engagements to generate")
    parser.add_argument("--months", type=int, default=13, help="months of history before now")
    parser.add_argument(
        "--start-date",
        type=_utc_datetime,
        help="begin the history no earlier than this UTC date-time, in whole months before now (instead of --months)",
    )
    parser.add_argument("--token-ttl", type=int, default=3599, help="access token lifetime, seconds")
    parser.add_argument("--page-token-ttl", type=int, default=900, help="next_page_token lifetime, seconds")
    parser.add_argument("--medium-qps", type=float, default=0, help="Medium-label limit per second (0: none)")
    parser.add_argument("--heavy-qps", type=float, default=0, help="Heavy-label limit per second (0: none)")
    parser.add_argument("--heavy-daily", type=int, default=0, help="daily cap of Heavy requests (0: none)")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of API requests given a fault")
    parser.add_argument("--fault-seed", type=int, default=1, help="seed of the fault draws")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every API request")
    parser.add_argument("--tap-config", type=Path, help="write a tap config for this emulator to this file")
    return parser.parse_args(argv)


def _utc_datetime(text: str) -> dt.datetime:
    """Parse an ISO 8601 date or date-time as UTC (a naive one is taken as UTC)."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        msg = f"not an ISO 8601 date-time: {text}"
        raise argparse.ArgumentTypeError(msg) from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def months_since(start_date: dt.datetime, now: dt.datetime) -> int:
    """The most whole months of history (as the dataset counts them) that begin at or after ``start_date``.

    A tap config with a fixed start_date (meltano.yml's emulator environment) then reads the whole
    account whatever today is: the history, anchored at now, never begins before it.
    """
    days = (now - start_date).total_seconds() / 86400
    months = int(days // DAYS_PER_MONTH)
    while months > 0 and round(DAYS_PER_MONTH * months) > days:
        months -= 1
    return months


def history_months(args: argparse.Namespace) -> int:
    """The months of history to generate: --months, or as many as fit after --start-date."""
    if args.start_date is None:
        return int(args.months)
    months = months_since(args.start_date, dt.datetime.now(dt.timezone.utc))
    if months < 1:
        sys.exit(f"zoom-sms-emulator: --start-date {args.start_date:%Y-%m-%d} must be at least a month ago")
    return months


def tap_limits(args: argparse.Namespace) -> dict[str, int]:
    """The tap's pacing for this emulator's limits, so the tap paces as the emulator limits.

    The tap's settings are whole numbers: a fractional limit is rounded down, but not to 0,
    which would turn the tap's pacing off; no limit (0) stays 0.
    """
    return {
        "medium_requests_per_second": max(1, int(args.medium_qps)) if args.medium_qps else 0,
        "heavy_requests_per_second": max(1, int(args.heavy_qps)) if args.heavy_qps else 0,
    }


def main(argv: t.Sequence[str] | None = None) -> None:
    """Start the emulator, print its URL as a JSON line, serve until SIGINT or SIGTERM."""
    args = parse_args(argv)
    months = history_months(args)
    spec = DatasetSpec(seed=args.seed, sessions=args.sessions, engagements=args.engagements, months=months)
    config = EmulatorConfig(
        token_ttl=args.token_ttl,
        page_token_ttl=args.page_token_ttl,
        medium_qps=args.medium_qps,
        heavy_qps=args.heavy_qps,
        heavy_daily=args.heavy_daily,
        fault_rate=args.fault_rate,
        fault_seed=args.fault_seed,
        latency_ms=args.latency_ms,
    )
    try:
        emulator = Emulator(spec, config, port=args.port)
    except OSError as exc:
        sys.exit(f"zoom-sms-emulator: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}")
    if args.tap_config:
        args.tap_config.write_text(json.dumps(emulator.tap_config(**tap_limits(args)), indent=2))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(json.dumps({"url": emulator.url}), flush=True)  # noqa: T201
    try:
        emulator.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
