"""The Singer SDK's private surface: every private name of the SDK the tap uses or overrides is here, and only here.

The tap is pinned to a minor release of the SDK (see ``pyproject.toml``), but the names
below carry no promise at all: a release may rename one, and the tap would break at run
time, somewhere. So the rest of the tap never names them. It subclasses
:class:`TapHooks` and :class:`StreamHooks`, which turn each private hook into a public
one of ours, and calls the few functions below. :data:`PRIVATE_SURFACE` lists every name
with its signature and why the tap needs it; ``tests/test_sdk_surface.py`` fails, naming
the symbol, when an installed SDK lacks one or changed its signature, and when a module
other than this one names a private SDK symbol.

Why each is needed:

- ``PluginBase._validate_config``: the SDK's settings check logs each error and the
  whole JSON schema on separate lines; the tap adds checks a schema cannot express
  (dates that parse, ranges the arithmetic holds) and fails with one line.
- ``PluginBase._setup_signal_handlers``: the SDK's SIGTERM handler exits with code 0
  after every worker thread finished its retries; :mod:`tap_zoom_sms.interrupts` does it.
- ``PluginBase._env_var_config`` (a ``classproperty``) and ``_env_var_prefix``: the SDK
  reads ``TAP_ZOOM_SMS_*`` variables without their types (a number stays a string).
- ``plugin_base._ConfigInput``: what the SDK's CLI passes from ``--config`` to ``invoke``.
- ``Tap._reset_state_progress_markers``, ``Tap._set_compatible_replication_methods``:
  the steps of ``Tap.sync_all`` (final in the SDK), which the tap replaces so that a
  daily rate-limit cap stops only the streams of its label.
- ``Stream._write_schema_message``: written once per run, not once per child sync.
- ``Stream._write_record_message``: counts every record in the run's progress.
- ``Stream._generate_record_messages`` and ``Stream._stream_version``: skips two
  per-record walks that change nothing when every field is selected and conformance is off.
- ``Stream._increment_stream_state``: bookmarks move per window, never per record.
- ``Stream._sync_children``, ``Stream._write_state_message``: the sessions stream syncs
  children it read ahead, and streams write STATE when a window commits.
- ``RESTStream._request``: one GET outside pagination (a message with fresh file URLs).
- ``OAuthAuthenticator._session``: the token request's session, replaced so that it has
  the tap's timeout, CA bundle and proxies and no retries of its own.
- ``helpers._typing``: how the SDK reads a setting's JSON-schema type.
- ``helpers._util.utc_now``: the SDK's ``time_extracted`` clock.
- ``CustomStreamMap.expr_evaluator`` and ``CustomStreamMap._eval``: a stream map's
  expressions are evaluated by one evaluator per map, whose ``names`` are set to the
  record before each evaluation. Not thread-safe: the tap evaluates filters in worker
  threads too (a message's files, sessions read ahead), and two threads evaluating one
  map at once read each other's record, so a filter could keep a message it should drop
  or drop one it should keep. :meth:`TapHooks.setup_mapper` gives each thread its own
  evaluator (:class:`EvaluatorPerThread`).
"""

from __future__ import annotations

import inspect
import threading
import typing as t
from dataclasses import dataclass
from functools import cached_property

from singer_sdk import RESTStream, Stream, Tap, plugin_base
from singer_sdk.authenticators import OAuthAuthenticator
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers import _classproperty, _util
from singer_sdk.helpers import _typing as schema_types
from singer_sdk.helpers._classproperty import classproperty
from singer_sdk.helpers._util import utc_now
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import CustomStreamMap
from singer_sdk.plugin_base import PluginBase, _ConfigInput
from singer_sdk.singerlib import RecordMessage

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context

__all__ = [
    "PRIVATE_SURFACE",
    "ConfigInput",
    "Private",
    "StreamHooks",
    "TapHooks",
    "replace_token_session",
    "request_once",
    "schema_types",
    "surface_problems",
]

#: What the SDK's CLI passes from ``--config`` to ``invoke``: the merged files, and whether to read ``ENV``.
ConfigInput = _ConfigInput


@dataclass(frozen=True)
class Private:
    """One private name of the SDK the tap depends on.

    ``params`` are a method's parameter names as the tap calls or overrides it (None:
    not a method); ``in_init``: an attribute the owner's ``__init__`` sets.
    """

    owner: object
    name: str
    params: tuple[str, ...] | None = None
    in_init: bool = False

    @property
    def symbol(self) -> str:
        """Name the symbol as a reader finds it in the SDK, e.g. ``singer_sdk.streams.core.Stream._request``."""
        owner = getattr(self.owner, "__qualname__", None)
        module = getattr(self.owner, "__module__", None) or getattr(self.owner, "__name__", "")
        return f"{module}.{owner}.{self.name}" if owner else f"{module}.{self.name}"


