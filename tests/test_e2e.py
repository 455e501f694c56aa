"""The installed tap against the emulator: everything arrives, and a second run gets only what is new."""

from __future__ import annotations

import collections
import datetime as dt
import json
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tests.emulator_client import EmulatorClient

TAP = str(Path(sys.executable).with_name("tap-zoom-sms"))
KEYS = {
    "sms_sessions": ("session_id",),
    "sms_messages": ("message_id",),
    "attachments": ("message_id", "id"),
    "contact_center_sms": ("engagement_id",),
}


def keyed(stream: str, record: dict[str, t.Any]) -> tuple[t.Any, ...]:
    return tuple(record[k] for k in KEYS[stream])


def run_installed_tap(tmp_path: Path, config: dict, state: dict | None = None) -> tuple[dict, dict | None, str]:
    """Run the console script; return records by stream and key, the last STATE, and stderr."""
    (tmp_path / "config.json").write_text(json.dumps(config))
    args = [TAP, "--config", str(tmp_path / "config.json")]
    if state is not None:
        (tmp_path / "state.json").write_text(json.dumps(state))
        args += ["--state", str(tmp_path / "state.json")]
    result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=600)  # noqa: S603
    assert result.returncode == 0, result.stderr[-3000:]
    records: dict[str, dict[tuple, dict]] = collections.defaultdict(dict)
    last_state = None
    for line in result.stdout.splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            records[message["stream"]][keyed(message["stream"], message["record"])] = message["record"]
        elif message["type"] == "STATE":
            last_state = message["value"]
    return records, last_state, result.stderr


def truth(emulator: Emulator) -> dict[str, dict[tuple, dict]]:
    out: dict[str, dict[tuple, dict]] = collections.defaultdict(dict)
    for stream, record in emulator.account.truth():
        out[stream][keyed(stream, record)] = record
    return out


@pytest.fixture(scope="module")
def emulator() -> t.Iterator[Emulator]:
    with Emulator(DatasetSpec(seed=21, sessions=90, engagements=50)) as em:
        yield em


def test_installed_tap_extracts_the_ground_truth_then_only_what_is_new(tmp_path: Path, emulator: Emulator) -> None:
    config = emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0, page_size=50)
    expected = truth(emulator)
    first, state, stderr = run_installed_tap(tmp_path, config)
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

    second, _, _ = run_installed_tap(tmp_path, config, state)
    second_requests = emulator.stats.snapshot()["total_requests"]

    assert set(second["sms_messages"]) == {(same_second["message_id"],), (brand_new["message_id"],)}
    assert set(second["sms_sessions"]) == {(old_session,), (brand_new["session_id"],)}
    late = set(truth(emulator)["contact_center_sms"]) - set(expected["contact_center_sms"])
    assert len(late) == completed
    assert late <= set(second["contact_center_sms"])
    lookback_start = dt.datetime.fromisoformat(
        state["bookmarks"]["contact_center_sms"]["replication_key_value"].replace("Z", "+00:00")
    ) - dt.timedelta(hours=72)
    for record in second["contact_center_sms"].values():  # only the lookback is read again
        assert dt.datetime.fromisoformat(record["start_time"].replace("Z", "+00:00")) >= lookback_start
    assert second_requests * 20 < first_requests
