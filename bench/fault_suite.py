"""The reliability suite: the installed tap against a hostile emulator, counting what was lost.

Scenarios (each against the emulator's ground truth, attachment files included: every file
must be stored with the right content):
  faults      10% of API requests fail (5xx with HTML, dropped connections, truncated JSON),
              10% of file downloads answer 500, access tokens live 5 seconds and page tokens 2 seconds
  qps-429     the tap unpaced against per-second limits: sustained 429s with Retry-After
  daily-cap   Zoom's daily Heavy cap is reached mid-run; a second run after the reset resumes
  sigkill     the tap is killed (SIGKILL) after 30% and again after 60% of its requests, then resumed
  sigterm     the same with SIGTERM, what orchestrators send: each stop exits 143 at once
  late-data   Zoom's clock 3 s behind the tap's; after a first run, Zoom shows messages stamped
              1 s, 1 min and 10 min before its bookmark, sessions whose last message is 15 s and
              2 min before it, and messages stamped at its own "now"; a second run must get them all
  circular-token  session details answer page tokens that go round in a circle (A, B, A, ...),
              pages of 5: the run stops with one line (exit 1); once Zoom recovers, the next run resumes
  broken-text 10% of the records served carry half an emoji (a lone UTF-16 surrogate) or U+0000 in their
              text (tap_zoom_sms/emulator/malform.py): every record written must be valid UTF-8 without NUL
  malformed   10% of the records served have a field of the wrong shape (arrays as strings, times as epoch
              numbers, [null] among attachments, numbers as text) or, for messages, no id: every record
              the tap writes must match its schema, and each message without an id must be reported (a
              WARNING line) rather than counted as lost
  long-names  a message whose attachments are named as file systems refuse: 300 characters, 85 CJK
              characters (255 bytes), two long names alike but for their end, ".", "..", "", NUL and
              separators, a lone surrogate; each file is checked where its record's stored_path says
  null-records  the first pages that hold records of every list (session lists, discovery's activity
              lists, session details, Contact Center) answer a 200 whose records array is null, once each

Run: .venv/bin/python -m bench.fault_suite [--sessions N]   (prints a Markdown table)
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import hashlib
import json
import re
import signal
import sys
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema

from bench.runner import Run, run_tap, truth
from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.emulator.data import file_bytes
from tap_zoom_sms.emulator.malform import KINDS, TEXT_KINDS, kind_of
from tap_zoom_sms.windows import parse_time


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
    #: records written that do not match their schema, or hold text no target takes (NUL, a lone surrogate)
    invalid: int = 0
    #: figures of one scenario only, for its notes
    stats_extra: dict[str, t.Any] = field(default_factory=dict)

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
    stored = stored_paths(outcome.runs)
    for stream, record in emulator.account.truth():
        if stream == "attachments":
            outcome.files_expected += 1
            if not file_kept(record, stored.get((record["message_id"], record["id"])), files):
                outcome.files_lost += 1
    outcome.stats = emulator.stats.snapshot()
    secrets = [emulator.config.client_secret, "Authorization", "Bearer ", *emulator.issued_tokens()]
    for run in outcome.runs:
        text = run.stderr + json.dumps(run.messages)
        outcome.secrets_found += [s[:6] + "..." for s in secrets if s and s in text]
    return outcome


def stored_paths(runs: list[Run]) -> dict[tuple[str, str], str]:
    """Return where the runs' attachment records say each file is stored, by (message id, attachment id)."""
    paths = {}
    for run in runs:
        for message in run.messages:
            record = message.get("record") or {}
            if message["type"] == "RECORD" and message["stream"] == "attachments" and record.get("stored_path"):
                paths[(record["message_id"], record["id"])] = record["stored_path"]
    return paths