PRIVATE_SURFACE: tuple[Private, ...] = (
    Private(PluginBase, "_validate_config", ("self", "raise_errors")),
    Private(PluginBase, "_setup_signal_handlers", ("self",)),
    Private(PluginBase, "_env_var_config"),
    Private(PluginBase, "_env_var_prefix"),
    Private(plugin_base, "_ConfigInput"),
    Private(Tap, "_reset_state_progress_markers", ("self",)),
    Private(Tap, "_set_compatible_replication_methods", ("self",)),
    Private(Stream, "_write_schema_message", ("self",)),
    Private(Stream, "_write_record_message", ("self", "record")),
    Private(Stream, "_generate_record_messages", ("self", "record")),
    Private(Stream, "_increment_stream_state", ("self", "latest_record", "context")),
    Private(Stream, "_sync_children", ("self", "child_context")),
    Private(Stream, "_write_state_message", ("self",)),
    Private(Stream, "_stream_version", in_init=True),
    Private(RESTStream, "_request", ("self", "prepared_request", "context")),
    Private(OAuthAuthenticator, "_session", in_init=True),
    Private(schema_types, "is_boolean_type", ("property_schema",)),
    Private(schema_types, "is_integer_type", ("property_schema",)),
    Private(schema_types, "is_number_type", ("property_schema",)),
    Private(schema_types, "is_array_type", ("type_dict",)),
    Private(schema_types, "is_string_array_type", ("type_dict",)),
    Private(schema_types, "is_object_type", ("property_schema",)),
    Private(_classproperty, "classproperty"),
    Private(_util, "utc_now", ()),
    Private(CustomStreamMap, "expr_evaluator", in_init=True),
    Private(CustomStreamMap, "_eval", ("self", "expr", "expr_parsed", "record", "property_name")),
)


class TapHooks(Tap):
    """The SDK's Tap, with the private hooks the tap needs given public names of ours.

    Subclasses implement :meth:`check_settings`, :meth:`environment_settings` and
    :meth:`sync_streams`; the SDK calls them through its private names.
    """

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Run the SDK's JSON-schema check quietly, then :meth:`check_settings`."""
        try:
            errors = super()._validate_config(raise_errors=False)
        except ConfigValidationError as exc:  # pragma: no cover (raise_errors=False)
            errors = list(exc.errors)
        return self.check_settings(errors, raise_errors=raise_errors)

    def check_settings(self, errors: list[str], *, raise_errors: bool) -> list[str]:  # noqa: ARG002
        """Return (or raise) every problem of the settings, given the schema check's ``errors``."""
        return errors

    def _setup_signal_handlers(self) -> None:
        """Install none: :mod:`tap_zoom_sms.interrupts` handles SIGTERM and SIGINT (see this module)."""

    @classproperty
    def _env_var_config(cls) -> dict[str, t.Any]:  # noqa: N805
        """Read the settings' environment variables through :meth:`environment_settings`."""
        return cls.environment_settings(cls._env_var_prefix)

    @classmethod
    def environment_settings(cls, prefix: str) -> dict[str, t.Any]:
        """Return the settings given by variables named ``prefix`` + setting (see :mod:`tap_zoom_sms.settings`)."""
        raise NotImplementedError

    def setup_mapper(self) -> None:
        """Set up the SDK's stream maps, each evaluating its expressions with an evaluator per thread."""
        super().setup_mapper()
        for stream_maps in self.mapper.stream_maps.values():
            for stream_map in stream_maps:
                if isinstance(stream_map, CustomStreamMap):
                    stream_map.expr_evaluator = EvaluatorPerThread(stream_map.expr_evaluator)

    def sync_all(self) -> None:  # type: ignore[misc]  # final in the SDK, whose loop cannot stop one label alone
        """Sync every stream through :meth:`sync_streams`."""
        self.sync_streams()

    def sync_streams(self) -> None:
        """Sync every stream (the subclass's loop)."""
        raise NotImplementedError

    def prepare_sync(self) -> None:
        """Take the steps the SDK's ``sync_all`` takes before any stream: progress markers, replication methods."""
        self._reset_state_progress_markers()
        self._set_compatible_replication_methods()


