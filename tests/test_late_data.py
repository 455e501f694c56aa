"""Late data and clock skew: what Zoom shows after a run, stamped before its bookmark, still arrives."""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest

from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.windows import format_zoom_time, parse_time
from tests.conftest import TapRun, run_tap
from tests.emulator_client import EmulatorClient


@pytest.fixture
def emulator() -> t.Iterator[Emulator]:
    with Emulator(DatasetSpec(seed=31, sessions=40, engagements=3)) as em:
        yield em


def unpaced(em: Emulator, **overrides: t.Any) -> dict[str, t.Any]:
    return em.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0, **overrides)


def bookmark_of(run: TapRun) -> dt.datetime:
    assert run.last_state is not None
    return parse_time(run.last_state["bookmarks"]["sms_sessions"]["replication_key_value"])


def quiet_sessions(em: Emulator, count: int) -> list[str]:
    """Sessions whose last message is months old (the run listed them long before its bookmark)."""
    account = em.account
    old = account.sessions_between(account.start, account.anchor - dt.timedelta(days=60), "all")
    assert len(old) >= count
    return old[:count]


def test_messages_zoom_shows_late_before_the_bookmark_arrive_in_the_next_run(emulator: Emulator) -> None:
    config = unpaced(emulator)
    first = run_tap(config)
    bookmark = bookmark_of(first)
    client = EmulatorClient(emulator)
    one, two, three, busy = quiet_sessions(emulator, 4)

    def late(session_id: str | None, seconds: int, text: str) -> dict[str, t.Any]:
        at = format_zoom_time(bookmark - dt.timedelta(seconds=seconds))
        return client.admin("messages", session_id=session_id, at=at, text=text)[0]

    expected = {
        "1 s before": late(one, 1, "indexed a second late"),
        "1 min before": late(two, 60, "indexed a minute late"),
        "10 min before": late(three, 600, "indexed ten minutes late"),
        "a new session, 2 min before": late(None, 120, "a conversation Zoom showed late"),
        # written while the last run was listing, in a session that has since moved on
        "10 min before, session active since": late(busy, 600, "written while the run listed"),
    }
    expected["the active session's new message"] = client.admin("messages", session_id=busy, text="new")[0]
    second = run_tap(config, state=first.last_state)

    got = second.ids("sms_messages", "message_id")
    missing = [what for what, message in expected.items() if message["message_id"] not in got]
    assert missing == []
    new_session = expected["a new session, 2 min before"]["session_id"]
    assert {one, two, three, busy, new_session} <= second.ids("sms_sessions", "session_id")
    assert bookmark_of(second) >= bookmark


def test_each_run_rereads_the_lookback_and_no_more(emulator: Emulator) -> None:
    config = unpaced(emulator, lookback_minutes=45)
    first = run_tap(config)
    bookmark = bookmark_of(first)
    first_lists = emulator.stats.requests("sessions")
    emulator.stats.reset()

    run_tap(config, state=first.last_state)

    lists = emulator.stats.requests("sessions")
    assert lists, "the session list is read again"
    assert min(parse_time(q["from"][0]) for q in lists) == bookmark - dt.timedelta(minutes=45)
    assert len(first_lists) > len(lists)


def test_a_tap_clock_ahead_of_zoom_never_bookmarks_past_zoom(emulator: Emulator) -> None:
    """Zoom runs three minutes behind the tap; with no look-back, only the cap by Zoom's Date saves the data."""
    emulator.config.clock_skew_seconds = -180
    config = unpaced(emulator, lookback_minutes=0)
    first = run_tap(config)
    bookmark = bookmark_of(first)
    assert bookmark <= emulator.now()  # Zoom's clock, not the tap's
    assert bookmark < dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=170)
    client = EmulatorClient(emulator)
    (old,) = quiet_sessions(emulator, 1)
    # stamped by Zoom's clock after the first run: before the tap's own clock said it was done
    added = [client.admin("messages", session_id=old, text="after")[0], client.admin("messages", text="brand new")[0]]

    second = run_tap(config, state=first.last_state)

    assert {m["message_id"] for m in added} <= second.ids("sms_messages", "message_id")
    assert {added[1]["session_id"], old} <= second.ids("sms_sessions", "session_id")
