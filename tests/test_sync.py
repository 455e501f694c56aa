"""Whole runs against the fake Zoom: completeness, requests sent, bookmarks and resumes."""

from __future__ import annotations

import datetime as dt
import typing as t

import pendulum
import pytest

from tap_zoom_sms.windows import parse_time
from tests.conftest import TapRun, run_tap
from tests.fakezoom import FakeZoom, base_config, fmt, ts

UTC = dt.timezone.utc


def build_account(zoom: FakeZoom) -> None:
    """Sessions that exercise every trap: long silences, many pages, boundaries, types."""
    # a long-lived session: messages 13 months apart, listed once (in its last month)
    zoom.add_session("long")
    zoom.add_message("long", "2024-01-03T08:00:00Z", attachments=2)
    zoom.add_message("long", "2024-01-31T23:59:59Z")
    zoom.add_message("long", "2024-02-01T00:00:00Z", text="")  # on a window boundary
    zoom.add_message("long", "2024-11-30T12:00:00Z", text="héllo 👋")
    # a busy session: more than a page (page_size 5 in these tests) in one month
    zoom.add_session("busy", "call_queue")
    for second in range(12):
        zoom.add_message("busy", f"2024-06-10T10:00:{second // 3:02d}Z")  # several per second
    zoom.add_message("busy", "2024-07-01T00:00:00Z", attachments=1)
    # an auto receptionist session whose last message is on a month boundary
    zoom.add_session("ar", "auto_receptionist")
    zoom.add_message("ar", "2024-03-01T00:00:00Z", attachments=3, surprise_field={"new": True})
    zoom.add_engagement("e1", "2024-02-02T10:00:00Z")
    zoom.add_engagement("e2", "2024-09-30T23:59:59Z")


def truth(zoom: FakeZoom) -> dict[str, set[t.Any]]:
    return {
        "sms_sessions": set(zoom.sessions),
        "sms_messages": {m["message_id"] for ms in zoom.messages.values() for m in ms},
        "attachments": {
            (m["message_id"], a["id"]) for ms in zoom.messages.values() for m in ms for a in m["attachments"]
        },
        "contact_center_sms": {e["engagement_id"] for e in zoom.engagements if e["completed"]},
    }


def extracted(*runs: TapRun) -> dict[str, set[t.Any]]:
    out: dict[str, set[t.Any]] = {"sms_sessions": set(), "sms_messages": set(), "attachments": set()}
    out["contact_center_sms"] = set()
    for run in runs:
        out["sms_sessions"] |= run.ids("sms_sessions", "session_id")
        out["sms_messages"] |= run.ids("sms_messages", "message_id")
        out["attachments"] |= {(r["message_id"], r["id"]) for r in run.records.get("attachments", [])}
        out["contact_center_sms"] |= run.ids("contact_center_sms", "engagement_id")
    return out


def test_a_full_run_extracts_everything_once(zoom: FakeZoom) -> None:
    build_account(zoom)
    run = run_tap(base_config(page_size=5))

    assert extracted(run) == truth(zoom)
    keys = {"sms_sessions": ["session_id"], "sms_messages": ["message_id"], "attachments": ["message_id", "id"]}
    keys["contact_center_sms"] = ["engagement_id"]
    for stream, fields in keys.items():
        emitted = [tuple(r[f] for f in fields) for r in run.records[stream]]
        assert len(emitted) == len(set(emitted)), f"{stream} has duplicates"


