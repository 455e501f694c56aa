"""User-level apps: sessions read per user (``user_ids``), with a token obtained elsewhere (``access_token``)."""

from __future__ import annotations

import datetime as dt
import json
import typing as t

import pytest

from tap_zoom_sms.discovery.lists import ACTIVITY_FILTERS
from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.emulator.data import ME_OWNER, _id
from tap_zoom_sms.errors import AuthError, SettingsError
from tap_zoom_sms.readahead.windows import DEPTH
from tap_zoom_sms.windows import parse_time
from tests.conftest import run_tap
from tests.emulator_client import EmulatorClient

#: The lists a backfill reads at once from its first request: each month's (the current one and
#: DEPTH ahead) session list and activity lists, and the sample check's list.
LISTS_READ_AT_ONCE = (DEPTH + 1) * (1 + len(ACTIVITY_FILTERS)) + 1


@pytest.fixture
def emulator() -> t.Iterator[Emulator]:
    with Emulator(DatasetSpec(seed=9, sessions=60, engagements=0, users=4)) as em:
        yield em


def user_config(em: Emulator, **overrides: t.Any) -> dict[str, t.Any]:
    """Settings of a user-level app: a token from elsewhere, no Server-to-Server credentials."""
    config = em.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0, **overrides)
    for key in ("account_id", "client_id", "client_secret"):
        del config[key]
    return config


def owned_by(em: Emulator, owners: set[str]) -> dict[str, set[str]]:
    """Return the truth's sessions of ``owners`` and their messages' ids."""
    sessions = {
        r["session_id"]
        for stream, r in em.account.truth()
        if stream == "sms_sessions"
        and any(p.get("is_session_owner") and p["owner"]["id"] in owners for p in r["participants"])
    }
    messages = {
        r["message_id"] for stream, r in em.account.truth() if stream == "sms_messages" and r["session_id"] in sessions
    }
    return {"sessions": sessions, "messages": messages}


def test_user_ids_read_each_users_sessions_and_all_their_messages(emulator: Emulator) -> None:
    other = _id("u2", length=22)
    expected = owned_by(emulator, {ME_OWNER, other})
    all_sessions = owned_by(emulator, {_id(f"u{k}", length=22) for k in range(4)})["sessions"]
    assert 0 < len(expected["sessions"]) < len(all_sessions)
    token = EmulatorClient(emulator).token()

    run = run_tap(user_config(emulator, access_token=token, user_ids=["me", other]))

    assert run.ids("sms_sessions", "session_id") == expected["sessions"]
    assert run.ids("sms_messages", "message_id") == expected["messages"]
    stats = emulator.stats.snapshot()
    assert "sessions" not in stats["requests"]  # never the account-wide list
    assert stats["requests"]["user_sessions"] > 0
    assert stats["tokens_issued"] == 1  # the test's own: the tap asked for none
    partitions = run.last_state["bookmarks"]["sms_sessions"]["partitions"]
    assert sorted(p["context"]["user_id"] for p in partitions) == sorted(["me", other])
    assert all(p["replication_key_value"] and p["messages_since"] for p in partitions)


def test_a_second_run_reads_only_what_is_new_for_each_user(emulator: Emulator) -> None:
    config = user_config(emulator, access_token=EmulatorClient(emulator).token(), user_ids=["me"])
    first = run_tap(config)
    mine = sorted(first.ids("sms_sessions", "session_id"))
    new = EmulatorClient(emulator).admin("messages", session_id=mine[0], text="new for me")[0]

    second = run_tap(config, state=first.last_state)

    assert new["message_id"] in second.ids("sms_messages", "message_id")
    assert mine[0] in second.ids("sms_sessions", "session_id")
    # anything else is read again inside the look-back (30 minutes) before the user's bookmark
    (partition,) = first.last_state["bookmarks"]["sms_sessions"]["partitions"]
    margin = parse_time(partition["replication_key_value"]) - dt.timedelta(minutes=30)
    assert all(parse_time(m["date_time"]) >= margin for m in second.records["sms_messages"] if m != new)
    assert all(parse_time(s["last_access_time"]) >= margin for s in second.records["sms_sessions"])


def test_user_ids_work_with_server_to_server_credentials_too(emulator: Emulator) -> None:
    config = emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0, user_ids=["me"])

    run = run_tap(config)

    assert run.ids("sms_sessions", "session_id") == owned_by(emulator, {ME_OWNER})["sessions"]


def test_a_refused_access_token_ends_the_run_with_one_line_and_no_secret(emulator: Emulator) -> None:
    token = "a-token-zoom-does-not-know-0123456789"

    run = run_tap(user_config(emulator, access_token=token, user_ids=["me"]), expect_error=True)

    assert isinstance(run.error, AuthError)
    message = str(run.error)
    assert "access_token" in message
    assert "HTTP 401" in message
    assert token not in message
    assert "\n" not in message
    # the lists read at once each met the refusal once: none was retried with a token that cannot change
    queries = [json.dumps(query, sort_keys=True) for query in emulator.stats.requests()]
    assert queries
    assert len(queries) == len(set(queries)), queries
    assert len(queries) <= LISTS_READ_AT_ONCE


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({}, "'client_secret' is a required property (or set access_token)"),
        ({"user_ids": []}, "user_ids must be a non-empty list"),
        ({"access_token": "x", "user_ids": ["me", " "]}, "user_ids must be a non-empty list"),
        ({"access_token": "x", "user_ids": ["me", "u1", "me"]}, "user_ids lists a user twice"),
    ],
)
def test_settings_need_credentials_or_a_token_and_real_user_ids(
    emulator: Emulator, overrides: dict[str, t.Any], problem: str
) -> None:
    run = run_tap(user_config(emulator, **overrides), expect_error=True)

    assert isinstance(run.error, SettingsError)
    assert problem in str(run.error)
