"""The emulator itself: each harsh reading of Zoom's API that it serves, tested."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import subprocess
import sys
import time
import typing as t

import pytest
import requests

from tap_zoom_sms.emulator import Account, DatasetSpec, Emulator
from tap_zoom_sms.emulator.data import fmt
from tests.emulator_client import EmulatorClient

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def emulator() -> t.Iterator[Emulator]:
    with Emulator(DatasetSpec(sessions=120, engagements=40)) as em:
        yield em


@pytest.fixture
def client(emulator: Emulator) -> t.Iterator[EmulatorClient]:
    saved = dict(vars(emulator.config))
    yield EmulatorClient(emulator)
    vars(emulator.config).update(saved)


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def busiest_month(account: Account) -> tuple[str, list[dict]]:
    """The session with the most messages in one month, and those messages."""
    best: tuple[str, list[dict]] = ("", [])
    for sid in account.sessions_between(account.start, dt.datetime.now(UTC), "all"):
        by_month: dict[str, list[dict]] = {}
        for message in account.messages(sid):
            by_month.setdefault(message["date_time"][:7], []).append(message)
        top = max(by_month.values(), key=len)
        if len(top) > len(best[1]):
            best = (sid, top)
    return best


def all_pages(client: EmulatorClient, path: str, key: str, **params: t.Any) -> list[dict]:
    out: list[dict] = []
    token = ""
    while True:
        body = client.get(path, **params, **({"next_page_token": token} if token else {})).json()
        out += body[key]
        token = body.get("next_page_token", "")
        if not token:
            return out


# --- auth --------------------------------------------------------------------
def test_token_grant_and_refusals(emulator: Emulator) -> None:
    url = f"{emulator.url}/oauth/token"
    form = {"grant_type": "account_credentials", "account_id": emulator.config.account_id}
    good = requests.post(url, auth=(emulator.config.client_id, emulator.config.client_secret), data=form, timeout=5)
    assert good.status_code == 200
    assert good.json()["expires_in"] == 3599
    assert good.json()["token_type"] == "bearer"
    bad = requests.post(url, auth=(emulator.config.client_id, "nope"), data=form, timeout=5)
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_client")
    other = requests.post(
        url,
        auth=(emulator.config.client_id, emulator.config.client_secret),
        data={**form, "account_id": "x"},
        timeout=5,
    )
    assert other.status_code == 400


def test_expired_and_unknown_tokens_get_401_in_each_endpoint_shape(client: EmulatorClient) -> None:
    client.em.config.token_ttl = 1
    client.token()
    time.sleep(1.1)
    phone = client.get("/phone/sms/sessions")
    assert (phone.status_code, phone.json()) == (401, {"code": 124, "message": "Invalid access token."})
    center = client.get("/contact_center/sms")
    assert (center.status_code, center.json()) == (401, {"status": False, "errorCode": 401})
    assert phone.headers["x-zm-trackingid"]


def test_a_token_is_revoked_after_its_uses(client: EmulatorClient) -> None:
    client.em.config.token_max_uses = 2
    answers = [client.get("/phone/sms/sessions").status_code for _ in range(3)]
    assert answers == [200, 200, 401]


# --- Zoom's clock, latency, looping tokens -----------------------------------
def test_the_clock_can_run_behind_or_ahead(client: EmulatorClient) -> None:
    client.em.config.clock_skew_seconds = -600
    answer = client.get("/phone/sms/sessions")
    zoom_time = email.utils.parsedate_to_datetime(answer.headers["Date"])
    lag = dt.datetime.now(UTC) - zoom_time
    assert dt.timedelta(seconds=598) <= lag <= dt.timedelta(seconds=660)
    added = client.admin("messages", text="stamped by Zoom's clock")[0]  # no "at": Zoom's now
    assert ts(added["date_time"]) <= client.em.now() <= dt.datetime.now(UTC) - dt.timedelta(seconds=599)
    past = client.admin("messages", at="2020-01-02T03:04:05Z", text="stamped in the past")[0]
    assert past["date_time"] == "2020-01-02T03:04:05Z"


def test_latency_per_route_and_arrivals_are_counted(client: EmulatorClient) -> None:
    client.em.config.endpoint_latency_ms = {"contact_center_sms": 300}
    started = time.monotonic()
    client.get("/contact_center/sms")
    assert time.monotonic() - started >= 0.3
    assert client.em.stats.snapshot()["arrivals"]["contact_center_sms"] >= 1


@pytest.mark.parametrize("mode", ["repeat", "cycle"])
def test_page_tokens_can_go_round_in_a_circle(client: EmulatorClient, mode: str) -> None:
    sid, messages = busiest_month(client.em.account)
    client.em.reset_paging()
    client.em.config.page_token_loop, client.em.config.page_token_loop_route = mode, "session_details"
    window = {"from": messages[0]["date_time"], "to": messages[-1]["date_time"], "page_size": 5}
    tokens = []
    token = ""
    for _ in range(6):
        body = client.get(f"/phone/sms/sessions/{sid}", **window, **({"next_page_token": token} if token else {}))
        token = body.json()["next_page_token"]
        tokens.append(token)
    if mode == "repeat":
        assert len(set(tokens)) == 1
    else:
        assert tokens[0] == tokens[2] == tokens[4] != tokens[1] == tokens[3] == tokens[5]


# --- defaults and windows ----------------------------------------------------
def test_without_from_and_to_only_recent_data_and_only_user_sessions(client: EmulatorClient) -> None:
    account = client.em.account
    recent = all_pages(client, "/phone/sms/sessions", "sms_sessions", page_size=100)
    now = dt.datetime.now(UTC)
    assert all(ts(s["last_access_time"]) >= now - dt.timedelta(days=30, minutes=1) for s in recent)
    assert {s["session_type"] for s in recent} <= {"user"}
    everything = account.sessions_between(account.start, now, "all")
    assert len(recent) < len(everything)
    cc = client.get("/contact_center/sms").json()
    assert all(ts(e["start_time"]) >= now - dt.timedelta(hours=24, minutes=1) for e in cc["sms"])


def test_a_range_longer_than_a_month_is_cut_silently(client: EmulatorClient) -> None:
    start = client.em.account.start
    three = all_pages(
        client,
        "/phone/sms/sessions",
        "sms_sessions",
        page_size=100,
        session_type="all",
        **{"from": fmt(start), "to": fmt(start + dt.timedelta(days=92))},
    )
    limit = start.replace(month=start.month % 12 + 1, year=start.year + (start.month == 12))
    assert three, "the first month holds sessions"
    assert all(ts(s["last_access_time"]) <= limit for s in three)


def test_bounds_are_inclusive(client: EmulatorClient) -> None:
    account = client.em.account
    sid = account.sessions_between(account.start, dt.datetime.now(UTC), "all")[5]
    last = account.session_record(sid)["last_access_time"]
    for lo, hi in ((last, fmt(ts(last) + dt.timedelta(days=1))), (fmt(ts(last) - dt.timedelta(days=1)), last)):
        listed = all_pages(
            client, "/phone/sms/sessions", "sms_sessions", page_size=100, session_type="all", **{"from": lo, "to": hi}
        )
        assert sid in {s["session_id"] for s in listed}
    messages = client.get(f"/phone/sms/sessions/{sid}", page_size=100, **{"from": last, "to": last}).json()
    assert messages["sms_histories"]
    assert all(m["date_time"] == last for m in messages["sms_histories"])


def test_from_without_to_and_a_bad_session_type_are_refused(client: EmulatorClient) -> None:
    start = fmt(client.em.account.start)
    assert client.get("/phone/sms/sessions", **{"from": start}).status_code == 400
    bad = client.get("/phone/sms/sessions", session_type="everyone")
    assert (bad.status_code, bad.json()["code"]) == (400, 400)


# --- paging ------------------------------------------------------------------
def test_page_sizes_default_and_cap(client: EmulatorClient) -> None:
    start, anchor = client.em.account.start, client.em.account.anchor
    window = {"from": fmt(anchor - dt.timedelta(days=30)), "to": fmt(anchor)}
    assert client.get("/phone/sms/sessions", session_type="all", **window).json()["page_size"] == 30
    assert client.get("/phone/sms/sessions", session_type="all", page_size=500, **window).json()["page_size"] == 100
    assert client.get("/contact_center/sms", **{"from": fmt(start), "to": fmt(anchor)}).json()["page_size"] == 10


def test_page_tokens_are_bound_to_their_query_and_expire(client: EmulatorClient) -> None:
    busy, messages = busiest_month(client.em.account)
    window = {"from": messages[0]["date_time"], "to": messages[-1]["date_time"]}
    first = client.get(f"/phone/sms/sessions/{busy}", page_size=10, **window).json()
    token = first["next_page_token"]
    assert token
    assert client.get(f"/phone/sms/sessions/{busy}", page_size=10, next_page_token=token, **window).status_code == 200
    moved = {**window, "to": fmt(ts(window["to"]) + dt.timedelta(days=1))}
    refused = client.get(f"/phone/sms/sessions/{busy}", page_size=10, next_page_token=token, **moved)
    assert (refused.status_code, refused.json()["code"]) == (400, 300)
    assert "next page token is invalid or expired" in refused.json()["message"]
    forged = client.get(f"/phone/sms/sessions/{busy}", page_size=10, next_page_token=token[:-2] + "xx", **window)
    assert forged.status_code == 400
    client.em.config.page_token_ttl = 0
    stale = client.get(f"/phone/sms/sessions/{busy}", page_size=10, **window).json()["next_page_token"]
    time.sleep(1.1)
    assert client.get(f"/phone/sms/sessions/{busy}", page_size=10, next_page_token=stale, **window).status_code == 400


def test_paging_reads_every_message_once_in_order(client: EmulatorClient) -> None:
    sid, messages = busiest_month(client.em.account)
    paged = all_pages(
        client,
        f"/phone/sms/sessions/{sid}",
        "sms_histories",
        page_size=7,
        sort=1,
        **{"from": messages[0]["date_time"], "to": messages[-1]["date_time"]},
    )
    assert [m["message_id"] for m in paged] == [m["message_id"] for m in messages]
    assert len(paged) > 7


# --- contact center ----------------------------------------------------------
def test_engagements_are_hidden_until_completed(client: EmulatorClient) -> None:
    account = client.em.account
    pending = account.pending_engagements()
    assert pending > 0
    window = {"from": fmt(account.anchor - dt.timedelta(days=20)), "to": fmt(dt.datetime.now(UTC))}
    before = {e["engagement_id"] for e in all_pages(client, "/contact_center/sms", "sms", page_size=100, **window)}
    assert client.admin("engagements/complete") == {"completed": pending}
    after = {e["engagement_id"] for e in all_pages(client, "/contact_center/sms", "sms", page_size=100, **window)}
    assert len(after - before) == pending
    body = client.get("/contact_center/sms", page_size=100, **window).json()
    assert body["total_records"] == len(after)


# --- rate limits ---------------------------------------------------------------
@pytest.mark.parametrize("form", ["seconds", "http-date", "iso", "none"])
def test_qps_limit_answers_429_with_headers(client: EmulatorClient, form: str) -> None:
    client.em.config.medium_qps = 2
    client.em.config.retry_after = form
    client.token()
    client.em.reset_rate_windows()
    client.em.monotonic = lambda: 1e9  # the five requests arrive within one second, however slow the machine
    try:
        answers = [client.get("/phone/sms/sessions") for _ in range(5)]
    finally:
        client.em.monotonic = time.monotonic
        client.em.reset_rate_windows()
    limited = [r for r in answers if r.status_code == 429]
    assert [r.status_code for r in answers] == [200, 200, 429, 429, 429]
    headers = limited[0].headers
    assert headers["X-RateLimit-Type"] == "QPS"
    assert headers["X-RateLimit-Category"] == "Medium"
    assert headers["X-RateLimit-Limit"] == "2"
    retry = headers.get("Retry-After")
    if form == "seconds":
        assert retry == "1"
    elif form == "http-date":
        assert email.utils.parsedate_to_datetime(retry) > dt.datetime.now(UTC) - dt.timedelta(seconds=2)
    elif form == "iso":
        assert ts(retry) >= dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(seconds=1)
    else:
        assert retry is None
    assert "maximum per-second rate limit" in limited[0].json()["message"]


def test_daily_heavy_cap_answers_429_until_the_reset(client: EmulatorClient) -> None:
    client.admin("daily-limit/reset")
    client.em.config.heavy_daily = 3
    answers = [client.get("/contact_center/sms").status_code for _ in range(5)]
    assert answers == [200, 200, 200, 429, 429]
    capped = client.get("/contact_center/sms")
    assert capped.headers["X-RateLimit-Type"] == "Daily-limit"
    reset = ts(capped.headers["Retry-After"])
    assert (reset.hour, reset.minute, reset.second) == (0, 0, 0)
    assert reset > dt.datetime.now(UTC)
    assert client.get("/phone/sms/sessions").status_code == 200  # Medium is not capped
    client.admin("daily-limit/reset")
    client.em.config.heavy_daily = 0


# --- faults -------------------------------------------------------------------
def test_seeded_faults_of_every_kind(client: EmulatorClient) -> None:
    client.token()
    client.em.config.fault_rate = 1.0
    client.em.config.fault_kinds = ["http_500"]
    html = client.get("/phone/sms/sessions")
    assert html.status_code in (500, 502, 503, 504)
    assert html.text.startswith("<html>")
    client.em.config.fault_kinds = ["truncated"]
    truncated = client.get("/phone/sms/sessions")
    assert truncated.status_code == 200
    with pytest.raises(ValueError):  # noqa: PT011 (truncated JSON)
        truncated.json()
    client.em.config.fault_kinds = ["drop"]
    with pytest.raises(requests.ConnectionError):
        client.get("/phone/sms/sessions")
    client.em.config.fault_rate = 0
    client.em.config.latency_ms = 300
    started = time.monotonic()
    client.get("/phone/sms/sessions")
    assert time.monotonic() - started >= 0.3


def test_faults_are_drawn_from_a_seed() -> None:
    def draws(seed: int) -> list[t.Any]:
        em = Emulator(DatasetSpec(sessions=1, engagements=1))
        em.config.fault_rate = 0.3
        em._faults.seed(seed)
        out = [em.draw_fault() for _ in range(50)]
        em.stop()
        return out

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)


# --- data set -------------------------------------------------------------------
def test_the_data_set_is_deterministic_and_holds_every_trap() -> None:
    anchor = dt.datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
    first = list(Account(DatasetSpec(seed=11, sessions=300, anchor=anchor)).truth())
    again = list(Account(DatasetSpec(seed=11, sessions=300, anchor=anchor)).truth())
    assert first == again
    assert first != list(Account(DatasetSpec(seed=12, sessions=300, anchor=anchor)).truth())

    account = Account(DatasetSpec(seed=11, sessions=300, anchor=anchor))
    sessions = account.sessions_between(account.start, anchor, "all")
    spans = [account.messages(s) for s in sessions]
    months = [{m["date_time"][:7] for m in ms} for ms in spans]
    assert any(len(m) >= 4 for m in months), "a session spanning months"
    assert any(
        max(sum(x["date_time"][:7] == mo for x in ms) for mo in m) > 100 for ms, m in zip(spans, months, strict=True)
    )
    messages = [m for ms in spans for m in ms]
    times = [m["date_time"] for m in messages]
    assert any(t_.endswith("-01T00:00:00Z") for t_ in times), "a message on a month boundary"
    assert any(t_.endswith("T00:00:00Z") and not t_.endswith("-01T00:00:00Z") for t_ in times), "at midnight"
    assert len(times) > len(set(times)), "several messages in one second"
    assert any(m["message_type"] in (3, 4) and len(m["to_members"]) > 1 for m in messages), "group messages"
    assert any(m["attachments"] for m in messages)
    assert any(m["message"] == "" for m in messages)
    assert any(any(ord(c) > 0xFFFF for c in m["message"]) for m in messages), "unicode beyond the BMP"
    assert any("undocumented_flag" in m for m in messages)
    assert {s["session_type"] for _, s in first if "session_type" in s} == {"user", "call_queue", "auto_receptionist"}


def test_a_million_messages_are_served_in_little_memory() -> None:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so it would report pytest's own size
    script = (
        "import json\n"
        "from tap_zoom_sms.emulator.data import Account, DatasetSpec\n"
        "import datetime as dt\n"
        "anchor = dt.datetime(2026, 6, 15, 12, tzinfo=dt.timezone.utc)  # the same data whatever the time of day\n"
        "account = Account(DatasetSpec(sessions=37_000, engagements=10, anchor=anchor))\n"
        "ids = [sid for _, sid in account._index]\n"
        "sample = sum(len(account.messages(sid)) for sid in ids[::100])\n"
        "peak = next(line for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
        "print(json.dumps({'messages': sample * 100, 'rss_mb': int(peak.split()[1]) / 1024}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)  # noqa: S603
    measured = json.loads(result.stdout)
    assert measured["messages"] > 1_000_000
    assert measured["rss_mb"] < 120  # an index of sessions, not a million messages


# --- admin ------------------------------------------------------------------------
def test_admin_adds_messages_now_and_deletes_sessions(client: EmulatorClient) -> None:
    account = client.em.account
    sid = account.sessions_between(account.start, dt.datetime.now(UTC), "all")[0]
    added = client.admin("messages", session_id=sid, count=2, text="late news")
    now = dt.datetime.now(UTC)
    window = {"from": fmt(now - dt.timedelta(minutes=5)), "to": fmt(now + dt.timedelta(seconds=1))}
    listed = all_pages(client, "/phone/sms/sessions", "sms_sessions", page_size=100, session_type="all", **window)
    assert sid in {s["session_id"] for s in listed}
    history = client.get(f"/phone/sms/sessions/{sid}", page_size=100, **window).json()["sms_histories"]
    assert {m["message_id"] for m in added} <= {m["message_id"] for m in history}
    fresh = client.admin("messages", text="hello")[0]
    assert fresh["session_id"] not in {s["session_id"] for s in listed}
    client.admin("sessions/delete", session_id=sid)
    gone = client.get(f"/phone/sms/sessions/{sid}", **window)
    assert (gone.status_code, gone.json()["code"]) == (404, 7013)
    one = client.get(f"/phone/sms/sessions/{fresh['session_id']}/messages/{fresh['message_id']}").json()
    assert one["message"] == "hello"
    stats = requests.get(f"{client.em.url}/_admin/stats", timeout=5).json()
    assert stats["requests"]["session_details"] >= 1
    assert stats["tokens_issued"] >= 1


def test_truth_export_streams_every_record(client: EmulatorClient) -> None:
    lines = requests.get(f"{client.em.url}/_admin/truth", timeout=30).text.splitlines()
    streams = {json.loads(line)["stream"] for line in lines}
    assert streams == {"sms_sessions", "sms_messages", "attachments", "contact_center_sms"}
    assert len(lines) == sum(1 for _ in client.em.account.truth())


def test_malformed_pages_on_chosen_routes_each_page_n_times(client: EmulatorClient) -> None:
    sid, messages = busiest_month(client.em.account)
    window = {"from": messages[0]["date_time"], "to": messages[-1]["date_time"], "page_size": 5}
    details = f"/phone/sms/sessions/{sid}"
    client.admin("config", malformed_page_routes=["session_details"], malformed_page_times=2, malformed_page_count=1)

    assert [client.get(details, **window).json()["sms_histories"] for _ in range(2)] == [None, None]
    first = client.get(details, **window).json()  # answered right from the third time
    assert len(first["sms_histories"]) == 5
    second = client.get(details, **window, next_page_token=first["next_page_token"]).json()
    assert len(second["sms_histories"]) == 5  # one page only (malformed_page_count)
    assert isinstance(client.get("/phone/sms/sessions", **window).json()["sms_sessions"], list)  # not this route
    assert client.em.stats.snapshot()["faults"]["malformed_page session_details"] == 2

    # a page with no records is answered right: malformed, it would lose nothing
    empty = {"from": "2000-01-01T00:00:00Z", "to": "2000-01-31T00:00:00Z", "page_size": 5}
    assert client.get(details, **empty).json()["sms_histories"] == []


@pytest.mark.parametrize("shape", ["missing", "string", "object", "token"])
def test_malformed_page_shapes(client: EmulatorClient, shape: str) -> None:
    sid, messages = busiest_month(client.em.account)
    window = {"from": messages[0]["date_time"], "to": messages[-1]["date_time"], "page_size": 5}
    client.admin("config", malformed_page_routes=["session_details"], malformed_page_shape=shape)

    body = client.get(f"/phone/sms/sessions/{sid}", **window).json()

    expected = {
        "missing": lambda: "sms_histories" not in body,
        "string": lambda: len(json.loads(body["sms_histories"])) == 5,
        "object": lambda: body["sms_histories"] == {},
        "token": lambda: isinstance(body["next_page_token"], int) and len(body["sms_histories"]) == 5,
    }
    assert expected[shape]()
    again = client.get(f"/phone/sms/sessions/{sid}", **window).json()
    assert len(again["sms_histories"]) == 5
    assert isinstance(again["next_page_token"], str)


def test_an_unknown_malformed_page_shape_is_refused(client: EmulatorClient) -> None:
    with pytest.raises(requests.HTTPError):
        client.admin("config", malformed_page_shape="nonsense")
