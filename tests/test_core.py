"""The SDK's standard tap and stream tests, run against the fake Zoom."""

from __future__ import annotations

import re
import typing as t

import pytest
import requests_mock
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_zoom_sms.tap import TapZoomSms
from tests.fakezoom import FakeZoom, base_config


def _account() -> FakeZoom:
    zoom = FakeZoom()
    zoom.add_session("s1")
    zoom.add_message("s1", "2024-02-03T04:05:06Z", attachments=2)
    zoom.add_message("s1", "2024-05-01T00:00:00Z")
    zoom.add_session("s2", "call_queue")
    zoom.add_message("s2", "2024-03-03T00:00:00Z", attachments=1)
    zoom.add_engagement("e1", "2024-04-04T04:04:04Z")
    return zoom


@pytest.fixture(autouse=True, scope="module")
def fake_zoom() -> t.Iterator[FakeZoom]:
    with requests_mock.Mocker(case_sensitive=True) as mocker:
        mocker.get(re.compile(r"https://file\.zoom\.test/.*"), content=b"file content")
        yield _account().install(mocker)


TestTapZoomSms = get_tap_test_class(
    tap_class=TapZoomSms,
    config=base_config(attachments_download_path="memory://sdk-suite"),  # every field of every schema filled
    suite_config=SuiteConfig(max_records_limit=50),
)
