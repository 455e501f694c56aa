"""A 200 whose records array is null, missing or not an array is read again, never taken silently as empty.

Zoom's empty result is ``[]``. A page whose array is null or missing (or a string, an
object), or whose page token is not a string, is a malformed answer: read again, a
few times, as a retry. If it stays so, it is taken as empty with one warning naming
the endpoint and the window, and the run goes on (exit 0), so no later run stops on it.
"""

from __future__ import annotations

import collections
import json
import typing as t
from pathlib import Path

import pytest

from bench.runner import KEYS, truth
from bench.runner import run_tap as run_installed_tap
from tap_zoom_sms.client import MALFORMED_PAGE_REREADS
from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.emulator.data import ME_OWNER, _id
from tap_zoom_sms.emulator.server import MALFORMED_SHAPES
from tests.conftest import TapRun, run_tap
from tests.emulator_client import EmulatorClient
from tests.fakezoom import FakeZoom
from tests.test_user_level import owned_by, user_config

#: Every list route of the account's app: the session lists (by last message, and discovery's activity
#: lists by sent and received message, all on "sessions"), session details and Contact Center.
LIST_ROUTES = ["sessions", "session_details", "contact_center_sms"]
#: What a persistently malformed page of each route loses: records of this stream, a page of them at most.
ROUTE_STREAMS = {
    "sessions": "sms_sessions",
    "session_details": "sms_messages",
    "contact_center_sms": "contact_center_sms",
}
PAGE_SIZE = 5
STILL_MALFORMED = "was still malformed after"


@pytest.fixture
def emulator() -> t.Iterator[Emulator]:
    # four months: message discovery reads the activity lists and walks its sample (three windows or more)
    with Emulator(DatasetSpec(seed=5, sessions=24, engagements=24, months=4, users=3)) as em:
        yield em


def unpaced(em: Emulator, **overrides: t.Any) -> dict[str, t.Any]:
    return em.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0, page_size=PAGE_SIZE, **overrides)


def lost(em: Emulator, got: t.Mapping[str, set[tuple]]) -> dict[str, set[tuple]]:
    """The ground truth's records, by stream, that ``got`` lacks."""
    missing = {stream: keys - got.get(stream, set()) for stream, keys in truth(em).items()}
    return {stream: keys for stream, keys in missing.items() if keys}


def kept(run: TapRun) -> dict[str, set[tuple]]:
    return {stream: {tuple(r[k] for k in KEYS[stream]) for r in records} for stream, records in run.records.items()}


def asked(em: Emulator, route: str) -> list[str]:
    """The queries of ``route``'s requests, each as one string (path parameters are not kept: details by window)."""
    return [json.dumps(query, sort_keys=True) for query in em.stats.requests(route)]


