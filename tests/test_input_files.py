"""Broken or odd config, state and catalog files, settings from the environment, and unknown settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.tap import TapZoomSms
from tests.conftest import run_tap
from tests.fakezoom import base_config

ERROR = "tap-zoom-sms: error: "
#: A token endpoint nobody listens on: a run that sends any request fails with another line.
OFFLINE = "http://127.0.0.1:9/never"
GOOD_SESSIONS = {"replication_key": "last_access_time", "replication_key_value": "2024-03-01T00:00:00Z"}


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the tap's command line in ``tmp_path`` (files named relative to it)."""
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "tap_zoom_sms", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
    )


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(ERROR)]
    assert len(errors) == 1, result.stderr[-2000:]
    assert '"RECORD"' not in result.stdout
    return errors[0].removeprefix(ERROR)


@pytest.fixture
def offline_config(tmp_path: Path) -> str:
    """A valid config whose token endpoint nobody listens on: nothing may be requested."""
    (tmp_path / "config.json").write_text(json.dumps(base_config(oauth_url="http://127.0.0.1:9/never")))
    return "config.json"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "config file config.json does not exist"),
        ("", "config file config.json is empty"),
        ('{"start_date": "2024-01-01T00:00:00Z",', "config file config.json is not valid JSON (Expecting"),
        ("[1, 2]", "config file config.json must hold a JSON object, not an array"),
    ],
)
def test_a_missing_or_broken_config_file(tmp_path: Path, content: str | None, expected: str) -> None:
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    assert one_error(cli(tmp_path, "--config", "config.json")).startswith(expected)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("", "state file state.json is empty"),
        ('{"bookmarks": {"sms_sessions": {"replication_key_value": "2024-', "state file state.json is not valid JSON"),
        ("[]", "state file state.json must hold a JSON object, not an array"),
        ('"2024-01-01"', "state file state.json must hold a JSON object, not a string"),
        ({"bookmarks": []}, "state file state.json: bookmarks must be an object, not an array"),
        ({"bookmarks": {"sms_sessions": "2024-03-01"}}, "bookmarks of sms_sessions must be an object, not a string"),
        (
            {"sms_sessions": GOOD_SESSIONS},  # the old flat form
            'not a Singer state: unexpected key(s) sms_sessions; expected {"bookmarks": ...} (stream bookmarks belong',
        ),
        (
            {"bookmarks": {"sms_sessions": {**GOOD_SESSIONS, "replication_key_value": "not-a-date"}}},
            "bookmarks of sms_sessions: replication_key_value 'not-a-date' is not a date-time",
        ),
        (
            {"bookmarks": {"sms_sessions": {**GOOD_SESSIONS, "replication_key_value": 12345}}},
            "bookmarks of sms_sessions: replication_key_value must be a date-time string, not a number (12345)",
        ),
        (
            {"bookmarks": {"sms_sessions": {**GOOD_SESSIONS, "messages_since": "last tuesday"}}},
            "bookmarks of sms_sessions: messages_since 'last tuesday' is not a date-time",
        ),
        (
            {"bookmarks": {"sms_sessions": {"partitions": [{"context": {"user_id": "me"}, "messages_since": 7}]}}},
            "(partition {'user_id': 'me'}): messages_since must be a date-time string",
        ),
        (
            {"bookmarks": {"sms_sessions": {"partitions": [{"context": {"user_id": "me"}}] * 2}}},
            "bookmarks of sms_sessions: the partition {'user_id': 'me'} is listed twice",
        ),
        (
            {"bookmarks": {"attachments": {"failed_downloads": [{"session_id": "s"}]}}},
            "bookmarks of attachments: failed_downloads must be a list of {session_id, message_id, attachment_id}",
        ),
    ],
)
def test_a_broken_state_file_ends_before_any_request(
    tmp_path: Path, offline_config: str, state: t.Any, expected: str
) -> None:
    (tmp_path / "state.json").write_text(state if isinstance(state, str) else json.dumps(state))
    line = one_error(cli(tmp_path, "--config", offline_config, "--state", "state.json"))
    assert line.startswith("state file state.json")
    assert expected in line


