"""The command line: how the tap reads its files, and how a run ends (exit codes, one-line errors).

The SDK opens ``--config``, ``--state`` and ``--catalog`` itself, with no check: a
missing file was a usage error and a broken one a traceback. Here each is read with
one-line errors that name the file, and the state is checked whole before any request.
An expected failure ends with ``tap-zoom-sms: error: ...`` on stderr and exit code 1;
SIGTERM and SIGINT end the run at once with 143 and 130 (see :mod:`tap_zoom_sms.interrupts`).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import typing as t

import click
import requests
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from tap_zoom_sms import interrupts
from tap_zoom_sms.errors import ZoomTapError
from tap_zoom_sms.sdk import ConfigInput, TapHooks
from tap_zoom_sms.settings.sources import read_json_file


class CommandLineTap(TapHooks):
    """The SDK's Tap command, with the files it is given read and checked here."""

    #: How errors about the STATE name where it came from (the CLI names its file).
    state_source = "the state"

    @classmethod
    def cb_config(cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]) -> ConfigInput:  # noqa: ARG003
        """Merge the ``--config`` files (or ``ENV``); a missing or broken file ends the run with one line."""
        config: dict[str, t.Any] = {}
        for path in value:
            if path != "ENV":
                config |= read_json_file(path, "config")
        return ConfigInput(config=config, parse_env="ENV" in value)

    @classmethod
    def get_singer_command(cls) -> click.Command:
        """Take ``--state`` and ``--catalog`` as paths, read by :meth:`invoke` with one-line errors."""
        command = super().get_singer_command()
        for param in command.params:
            if param.name in ("state", "catalog"):
                param.type = click.STRING
        return command

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: ConfigInput | None = None,
        state: str | None = None,
        catalog: str | None = None,
    ) -> None:
        """Run the tap as the SDK does, with the state checked whole before any request.

        The state file is read once the settings are (see ``load_state``), so a bad
        bookmark of any stream ends the run before one record is written, and errors
        name the file. Nothing here keeps the file's JSON: what the tap drops of it is
        freed before the run starts.
        """
        if about:
            cls.print_about(about_format)
            sys.exit(0)
        cls.print_version(print_fn=cls.logger.info)
        config = config or ConfigInput()
        tap = cls(
            config=config.config,
            catalog=None if catalog is None else read_json_file(catalog, "catalog"),
            parse_env_config=config.parse_env,
            validate_config=True,
        )
        if state is not None:
            tap.state_source = f"state file {state}"
            tap.load_state(read_json_file(state, "state"))
        tap.sync_all()


def run(tap_class: type[CommandLineTap]) -> None:
    """Run ``tap_class``'s command; end an expected failure with one line on stderr and exit code 1."""
    interrupts.install()
    try:
        tap_class.cli()
    except interrupts.Interrupted as exc:
        _interrupted(exc)
    except ZoomTapError as exc:
        _fail(str(exc))
    except RetriableAPIError as exc:
        _fail(f"gave up after repeated failures: {exc}")
    except FatalAPIError as exc:
        _fail(str(exc))
    except requests.RequestException as exc:
        _fail(f"could not reach Zoom at {_host(exc)}: {type(exc).__name__}")


def _host(exc: requests.RequestException) -> str:
    request = exc.request
    url = getattr(request, "url", None) or ""
    return url.split("?", 1)[0] or "its API"


def _fail(message: str) -> t.NoReturn:
    print(f"tap-zoom-sms: error: {message}", file=sys.stderr)  # noqa: T201
    sys.exit(1)


def _interrupted(exc: interrupts.Interrupted) -> t.NoReturn:
    """Flush what was written, say so in one line, and leave with ``128 + signal`` at once.

    Worker threads may be blocked in a socket read for up to ``request_timeout``, and
    Python would wait for them at exit (see :func:`tap_zoom_sms.interrupts.leave`). A
    flush that blocks (a target not reading) is cut short by the signal's watch
    thread. A second signal while flushing ends the process the default way.
    """
    for signum in interrupts.STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    interrupts.leave(exc.signum)
