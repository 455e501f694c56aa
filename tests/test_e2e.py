"""The installed tap against the emulator: everything arrives, and a second run gets only what is new."""

from __future__ import annotations

import collections
import datetime as dt
import typing as t
from pathlib import Path

import pytest

from bench.runner import KEYS, run_tap
from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.windows import parse_time
from tests.emulator_client import EmulatorClient


def run_installed_tap(
    emulator: Emulator, tmp_path: Path, config: dict, state: dict | None = None
) -> tuple[dict[str, dict[tuple, dict]], dict | None, str]:
    """Run the console script; return records by stream and key, the last STATE, and stderr."""
    run = run_tap(emulator, tmp_path, config, state)
    assert run.returncode == 0, run.stderr[-3000:]
    records: dict[str, dict[tuple, dict]] = collections.defaultdict(dict)
    for message in run.messages:
        if message["type"] == "RECORD":
            stream = message["stream"]
            records[stream][tuple(message["record"][k] for k in KEYS[stream])] = message["record"]
    _, last_state = run.kept()
    return records, last_state, run.stderr


def truth_records(emulator: Emulator) -> dict[str, dict[tuple, dict]]:
    out: dict[str, dict[tuple, dict]] = collections.defaultdict(dict)
    for stream, record in emulator.account.truth():
        out[stream][tuple(record[k] for k in KEYS[stream])] = record
    return out


@pytest.fixture(scope="module")
def emulator() -> t.Iterator[Emulator]:
    with Emulator(DatasetSpec(seed=21, sessions=90, engagements=50)) as em:
        yield em


def test_installed_tap_extracts_the_ground_truth_then_only_what_is_new(tmp_path: Path, emulator: Emulator) -> None:
    config = emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0, page_size=50)
    expected = truth_records(emulator)
    first, state, stderr = run_installed_tap(emulator, tmp_path, config)
    first_requests = emulator.stats.snapshot()["total_requests"]

    for stream in KEYS:
        assert set(first[stream]) == set(expected[stream]), stream
    for key, message in expected["sms_messages"].items():
        got = first["sms_messages"][key]
        assert (got["date_time"], got["message"], got["session_id"]) == (
            message["date_time"],
            message["message"],
            message["session_id"],
        )
        assert got["sender"]["phone_number"] == message["sender"]["phone_number"]
    assert config["client_secret"] not in stderr

    # new data: a message in the bookmark's own second, a brand-new session, late engagements
    assert state is not None
    bookmark = state["bookmarks"]["sms_sessions"]["replication_key_value"]
    client = EmulatorClient(emulator)
    old_session = next(iter(expected["sms_sessions"]))[0]
    same_second = client.admin("messages", session_id=old_session, at=bookmark, text="same second")[0]
    brand_new = client.admin("messages", text="a new conversation")[0]
    completed = client.admin("engagements/complete")["completed"]
    assert completed > 0
    emulator.stats.reset()

    second, _, _ = run_installed_tap(emulator, tmp_path, config, state)
    second_requests = emulator.stats.snapshot()["total_requests"]

    new_messages = {(same_second["message_id"],), (brand_new["message_id"],)}
    assert new_messages <= set(second["sms_messages"])
    assert {(old_session,), (brand_new["session_id"],)} <= set(second["sms_sessions"])
    # anything else is read again inside the look-back (30 minutes) before the bookmark
    margin = parse_time(bookmark) - dt.timedelta(minutes=30)
    assert all(parse_time(m["date_time"]) >= margin for k, m in second["sms_messages"].items() if k not in new_messages)
    assert all(parse_time(s["last_access_time"]) >= margin for s in second["sms_sessions"].values())
    late = set(truth_records(emulator)["contact_center_sms"]) - set(expected["contact_center_sms"])
    assert len(late) == completed
    assert late <= set(second["contact_center_sms"])
    lookback_start = dt.datetime.fromisoformat(
        state["bookmarks"]["contact_center_sms"]["replication_key_value"].replace("Z", "+00:00")
    ) - dt.timedelta(hours=72)
    for record in second["contact_center_sms"].values():  # only the lookback is read again
        assert dt.datetime.fromisoformat(record["start_time"].replace("Z", "+00:00")) >= lookback_start
    assert second_requests * 20 < first_requests