def test_records_carry_their_parent_keys(zoom: FakeZoom) -> None:
    build_account(zoom)
    run = run_tap(base_config())

    owner = {m["message_id"]: sid for sid, ms in zoom.messages.items() for m in ms}
    for message in run.records["sms_messages"]:
        assert message["session_id"] == owner[message["message_id"]]
    by_id = {m["message_id"]: m for ms in zoom.messages.values() for m in ms}
    for attachment in run.records["attachments"]:
        message = by_id[attachment["message_id"]]
        assert attachment["session_id"] == owner[attachment["message_id"]]
        assert attachment["date_time"] == message["date_time"]
        assert attachment["type"] == "JPG/JPEG"  # an enum value the docs do not list
        assert isinstance(attachment["size"], int)
    sessions = {s["session_id"]: s for s in run.records["sms_sessions"]}
    assert sessions["long"]["last_access_time"] == "2024-11-30T12:00:00Z"
    assert sessions["busy"]["session_type"] == "call_queue"
    unicode = [m for m in run.records["sms_messages"] if m["message_id"] == "m00004"]
    assert unicode[0]["message"] == "héllo 👋"


def test_every_request_is_explicit_and_within_a_month(zoom: FakeZoom) -> None:
    build_account(zoom)
    run_tap(base_config())

    assert zoom.requests
    for path, qs in zoom.requests:
        lo, hi = ts(qs["from"][0]), ts(qs["to"][0])
        assert qs["from"][0].endswith("Z")
        assert lo <= hi <= pendulum.instance(lo).add(months=1), (path, qs)
        assert qs["page_size"] == ["100"]
        if path == "/v2/phone/sms/sessions":
            assert qs["session_type"] == ["all"]
            assert qs["filter_type"][0] in ("last_message_time", "sent_message_time", "received_message_time")
        elif path.startswith("/v2/phone/sms/sessions/"):
            assert qs["sort"] == ["1"]


def test_message_windows_span_from_the_run_start_to_the_last_message(zoom: FakeZoom) -> None:
    build_account(zoom)
    run_tap(base_config())

    windows = [
        (ts(qs["from"][0]), ts(qs["to"][0])) for path, qs in zoom.requests if path == "/v2/phone/sms/sessions/long"
    ]
    last = ts(zoom.last_access_time("long"))
    assert windows[0][0] == ts("2024-01-01T00:00:00Z")
    assert windows[-1][1] == last
    assert all(lo <= last for lo, _ in windows)  # none lies wholly after the last message
    assert len(windows) == 11  # Jan..Nov, one request each: no month read twice


def test_sessions_list_is_paged_and_details_token_may_come_as_sync_token(zoom: FakeZoom) -> None:
    build_account(zoom)
    zoom.token_under_sync_token = True
    for i in range(7):
        zoom.add_session(f"extra{i}")
        zoom.add_message(f"extra{i}", "2024-06-15T00:00:00Z")
    run = run_tap(base_config(page_size=5))

    assert extracted(run) == truth(zoom)
    june = [
        qs
        for p, qs in zoom.requests
        if p == "/v2/phone/sms/sessions"
        and qs["from"][0].startswith("2024-06")
        and qs["filter_type"] == ["last_message_time"]
    ]
    assert len(june) == 2
    assert "next_page_token" in june[1]


def test_state_is_small_and_emitted_as_windows_complete(zoom: FakeZoom) -> None:
    build_account(zoom)
    for i in range(30):
        zoom.add_session(f"s{i}")
        zoom.add_message(f"s{i}", f"2024-04-{i % 28 + 1:02d}T00:00:00Z")
    run = run_tap(base_config())

    bookmarks = [s["bookmarks"].get("sms_sessions", {}).get("replication_key_value") for s in run.states]
    progress = sorted({b for b in bookmarks if b})
    assert len(progress) >= 12  # one bookmark per completed month, not only at the end
    assert run.last_state is not None
    assert run.last_state["bookmarks"]["sms_sessions"] == {
        "replication_key": "last_access_time",
        "replication_key_value": "2024-12-31T23:59:59Z",
        "messages_since": "2024-01-01T00:00:00Z",  # end_date lies in the past: kept
    }
    assert len(str(run.last_state)) < 600  # no per-session partitions