@pytest.mark.parametrize("shape", MALFORMED_SHAPES)
def test_every_list_page_malformed_once_loses_nothing(
    emulator: Emulator, shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each page that holds records (or has a next page) answers malformed once, on every list endpoint."""
    emulator.config.malformed_page_routes = LIST_ROUTES
    emulator.config.malformed_page_shape = shape

    run = run_tap(unpaced(emulator))

    assert lost(emulator, kept(run)) == {}
    faults = emulator.stats.snapshot()["faults"]
    for route in LIST_ROUTES:
        assert faults[f"malformed_page {route}"] > 0, route
    # discovery's activity lists were among the pages read again
    activity = [q for q in asked(emulator, "sessions") if "sent_message_time" in q or "received_message_time" in q]
    assert len(activity) > len(set(activity))
    # each malformed answer cost one request more, and nothing else did: an empty array is read once (on the
    # phone routes, discovery's sample reads some pages a second time by design)
    engagements = asked(emulator, "contact_center_sms")
    assert len(engagements) == len(set(engagements)) + faults["malformed_page contact_center_sms"]
    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Retrying GET")]
    first_reread = f"malformed page: read again, 1 of {MALFORMED_PAGE_REREADS}"
    assert sum(first_reread in line for line in retries) == sum(faults.values())
    assert not [r for r in caplog.records if STILL_MALFORMED in r.getMessage()]


def test_a_users_session_list_malformed_once_loses_nothing(emulator: Emulator) -> None:
    """User-level apps read /phone/users/{user_id}/sms/sessions: the same treatment."""
    emulator.config.malformed_page_routes = ["user_sessions", "session_details"]
    other = _id("u2", length=22)
    expected = owned_by(emulator, {ME_OWNER, other})
    token = EmulatorClient(emulator).token()

    run = run_tap(user_config(emulator, access_token=token, user_ids=["me", other], page_size=PAGE_SIZE))

    assert run.ids("sms_sessions", "session_id") == expected["sessions"]
    assert run.ids("sms_messages", "message_id") == expected["messages"]
    assert emulator.stats.snapshot()["faults"]["malformed_page user_sessions"] > 0


@pytest.mark.parametrize("route", LIST_ROUTES)
def test_a_page_that_stays_null_is_one_warning_exit_0_and_the_next_run_is_not_stuck(
    emulator: Emulator, route: str, tmp_path: Path
) -> None:
    """One page that holds records answers null for ever: read 1 + 3 times, then taken as empty, with one line."""
    emulator.config.malformed_page_routes = [route]
    emulator.config.malformed_page_count = 1
    emulator.config.malformed_page_times = 1_000_000
    # the exhaustive walk: with discovery, the first sessions page that holds records may be an activity
    # list's, read in the background, and missing sessions there fall back to the exhaustive walk
    config = unpaced(emulator, message_discovery="exhaustive")

    first = run_installed_tap(emulator, tmp_path, config)

    assert first.returncode == 0, first.stderr[-3000:]
    warnings = [line for line in first.stderr.splitlines() if STILL_MALFORMED in line]
    assert len(warnings) == 1, warnings
    assert "WARNING" in warnings[0]
    assert f"after {1 + MALFORMED_PAGE_REREADS} reads (" in warnings[0]
    assert "is null, not an array): taken as an empty page, as Zoom may mean that" in warnings[0]
    path = {"sessions": "/v2/phone/sms/sessions,", "contact_center_sms": "/v2/contact_center/sms,"}
    assert f"GET {path.get(route, '/v2/phone/sms/sessions/')}" in warnings[0]
    again = collections.Counter(json.dumps(q, sort_keys=True) for q in emulator.stats.requests(route))
    windows = {f"window {json.loads(q)['from'][0]} to {json.loads(q)['to'][0]}," for q, n in again.items() if n > 1}
    assert any(window in warnings[0] for window in windows), (warnings[0], windows)
    assert emulator.stats.snapshot()["faults"][f"malformed_page {route}"] == 1 + MALFORMED_PAGE_REREADS
    missing = lost(emulator, first.kept()[0])
    assert 0 < len(missing[ROUTE_STREAMS[route]]) <= PAGE_SIZE  # that page, and only that page (said so)
    state = first.kept()[1]
    assert state is not None

    second = run_installed_tap(emulator, tmp_path, config, state)

    assert second.returncode == 0, second.stderr[-3000:]
    assert "Traceback" not in first.stderr + second.stderr
    after = second.kept()[1]
    assert after is not None
    for stream, bookmark in state["bookmarks"].items():
        if "replication_key_value" in bookmark:
            assert after["bookmarks"][stream]["replication_key_value"] >= bookmark["replication_key_value"], stream


@pytest.mark.parametrize(
    ("body", "fault"),
    [
        ({"next_page_token": "", "sms_sessions": None}, "'sms_sessions' is null, not an array"),
        ({"next_page_token": ""}, "no 'sms_sessions' array"),
        ({"sms_sessions": "[]"}, "'sms_sessions' is a string, not an array"),
        ({"sms_sessions": {"id": 1}}, "'sms_sessions' is an object, not an array"),
        ({"sms_sessions": [], "next_page_token": 12}, "'next_page_token' is a number, not a string"),
    ],
)
def test_a_malformed_page_is_read_again_and_said_so(
    zoom: FakeZoom, config: dict[str, t.Any], body: dict[str, t.Any], fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    zoom.add_session("s1")
    zoom.add_message("s1", "2024-03-05T10:00:00Z")
    zoom.fail_next(r"/phone/sms/sessions$", 200, body, when=lambda request: "from=2024-03-01" in request.url)

    run = run_tap(config)

    assert run.ids("sms_sessions", "session_id") == {"s1"}
    assert run.ids("sms_messages", "session_id") == {"s1"}
    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Retrying GET")]
    assert len(retries) == 1
    assert f"HTTP 200 from GET /v2/phone/sms/sessions: {fault} (malformed page: read again, 1 of 3)" in retries[0]


def test_a_token_that_stays_malformed_ends_the_window_with_one_warning(
    zoom: FakeZoom, config: dict[str, t.Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The page's records are kept; its token cannot be followed: the window ends there, and it is said."""
    for n in range(3):
        zoom.add_session(f"s{n}")
        zoom.add_message(f"s{n}", f"2024-03-0{n + 1}T10:00:00Z")
    in_march = lambda request: "from=2024-03-01" in request.url and "next_page_token" not in request.url  # noqa: E731
    body = {"sms_sessions": [{**zoom.sessions["s0"], "last_access_time": "2024-03-01T10:00:00Z"}], "next_page_token": 1}
    for _ in range(1 + MALFORMED_PAGE_REREADS):
        zoom.fail_next(r"/phone/sms/sessions$", 200, body, when=in_march)

    run = run_tap({**config, "page_size": 1})

    assert run.ids("sms_sessions", "session_id") == {"s0"}
    warnings = [r for r in caplog.records if STILL_MALFORMED in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelname == "WARNING"
    assert warnings[0].getMessage() == (
        "Zoom's page of GET /v2/phone/sms/sessions, window 2024-03-01T00:00:00Z to 2024-04-01T00:00:00Z, was still "
        "malformed after 4 reads ('next_page_token' is a number, not a string): taken as the last page of its window, "
        "as Zoom may mean that"
    )