def file_kept(attachment: dict[str, t.Any], stored_path: str | None, files: Path) -> bool:
    """Say whether the file a record names is there, in its message's folder, named for its id, whole.

    The name after ``{id}-`` is Zoom's, made safe and shortened when a file system would refuse it:
    the record's ``stored_path`` says which name it got.
    """
    if not stored_path:
        return False
    path = Path(stored_path)
    folder = files / attachment["session_id"] / attachment["message_id"]
    if path.parent != folder or not path.name.startswith(f"{attachment['id']}-") or not path.is_file():
        return False
    want = hashlib.sha256(file_bytes(attachment["id"], attachment["size"])).digest()
    return hashlib.sha256(path.read_bytes()).digest() == want


#: Pages of each list route answered null once in the null-records scenario (each read again costs a
#: backoff of up to a second).
NULL_PAGES_PER_ROUTE = 5
#: The emulator's settings in each scenario (the faults scenario's short-lived and revoked
#: tokens and page tokens test renewals and restarts under faults).
SETTINGS: dict[str, dict[str, t.Any]] = {
    "faults": {
        "fault_rate": 0.1,
        "fault_kinds": ["http_500", "drop", "truncated"],
        "file_fault_rate": 0.1,
        "token_ttl": 5,
        "token_max_uses": 100,
        "page_token_ttl": 2,
    },
    # limits far below what the tap asks unpaced (340 429s in a 30-session run), high enough for a short run
    "qps-429": {"medium_qps": 20, "heavy_qps": 10},
    "daily-cap": {"heavy_daily": 6},
    "sigkill": {},
    "sigterm": {},
    "late-data": {"clock_skew_seconds": -3},
    "circular-token": {"page_token_loop": "cycle", "page_token_loop_route": "session_details"},
    "broken-text": {"malformed_share": 0.1, "malformed_kinds": list(TEXT_KINDS)},
    "malformed": {
        "malformed_share": 0.1,
        "malformed_kinds": sorted({kind for kinds in KINDS.values() for kind in kinds} - set(TEXT_KINDS)),
    },
    "long-names": {},
    "null-records": {
        "malformed_page_routes": ["sessions", "session_details", "contact_center_sms"],
        "malformed_page_shape": "null",
        "malformed_page_times": 1,
        "malformed_page_count": NULL_PAGES_PER_ROUTE,
    },
}
#: The tap's settings that differ in a scenario: with pages of 5, every busy session (60 or more
#: messages in a month, however its burst falls on the calendar) has the 4 pages a circle needs.
TAP_SETTINGS: dict[str, dict[str, t.Any]] = {"circular-token": {"page_size": 5}}
#: The signal that stops the runs of a scenario that is stopped twice and resumed.
STOP_SIGNALS = {"sigkill": signal.SIGKILL, "sigterm": signal.SIGTERM}
SCENARIOS = tuple(SETTINGS)