def _cut_before_last_state(run: TapRun) -> TapRun:
    """What a target that commits at STATE messages holds after the run is killed."""
    last = max((i for i, m in enumerate(run.messages) if m["type"] == "STATE"), default=-1)
    return TapRun(run.messages[: last + 1])


def test_a_run_killed_at_any_request_resumes_with_nothing_lost(zoom: FakeZoom) -> None:
    build_account(zoom)
    zoom.add_session("late")  # listed late, with an old first message
    zoom.add_message("late", "2024-01-10T00:00:00Z")
    zoom.add_message("late", "2024-12-01T00:00:00Z")
    config = base_config(page_size=5)
    run_tap(config)
    total = len(zoom.requests)
    assert total > 20

    for kill_at in range(1, total + 1):
        zoom.requests.clear()
        zoom.fail_from_request = kill_at
        first = run_tap(config, expect_error=True)
        kept = _cut_before_last_state(first)
        zoom.fail_from_request = None
        second = run_tap(config, state=kept.last_state)
        assert extracted(kept, second) == truth(zoom), f"lost data when stopped at request {kill_at}"


def test_backfill_with_end_date_then_incremental_loses_nothing(zoom: FakeZoom) -> None:
    now = dt.datetime.now(UTC).replace(microsecond=0)
    start = now - dt.timedelta(days=200)
    end = now - dt.timedelta(days=100)
    zoom.add_session("spans")  # active before and after end_date: not listed by the backfill
    zoom.add_message("spans", fmt(start + dt.timedelta(days=10)))
    zoom.add_message("spans", fmt(now - dt.timedelta(days=5)))
    zoom.add_session("inside")
    zoom.add_message("inside", fmt(start + dt.timedelta(days=50)))
    config = base_config(start_date=fmt(start), end_date=fmt(end))

    backfill = run_tap(config)
    assert backfill.ids("sms_sessions", "session_id") == {"inside"}
    del config["end_date"]
    incremental = run_tap(config, state=backfill.last_state)
    assert extracted(backfill, incremental)["sms_messages"] == truth(zoom)["sms_messages"]


def test_incremental_run_gets_new_data_including_the_bookmark_second(zoom: FakeZoom) -> None:
    now = dt.datetime.now(UTC).replace(microsecond=0)
    zoom.add_session("old")
    zoom.add_message("old", fmt(now - dt.timedelta(days=300)))
    zoom.add_message("old", fmt(now - dt.timedelta(days=3)))
    zoom.add_session("quiet")
    zoom.add_message("quiet", fmt(now - dt.timedelta(days=90)))
    config = base_config(start_date=fmt(now - dt.timedelta(days=400)))
    del config["end_date"]
    first = run_tap(config)
    first_requests = len(zoom.requests)
    state = first.last_state
    assert state is not None
    bookmark = state["bookmarks"]["sms_sessions"]["replication_key_value"]
    assert state["bookmarks"]["sms_sessions"]["messages_since"] == bookmark  # reached the present

    zoom.requests.clear()
    same_second = zoom.add_message("old", bookmark, text="in the bookmark's second")
    zoom.add_session("new")
    newest = zoom.add_message("new", bookmark)
    second = run_tap(config, state=state)

    assert second.ids("sms_messages", "message_id") == {same_second["message_id"], newest["message_id"]}
    assert second.ids("sms_sessions", "session_id") == {"old", "new"}
    assert len(zoom.requests) * 5 < first_requests


def test_contact_center_rereads_the_lookback_for_late_completions(zoom: FakeZoom) -> None:
    now = dt.datetime.now(UTC).replace(microsecond=0)
    zoom.add_engagement("done", fmt(now - dt.timedelta(days=20)))
    zoom.add_engagement("pending", fmt(now - dt.timedelta(hours=30)), completed=False)
    config = base_config(start_date=fmt(now - dt.timedelta(days=40)), contact_center_lookback_hours=48)
    del config["end_date"]
    first = run_tap(config)
    assert first.ids("contact_center_sms", "engagement_id") == {"done"}

    zoom.engagements[1]["completed"] = True  # completes after the run
    zoom.requests.clear()
    second = run_tap(config, state=first.last_state)

    assert second.ids("contact_center_sms", "engagement_id") == {"pending"}
    bookmark = parse_time(first.last_state["bookmarks"]["contact_center_sms"]["replication_key_value"])
    cc = [qs for p, qs in zoom.requests if p == "/v2/contact_center/sms"]
    assert ts(cc[0]["from"][0]) == bookmark - dt.timedelta(hours=48)