def test_a_missing_state_or_catalog_file_is_named(tmp_path: Path, offline_config: str) -> None:
    assert one_error(cli(tmp_path, "--config", offline_config, "--state", "gone.json")) == (
        "state file gone.json does not exist"
    )
    (tmp_path / "catalog.json").write_text("{")
    assert one_error(cli(tmp_path, "--config", offline_config, "--catalog", "catalog.json")).startswith(
        "catalog file catalog.json is not valid JSON"
    )


@pytest.fixture(scope="module")
def emulator() -> t.Iterator[Emulator]:
    with Emulator(DatasetSpec(seed=41, sessions=30, engagements=10)) as em:
        yield em


def write_config(tmp_path: Path, em: Emulator, **overrides: t.Any) -> str:
    config = em.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0, **overrides)
    (tmp_path / "config.json").write_text(json.dumps(config))
    return "config.json"


def test_the_whole_state_is_checked_before_any_record(tmp_path: Path, emulator: Emulator) -> None:
    """A bad bookmark of a stream synced late fails before the streams synced first write anything."""
    state = {
        "bookmarks": {
            "contact_center_sms": {"replication_key": "start_time", "replication_key_value": "2024-01-01T00:00:00Z"},
            "sms_sessions": {**GOOD_SESSIONS, "messages_since": "not-a-date"},
        }
    }
    (tmp_path / "state.json").write_text(json.dumps(state))
    emulator.stats.reset()
    one_error(cli(tmp_path, "--config", write_config(tmp_path, emulator), "--state", "state.json"))
    assert emulator.stats.snapshot()["total_requests"] == 0


@pytest.mark.parametrize("stream", ["sms_sessions", "contact_center_sms"])
def test_a_bookmark_in_the_future_is_refused(tmp_path: Path, emulator: Emulator, stream: str) -> None:
    state = {"bookmarks": {stream: {"replication_key_value": "2030-01-01T00:00:00Z"}}}
    (tmp_path / "state.json").write_text(json.dumps(state))
    emulator.stats.reset()
    line = one_error(cli(tmp_path, "--config", write_config(tmp_path, emulator), "--state", "state.json"))
    assert line.startswith(
        f"state file state.json: bookmark(s) in the future: {stream} replication_key_value 2030-01-01"
    )
    assert "Zoom's clock says 20" in line
    assert emulator.stats.snapshot()["total_requests"] == 0  # refused before any data request


@pytest.mark.parametrize("wrapper", ["STATE message", "meltano state get"])
def test_a_pasted_state_message_is_unwrapped(tmp_path: Path, emulator: Emulator, wrapper: str) -> None:
    config = write_config(tmp_path, emulator)
    first = run_tap(json.loads((tmp_path / config).read_text()))
    state = first.last_state
    pasted = {"type": "STATE", "value": state} if wrapper == "STATE message" else {"singer_state": state}
    (tmp_path / "state.json").write_text(json.dumps(pasted))

    result = cli(tmp_path, "--config", config, "--state", "state.json")

    assert result.returncode == 0, result.stderr[-2000:]
    assert "state file state.json holds " in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines() if '"RECORD"' in line]
    sessions = [r for r in records if r["stream"] == "sms_sessions"]
    assert len(sessions) < len(first.records["sms_sessions"]) / 3  # resumed from the bookmark, not from start_date


def test_an_unknown_setting_is_named_with_the_closest_known_one(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator, page_szie=10)
    result = cli(tmp_path, "--config", config)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Unknown setting 'page_szie' is ignored (did you mean 'page_size'?)" in result.stderr


