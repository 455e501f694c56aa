"""Shared fixtures: a fake Zoom behind requests-mock, and a tap runner that captures output.

Also the tiers (fast, e2e: tests/tiers.py), set on each test as it is collected and checked as it runs,
and the units of work and their order for pytest-xdist (tests/scheduling.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import typing as t
from dataclasses import dataclass, field

import pytest

from tap_zoom_sms.tap import TapZoomSms
from tests import scheduling, tiers
from tests.fakezoom import FakeZoom, base_config

# the module-scoped `postgres` fixture (a throwaway cluster), for any test module that asks for it
pytest_plugins = ["tests.pg"]


@dataclass
class TapRun:
    """The Singer messages of one run."""

    messages: list[dict[str, t.Any]]
    error: BaseException | None = None
    records: dict[str, list[dict[str, t.Any]]] = field(default_factory=dict)
    states: list[dict[str, t.Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for message in self.messages:
            if message["type"] == "RECORD":
                self.records.setdefault(message["stream"], []).append(message["record"])
            elif message["type"] == "STATE":
                self.states.append(message["value"])

    def ids(self, stream: str, key: str) -> set[t.Any]:
        return {r[key] for r in self.records.get(stream, [])}

    @property
    def last_state(self) -> dict[str, t.Any] | None:
        return self.states[-1] if self.states else None


def run_tap(config: dict[str, t.Any], state: dict | None = None, *, expect_error: bool = False) -> TapRun:
    """Run the tap in-process and parse what it writes to stdout."""
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8")
    error = None
    with contextlib.redirect_stdout(out):
        try:
            TapZoomSms(config=config, state=state, validate_config=True).sync_all()
        except Exception as exc:
            if not expect_error:
                raise
            error = exc
        finally:
            out.flush()
    if expect_error and error is None:
        pytest.fail("the run was expected to fail")
    return TapRun([json.loads(line) for line in raw.getvalue().decode().splitlines() if line.strip()], error)


@pytest.fixture
def zoom(requests_mock: t.Any) -> FakeZoom:
    """A fake Zoom account with no data, installed on requests-mock."""
    return FakeZoom().install(requests_mock)


@pytest.fixture
def config() -> dict[str, t.Any]:
    return base_config()


@pytest.fixture(autouse=True)
def no_retry_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retry at once, remembering the waits asked for: tests check what is retried and how long."""
    from tap_zoom_sms import retries

    waits: list[float] = []
    monkeypatch.setattr(retries, "sleep", waits.append)
    return waits


def pytest_configure(config: pytest.Config) -> None:
    for marker in tiers.MARKERS:
        config.addinivalue_line("markers", marker)
    tiers.install_watch()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier; put the slowest modules first (tests/scheduling.py)."""
    for item in items:
        item.add_marker(tiers.tier_of(item))
    scheduling.slowest_first(items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: t.Any) -> scheduling.UnitScheduling | None:
    """``--dist loadfile`` (scripts/test's) by the units of work of tests/scheduling.py rather than by file."""
    if config.getoption("dist") != "loadfile":
        return None
    return scheduling.UnitScheduling(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[t.Any]) -> t.Generator[None, t.Any, t.Any]:
    return (yield from tiers.fixture_setup(fixturedef))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> t.Generator[None, t.Any, t.Any]:
    return (yield from tiers.test_phase(item, "setup"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> t.Generator[None, t.Any, t.Any]:
    return (yield from tiers.test_phase(item, "call"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> t.Generator[None, t.Any, t.Any]:
    return (yield from tiers.test_phase(item, "teardown"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Escape lone surrogates in captured output: xdist cannot send them to its controller, and the
    malformed-text tests log what Zoom sent."""
    report.sections = [
        (title, text.encode("utf-8", "backslashreplace").decode("utf-8")) for title, text in report.sections
    ]
