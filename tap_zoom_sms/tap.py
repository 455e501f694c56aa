"""The tap: settings, their checks, the shared authenticator and rate limiters, and the CLI."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import logging
import signal
import sys
import typing as t
from functools import cached_property
from urllib.parse import urlsplit

import click
import requests
from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError, FatalAPIError, RetriableAPIError
from singer_sdk.helpers._classproperty import classproperty
from singer_sdk.plugin_base import _ConfigInput

from tap_zoom_sms import interrupts
from tap_zoom_sms.auth import StaticTokenAuthenticator, ZoomS2SAuthenticator
from tap_zoom_sms.concurrency import MAX_WORKERS, message_workers
from tap_zoom_sms.conform import POLICIES as MALFORMED_POLICIES
from tap_zoom_sms.conform import RecordChecks
from tap_zoom_sms.discovery import MODES as DISCOVERY_MODES
from tap_zoom_sms.downloads import Downloader, FileStore
from tap_zoom_sms.errors import DailyLimitError, SettingsError, ZoomTapError
from tap_zoom_sms.network import plain_http_warning
from tap_zoom_sms.output import SingerOutput
from tap_zoom_sms.progress import Progress, SessionNoise
from tap_zoom_sms.ratelimit import RateLimitedSession, RateLimiter
from tap_zoom_sms.settings import (
    EARLIEST_DATE,
    LATEST_END_DATE,
    MAX_LOOKBACK,
    MAX_REQUEST_TIMEOUT,
    RATE_RANGE,
    environment_config,
    finite_number,
    read_json_file,
    unknown_settings,
)
from tap_zoom_sms.state import Layout, future_bookmarks, future_error, usable_state
from tap_zoom_sms.streams import STREAM_TYPES
from tap_zoom_sms.streams.phone import MessageLookup, SmsSessionsStream
from tap_zoom_sms.windows import parse_time, utc_now
from tap_zoom_sms.zoomclock import ZoomClock

if t.TYPE_CHECKING:
    from singer_sdk import Stream

    from tap_zoom_sms.streams.phone import AttachmentsStream

SESSION_TYPES = ("all", "user", "call_queue", "auto_receptionist")
#: The Server-to-Server OAuth settings, all needed unless access_token is set.
CREDENTIALS = ("account_id", "client_id", "client_secret")
MAX_PAGE_SIZE = 100


class TapZoomSms(Tap):
    """Zoom Phone SMS sessions, messages and attachments, and Contact Center SMS."""

    name = "tap-zoom-sms"
    message_writer_class = SingerOutput
    #: How errors about the STATE name where it came from (the CLI names its file).
    state_source = "the state"

    config_jsonschema = th.PropertiesList(
        th.Property(
            "account_id",
            th.StringType,
            title="Account ID",
            description="Account ID of the Zoom Server-to-Server OAuth app (required unless access_token is set).",
        ),
        th.Property(
            "client_id",
            th.StringType,
            title="Client ID",
            description="Client ID of the Server-to-Server OAuth app (required unless access_token is set).",
        ),
        th.Property(
            "client_secret",
            th.StringType,
            secret=True,
            title="Client Secret",
            description="Client secret of the Server-to-Server OAuth app (required unless access_token is set).",
        ),
        th.Property(
            "access_token",
            th.StringType,
            secret=True,
            title="Access Token",
            description="An access token obtained elsewhere (e.g. a user-level OAuth app's), used instead of "
            "the Server-to-Server credentials. The tap cannot renew it: a run ends when Zoom refuses it.",
        ),
        th.Property(
            "user_ids",
            th.ArrayType(th.StringType),
            title="User IDs",
            description="Read the SMS sessions of these users (IDs or emails; me: the token's own user) "
            "instead of the account's list, for apps without admin scopes.",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            required=True,
            title="Start Date",
            description="UTC date-time of the earliest data to extract on a first run.",
        ),
        th.Property(
            "end_date",
            th.DateTimeType,
            title="End Date",
            description="UTC date-time up to which to extract (default: now), for backfills of a fixed range.",
        ),
        th.Property(
            "api_url",
            th.StringType,
            default="https://api.zoom.us/v2",
            title="API URL",
            description="API base URL (Zoom for Government: https://api.zoomgov.com/v2).",
        ),
        th.Property(
            "oauth_url",
            th.StringType,
            default="https://zoom.us/oauth/token",
            title="OAuth URL",
            description="Token endpoint (Zoom for Government: https://zoomgov.com/oauth/token).",
        ),
        th.Property(
            "medium_requests_per_second",
            th.NumberType,
            default=10,
            title="Medium Requests per Second",
            description="Client-side cap for Medium-label requests: 10 on Pro, 20 on Business and up; 0 turns it off.",
        ),
        th.Property(
            "heavy_requests_per_second",
            th.NumberType,
            default=5,
            title="Heavy Requests per Second",
            description="Client-side cap for Heavy-label requests: 5 on Pro, 10 on Business and up; 0 turns it off.",
        ),
        th.Property(
            "lookback_minutes",
            th.IntegerType,
            default=30,
            title="Lookback Minutes",
            description="How far before its bookmark each run re-reads Phone SMS sessions and messages "
            "(Zoom can show a message minutes after the time it is stamped with).",
        ),
        th.Property(
            "contact_center_lookback_hours",
            th.IntegerType,
            default=72,
            title="Contact Center Lookback Hours",
            description="How far before its bookmark each run re-reads Contact Center engagements "
            "(they are published only once completed).",
        ),
        th.Property(
            "page_size",
            th.IntegerType,
            default=MAX_PAGE_SIZE,
            title="Page Size",
            description="Records per page asked of Zoom (1 to 100).",
        ),
        th.Property(
            "session_type",
            th.StringType,
            default="all",
            allowed_values=list(SESSION_TYPES),
            title="Session Type",
            description="Which SMS sessions to extract: all, user, call_queue or auto_receptionist.",
        ),
        th.Property(
            "message_discovery",
            th.StringType,
            default="activity",
            allowed_values=list(DISCOVERY_MODES),
            title="Message Discovery",
            description="How a backfill finds the months of each session's messages: activity (Zoom's "
            "sent/received session lists, checked as the run goes; a shortfall falls back to exhaustive) "
            "or exhaustive (every month up to each session's last message).",
        ),
        th.Property(
            "max_concurrent_requests",
            th.IntegerType,
            title="Max Concurrent Requests",
            description="Sessions whose messages are fetched at once, and attachment files downloaded at once "
            "(1: one at a time); unset: enough to hold the Medium limit at up to 1.5 s a request "
            "(15 at 10/s, 30 at 20/s, 8 with no limit). The rate limits above still hold.",
        ),
        th.Property(
            "attachments_download_path",
            th.StringType,
            title="Attachments Download Path",
            description="Where to store attachment files, as a local folder or any fsspec URL such as "
            "s3://bucket/prefix (its filesystem's package installed). Files go to "
            "{session_id}/{message_id}/{attachment_id}-{name}; unset: files are not downloaded.",
        ),
        th.Property(
            "log_sdk_metrics",
            th.BooleanType,
            default=False,
            title="Log SDK Metrics",
            description="Also log the SDK's METRIC lines (one per request, and per session synced); "
            "off, a progress line every 30 seconds sums them up.",
        ),
        th.Property(
            "malformed_records",
            th.StringType,
            default="repair",
            allowed_values=list(MALFORMED_POLICIES),
            title="Malformed Records",
            description="What to do with a record from Zoom that does not match its schema: repair (convert "
            "unambiguous values such as numeric strings, set the rest to null, skip a record without its key; "
            "each reported in a WARNING line and counted at the end of the run) or fail (end the run with one "
            "line, before the bookmark passes the record).",
        ),
        th.Property(
            "repair_text",
            th.BooleanType,
            default=True,
            title="Repair Text",
            description="Replace NUL characters and lone UTF-16 surrogates (half an emoji) in Zoom's text with "
            "U+FFFD, which PostgreSQL and UTF-8 cannot hold; false: keep the text as Zoom sent it (lone surrogates "
            "written as JSON \\u escapes), for targets that take it.",
        ),
        th.Property(
            "request_timeout",
            th.IntegerType,
            default=60,
            title="Request Timeout",
            description="Seconds to wait for a Zoom response before retrying.",
        ),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        """Return the four streams."""
        return [stream_type(tap=self) for stream_type in STREAM_TYPES]

    @cached_property
    def zoom_auth(self) -> ZoomS2SAuthenticator | StaticTokenAuthenticator:
        """Return the one authenticator of this tap (and so one token for all streams)."""
        if self.config.get("access_token"):
            return StaticTokenAuthenticator(self.config["access_token"])
        return ZoomS2SAuthenticator(
            account_id=self.config["account_id"],
            client_id=self.config["client_id"],
            client_secret=self.config["client_secret"],
            auth_endpoint=self.config["oauth_url"],
            timeout=float(self.config["request_timeout"]),
            on_response=self.zoom_clock.observe,
        )

    @cached_property
    def zoom_clock(self) -> ZoomClock:
        """Return Zoom's clock, as the token endpoint's Date headers show it."""
        return ZoomClock()

    @cached_property
    def rate_limiters(self) -> dict[str, RateLimiter]:
        """Return one limiter per Zoom rate-limit label, shared by every stream."""
        return {
            "Medium": RateLimiter(self.config["medium_requests_per_second"]),
            "Heavy": RateLimiter(self.config["heavy_requests_per_second"]),
        }

    @cached_property
    def downloader(self) -> Downloader | None:
        """Return the downloader of attachment files, or None if files are not asked for.

        Files are downloaded when ``attachments_download_path`` is set and the
        attachments stream is selected; downloads share the Medium limiter.
        """
        path = self.config.get("attachments_download_path")
        attachments = self.streams.get("attachments")
        if not path or attachments is None or not attachments.selected:
            return None
        return Downloader(
            FileStore(path),
            lambda: RateLimitedSession(self.rate_limiters["Medium"], self.progress.response),
            authenticate=self.zoom_auth.authenticate_request,
            timeout=float(self.config["request_timeout"]),
            logger=self.logger,
            api_host=urlsplit(self.config["api_url"]).hostname or "",
            workers=self.message_workers,
        )

    @cached_property
    def message_workers(self) -> int:
        """Return the sessions whose messages are fetched at once (see :mod:`tap_zoom_sms.concurrency`)."""
        return message_workers(self.config)

    @cached_property
    def progress(self) -> Progress:
        """Return the run's progress: counters every stream feeds, and its INFO lines."""
        limits = {
            "Medium": float(self.config["medium_requests_per_second"]),
            "Heavy": float(self.config["heavy_requests_per_second"]),
        }
        return Progress(self.logger, limits)

    @cached_property
    def record_checks(self) -> RecordChecks:
        """Return the checks that make every record match its schema (see :mod:`tap_zoom_sms.conform`)."""
        return RecordChecks(
            self.logger,
            policy=self.config.get("malformed_records", "repair"),
            text=self.config.get("repair_text", True),
        )

    @cached_property
    def message_lookup(self) -> MessageLookup:
        """Return the way to GET one message from any thread (to refresh download URLs)."""
        return MessageLookup(self)

    @cached_property
    def start_date(self) -> dt.datetime:
        """Return start_date as an aware UTC datetime."""
        return parse_time(self.config["start_date"])

    @cached_property
    def end_date(self) -> dt.datetime | None:
        """Return end_date as an aware UTC datetime, or None for "up to now"."""
        value = self.config.get("end_date")
        return parse_time(value) if value else None

    def load_state(self, state: dict[str, t.Any]) -> None:
        """Resume from ``state``, checked whole and without what the tap no longer uses.

        See :mod:`tap_zoom_sms.state`: a bad bookmark of any stream ends the run here,
        before one request, and an older layout's leftovers are not written again in
        every STATE message.
        """
        if state:
            users = frozenset(u for u in self.config.get("user_ids") or () if isinstance(u, str))
            layout = Layout(STREAM_NAMES, SmsSessionsStream.name, users)
            state = usable_state(state, self.state_source, layout, self.logger)
        super().load_state(state)

    def sync_all(self) -> None:  # type: ignore[misc]  # final in the SDK, whose loop cannot stop one label alone
        """Sync every stream; a daily cap stops only the streams of its label.

        A token is fetched first, so bad credentials fail before any data request,
        and a bookmark later than Zoom's clock (as the token answer dated it) ends
        the run before any data request too (see :mod:`tap_zoom_sms.state`).
        When Zoom's daily cap for a label is reached, that stream stops where its
        last window completed, the streams of other labels still run, the STATE
        reached is written, and the run ends with the cap's one-line error. This is
        the SDK's own loop (progress markers, replication methods, initial STATE),
        with that one difference.
        """
        self._quiet_sdk_logs()
        self.zoom_auth.update_access_token()
        now = max(self.zoom_clock.now(), utc_now())
        if found := future_bookmarks(self.state, now):
            raise future_error(found, now, self.state_source)
        if self.downloader is not None:
            self.downloader.store.check()
        self._reset_state_progress_markers()
        self._set_compatible_replication_methods()
        if self.state:
            self._state_writer.write_state(self.state)
        self.progress.start()
        try:
            self._sync_streams()
        finally:
            if self.downloader is not None:
                self.downloader.close()
            self.progress.finish(self.record_checks.summary())

    def _quiet_sdk_logs(self) -> None:
        """Keep the SDK's per-request and per-session lines off INFO (see :mod:`tap_zoom_sms.progress`)."""
        if not self.config.get("log_sdk_metrics"):
            self.metrics_logger.setLevel(max(self.metrics_logger.getEffectiveLevel(), logging.WARNING))
        for stream in self.streams.values():
            if stream.parent_stream_type is not None:
                stream.logger.addFilter(SessionNoise())

    def _sync_streams(self) -> None:
        """Retry the files earlier runs owe, then sync every top-level stream (see sync_all)."""
        if self.downloader is not None:
            t.cast("AttachmentsStream", self.streams["attachments"]).retry_failed_downloads()
        capped: list[DailyLimitError] = []
        for stream in self.streams.values():
            if stream.parent_stream_type or not (stream.selected or stream.has_selected_descendents):
                continue
            try:
                stream.sync()
            except DailyLimitError as exc:
                self.logger.warning("Stopped %s: %s", stream.name, exc)
                capped.append(exc)
                self._state_writer.write_state(self.state)
                continue
            stream.finalize_state_progress_markers()
        for stream in self.streams.values():
            stream.log_sync_costs()
        if capped:
            raise capped[0]

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Check the settings, and fail with one line that names every problem.

        The SDK's own check logs each error and a JSON schema on separate lines; this
        adds what a schema cannot say (dates that parse, start before end, page size
        within Zoom's limit) and keeps the secret out of the message.
        """
        try:
            errors = super()._validate_config(raise_errors=False)
        except ConfigValidationError as exc:  # pragma: no cover (raise_errors=False)
            errors = list(exc.errors)
        errors += self._setting_errors()
        schema = copy.deepcopy(self.config_jsonschema)
        self.append_builtin_config(schema)
        for warning in unknown_settings(self.config, schema):
            self.logger.warning(warning)
        for url_setting in ("api_url", "oauth_url"):
            if plain := plain_http_warning(url_setting, str(self.config.get(url_setting) or "")):
                self.logger.warning(plain)
        for key in ("client_secret", "access_token"):
            if secret := self.config.get(key):
                errors = [error.replace(str(secret), "***") for error in errors]
        if errors and raise_errors:
            raise SettingsError("invalid settings: " + "; ".join(errors))
        return errors

    def _setting_errors(self) -> list[str]:
        """Return the problems a JSON schema cannot express."""
        return self._access_errors() + self._date_errors() + self._number_errors()

    def _access_errors(self) -> list[str]:
        """Server-to-Server credentials or a token, and a usable list of users."""
        errors = []
        if not self.config.get("access_token"):
            errors += [
                f"'{key}' is a required property (or set access_token)"
                for key in CREDENTIALS
                if not self.config.get(key)
            ]
        user_ids = self.config.get("user_ids")
        if user_ids is not None and (not user_ids or not all(isinstance(u, str) and u.strip() for u in user_ids)):
            errors.append("user_ids must be a non-empty list of user IDs or emails (or me)")
        elif user_ids and len(set(user_ids)) < len(user_ids):
            errors.append("user_ids lists a user twice (each user has one bookmark)")
        return errors

    def _date_errors(self) -> list[str]:
        """Dates that parse, within the years the tap reads, a start_date not in the future nor after end_date."""
        errors = []
        dates = {}
        for key in ("start_date", "end_date"):
            value = self.config.get(key)
            if not value:
                continue
            try:
                dates[key] = parse_time(value)
            except (ValueError, TypeError, OverflowError):
                errors.append(f"{key} {value!r} is not a date-time (e.g. 2024-01-31T00:00:00Z)")
        start, end = dates.get("start_date"), dates.get("end_date")
        if start and start < EARLIEST_DATE:
            errors.append(
                f"start_date {self.config['start_date']} is before {EARLIEST_DATE:%Y-%m-%d} (Zoom holds nothing older)"
            )
        if start and start > utc_now():
            errors.append(f"start_date {self.config['start_date']} is in the future")
        if end and end >= LATEST_END_DATE:
            errors.append(
                f"end_date {self.config['end_date']} is not before {LATEST_END_DATE:%Y-%m-%d}: "
                "leave end_date unset to extract up to now"
            )
        if start and end and start > end:
            errors.append(f"start_date {start:%Y-%m-%dT%H:%M:%SZ} is after end_date {end:%Y-%m-%dT%H:%M:%SZ}")
        return errors

    def _number_errors(self) -> list[str]:
        """Numbers within what Zoom accepts and the tap's arithmetic holds (see :mod:`tap_zoom_sms.settings`)."""
        errors = []
        page_size = self.config.get("page_size", MAX_PAGE_SIZE)
        if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
            errors.append(f"page_size must be 1 to {MAX_PAGE_SIZE}, not {page_size!r}")
        low, high = RATE_RANGE
        for key in ("medium_requests_per_second", "heavy_requests_per_second"):
            value = self.config.get(key)
            if value is not None and not (finite_number(value) and (value == 0 or low <= value <= high)):
                errors.append(f"{key} must be 0 (no limit) or {low} to {high}, not {value!r}")
        for key, unit in (("lookback_minutes", "minutes"), ("contact_center_lookback_hours", "hours")):
            value = self.config.get(key)
            most = MAX_LOOKBACK // dt.timedelta(**{unit: 1})
            if value is not None and not (finite_number(value) and 0 <= value <= most):
                errors.append(f"{key} must be 0 to {most} ({MAX_LOOKBACK.days // 365} years), not {value!r}")
        workers = self.config.get("max_concurrent_requests")
        if workers is not None and (not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS):
            errors.append(f"max_concurrent_requests must be 1 to {MAX_WORKERS}, not {workers!r}")
        timeout = self.config.get("request_timeout")
        if timeout is not None and not (finite_number(timeout) and 0 < timeout <= MAX_REQUEST_TIMEOUT):
            errors.append(
                f"request_timeout must be more than 0 and at most {MAX_REQUEST_TIMEOUT} seconds, not {timeout!r}"
            )
        return errors

    # --- the command line -------------------------------------------------
    def _setup_signal_handlers(self) -> None:
        """Leave SIGTERM and SIGINT to :func:`main` (see :mod:`tap_zoom_sms.interrupts`).

        The SDK's handler exits with code 0, so an interrupted run looked like a
        success, and only after every worker thread had finished its retries.
        """

    @classproperty
    def _env_var_config(cls) -> dict[str, t.Any]:  # noqa: N805
        """Read ``TAP_ZOOM_SMS_<SETTING>`` variables for every setting, typed (see :mod:`tap_zoom_sms.settings`)."""
        schema = copy.deepcopy(cls.config_jsonschema)
        cls.append_builtin_config(schema)
        return environment_config(schema, cls._env_var_prefix)

    @classmethod
    def cb_config(cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]) -> _ConfigInput:  # noqa: ARG003
        """Merge the ``--config`` files (or ``ENV``); a missing or broken file ends the run with one line."""
        config: dict[str, t.Any] = {}
        for path in value:
            if path != "ENV":
                config |= read_json_file(path, "config")
        return _ConfigInput(config=config, parse_env="ENV" in value)

    @classmethod
    def get_singer_command(cls) -> click.Command:
        """Take ``--state`` and ``--catalog`` as paths, read by :meth:`invoke` with one-line errors.

        The SDK opens them as click files and decodes them with no check: a missing
        file was a usage error, a broken one a traceback.
        """
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
        config: _ConfigInput | None = None,
        state: str | None = None,
        catalog: str | None = None,
    ) -> None:
        """Run the tap as the SDK does, with the state checked whole before any request.

        The state file is read once the settings are (see :meth:`load_state`), so a bad
        bookmark of any stream ends the run before one record is written, and errors
        name the file. Nothing here keeps the file's JSON: what the tap drops of it is
        freed before the run starts.
        """
        if about:
            cls.print_about(about_format)
            sys.exit(0)
        cls.print_version(print_fn=cls.logger.info)
        config = config or _ConfigInput()
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


STREAM_NAMES = frozenset(stream_type.name for stream_type in STREAM_TYPES)


def main() -> None:
    """Run the tap; end an expected failure with one line on stderr and exit code 1.

    SIGTERM and SIGINT end it at once with 143 and 130 (see :mod:`tap_zoom_sms.interrupts`).
    """
    interrupts.install()
    try:
        TapZoomSms.cli()
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


if __name__ == "__main__":
    main()
