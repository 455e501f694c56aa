"""The state a run resumes from: what the tap no longer uses is dropped, and old bookmarks read from start_date."""

from __future__ import annotations

import json
import logging
import re
import typing as t

import pytest

from bench.runner import run_tap as run_cli
from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.state import IDLE_USERS_KEPT
from tap_zoom_sms.tap import TapZoomSms
from tap_zoom_sms.windows import format_zoom_time
from tests.conftest import run_tap

if t.TYPE_CHECKING:
    from pathlib import Path

#: Per-session partitions of sms_messages, as an older layout of the state held them: 25 MB.
OLD_PARTITIONS = 200_000
#: Far more than any STATE message of this tap needs (the README's example is 400 bytes).
SMALL_STATE = 2_000
DROPPED = "dropped what this tap no longer uses"
FAILED = {"session_id": "S-gone", "message_id": "M-gone", "attachment_id": "A-gone"}
CONTACT_CENTER = {"replication_key": "start_time", "replication_key_value": "2025-02-01T00:00:00Z"}
LEFT = {
    "context": {"user_id": "left@example.com"},
    "replication_key": "last_access_time",
    "replication_key_value": "2025-01-15T00:00:00Z",
    "messages_since": "2025-01-15T00:00:00Z",
}


@pytest.fixture(scope="module")
def emulator() -> t.Iterator[Emulator]:
    with Emulator(DatasetSpec(seed=5, sessions=30, engagements=6, users=4)) as em:
        yield em


def old_layout(start: str) -> dict[str, t.Any]:
    """A state of an older layout: a bookmark per session of sms_messages, and a stream since removed."""
    sessions = {
        "replication_key": "last_access_time",
        "replication_key_value": start,
        "messages_since": start,
        "partitions": [LEFT],  # a user once in user_ids
    }
    messages = [
        {
            "context": {"session_id": f"IQ-{n:022d}"},
            "replication_key": "date_time",
            "replication_key_value": "2025-03-01T12:00:00Z",
        }
        for n in range(OLD_PARTITIONS)
    ]
    return {
        "bookmarks": {
            "sms_sessions": sessions,
            "sms_messages": {"partitions": messages},
            "attachments": {"failed_downloads": [FAILED]},
            "contact_center_sms": CONTACT_CENTER,
            "sms_sessions_v0": {"replication_key_value": start},
        }
    }


def without(config: dict[str, t.Any], stream: str) -> dict[str, t.Any]:
    """Return the tap's catalog with ``stream`` deselected."""
    catalog = TapZoomSms(config=config, validate_config=False).catalog_dict
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] != stream
    return catalog


def test_an_old_layouts_partitions_are_dropped_and_every_state_stays_small(emulator: Emulator, tmp_path: Path) -> None:
    config = emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0)
    start = format_zoom_time(emulator.account.start)
    state = old_layout(start)
    assert len(json.dumps(state)) > 25_000_000

    run = run_cli(emulator, tmp_path, config, state, catalog=without(config, "contact_center_sms"))

    assert run.returncode == 0, run.stderr[-2000:]
    dropped = [line for line in run.stderr.splitlines() if DROPPED in line]
    assert len(dropped) == 1, run.stderr[-3000:]
    assert f"{OLD_PARTITIONS:,} partitions of sms_messages" in dropped[0]
    assert "the bookmarks of sms_sessions_v0" in dropped[0]
    assert re.search(r": [\d,]+ bytes instead of 2\d\.\d MB$", dropped[0])  # e.g. "643 bytes instead of 26.1 MB"
    states = [m["value"] for m in run.messages if m["type"] == "STATE"]
    assert len(states) > 3
    assert max(len(json.dumps(s)) for s in states) < SMALL_STATE
    last = states[-1]["bookmarks"]
    assert set(last) == {"sms_sessions", "sms_messages", "attachments", "contact_center_sms"}
    assert "partitions" not in last["sms_messages"]
    assert last["contact_center_sms"] == CONTACT_CENTER  # deselected this run: kept as it was
    assert last["attachments"]["failed_downloads"] == [FAILED]  # owed files (no download path this run): kept
    assert last["sms_sessions"]["partitions"] == [LEFT]  # a user no longer configured: kept
    assert last["sms_sessions"]["replication_key_value"] > start  # and the run did its work
    assert run.record_count > 0


