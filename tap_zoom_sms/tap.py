"""The tap: its streams, the run's services, the state it resumes from, and the loop over streams.

What the settings are and which values are refused live in :mod:`tap_zoom_sms.settings`,
what one run shares across streams in :mod:`tap_zoom_sms.run`, the command line and
exit codes in :mod:`tap_zoom_sms.cli`, and every private name of the SDK the tap
touches in :mod:`tap_zoom_sms.sdk`.
"""

from __future__ import annotations

import atexit
import copy
import gc
import logging
import typing as t
from functools import cached_property

from singer_sdk.exceptions import RetriableAPIError

from tap_zoom_sms import cli
from tap_zoom_sms.client import ZoomStream
from tap_zoom_sms.errors import DailyLimitError, SettingsError, ZoomAPIError
from tap_zoom_sms.output import SingerOutput
from tap_zoom_sms.run import RunServices
from tap_zoom_sms.sdklogs import SessionNoise
from tap_zoom_sms.settings.checks import setting_errors, setting_warnings, without_secrets
from tap_zoom_sms.settings.schema import CONFIG_SCHEMA
from tap_zoom_sms.settings.sources import environment_config
from tap_zoom_sms.state import Layout, future_bookmarks, future_error, usable_state
from tap_zoom_sms.streams import STREAM_TYPES
from tap_zoom_sms.streams.attachments import AttachmentsStream
from tap_zoom_sms.streams.messages import SmsMessagesStream
from tap_zoom_sms.streams.sessions import SmsSessionsStream
from tap_zoom_sms.windows import utc_now

if t.TYPE_CHECKING:
    from singer_sdk import Stream

S = t.TypeVar("S")

STREAM_NAMES = frozenset(stream_type.name for stream_type in STREAM_TYPES)
#: Errors of one endpoint, which stop its stream and let the others run (see TapZoomSms._sync_in_turn).
STREAM_ERRORS = (DailyLimitError, ZoomAPIError, RetriableAPIError)


