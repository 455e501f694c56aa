"""Page tokens that lead nowhere new end the run with one line, instead of looping for ever."""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from pathlib import Path

import pytest
import requests

from bench.runner import run_tap
from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.pagination import PagingLoopError, WindowPaginator
from tap_zoom_sms.windows import UTC, Window

ERROR = "tap-zoom-sms: error: "


@pytest.fixture
def emulator() -> t.Iterator[Emulator]:
    with Emulator(DatasetSpec(seed=13, sessions=80, engagements=2)) as em:
        yield em


@pytest.mark.parametrize(
    ("mode", "route", "path"),
    [
        ("repeat", "sessions", "/v2/phone/sms/sessions"),
        ("cycle", "sessions", "/v2/phone/sms/sessions"),
        ("cycle", "session_details", "/v2/phone/sms/sessions/"),
    ],
)
def test_circular_page_tokens_end_the_run_with_one_line(
    emulator: Emulator, tmp_path: Path, mode: str, route: str, path: str
) -> None:
    emulator.config.page_token_loop = mode
    emulator.config.page_token_loop_route = route
    config = emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0, page_size=1)

    run = run_tap(emulator, tmp_path, config)

    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith(ERROR)]
    assert len(errors) == 1, run.stderr[-2000:]
    assert f"Zoom's page tokens went round in a circle on GET {path}" in errors[0]
    assert ", window 20" in errors[0]  # the window is named
    assert emulator.stats.snapshot()["requests"][route] < 2000  # stopped, not looping


def _page(token: str, date: str | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps({"next_page_token": token, "sms_sessions": []}).encode()
    if date:
        response.headers["Date"] = date
    return response


WINDOWS = [
    Window(dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 2, 1, tzinfo=UTC)),
    Window(dt.datetime(2024, 2, 1, tzinfo=UTC), dt.datetime(2024, 2, 10, tzinfo=UTC)),
]


def test_tokens_that_never_repeat_stop_at_the_page_bound() -> None:
    paginator = WindowPaginator(iter(WINDOWS), lambda *_: None, "GET /v2/x", max_pages=3)
    paginator.advance(_page("a"))
    paginator.advance(_page("b"))
    with pytest.raises(PagingLoopError, match=r"more than 3 pages on GET /v2/x, window 2024-01-01T00:00:00Z"):
        paginator.advance(_page("c"))


def test_a_token_may_come_again_in_the_next_window_and_zoom_dates_cap_what_a_window_covers() -> None:
    done: list[tuple[Window, bool, dt.datetime]] = []
    paginator = WindowPaginator(iter(WINDOWS), lambda *args: done.append(args), "GET /v2/x")
    paginator.advance(_page("a"))
    paginator.advance(_page("", "Wed, 31 Jan 2024 10:00:00 GMT"))  # Zoom's clock: before the window's end
    paginator.advance(_page("a"))  # the same token, in another window: not a loop
    paginator.advance(_page("", "Sat, 10 Feb 2024 00:00:09 GMT"))  # after the window's end
    assert done == [
        (WINDOWS[0], False, dt.datetime(2024, 1, 31, 10, tzinfo=UTC)),
        (WINDOWS[1], True, WINDOWS[1].end),
    ]
    assert paginator.finished
