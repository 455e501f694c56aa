"""SIGTERM and SIGINT: stop at once, whatever is in flight, with the exit code the signal calls for.

Airflow, Kubernetes, systemd and Ctrl-C stop a run with SIGTERM or SIGINT and expect
it gone within seconds (Kubernetes sends SIGKILL after 30). The SDK's own handler
exits 0, so an orchestrator records an interrupted run as a success, and it waits for
every worker thread, each of which may be in a 60-second read or a minute of retries.

Here the signal raises :class:`Interrupted` in the main thread (which the SDK's
``except Exception`` blocks cannot swallow) and sets :data:`STOP`, which wakes every
retry sleep and rate-limiter wait in the worker threads. Nothing the next run needs
is lost by stopping anywhere: bookmarks move only when a window is complete, and each
move was written as a STATE message and flushed. ``tap_zoom_sms.tap.main`` then
flushes what was written, prints one line and leaves with ``128 + signal`` without
waiting for threads blocked in a socket read.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import typing as t

if t.TYPE_CHECKING:
    from types import FrameType

#: Set once a stop signal has arrived: every wait of the tap's threads ends early.
STOP = threading.Event()

_state = threading.local()


class Interrupted(BaseException):
    """The run was stopped by a signal (SIGTERM or SIGINT)."""

    def __init__(self, signum: int) -> None:
        """Remember which signal stopped the run."""
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        """Return the shell's code for a process ended by this signal: 143 (SIGTERM), 130 (SIGINT)."""
        return 128 + self.signum


_received: list[int] = []


def _handle(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
    """Record the signal and wake every waiting thread; raise at once unless a message is half written."""
    _received.append(signum)
    STOP.set()
    if not getattr(_state, "deferred", 0):
        raise Interrupted(signum)


def install() -> None:
    """Handle SIGTERM and SIGINT as described above (from the main thread)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _handle)


def check() -> None:
    """Raise :class:`Interrupted` if a stop signal has arrived."""
    if STOP.is_set():
        raise Interrupted(_received[0] if _received else signal.SIGTERM)


def sleep(seconds: float) -> None:
    """Sleep, but end at once (raising :class:`Interrupted`) when a stop signal arrives."""
    if seconds > 0:
        STOP.wait(seconds)
    check()


@contextlib.contextmanager
def deferred() -> t.Iterator[None]:
    """Hold a signal that arrives inside this block until the block ends.

    Used around writing one Singer message, so that a target never reads half a line.
    """
    _state.deferred = getattr(_state, "deferred", 0) + 1
    try:
        yield
    finally:
        _state.deferred -= 1
    if not _state.deferred:
        check()