class TapZoomSms(cli.CommandLineTap):
    """Zoom Phone SMS sessions, messages and attachments, and Contact Center SMS."""

    name = "tap-zoom-sms"
    message_writer_class = SingerOutput
    config_jsonschema = CONFIG_SCHEMA

    def discover_streams(self) -> list[Stream]:
        """Return the four streams, each given the run's services."""
        return [self.new_stream(stream_type) for stream_type in STREAM_TYPES]

    def new_stream(self, stream_type: type[S], /, **kwargs: t.Any) -> S:
        """Return a new ``stream_type`` of this run (also for worker threads: streams are not thread-safe)."""
        return stream_type(tap=self, services=self.services, **kwargs)  # type: ignore[call-arg]

    @cached_property
    def services(self) -> RunServices:
        """Return what this run shares across its streams (see :mod:`tap_zoom_sms.run`)."""
        return RunServices(
            self.config,
            self.logger,
            new_stream=self.new_stream,
            new_message_fetcher=lambda: self.new_stream(SmsMessagesStream),
            files_wanted=self._files_wanted,
        )

    def _files_wanted(self) -> bool:
        attachments = self.streams.get(AttachmentsStream.name)
        return attachments is not None and attachments.selected

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

    def check_settings(self, errors: list[str], *, raise_errors: bool) -> list[str]:
        """Add what a schema cannot say to its ``errors``, and fail with one line that names every problem.

        The SDK's own check logs each error and a JSON schema on separate lines; this
        keeps the secrets out of the message (see :mod:`tap_zoom_sms.settings.checks`).
        """
        errors = without_secrets(errors + setting_errors(self.config), self.config)
        for warning in setting_warnings(self.config, self._full_schema()):
            self.logger.warning(warning)
        if errors and raise_errors:
            raise SettingsError("invalid settings: " + "; ".join(errors))
        return errors

    @classmethod
    def environment_settings(cls, prefix: str) -> dict[str, t.Any]:
        """Read ``TAP_ZOOM_SMS_<SETTING>`` variables for every setting, typed (see :mod:`tap_zoom_sms.settings`)."""
        return environment_config(cls._full_schema(), prefix)

    @classmethod
    def _full_schema(cls) -> dict[str, t.Any]:
        """Return the settings' schema with the SDK's own settings (stream maps, ...) added."""
        schema = copy.deepcopy(cls.config_jsonschema)
        cls.append_builtin_config(schema)
        return schema

    def sync_streams(self) -> None:
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
        services = self.services
        services.build()
        self._quiet_sdk_logs()
        services.auth.update_access_token()
        now = max(services.clock.now(), utc_now())
        if found := future_bookmarks(self.state, now):
            raise future_error(found, now, self.state_source)
        if services.downloader is not None:
            services.downloader.store.check()
        self.prepare_sync()
        if self.state:
            self.state_writer.write_state(self.state)
        services.progress.start()
        try:
            self._sync_each()
        finally:
            if services.downloader is not None:
                services.downloader.close()
            services.progress.finish(services.record_checks.summary())

    def _quiet_sdk_logs(self) -> None:
        """Keep the SDK's per-request and per-session lines off INFO (see :mod:`tap_zoom_sms.sdklogs`)."""
        if not self.config.get("log_sdk_metrics"):
            self.metrics_logger.setLevel(max(self.metrics_logger.getEffectiveLevel(), logging.WARNING))
        for stream in self.streams.values():
            if stream.parent_stream_type is not None:
                stream.logger.addFilter(SessionNoise())

    def _sync_each(self) -> None:
        """Retry the files earlier runs owe, then sync every top-level stream (see sync_streams).

        A stream that starts early (Contact Center, on its own rate limit) has its lists
        read from now on, beside the Phone streams, and is synced last.
        """
        if self.services.downloader is not None:
            t.cast("AttachmentsStream", self.streams[AttachmentsStream.name]).retry_failed_downloads()
        top = [
            stream
            for stream in self.streams.values()
            if not stream.parent_stream_type and (stream.selected or stream.has_selected_descendents)
        ]
        top.sort(key=lambda stream: isinstance(stream, ZoomStream) and stream.starts_early)
        early = [stream for stream in top[1:] if isinstance(stream, ZoomStream)]
        try:
            started = {stream.name for stream in early if stream.start_early()}
            # the time left counts the streams still to come, not those being read beside the others
            self.services.progress.plan(stream.name for stream in top if stream.name not in started)
            self._sync_in_turn(top)
        finally:
            for stream in early:
                stream.stop_early()

    def _sync_in_turn(self, streams: list[Stream]) -> None:
        """Sync ``streams`` one after another; an error of one stream's endpoint stops only that stream.

        A daily cap, or an error Zoom keeps answering on one endpoint (:data:`STREAM_ERRORS`),
        stops the stream where its last window completed; the STATE reached is written,
        the other streams still run, and the run then ends with the first such error.
        Anything else (refused credentials, an unreachable host, a signal) ends the run at once.
        """
        stopped: list[Exception] = []
        for stream in streams:
            try:
                stream.sync()
            except STREAM_ERRORS as exc:
                self.logger.warning("Stopped %s: %s", stream.name, exc)
                stopped.append(exc)
                self.state_writer.write_state(self.state)
                continue
            stream.finalize_state_progress_markers()
        for stream in self.streams.values():
            stream.log_sync_costs()
        if stopped:
            raise stopped[0]


def main() -> None:
    """Run the tap from the command line (see :mod:`tap_zoom_sms.cli`).

    The objects the imports made (most of a run's, the SDK's modules and their
    dependencies) live until the process exits. Frozen, the cyclic collector no longer
    walks them: not in the run's collections, and not in those the interpreter runs at
    exit, after the last STATE is written and flushed, which took a tenth of a second or
    more that only delayed the exit the user waits for (measured: 0.10-0.17 s from the
    last response to the exit, 0.03-0.04 s frozen). Freezing changes when objects are
    collected, not what a run writes: stdout is flushed and every file closed before.
    """
    gc.freeze()
    atexit.register(gc.freeze)  # the objects the run made, likewise (before logging's own clean-up at exit)
    cli.run(TapZoomSms)


if __name__ == "__main__":
    main()