def scenario(name: str, sessions: int, workdir: Path) -> Outcome:
    """Run one named scenario and return its figures."""
    spec = DatasetSpec(seed=17, sessions=sessions, engagements=max(20, sessions // 3))
    outcome = Outcome(name)
    base = {"medium_requests_per_second": 0, "heavy_requests_per_second": 0, "page_size": 20}
    files = workdir / f"files-{name}"
    with Emulator(spec) as emulator:
        for key, value in SETTINGS[name].items():
            setattr(emulator.config, key, value)
        for change in BEFORE_RUNS.get(name, []):
            change(emulator)
        settings = {**base, **TAP_SETTINGS.get(name, {})}
        config = emulator.tap_config(**settings, attachments_download_path=str(files))
        if name in STOP_SIGNALS:
            outcome.runs = stopped_runs(emulator, workdir, config, STOP_SIGNALS[name])
        else:
            outcome.runs = resumed_runs(emulator, workdir, config, BETWEEN_RUNS.get(name, []))
        got: dict[str, set[tuple]] = collections.defaultdict(set)
        for run in outcome.runs:
            for stream, keys in run.kept()[0].items():
                got[stream] |= keys
        if name in ("broken-text", "malformed"):
            check_malformed(outcome, emulator, got)
        return finish(outcome, emulator, got, files)


def check_malformed(outcome: Outcome, emulator: Emulator, got: dict[str, set[tuple]]) -> None:
    """Count as delivered the messages served without an id that a WARNING line reports; check every record."""
    config = emulator.config
    keyless = {
        record["message_id"]
        for stream, record in emulator.account.truth()
        if stream == "sms_messages"
        and kind_of("sms_histories", record, config.malformed_share, config.fault_seed, config.malformed_kinds)
        == "no key"
    }
    reported = sum(
        run.stderr.count("sms_messages: skipped a record without a usable message_id") for run in outcome.runs
    )
    outcome.stats_extra["keyless messages served, reported"] = (len(keyless), reported)
    if reported >= len(keyless):  # each one is read once a run (more: read again after a look-back)
        got["sms_messages"] |= {(message_id,) for message_id in keyless}
    for run in outcome.runs:
        for message in run.messages:
            if message.get("type") == "RECORD":
                outcome.invalid += not conforms(message["stream"], message["record"])


def stopped_runs(emulator: Emulator, workdir: Path, config: dict, how: int) -> list[Run]:
    """Stop the tap after 30% and again after 60% of a full run's requests, then resume it to the end."""
    if run_tap(emulator, workdir, config, None).returncode != 0:  # a clean run, to count its requests
        raise RuntimeError("the clean run failed")
    total = emulator.stats.snapshot()["total_requests"]
    emulator.stats.reset()
    runs: list[Run] = []
    state = None
    for stop in (int(total * 0.3), int(total * 0.6), None):
        runs.append(run_tap(emulator, workdir, config, state, kill_after_requests=stop, stop_signal=how))
        state = runs[-1].kept()[1] or state
    return runs


def resumed_runs(
    emulator: Emulator, workdir: Path, config: dict, between: list[t.Callable[[Emulator, dict | None], None]]
) -> list[Run]:
    """Run the tap, then once more from its STATE after each change ``between`` makes."""
    runs = [run_tap(emulator, workdir, config)]
    state = runs[-1].kept()[1]
    for change in between:
        change(emulator, state)
        runs.append(run_tap(emulator, workdir, config, state))
        state = runs[-1].kept()[1] or state
    return runs


def reset_daily_cap(emulator: Emulator, state: dict | None) -> None:  # noqa: ARG001
    """A new day: the daily cap no longer stops the run."""
    emulator.reset_daily_limit()
    emulator.config.heavy_daily = 0


def recover_paging(emulator: Emulator, state: dict | None) -> None:  # noqa: ARG001
    """Zoom's page tokens lead somewhere again."""
    emulator.config.page_token_loop = ""


def show_late_data(emulator: Emulator, state: dict | None) -> None:
    """Add what Zoom shows only after a run, stamped before its bookmark (and at Zoom's own now)."""
    if not state:
        raise RuntimeError("the first run wrote no STATE")
    bookmark = parse_time(state["bookmarks"]["sms_sessions"]["replication_key_value"])
    account = emulator.account
    quiet = account.sessions_between(account.start, account.anchor - dt.timedelta(days=60), "all")
    for session_id, seconds in zip(quiet, (1, 60, 600), strict=False):
        account.add_message(session_id, bookmark - dt.timedelta(seconds=seconds), "shown late")
    for seconds in (15, 120):
        account.add_message(None, bookmark - dt.timedelta(seconds=seconds), "a session shown late")
    account.add_message(quiet[3], emulator.now(), "stamped at Zoom's now")
    account.add_message(None, emulator.now(), "a new session at Zoom's now")


#: Attachment names a file system refuses as they are (over 255 bytes) or that would leave their folder.
LONG_NAMES = (
    "x" * 296 + ".jpg",  # 300 characters
    "写真" * 42 + "写.png",  # 85 CJK characters, 3 bytes each: 255 bytes before the extension
    "y" * 300 + "-first.pdf",  # two long names alike but for their end
    "y" * 300 + "-second.pdf",
    ".",
    "..",
    "",
    "a\x00b/c\\d:e.txt",
    "../../outside.txt",
    "photo\ud83d.jpg",  # half an emoji: Zoom's JSON can carry a lone surrogate as an escape
)


def add_long_names(emulator: Emulator) -> None:
    """Add a message (in a session of its own, two days old) whose attachments have LONG_NAMES."""
    account = emulator.account
    message = account.add_message(None, account.anchor - dt.timedelta(days=2), "attachments with odd names")
    attachments = []
    for i, name in enumerate(LONG_NAMES):
        attachment_id = hashlib.sha256(f"long-name-{i}".encode()).hexdigest()[:22]
        attachments.append(
            {
                "id": attachment_id,
                "name": name,
                "size": 1_000 + 37 * i,
                "type": "JPG/JPEG",
                "download_url": f"/file/download/{attachment_id}",
            }
        )
    # add_message returns the message the account holds (with its session id): its attachment list is the account's
    message["attachments"][:] = attachments
    held = {a["name"] for m in account.messages(message["session_id"]) for a in m["attachments"]}
    if held != set(LONG_NAMES):
        raise RuntimeError("the emulator did not keep the attachments with long names")


#: What changes in the emulator's data before the first run of a scenario.
BEFORE_RUNS: dict[str, list[t.Callable[[Emulator], None]]] = {"long-names": [add_long_names]}
#: What changes between the runs of a scenario run more than once.
BETWEEN_RUNS: dict[str, list[t.Callable[[Emulator, dict | None], None]]] = {
    "daily-cap": [reset_daily_cap],
    "late-data": [show_late_data],
    "circular-token": [recover_paging],
}


SCHEMAS = {
    name: jsonschema.Draft7Validator(
        json.loads((Path(__file__).resolve().parent.parent / "schemas" / f"{name}.json").read_text())
    )
    for name in ("sms_sessions", "sms_messages", "attachments", "contact_center_sms")
}


def conforms(stream: str, record: dict[str, t.Any]) -> bool:
    """Say whether a record matches its schema, its date-times parse, and its text has no NUL or lone surrogate."""
    validator = SCHEMAS[stream]
    if not validator.is_valid(record) or re.search("[\x00\ud800-\udfff]", json.dumps(record, ensure_ascii=False)):
        return False
    for name, prop in validator.schema["properties"].items():
        if prop.get("format") == "date-time" and record.get(name) is not None:
            try:
                parse_time(record[name])
            except (ValueError, TypeError):
                return False
    return True


def table(outcomes: list[Outcome]) -> str:
    """Format the figures as a Markdown table."""
    rows = [
        "| scenario | tap runs (exit codes) | requests | faults injected | retries | 429s | windows restarted "
        "| records expected | records lost | records off-schema | files expected | files lost | secrets in output |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(o.stats.get("faults", {}).items())) or "0"
        limited = o.stats.get("statuses", {}).get("429", 0)
        codes = ", ".join(str(r.returncode) for r in o.runs)
        rows.append(
            f"| {o.name} | {len(o.runs)} ({codes}) | {o.stats.get('total_requests', 0)} | {faults} | {o.retries} "
            f"| {limited} | {o.restarts} | {o.expected} | {o.lost} | {o.invalid} | {o.files_expected} | {o.files_lost} "
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
    names = args.scenario or list(SCENARIOS)
    with tempfile.TemporaryDirectory() as workdir:
        outcomes = [scenario(name, args.sessions, Path(workdir)) for name in names]
    print(table(outcomes))  # noqa: T201
    for o in outcomes:
        for what, figure in o.stats_extra.items():
            print(f"{o.name}: {what}: {figure}")  # noqa: T201
    if any(o.lost or o.files_lost or o.secrets_found or o.invalid for o in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main()
