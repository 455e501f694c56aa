"""A stream map's filter on sessions carries to their messages and attachments, on every path.

People filter sessions to keep a department's or a number's SMS out of the warehouse:
a session filtered out has none of its messages or attachments emitted, and none of
its files downloaded, whether the months of its messages are found by discovery, the
exhaustive walk, a fallback, or per user. A stream mapped to null only hides its own
records.
"""

from __future__ import annotations

import threading
import typing as t
from pathlib import Path

import pytest
import simpleeval

from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.emulator.data import ME_OWNER, _id
from tap_zoom_sms.tap import TapZoomSms
from tests.conftest import TapRun, run_tap
from tests.emulator_client import EmulatorClient

NOT_CALL_QUEUES = {"sms_sessions": {"__filter__": "session_type != 'call_queue'"}}


@pytest.fixture(scope="module")
def emulator() -> t.Iterator[Emulator]:
    with Emulator(DatasetSpec(seed=9, sessions=60, engagements=0, users=4, months=6)) as em:
        yield em


def sessions_by_type(em: Emulator) -> tuple[set[str], set[str]]:
    """Return the truth's call-queue sessions and the others."""
    queues, others = set(), set()
    for stream, record in em.account.truth():
        if stream == "sms_sessions":
            (queues if record["session_type"] == "call_queue" else others).add(record["session_id"])
    return queues, others


def messages_of(em: Emulator, sessions: set[str]) -> set[str]:
    return {r["message_id"] for s, r in em.account.truth() if s == "sms_messages" and r["session_id"] in sessions}


def assert_filtered(em: Emulator, run: TapRun, files: Path, dropped: set[str], kept: set[str]) -> None:
    """Nothing of a ``dropped`` session came out or was stored; everything of the ``kept`` ones did."""
    assert dropped, "the data holds no session to filter out"
    assert run.ids("sms_sessions", "session_id") & dropped == set()
    assert run.ids("sms_messages", "session_id") & dropped == set()
    assert run.ids("attachments", "session_id") & dropped == set()
    stored = {path.name for path in files.iterdir()} if files.exists() else set()
    assert stored & dropped == set(), "files of filtered sessions were downloaded"
    assert run.ids("sms_messages", "message_id") >= messages_of(em, kept)
    assert stored >= run.ids("attachments", "session_id")


@pytest.mark.parametrize("workers", [1, 6])
@pytest.mark.parametrize("discovery", ["activity", "exhaustive"])
def test_a_session_filtered_out_has_no_messages_attachments_or_files(
    emulator: Emulator, tmp_path: Path, discovery: str, workers: int
) -> None:
    config = emulator.tap_config(
        medium_requests_per_second=0,
        heavy_requests_per_second=0,
        stream_maps=NOT_CALL_QUEUES,
        message_discovery=discovery,
        max_concurrent_requests=workers,
        attachments_download_path=str(tmp_path),
    )
    assert_filtered(emulator, run_tap(config), tmp_path, *sessions_by_type(emulator))


def test_a_filter_holds_when_discovery_falls_back(emulator: Emulator, tmp_path: Path, caplog: t.Any) -> None:
    emulator.config.activity_under_report = 0.3
    try:
        config = emulator.tap_config(
            medium_requests_per_second=0,
            heavy_requests_per_second=0,
            stream_maps=NOT_CALL_QUEUES,
            attachments_download_path=str(tmp_path),
        )
        run = run_tap(config)
    finally:
        emulator.config.activity_under_report = 0
    assert any("activity lists missed session" in r.getMessage() for r in caplog.records)
    assert_filtered(emulator, run, tmp_path, *sessions_by_type(emulator))


def test_a_filter_holds_per_user(emulator: Emulator, tmp_path: Path) -> None:
    other = _id("u2", length=22)
    owned = sorted(
        r["session_id"]
        for stream, r in emulator.account.truth()
        if stream == "sms_sessions"
        and any(p.get("is_session_owner") and p["owner"]["id"] in (ME_OWNER, other) for p in r["participants"])
    )
    middle = owned[len(owned) // 2]  # the users' sessions from this id on are filtered out
    config = emulator.tap_config(
        medium_requests_per_second=0,
        heavy_requests_per_second=0,
        stream_maps={"sms_sessions": {"__filter__": f"session_id < '{middle}'"}},
        attachments_download_path=str(tmp_path),
        access_token=EmulatorClient(emulator).token(),
        user_ids=["me", other],
    )
    for key in ("account_id", "client_id", "client_secret"):
        del config[key]
    dropped = {session_id for session_id in owned if session_id >= middle}
    assert_filtered(emulator, run_tap(config), tmp_path, dropped, set(owned) - dropped)


@pytest.mark.parametrize("discovery", ["activity", "exhaustive"])
def test_sessions_mapped_to_null_still_bring_their_messages(emulator: Emulator, discovery: str) -> None:
    config = emulator.tap_config(
        medium_requests_per_second=0,
        heavy_requests_per_second=0,
        stream_maps={"sms_sessions": None},
        message_discovery=discovery,
    )
    run = run_tap(config)
    queues, others = sessions_by_type(emulator)
    assert "sms_sessions" not in run.records
    assert run.ids("sms_messages", "message_id") >= messages_of(emulator, queues | others)


def test_a_filter_on_messages_keeps_their_files_from_being_downloaded(emulator: Emulator, tmp_path: Path) -> None:
    config = emulator.tap_config(
        medium_requests_per_second=0,
        heavy_requests_per_second=0,
        stream_maps={"sms_messages": {"__filter__": "direction != 'In'"}},
        attachments_download_path=str(tmp_path),
    )
    run = run_tap(config)
    inbound = {r["message_id"] for s, r in emulator.account.truth() if s == "sms_messages" and r["direction"] == "In"}
    stored = {path.parent.name for path in tmp_path.rglob("*") if path.is_file()}
    assert inbound
    assert run.ids("sms_messages", "message_id") & inbound == set()
    assert run.ids("attachments", "message_id") & inbound == set()
    assert stored & inbound == set(), "files of filtered messages were downloaded"
    assert stored >= run.ids("attachments", "message_id")


def test_a_filter_evaluated_by_two_threads_at_once_reads_each_ones_own_record(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK evaluates a map's expressions with an evaluator whose names it sets to the record just
    # before; the tap evaluates filters in worker threads too (a message's files) beside the main
    # thread's. Here both threads have set their record before either evaluates.
    tap = TapZoomSms(config=emulator.tap_config(stream_maps={"sms_messages": {"__filter__": "direction != 'In'"}}))
    stream_map = tap.streams["sms_messages"].stream_maps[0]
    together = threading.Barrier(2, timeout=10)
    evaluate = simpleeval.EvalWithCompoundTypes.eval

    def evaluate_together(self: simpleeval.EvalWithCompoundTypes, expr: str, previously_parsed: t.Any = None) -> t.Any:
        together.wait()
        return evaluate(self, expr, previously_parsed)

    monkeypatch.setattr(simpleeval.EvalWithCompoundTypes, "eval", evaluate_together)
    kept: dict[str, bool] = {}

    def judge(direction: str) -> None:
        kept[direction] = stream_map.get_filter_result({"message_id": direction, "direction": direction})

    threads = [threading.Thread(target=judge, args=(direction,)) for direction in ("In", "Out")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert kept == {"In": False, "Out": True}
