"""The reliability suite: the installed tap against a hostile emulator, counting what was lost.

Scenarios (each against the emulator's ground truth, attachment files included: every file
must be stored with the right content):
  faults      10% of API requests fail (5xx with HTML, dropped connections, truncated JSON),
              10% of file downloads answer 500, access tokens live 5 seconds and page tokens 2 seconds
  qps-429     the tap unpaced against per-second limits: sustained 429s with Retry-After
  daily-cap   Zoom's daily Heavy cap is reached mid-run; a second run after the reset resumes
  sigkill     the tap is killed (SIGKILL) after 30% and again after 60% of its requests, then resumed

Run: .venv/bin/python -m bench.fault_suite [--sessions N]   (prints a Markdown table)
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import sys
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from bench.runner import Run, run_tap, truth
from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.emulator.data import file_bytes


@dataclass
class Outcome:
    """One scenario's figures."""

    name: str
    runs: list[Run] = field(default_factory=list)
    stats: dict[str, t.Any] = field(default_factory=dict)
    lost: int = 0
    expected: int = 0
    files_expected: int = 0
    files_lost: int = 0
    secrets_found: list[str] = field(default_factory=list)

    @property
    def retries(self) -> int:
        """Requests the tap retried (it logs each)."""
        return sum(run.stderr.count("Retrying GET") for run in self.runs)

    @property
    def restarts(self) -> int:
        """Windows read again after Zoom refused their page token."""
        return sum(run.stderr.count("again from its first page") for run in self.runs)


def finish(outcome: Outcome, emulator: Emulator, got: dict[str, set[tuple]], files: Path) -> Outcome:
    """Count what is lost (records, and files missing or wrong under ``files``) and scan every output for secrets."""
    expected = truth(emulator)
    outcome.expected = sum(len(v) for v in expected.values())
    outcome.lost = sum(len(expected[s] - got.get(s, set())) for s in expected)
    for stream, record in emulator.account.truth():
        if stream == "attachments":
            outcome.files_expected += 1
            path = files / record["session_id"] / record["message_id"] / f"{record['id']}-{record['name']}"
            want = hashlib.sha256(file_bytes(record["id"], record["size"])).digest()
            if not path.is_file() or hashlib.sha256(path.read_bytes()).digest() != want:
                outcome.files_lost += 1
    outcome.stats = emulator.stats.snapshot()
    secrets = [emulator.config.client_secret, "Authorization", "Bearer ", *emulator.issued_tokens()]
    for run in outcome.runs:
        text = run.stderr + json.dumps(run.messages)
        outcome.secrets_found += [s[:6] + "..." for s in secrets if s and s in text]
    return outcome


def scenario(name: str, sessions: int, workdir: Path) -> Outcome:
    """Run one named scenario and return its figures."""
    spec = DatasetSpec(seed=17, sessions=sessions, engagements=max(20, sessions // 3))
    outcome = Outcome(name)
    base = {"medium_requests_per_second": 0, "heavy_requests_per_second": 0, "page_size": 20}
    files = workdir / f"files-{name}"
    with Emulator(spec) as emulator:
        config = emulator.tap_config(**base, attachments_download_path=str(files))
        got: dict[str, set[tuple]] = collections.defaultdict(set)
        state = None
        if name == "faults":
            emulator.config.fault_rate = 0.1
            emulator.config.fault_kinds = ["http_500", "drop", "truncated"]
            emulator.config.file_fault_rate = 0.1
            emulator.config.token_ttl = 5
            emulator.config.page_token_ttl = 2
            plan = [None]
        elif name == "qps-429":
            emulator.config.medium_qps = 8
            emulator.config.heavy_qps = 4
            plan = [None]
        elif name == "daily-cap":
            emulator.config.heavy_daily = 6
            plan = [None, "reset"]
        elif name == "sigkill":
            plan = [None]  # a clean run first, to know how many requests a run takes
        else:
            raise ValueError(name)

        if name == "sigkill":
            if run_tap(emulator, workdir, config, None).returncode != 0:
                raise RuntimeError("the clean run failed")
            total = emulator.stats.snapshot()
            emulator.stats.reset()
            stops = [int(total["total_requests"] * 0.3), int(total["total_requests"] * 0.6), None]
            for stop in stops:  # killed, resumed and killed again, resumed to the end
                run = run_tap(emulator, workdir, config, state, kill_after_requests=stop)
                outcome.runs.append(run)
                records, reached = run.kept()
                for stream, keys in records.items():
                    got[stream] |= keys
                state = reached or state
            return finish(outcome, emulator, got, files)

        for step in plan:
            if step == "reset":
                emulator.reset_daily_limit()
                emulator.config.heavy_daily = 0
            run = run_tap(emulator, workdir, config, state)
            outcome.runs.append(run)
            records, state = run.kept()
            for stream, keys in records.items():
                got[stream] |= keys
        return finish(outcome, emulator, got, files)


def table(outcomes: list[Outcome]) -> str:
    """Format the figures as a Markdown table."""
    rows = [
        "| scenario | tap runs (exit codes) | requests | faults injected | retries | 429s | windows restarted "
        "| records expected | records lost | files expected | files lost | secrets in output |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(o.stats.get("faults", {}).items())) or "0"
        limited = o.stats.get("statuses", {}).get("429", 0)
        codes = ", ".join(str(r.returncode) for r in o.runs)
        rows.append(
            f"| {o.name} | {len(o.runs)} ({codes}) | {o.stats.get('total_requests', 0)} | {faults} | {o.retries} "
            f"| {limited} | {o.restarts} | {o.expected} | {o.lost} | {o.files_expected} | {o.files_lost} "
            f"| {len(o.secrets_found)} |"
        )
    return "\n".join(rows)


def main(argv: t.Sequence[str] | None = None) -> None:
    """Run every scenario and print the table."""
    import tempfile  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=120)
    parser.add_argument("--scenario", action="append", help="run only these (default: all)")
    args = parser.parse_args(argv)
    names = args.scenario or ["faults", "qps-429", "daily-cap", "sigkill"]
    with tempfile.TemporaryDirectory() as workdir:
        outcomes = [scenario(name, args.sessions, Path(workdir)) for name in names]
    print(table(outcomes))  # noqa: T201
    if any(o.lost or o.files_lost or o.secrets_found for o in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main()
