"""``zoom-sms-emulator``: run the Zoom emulator on 127.0.0.1 until interrupted."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import typing as t
from pathlib import Path

from tap_zoom_sms.emulator.data import DatasetSpec
from tap_zoom_sms.emulator.server import Emulator, EmulatorConfig


def parse_args(argv: t.Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(prog="zoom-sms-emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated account")
    parser.add_argument("--sessions", type=int, default=200, help="SMS sessions to generate")
    parser.add_argument("--engagements", type=int, default=60, help="Contact Center engagements to generate")
    parser.add_argument("--months", type=int, default=13, help="months of history before now")
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
    spec = DatasetSpec(seed=args.seed, sessions=args.sessions, engagements=args.engagements, months=args.months)
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
    emulator = Emulator(spec, config, port=args.port)
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
