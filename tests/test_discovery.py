"""Message discovery: a backfill reads only the months that hold messages, checks Zoom's lists, and falls back."""

from __future__ import annotations

import collections
import datetime as dt
import math
import signal
import typing as t
from pathlib import Path

import pytest

from bench.fault_suite import stopped_runs
from bench.runner import KEYS, truth
from tap_zoom_sms.discovery.boundary import BoundaryMessages
from tap_zoom_sms.discovery.lists import DiscoveryFellShortError
from tap_zoom_sms.discovery.months import Discovery
from tap_zoom_sms.discovery.sample import sample_size
from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.emulator.data import ME_OWNER, _id
from tap_zoom_sms.windows import Window, month_windows, parse_time
from tests.conftest import TapRun, run_tap
from tests.emulator_client import EmulatorClient
from tests.test_user_level import owned_by, user_config

MONTHS = 13


@pytest.fixture
def emulator() -> t.Iterator[Emulator]:
    with Emulator(DatasetSpec(seed=9, sessions=120, engagements=5, months=MONTHS)) as em:
        yield em


def unpaced(em: Emulator, **overrides: t.Any) -> dict[str, t.Any]:
    return em.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0, **overrides)


def got_everything(em: Emulator, run: TapRun) -> None:
    expected = truth(em)
    for stream in ("sms_sessions", "sms_messages", "attachments"):
        got = {tuple(record[k] for k in KEYS[stream]) for record in run.records.get(stream, [])}
        assert expected[stream] <= got, stream


def session_months(em: Emulator, start: dt.datetime) -> dict[tuple[str, dt.datetime], int]:
    """Messages per (session, window) of the run's calendar windows."""
    windows = list(month_windows(start))
    counts: dict[tuple[str, dt.datetime], int] = collections.Counter()
    for stream, record in em.account.truth():
        if stream == "sms_messages":
            when = parse_time(record["date_time"])
            for window in windows:
                if window.start <= when <= window.end:
                    counts[record["session_id"], window.start] += 1
                    break
    return counts


def test_a_backfill_reads_details_only_for_months_with_messages(emulator: Emulator) -> None:
    config = unpaced(emulator)
    run = run_tap(config)
    requests = emulator.stats.requests("session_details")

    got_everything(emulator, run)
    assert len({m["message_id"] for m in run.records["sms_messages"]}) == len(run.records["sms_messages"])
    needed = session_months(emulator, parse_time(config["start_date"]))
    minimum = sum(math.ceil(n / 100) for n in needed.values())
    listed = len(emulator.stats.requests("sessions"))
    assert len(requests) <= minimum * 1.1 + MONTHS * sample_size(0) + 2  # the sample check's walks
    windows = len(list(month_windows(parse_time(config["start_date"]))))
    # a page a month by last message, by sent and by received, and the sample's scan of the latest months
    assert listed <= 3 * windows + 2

    emulator.stats.reset()
    exhaustive = run_tap(unpaced(emulator, message_discovery="exhaustive"))
    got_everything(emulator, exhaustive)
    assert len(emulator.stats.requests("session_details")) > 2 * len(requests)  # today's walk