class EvaluatorPerThread:
    """A stream map's expression evaluator, one of its kind for each thread that evaluates (see this module).

    The SDK sets ``names`` (the record) and then calls ``eval``: each thread's pair goes
    to its own evaluator, made like the map's own (the same functions). The map's Faker
    (``fake``, for maps that make up values) is still one for all threads: what it makes
    up is not the same from run to run when several threads ask it.
    """

    def __init__(self, shared: t.Any) -> None:
        """Stand in for ``shared``, the map's evaluator."""
        self._shared = shared
        self._local = threading.local()

    def own(self) -> t.Any:
        """Return the calling thread's evaluator, made on its first use."""
        evaluator = getattr(self._local, "evaluator", None)
        if evaluator is None:
            evaluator = self._local.evaluator = type(self._shared)(functions=self._shared.functions)
        return evaluator

    @property
    def names(self) -> t.Any:
        """The names the calling thread's next evaluation reads (the record)."""
        return self.own().names

    @names.setter
    def names(self, value: t.Any) -> None:
        self.own().names = value

    def eval(self, expr: str, previously_parsed: t.Any = None) -> t.Any:
        """Evaluate ``expr`` with the calling thread's names."""
        return self.own().eval(expr, previously_parsed=previously_parsed)

    def __getattr__(self, name: str) -> t.Any:
        """Anything else the SDK asks of an evaluator: the calling thread's."""
        if name.startswith("_"):  # this object's own, not made yet (a copy, or before __init__)
            raise AttributeError(name)
        return getattr(self.own(), name)


class StreamHooks(Stream):
    """The SDK's Stream, with the private hooks the tap overrides or calls given public names of ours."""

    _schema_written = False

    def _write_schema_message(self) -> None:
        """Write the SCHEMA once per run (the SDK writes it at every sync of a child stream).

        That is once per session for messages and once per message for attachments;
        some targets (target-duckdb among them) flush their batches at each SCHEMA
        message and dropped rows when it came thousands of times.
        """
        if not self._schema_written:
            super()._write_schema_message()
            self._schema_written = True

    def write_schema(self) -> None:
        """Write the stream's SCHEMA message, once per run."""
        self._write_schema_message()

    def _write_record_message(self, record: dict) -> None:
        """Write a record's messages, then tell :meth:`record_written`."""
        super()._write_record_message(record)
        self.record_written(record)

    def write_record(self, record: dict) -> None:
        """Write one record (mapped, as the SDK does) outside the SDK's own sync loop."""
        self._write_record_message(record)

    def record_written(self, record: dict) -> None:
        """Run after each record is written (default: nothing)."""

    @cached_property
    def _every_field_selected(self) -> bool:
        return all(self.mask.values())

    def _generate_record_messages(self, record: dict) -> t.Generator[RecordMessage, None, None]:
        """Build the RECORD messages, without the per-record walks that would change nothing.

        The SDK walks every record to drop deselected fields and to conform types. When
        every field is selected (the usual catalog) and conformance is off, both leave
        the record as it is; otherwise the SDK's own path runs.
        """
        if not self._every_field_selected or self.TYPE_CONFORMANCE_LEVEL != TypeConformanceLevel.NONE:
            yield from super()._generate_record_messages(record)
            return
        extracted = utc_now()
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=extracted,
                )

    def _increment_stream_state(self, latest_record: dict, *, context: Context | None = None) -> None:
        """Move no bookmark per record: the tap's streams commit theirs per window (or keep none).

        Records within a window arrive in no useful order; a per-record bookmark would
        either claim progress mid-window (losing the rest of the window on a kill) or, as
        the SDK does for unsorted streams, only be promoted at the very end of the run
        (losing all progress of an interrupted run).
        """

    def sync_children(self, child_context: Context) -> None:
        """Sync the child streams for ``child_context`` now (as the SDK does after each parent record)."""
        self._sync_children(child_context)

    def write_state_message(self) -> None:
        """Write the tap's STATE now."""
        self._write_state_message()


def surface_problems(surface: t.Iterable[Private] = PRIVATE_SURFACE) -> list[str]:
    """Return one line per name of ``surface`` the installed SDK lacks, or whose signature changed."""
    problems = []
    for private in surface:
        found = inspect.getattr_static(private.owner, private.name, None)
        if private.in_init:
            init = getattr(private.owner, "__init__", None)
            source = inspect.getsource(init) if init is not None else ""
            if f"self.{private.name} " not in source and f"self.{private.name}:" not in source:
                problems.append(f"{private.symbol}: no longer set by {getattr(private.owner, '__qualname__', '?')}()")
            continue
        if found is None:
            problems.append(f"{private.symbol}: missing from the installed singer-sdk")
            continue
        if private.params is not None:
            function = getattr(found, "__func__", found)
            params = tuple(inspect.signature(function).parameters)
            if params != private.params:
                problems.append(f"{private.symbol}: parameters {params}, the tap expects {private.params}")
    return problems


def request_once(
    stream: RESTStream, prepared_request: requests.PreparedRequest, context: Context | None = None
) -> requests.Response:
    """Send a request once through ``stream`` (its session, auth and checks), outside pagination."""
    return stream._request(prepared_request, context)


def replace_token_session(authenticator: OAuthAuthenticator, session: requests.Session) -> None:
    """Have ``authenticator`` ask for tokens through ``session`` (the SDK's own retries https POSTs ten times)."""
    authenticator._session = session
