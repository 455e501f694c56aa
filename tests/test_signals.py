"""SIGTERM and SIGINT stop a run at once, whatever is in flight, with 143 or 130 and one line."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import threading
import time
import typing as t
from pathlib import Path

import pytest

from bench.runner import TAP, Run, run_tap, truth
from tap_zoom_sms.emulator import DatasetSpec, Emulator

#: Far longer than any wait the tap may add after a signal: a run still waiting for its
#: in-flight request would end only after this.
HANG_MS = 600_000
#: A generous bound on the time from the signal to the exit (the tap takes well under a second).
STOPS_WITHIN = 30
TERM = signal.SIGTERM
#: If what a test waits for never happens, the signal is sent after this anyway (no test hangs).
SAFETY = 120
#: What orchestrators give a stopped task before SIGKILL, and what the tap promises even with stdout blocked.
REQUIRED_WITHIN = 5


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
    # the exhaustive walk: every details request comes from the message workers
    config = emulator.tap_config(medium_requests_per_second=0, request_timeout=900, message_discovery="exhaustive")
    output: list[bytes] = []
    hung_after: list[int] = []

    def hang_once_a_window_is_committed() -> bool:
        """Once the run has written a STATE (a window committed), hang every details request; stop at 4 in flight."""
        details = emulator.stats.snapshot()["arrivals"].get("session_details", 0)
        if not hung_after and b'"type":"STATE"' in b"".join(output).replace(b" ", b""):
            emulator.config.endpoint_latency_ms = {"session_details": HANG_MS}
            hung_after.append(details)
        return bool(hung_after) and details >= hung_after[0] + 4

    run = run_tap(
        emulator,
        tmp_path,
        config,
        kill_after_seconds=SAFETY,
        stop_when=hang_once_a_window_is_committed,
        stop_signal=TERM,
        output=output,
    )

    assert hung_after  # the signal came while four details requests hung
    assert_interrupted(run, signal.SIGTERM)
    kept, state = run.kept()
    assert state is not None  # the STATE of completed work (the windows of the session list committed)
    # and it is one to resume from: what a target committed, and the run from it, hold every message
    emulator.config.endpoint_latency_ms = {}
    resumed = run_tap(emulator, tmp_path, config, state)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    again, _ = resumed.kept()
    expected = truth(emulator)
    assert kept["sms_messages"] | again["sms_messages"] == expected["sms_messages"]
    assert kept["sms_messages"] < expected["sms_messages"]  # the first run was stopped short


def test_sigterm_while_the_discovery_sample_is_walked(emulator: Emulator, tmp_path: Path) -> None:
    """A backfill's sample check walks sessions from the main thread: a request of it hangs."""
    emulator.config.endpoint_latency_ms = {"session_details": HANG_MS}
    config = emulator.tap_config(medium_requests_per_second=0, request_timeout=900)

    run = run_tap(
        emulator,
        tmp_path,
        config,
        kill_after_seconds=SAFETY,
        stop_when=arrived(emulator, "session_details"),
        stop_signal=TERM,
    )

    assert_interrupted(run, signal.SIGTERM)


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

    run = run_tap(
        emulator, tmp_path, config, kill_after_seconds=SAFETY, stop_when=arrived(emulator, "token"), stop_signal=TERM
    )

    assert_interrupted(run, signal.SIGTERM)
    assert not [m for m in run.messages if m["type"] == "RECORD"]


def test_sigterm_while_files_download(emulator: Emulator, tmp_path: Path) -> None:
    emulator.config.endpoint_latency_ms = {"file_download": HANG_MS}
    config = emulator.tap_config(
        medium_requests_per_second=0, request_timeout=900, attachments_download_path=str(tmp_path / "files")
    )

    run = run_tap(
        emulator,
        tmp_path,
        config,
        kill_after_seconds=SAFETY,
        stop_when=arrived(emulator, "file_download", 2),
        stop_signal=TERM,
    )

    assert_interrupted(run, signal.SIGTERM)


def stdout_blocked(pid: int, write_end: int) -> bool:
    """Say whether the pipe is full and the tap's main thread is blocked writing to it.

    The pipe is full when its write end does not poll writable; the kernel names the
    wait the main thread sleeps in (``/proc/PID/wchan``) where it shows it.
    """
    poll = select.poll()
    poll.register(write_end, select.POLLOUT)
    if poll.poll(0):
        return False
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False
    return wchan in ("", "0") or "pipe_write" in wchan  # "0": the kernel does not say


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_run_while_stdout_is_blocked(emulator: Emulator, tmp_path: Path, signum: int) -> None:
    """A target that stops reading leaves the tap blocked on a full pipe: the signal still ends it in time."""
    config = emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0)
    (tmp_path / "config.json").write_text(json.dumps(config))
    read_end, write_end = os.pipe()  # nobody reads it
    process = subprocess.Popen(  # noqa: S603
        [TAP, "--config", str(tmp_path / "config.json")], stdout=write_end, stderr=subprocess.PIPE
    )
    stderr: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        deadline = time.monotonic() + SAFETY
        while not stdout_blocked(process.pid, write_end) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert process.poll() is None, "the run ended before its output filled the pipe"
        assert stdout_blocked(process.pid, write_end)
        signalled = time.monotonic()
        process.send_signal(signum)
        try:
            process.wait(timeout=SAFETY)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stopped = time.monotonic() - signalled
    finally:
        os.close(read_end)
        os.close(write_end)
    reader.join(timeout=30)
    text = b"".join(stderr).decode(errors="replace")

    assert process.returncode == 128 + signum, text[-2000:]
    assert stopped < REQUIRED_WITHIN
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.startswith("tap-zoom-sms: ")]
    assert lines == [
        f"tap-zoom-sms: interrupted by {signal.Signals(signum).name}: stopped; "
        "the next run resumes from the last STATE written"
    ]