def test_filters_that_under_report_are_caught_and_the_run_reads_exhaustively(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.config.activity_under_report = 0.3
    run = run_tap(unpaced(emulator))

    got_everything(emulator, run)
    warnings = [r.getMessage() for r in caplog.records if "activity lists missed session" in r.getMessage()]
    assert len(warnings) == 1
    assert "(its last message is there)" in warnings[0] or "exhaustive walk" in warnings[0]
    assert "reading every month of every session instead (message_discovery: exhaustive)" in warnings[0]
    assert run.last_state is not None
    assert "message_discovery" not in run.last_state["bookmarks"]["sms_sessions"]  # reached the present


def test_gaps_only_a_walk_can_see_are_caught_by_the_sample(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The lists keep each session's last month, so the free check sees nothing; the sample's walk does."""
    emulator.config.activity_under_report = 0.5
    emulator.config.activity_under_report_spares_last = True
    run = run_tap(unpaced(emulator))

    got_everything(emulator, run)
    warnings = [r.getMessage() for r in caplog.records if "activity lists missed session" in r.getMessage()]
    assert len(warnings) == 1
    assert "the exhaustive walk of a sample found messages" in warnings[0]


@pytest.mark.parametrize("workers", [1, 4])
def test_no_bookmark_passes_a_month_before_the_sample_has_checked_it(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """The sample is walked beside the months: a month's bookmark waits for its check.

    Were a bookmark committed past a month whose lists the walk later finds short,
    a run killed then would resume after that month, and its missed messages be lost.
    """
    emulator.config.activity_under_report = 0.5
    emulator.config.activity_under_report_spares_last = True
    failed: list[dt.datetime] = []
    check_sample = Discovery.check_sample

    def recording(self: Discovery, window: Window, sampled: frozenset[str]) -> None:
        try:
            check_sample(self, window, sampled)
        except DiscoveryFellShortError:
            failed.append(window.start)
            raise

    monkeypatch.setattr(Discovery, "check_sample", recording)
    run = run_tap(unpaced(emulator, max_concurrent_requests=workers))

    got_everything(emulator, run)
    assert failed, "the sample check never fell short"
    for state in run.states:
        bookmark = state["bookmarks"].get("sms_sessions", {})
        if bookmark.get("message_discovery") == "exhaustive":
            break  # the fallback: from here the run reads every month again
        if "replication_key_value" in bookmark:
            assert parse_time(bookmark["replication_key_value"]) <= failed[0]


def test_a_fallback_is_kept_in_the_state_until_a_run_completes(emulator: Emulator) -> None:
    emulator.config.activity_under_report = 0.3
    end_date = (emulator.account.anchor - dt.timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%SZ")
    run = run_tap(unpaced(emulator, end_date=end_date))
    flagged = [s for s in run.states if s["bookmarks"].get("sms_sessions", {}).get("message_discovery") == "exhaustive"]
    assert flagged  # the fallback was written before the run read again
    # a backfill that stops at an end_date in the past keeps it, so a resumed run stays exhaustive
    assert run.last_state["bookmarks"]["sms_sessions"]["message_discovery"] == "exhaustive"


def test_a_backfill_killed_at_any_point_resumes_with_nothing_lost(emulator: Emulator, tmp_path: Path) -> None:
    config = unpaced(emulator)
    runs = stopped_runs(emulator, tmp_path, config, signal.SIGKILL)
    got: dict[str, set] = collections.defaultdict(set)
    for run in runs:
        for stream, keys in run.kept()[0].items():
            got[stream] |= keys
    expected = truth(emulator)
    assert [r.returncode for r in runs] == [-9, -9, 0]
    for stream in expected:
        assert expected[stream] <= got[stream], stream


def test_an_incremental_run_within_a_month_pays_nothing_for_discovery(emulator: Emulator) -> None:
    first = run_tap(unpaced(emulator))
    emulator.stats.reset()
    run_tap(unpaced(emulator), state=first.last_state)
    filters = {q["filter_type"][0] for q in emulator.stats.requests("sessions")}
    assert filters <= {"last_message_time"}


def test_a_message_on_a_month_boundary_is_written_once() -> None:
    boundary = BoundaryMessages()
    first = {"message_id": "m1", "date_time": "2024-02-01T00:00:00Z"}
    assert boundary.first_sighting(first)
    assert not boundary.first_sighting(dict(first))  # read again with the next month
    assert boundary.first_sighting({"message_id": "m2", "date_time": "2024-02-01T00:00:00Z"})
    assert boundary.first_sighting({"message_id": "m3", "date_time": "2024-02-15T00:00:00Z"})
    assert boundary.first_sighting({"message_id": "m3", "date_time": "2024-02-15T00:00:00Z"})  # only boundaries


@pytest.mark.parametrize("order", ["falls-short-first", "falls-short-last"])
def test_a_fallback_in_one_users_list_is_a_fallback_for_every_user(
    caplog: pytest.LogCaptureFixture, order: str
) -> None:
    """Zoom's lists under-report for the account, though only one user's check may see it.

    With ``me`` read first, its check falls short and the other user, read after, is
    read exhaustively at once. Read the other way round, the other user was read with
    the lists before anything fell short: the next run reads it again, exhaustively.
    """
    with Emulator(DatasetSpec(seed=9, sessions=90, engagements=0, users=4, months=8)) as em:
        em.config.activity_under_report = 0.5
        em.config.activity_under_report_spares_last = True
        other = _id("u2", length=22)
        expected = owned_by(em, {ME_OWNER, other})["messages"]
        users = ["me", other] if order == "falls-short-first" else [other, "me"]
        config = user_config(em, access_token=EmulatorClient(em).token(), user_ids=users)
        first = run_tap(config)
        assert first.last_state is not None
        partitions = {p["context"]["user_id"]: p for p in first.last_state["bookmarks"]["sms_sessions"]["partitions"]}
        flagged = partitions[other].get("message_discovery")  # (the next run takes the state over, and edits it)
        second = run_tap(config, state=first.last_state)
    fell_short = [r.getMessage() for r in caplog.records if "activity lists missed session" in r.getMessage()]
    read_again = [r.getMessage() for r in caplog.records if "the next run reads them again" in r.getMessage()]
    assert fell_short
    if order == "falls-short-first":
        assert first.ids("sms_messages", "message_id") >= expected
        assert not read_again
    else:
        assert len(read_again) == 1
        assert other in read_again[0]
        assert flagged == "exhaustive"
        assert first.ids("sms_messages", "message_id") | second.ids("sms_messages", "message_id") >= expected
