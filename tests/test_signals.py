"""SIGTERM and SIGINT stop a run at once, whatever is in flight, with 143 or 130 and one line."""

from __future__ import annotations

import signal
import typing as t
from pathlib import Path

import pytest

from bench.runner import Run, run_tap
from tap_zoom_sms.emulator import DatasetSpec, Emulator

#: Far longer than any wait the tap may add after a signal: a run still waiting for its
#: in-flight request would end only after this.
HANG_MS = 600_000
#: A generous bound on the time from the signal to the exit (the tap takes well under a second).
STOPS_WITHIN = 30
TERM = signal.SIGTERM


@pytest.fixture
def emulator() -> t.Iterator[Emulator]:
    with Emulator(DatasetSpec(seed=23, sessions=60, engagements=5)) as em:
        yield em


def arrived(em: Emulator, name: str, count: int = 1) -> t.Callable[[], bool]:
    return lambda: em.stats.snapshot()["arrivals"].get(name, 0) >= count


def assert_interrupted(run: Run, signum: int) -> None:
    assert run.returncode == 128 + signum, run.stderr[-2000:]
    assert run.stop_seconds is not None
    assert run.stop_seconds < STOPS_WITHIN
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("tap-zoom-sms: ")]
    assert lines == [
        f"tap-zoom-sms: interrupted by {signal.Signals(signum).name}: stopped; "
        "the next run resumes from the last STATE written"
    ]
    assert not run.cut_short  # no half-written message for the target


def test_sigterm_while_message_requests_hang(emulator: Emulator, tmp_path: Path) -> None:
    emulator.config.endpoint_latency_ms = {"session_details": HANG_MS}
    config = emulator.tap_config(medium_requests_per_second=0, request_timeout=900)

    run = run_tap(emulator, tmp_path, config, stop_when=arrived(emulator, "session_details", 4), stop_signal=TERM)

    assert_interrupted(run, signal.SIGTERM)
    states = [m for m in run.messages if m["type"] == "STATE"]
    assert states  # the STATE of completed work (the session list's, and Contact Center's) was written


def test_sigint_while_retrying_server_faults(emulator: Emulator, tmp_path: Path) -> None:
    emulator.config.fault_rate = 1.0
    emulator.config.fault_kinds = ["http_500"]
    config = emulator.tap_config(medium_requests_per_second=0)

    run = run_tap(
        emulator, tmp_path, config, stop_when=arrived(emulator, "contact_center_sms", 3), stop_signal=signal.SIGINT
    )

    assert_interrupted(run, signal.SIGINT)
    assert "Retrying GET" in run.stderr


def test_sigterm_during_a_token_request(emulator: Emulator, tmp_path: Path) -> None:
    emulator.config.endpoint_latency_ms = {"token": HANG_MS}
    config = emulator.tap_config(request_timeout=900)

    run = run_tap(emulator, tmp_path, config, stop_when=arrived(emulator, "token"), stop_signal=TERM)

    assert_interrupted(run, signal.SIGTERM)
    assert not [m for m in run.messages if m["type"] == "RECORD"]


def test_sigterm_while_files_download(emulator: Emulator, tmp_path: Path) -> None:
    emulator.config.endpoint_latency_ms = {"file_download": HANG_MS}
    config = emulator.tap_config(
        medium_requests_per_second=0, request_timeout=900, attachments_download_path=str(tmp_path / "files")
    )

    run = run_tap(emulator, tmp_path, config, stop_when=arrived(emulator, "file_download", 2), stop_signal=TERM)

    assert_interrupted(run, signal.SIGTERM)