ENV_SETTINGS = {
    "TAP_ZOOM_SMS_ACCOUNT_ID": "acct",  # string
    "TAP_ZOOM_SMS_CLIENT_ID": "client",
    "TAP_ZOOM_SMS_CLIENT_SECRET": "secret",
    "TAP_ZOOM_SMS_START_DATE": "2024-01-01T00:00:00Z",  # date-time
    "TAP_ZOOM_SMS_MEDIUM_REQUESTS_PER_SECOND": "20",  # number, whole
    "TAP_ZOOM_SMS_HEAVY_REQUESTS_PER_SECOND": "7.5",  # number
    "TAP_ZOOM_SMS_PAGE_SIZE": "50",  # integer
    "TAP_ZOOM_SMS_USER_IDS": '["me", "a@example.com"]',  # array (JSON)
    "TAP_ZOOM_SMS_FLATTENING_ENABLED": "true",  # boolean (an SDK setting)
    "TAP_ZOOM_SMS_FLATTENING_MAX_DEPTH": "2",
    "TAP_ZOOM_SMS_STREAM_MAPS": '{"sms_messages": {"message": null}}',  # object
}


def test_every_kind_of_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV_SETTINGS.items():
        monkeypatch.setenv(name, value)
    config = TapZoomSms(config={}, parse_env_config=True, validate_config=True).config
    assert config["account_id"] == "acct"
    assert config["start_date"] == "2024-01-01T00:00:00Z"
    assert config["medium_requests_per_second"] == 20
    assert config["heavy_requests_per_second"] == 7.5
    assert config["page_size"] == 50
    assert config["user_ids"] == ["me", "a@example.com"]
    assert config["flattening_enabled"] is True
    assert config["flattening_max_depth"] == 2
    assert config["stream_maps"] == {"sms_messages": {"message": None}}


def test_a_run_configured_by_the_environment_alone(tmp_path: Path, emulator: Emulator) -> None:
    env = {f"TAP_ZOOM_SMS_{k.upper()}": str(v) for k, v in emulator.tap_config().items()}
    env["TAP_ZOOM_SMS_MEDIUM_REQUESTS_PER_SECOND"] = "20"
    result = cli(tmp_path, "--config", "ENV", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"RECORD"' in result.stdout


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("TAP_ZOOM_SMS_PAGE_SIZE", "fifty", "environment variable TAP_ZOOM_SMS_PAGE_SIZE='fifty' is not an integer"),
        (
            "TAP_ZOOM_SMS_MEDIUM_REQUESTS_PER_SECOND",
            "fast",
            "TAP_ZOOM_SMS_MEDIUM_REQUESTS_PER_SECOND='fast' is not a number",
        ),
        ("TAP_ZOOM_SMS_FLATTENING_ENABLED", "maybe", "TAP_ZOOM_SMS_FLATTENING_ENABLED='maybe' is not a boolean"),
        ("TAP_ZOOM_SMS_STREAM_MAPS", "{oops", "environment variable TAP_ZOOM_SMS_STREAM_MAPS is not valid JSON"),
    ],
)
def test_a_bad_environment_value_names_its_variable(tmp_path: Path, name: str, value: str, expected: str) -> None:
    env = {k: v for k, v in ENV_SETTINGS.items() if k != name}
    env |= {name: value, "TAP_ZOOM_SMS_OAUTH_URL": "http://127.0.0.1:9/never"}
    assert expected in one_error(cli(tmp_path, "--config", "ENV", env=env))


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_rate_that_is_not_finite_is_refused_before_any_request(tmp_path: Path, value: str) -> None:
    """``float()`` reads these as numbers; the limiter cannot pace by them (it was a traceback mid-run)."""
    env = {**ENV_SETTINGS, "TAP_ZOOM_SMS_MEDIUM_REQUESTS_PER_SECOND": value, "TAP_ZOOM_SMS_OAUTH_URL": OFFLINE}
    line = one_error(cli(tmp_path, "--config", "ENV", env=env))
    assert line == (
        f"invalid settings: medium_requests_per_second must be 0 (no limit) or 0.01 to 1000, not {float(value)!r}"
    )
