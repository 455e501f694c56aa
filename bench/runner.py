"""Running the installed tap as a user would, against the emulator, with what it cost."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

if t.TYPE_CHECKING:
    from tap_zoom_sms.emulator import Emulator

TAP = str(Path(sys.executable).with_name("tap-zoom-sms"))
#: Seconds after which a run still going is killed: far beyond any run of the tests or benchmarks.
DEADLINE = 1800.0
KEYS = {
    "sms_sessions": ("session_id",),
    "sms_messages": ("message_id",),
    "attachments": ("message_id", "id"),
    "contact_center_sms": ("engagement_id",),
}


@dataclass
class Run:
    """What one tap process wrote, how it ended, and its resource use."""

    returncode: int
    messages: list[dict[str, t.Any]]
    stderr: str
    seconds: float
    cpu_seconds: float
    max_rss_mb: float
    #: seconds from the stop signal to the process's exit (None: it was not stopped)
    stop_seconds: float | None = None
    #: whether the output ended in a line that is not whole JSON (what a SIGKILL can leave)
    cut_short: bool = False
    #: the lines of stderr, each with the seconds from the process's start to its arrival
    stderr_lines: list[tuple[float, str]] = field(default_factory=list)

    def kept(self) -> tuple[dict[str, set[tuple]], dict | None]:
        """Records up to the last STATE (what a target commits), and that STATE."""
        records: dict[str, set[tuple]] = collections.defaultdict(set)
        pending: dict[str, set[tuple]] = collections.defaultdict(set)
        state = None
        for message in self.messages:
            if message["type"] == "RECORD":
                stream = message["stream"]
                pending[stream].add(tuple(message["record"][k] for k in KEYS[stream]))
            elif message["type"] == "STATE":
                state = message["value"]
                for stream, keys in pending.items():
                    records[stream] |= keys
                pending.clear()
        return records, state

    @property
    def record_count(self) -> int:
        """RECORD messages written."""
        return sum(1 for m in self.messages if m["type"] == "RECORD")


def run_tap(
    emulator: Emulator,
    workdir: Path,
    config: dict,
    state: dict | None = None,
    *,
    kill_after_requests: int | None = None,
    kill_after_seconds: float | None = None,
    stop_when: t.Callable[[], bool] | None = None,
    stop_signal: int = signal.SIGKILL,
    catalog: dict | None = None,
    prelude: str | None = None,
    output: list[bytes] | None = None,
    env: dict[str, str] | None = None,
) -> Run:
    """Run the tap in its own process; stop it after so many requests or seconds, or once ``stop_when()``.

    It is stopped with ``stop_signal`` (SIGKILL unless told otherwise).

    ``prelude`` runs Python before the tap's entry point in that process (to time the
    stock SDK path); without it the installed console script runs. ``output``, if given,
    receives the tap's stdout as it is read (for a ``stop_when`` that watches it). ``env``:
    the process's environment (default: this one's), e.g. a PYTHONPATH to run another commit's tap.
    """
    (workdir / "config.json").write_text(json.dumps(config))
    command = (
        [TAP] if prelude is None else [sys.executable, "-c", f"{prelude}\nfrom tap_zoom_sms.tap import main; main()"]
    )
    args = [*command, "--config", str(workdir / "config.json")]
    for name, value in (("state", state), ("catalog", catalog)):
        if value is not None:
            (workdir / f"{name}.json").write_text(json.dumps(value))
            args += [f"--{name}", str(workdir / f"{name}.json")]
    started = time.monotonic()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)  # noqa: S603
    out: list[bytes] = output if output is not None else []
    err: list[tuple[float, bytes]] = []
    readers = [
        threading.Thread(target=lambda: out.extend(iter(lambda: process.stdout.read(1 << 16), b"")), daemon=True),  # type: ignore[union-attr]
        threading.Thread(target=_read_timed, args=(process.stderr, started, err), daemon=True),
    ]
    peak_kb = [0]
    readers.append(threading.Thread(target=_watch_peak_rss, args=(process, peak_kb), daemon=True))
    for reader in readers:
        reader.start()
    signalled = None
    while _running(process):
        if kill_after_requests is not None and emulator.stats.snapshot()["total_requests"] >= kill_after_requests:
            break
        if kill_after_seconds is not None and time.monotonic() - started >= kill_after_seconds:
            break
        if stop_when is not None and stop_when():
            break
        if time.monotonic() - started >= DEADLINE:
            process.kill()  # a run that hangs fails its test (exit -9) instead of hanging CI
            break
        time.sleep(0.005)
    if _running(process) and (kill_after_requests, kill_after_seconds, stop_when) != (None, None, None):
        signalled = time.monotonic()
        process.send_signal(stop_signal)
    _, status, usage = os.wait4(process.pid, 0)
    ended = time.monotonic()
    seconds = ended - started
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join(timeout=30)
    messages = []
    cut_short = False
    for line in b"".join(out).decode().splitlines():
        try:
            messages.append(json.loads(line))
        except ValueError:  # the line a kill cut short
            cut_short = True
            break
    return Run(
        returncode=process.returncode,
        messages=messages,
        stderr=b"".join(chunk for _, chunk in err).decode(errors="replace"),
        stderr_lines=_timed_lines(err),
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        max_rss_mb=peak_kb[0] / 1024,
        stop_seconds=None if signalled is None else ended - signalled,
        cut_short=cut_short,
    )


def _read_timed(stream: t.IO[bytes] | None, started: float, chunks: list[tuple[float, bytes]]) -> None:
    """Read ``stream`` as it comes (``read1``), noting when each chunk arrived (seconds after ``started``).

    The benchmark checks the tap's time-left estimates against the time the run actually
    took after each progress line, so a line's arrival time matters, not only its text.
    """
    read = t.cast("t.BinaryIO", stream).read1  # type: ignore[attr-defined]
    for chunk in iter(lambda: read(1 << 16), b""):
        chunks.append((time.monotonic() - started, chunk))


def _timed_lines(chunks: list[tuple[float, bytes]]) -> list[tuple[float, str]]:
    """Split timed chunks into lines, each at the time its end arrived."""
    lines: list[tuple[float, str]] = []
    partial = b""
    for when, chunk in chunks:
        *whole, partial = (partial + chunk).split(b"\n")
        lines += [(when, line.decode(errors="replace")) for line in whole]
    if partial:
        lines.append((chunks[-1][0], partial.decode(errors="replace")))
    return lines


def _running(process: subprocess.Popen) -> bool:
    """Say whether the process still runs, without reaping it (os.wait4 reads its resource use later)."""
    return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def _watch_peak_rss(process: subprocess.Popen, peak_kb: list[int]) -> None:
    """Follow the process's own high-water mark (VmHWM) until it exits.

    ``ru_maxrss`` would also count the pages the child shared with this process
    between fork and exec, that is the benchmark and its emulator.
    """
    path = Path(f"/proc/{process.pid}/status")
    while process.returncode is None:
        try:
            for line in path.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb[0] = max(peak_kb[0], int(line.split()[1]))
        except (OSError, ValueError):
            return
        time.sleep(0.01)


def truth(emulator: Emulator) -> dict[str, set[tuple]]:
    """The emulator's records, by stream and key."""
    out: dict[str, set[tuple]] = collections.defaultdict(set)
    for stream, record in emulator.account.truth():
        out[stream].add(tuple(record[k] for k in KEYS[stream]))
    return out