def test_a_rejected_page_token_restarts_its_window(zoom: FakeZoom) -> None:
    build_account(zoom)
    zoom.fail_next(
        r"/sessions/busy$",
        400,
        {"code": 300, "message": "The next page token is invalid or expired."},
        when=lambda request: "next_page_token" in request.qs,
    )
    run = run_tap(base_config(page_size=5))

    assert not zoom.faults  # the fault was served
    busy_first_pages = [qs for p, qs in zoom.requests if p.endswith("/busy") and "next_page_token" not in qs]
    june = [qs for qs in busy_first_pages if qs["from"][0].startswith("2024-06")]
    assert len(june) == 2  # June was read again from its first page
    assert extracted(run) == truth(zoom)
    emitted = [r["message_id"] for r in run.records["sms_messages"]]
    assert len(emitted) == len(set(emitted))  # what the first reading gave is not emitted twice


def test_a_session_deleted_after_listing_is_skipped(zoom: FakeZoom) -> None:
    build_account(zoom)
    zoom.fail_next(r"/sessions/busy$", 404, {"code": 7013, "message": "Error retrieving SMS history."})
    run = run_tap(base_config())

    busy = {m["message_id"] for m in zoom.messages["busy"]}
    assert run.ids("sms_messages", "message_id") == truth(zoom)["sms_messages"] - busy
    assert run.ids("contact_center_sms", "engagement_id") == {"e1", "e2"}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, "<html><body>Internal error</body></html>"),
        (502, ""),
        (200, '{"next_page_token": "", "sms_sessions": [{"session_id": "tr'),
        (200, "[]"),
        (429, {"code": 429, "message": "You have reached the maximum per-second rate limit."}),
    ],
)
def test_server_faults_and_malformed_pages_are_retried(zoom: FakeZoom, status: int, body: str) -> None:
    build_account(zoom)
    zoom.fail_next(r"/phone/sms/sessions$", status, body, when=lambda r: r.qs["from"][0].startswith("2024-03"))
    run = run_tap(base_config())

    assert not zoom.faults
    march = [qs for p, qs in zoom.requests if p.endswith("/sessions") and qs["from"][0].startswith("2024-03")]
    assert len(march) == 2
    assert extracted(run) == truth(zoom)


def test_a_fatal_client_error_names_zoom_code_and_message(zoom: FakeZoom) -> None:
    build_account(zoom)
    zoom.fail_next(
        r"/contact_center/sms$", 403, {"code": 4711, "message": "Invalid access token, does not contain scopes."}
    )
    run = run_tap(base_config(), expect_error=True)
    assert "HTTP 403 from GET /v2/contact_center/sms: code 4711: Invalid access token" in str(run.error)


def test_records_without_type_conformance_equal_the_sdk_default(
    zoom: FakeZoom, monkeypatch: pytest.MonkeyPatch
) -> None:
    from singer_sdk.helpers.conform import TypeConformanceLevel

    from tap_zoom_sms.basestream import BaseStream

    build_account(zoom)
    fast = run_tap(base_config())
    monkeypatch.setattr(BaseStream, "TYPE_CONFORMANCE_LEVEL", TypeConformanceLevel.RECURSIVE)
    stock = run_tap(base_config())
    assert fast.records == stock.records
    assert any("surprise_field" in m for m in fast.records["sms_messages"])  # a field Zoom added later
