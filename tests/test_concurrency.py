"""How many sessions' messages are fetched at once: sized from the Medium limit unless the settings say."""

from __future__ import annotations

import collections
import typing as t

import pytest

from bench.runner import KEYS, truth
from tap_zoom_sms import prefetch
from tap_zoom_sms.concurrency import (
    MAX_WORKERS,
    UNLIMITED_WORKERS,
    default_workers,
    message_workers,
)
from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.errors import SettingsError
from tap_zoom_sms.ratelimit import HEADROOM
from tap_zoom_sms.streams import phone
from tap_zoom_sms.tap import TapZoomSms
from tests.conftest import run_tap
from tests.fakezoom import base_config

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

#: Zoom's Medium limits: Pro, Business, and the higher ones Zoom grants on request.
ZOOM_LIMITS = (10, 20, 40)


@pytest.mark.parametrize(("limit", "workers"), [(10, 15), (20, 30), (0, UNLIMITED_WORKERS), (0.5, 1), (100, 64)])
def test_the_default_is_the_limit_times_the_latency_budget(limit: float, workers: int) -> None:
    assert default_workers(limit) == workers


@pytest.mark.parametrize("limit", ZOOM_LIMITS)
@pytest.mark.parametrize("latency", [0.05, 0.15, 0.5, 1.0])
def test_the_default_holds_zooms_limits_up_to_one_second_a_request(limit: int, latency: float) -> None:
    paced = limit * HEADROOM
    # Little's law, with a fifth more for the client's own time per request and the list's requests
    assert default_workers(limit) >= paced * latency * 1.2
    # the queued half of the read-ahead outlasts a list page's latency (see concurrency.py)
    assert default_workers(limit) / paced > latency


def test_an_explicit_setting_wins_over_the_default() -> None:
    assert message_workers({"medium_requests_per_second": 20, "max_concurrent_requests": 3}) == 3
    assert message_workers({"medium_requests_per_second": 20, "max_concurrent_requests": 1}) == 1
    assert message_workers({"medium_requests_per_second": 20}) == 30


def test_the_tap_sizes_from_its_settings_and_the_schema_has_no_fixed_default() -> None:
    schema = TapZoomSms.config_jsonschema["properties"]["max_concurrent_requests"]
    assert "default" not in schema
    assert TapZoomSms(config=base_config(medium_requests_per_second=10)).message_workers == 15
    assert TapZoomSms(config=base_config(medium_requests_per_second=10)).config.get("max_concurrent_requests") is None
    assert TapZoomSms(config=base_config(max_concurrent_requests=5)).message_workers == 5


@pytest.mark.parametrize("value", [0, MAX_WORKERS + 1])
def test_an_explicit_setting_out_of_range_is_refused(value: int) -> None:
    with pytest.raises(SettingsError, match="max_concurrent_requests must be 1 to 64"):
        TapZoomSms(config=base_config(max_concurrent_requests=value), validate_config=True)


class RecordingPrefetcher(prefetch.Prefetcher):
    """A prefetcher that remembers its size and the most sessions ever submitted and not yet taken."""

    instances: t.ClassVar[list[RecordingPrefetcher]] = []

    def __init__(self, make_fetcher: prefetch.Fetcher, workers: int) -> None:
        super().__init__(make_fetcher, workers)
        self.workers = workers
        self.outstanding = 0
        self.peak = 0
        self.instances.append(self)

    def submit(self, key: str, context: Context) -> None:
        self.outstanding += 1
        self.peak = max(self.peak, self.outstanding)
        super().submit(key, context)

    def take(self, key: str) -> list[dict] | None:
        self.outstanding -= 1
        return super().take(key)


@pytest.mark.parametrize(("settings", "workers"), [({}, 60), ({"max_concurrent_requests": 4}, 4)])
def test_a_run_fetches_with_the_sized_workers_and_a_bounded_read_ahead(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, int], workers: int
) -> None:
    monkeypatch.setattr(phone, "Prefetcher", RecordingPrefetcher)
    RecordingPrefetcher.instances = []
    with Emulator(DatasetSpec(seed=12, sessions=150, engagements=0, months=1, busy_share=0.0)) as emulator:
        config = emulator.tap_config(medium_requests_per_second=40, heavy_requests_per_second=0, **settings)
        run = run_tap(config)
        expected = truth(emulator)
    got = collections.defaultdict(set)
    for stream, records in run.records.items():
        got[stream] = {tuple(r[k] for k in KEYS[stream]) for r in records}
    assert got["sms_messages"] == expected["sms_messages"]
    assert got["sms_sessions"] == expected["sms_sessions"]
    (used,) = RecordingPrefetcher.instances
    assert used.workers == workers
    # the sessions held in memory are bounded by the read-ahead, not by the account
    assert used.peak <= 2 * workers + 1