def user_partition(user: str, bookmark: str) -> dict[str, t.Any]:
    return {"context": {"user_id": user}, "replication_key": "last_access_time", "replication_key_value": bookmark}


def test_partitions_of_users_no_longer_configured_are_kept_up_to_a_limit(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The users read last keep their bookmarks; past the limit the oldest go, with a line saying so."""
    config = emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0, user_ids=["me"])
    idle = [
        user_partition(f"u{n:03d}@example.com", f"2025-{1 + n % 12:02d}-{1 + n // 12:02d}T00:00:00Z")
        for n in range(150)
    ]
    newest = sorted(idle, key=lambda p: p["replication_key_value"], reverse=True)[:IDLE_USERS_KEPT]
    others = [{"context": {"session_id": "IQ-1"}, "replication_key_value": "2025-01-01T00:00:00Z"}]
    state = {"bookmarks": {"sms_sessions": {"partitions": [*idle, *others]}}}

    caplog.set_level(logging.INFO)
    run = run_tap(config, state)

    partitions = run.last_state["bookmarks"]["sms_sessions"]["partitions"]
    users = [p["context"]["user_id"] for p in partitions]
    assert sorted(users) == sorted(["me", *(p["context"]["user_id"] for p in newest)])
    assert [p for p in partitions if p["context"]["user_id"] != "me"] == [p for p in idle if p in newest]
    lines = [r.getMessage() for r in caplog.records if DROPPED in r.getMessage()]
    assert len(lines) == 1
    assert "50 partitions of sms_sessions of users not in user_ids (the 100 read last are kept)" in lines[0]
    assert "1 partition of sms_sessions not keyed by user_id" in lines[0]


@pytest.mark.parametrize(
    "bookmarks",
    [
        {"sms_sessions": {"replication_key_value": "0001-01-01T00:00:00Z"}},
        {"sms_sessions": {"replication_key_value": "2026-01-01T00:00:00Z", "messages_since": "0001-01-01T00:00:00Z"}},
        {"contact_center_sms": {"replication_key_value": "0001-01-01T00:00:00Z"}},
    ],
)
def test_a_bookmark_of_year_one_reads_from_start_date(
    emulator: Emulator, caplog: pytest.LogCaptureFixture, bookmarks: dict[str, t.Any]
) -> None:
    """``0001-01-01T00:00:00Z`` (what some tools write for "no date") means from start_date, not a traceback."""
    config = emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0)
    full = run_tap(config)
    (stream,) = bookmarks
    key = "engagement_id" if stream == "contact_center_sms" else "message_id"
    records = "contact_center_sms" if stream == "contact_center_sms" else "sms_messages"

    caplog.set_level(logging.INFO)
    run = run_tap(config, {"bookmarks": bookmarks})

    assert run.ids(records, key) == full.ids(records, key)  # everything since start_date
    assert any("is before any start_date: read as 1970-01-01T00:00:00Z" in r.getMessage() for r in caplog.records)


def test_a_users_partition_listed_twice_is_refused_before_any_request(emulator: Emulator) -> None:
    config = emulator.tap_config(user_ids=["me"])
    partition = user_partition("me", "2025-01-01T00:00:00Z")
    emulator.stats.reset()
    with pytest.raises(Exception, match=r"the partition \{'user_id': 'me'\} is listed twice"):
        TapZoomSms(config=config, state={"bookmarks": {"sms_sessions": {"partitions": [partition, partition]}}})
    assert emulator.stats.snapshot()["total_requests"] == 0
