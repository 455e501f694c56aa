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

A target that is not reading (busy loading a batch, with the pipe between them full)
blocks the main thread in a write to stdout, where no Python code runs: the signal's
handler then runs only once the pipe drains, tens of seconds later, and an
orchestrator escalates to SIGKILL meanwhile. So a thread of its own, woken by the
signal through :func:`signal.set_wakeup_fd` whichever thread the kernel delivered it
to, gives the main thread :data:`GRACE_SECONDS` to leave and then ends the process
itself. What could not be written is not written: the target never saw it, so the
next run resumes from the last STATE the target did see, with nothing lost.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import typing as t

if t.TYPE_CHECKING:
    from types import FrameType

#: Set once a stop signal has arrived: every wait of the tap's threads ends early.
STOP = threading.Event()
#: The signals that stop a run.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Seconds the main thread has, after a stop signal, to write out what it holds and leave
#: before the process leaves without it (it takes milliseconds unless stdout is blocked);
#: well within the 5 seconds an orchestrator may give before SIGKILL.
GRACE_SECONDS = 2.0

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
    """Handle SIGTERM and SIGINT as described above (from the main thread), and start the watch on them."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _handle)
    wakeup, woken = socket.socketpair()
    woken.setblocking(False)
    signal.set_wakeup_fd(woken.fileno(), warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(wakeup, woken), name="tap-zoom-sms-stop", daemon=True).start()


def _watch(wakeup: socket.socket, woken: socket.socket) -> None:  # noqa: ARG001 (``woken`` is kept open here)
    """Wait for a stop signal; then wake every waiting thread, and leave if the main thread has not in time.

    The main thread's handler may not run at all while it is blocked in a write to
    stdout, so this thread also sets :data:`STOP` and records the signal.
    """
    signum = 0
    while not signum:
        signum = next((s for s in wakeup.recv(64) if s in STOP_SIGNALS), 0)
    _received.append(signum)
    STOP.set()
    threading.Event().wait(GRACE_SECONDS)
    leave(_received[0])


_leaving = threading.Lock()


def leave(signum: int) -> t.NoReturn:
    """Say in one line that the run was stopped, and end the process at once with ``128 + signum``.

    ``os._exit``: threads blocked in a socket read (or in a write to a stdout nobody
    reads) hold nothing the next run needs. The main thread and the watch may both
    get here: the first one says it, and the other waits for the end.
    """
    with _leaving:
        name = signal.Signals(signum).name
        line = f"tap-zoom-sms: interrupted by {name}: stopped; the next run resumes from the last STATE written\n"
        with contextlib.suppress(OSError):
            os.write(2, line.encode())
        os._exit(128 + signum)


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
