"""What every stream of the tap shares, whether it makes requests or not: the run's services, schemas, stream maps."""

from __future__ import annotations

import typing as t
from importlib import resources
from pathlib import Path

from singer_sdk import SchemaDirectory, StreamSchema
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import RemoveRecordTransform

from tap_zoom_sms.sdk import StreamHooks

if t.TYPE_CHECKING:
    from tap_zoom_sms.run import RunServices


def schema_directory() -> SchemaDirectory:
    """Locate ``schemas/``: inside the installed wheel, else at the top of a checkout."""
    packaged = resources.files("tap_zoom_sms") / "schemas"
    if packaged.is_dir():
        return SchemaDirectory(packaged)
    return SchemaDirectory(Path(__file__).resolve().parent.parent / "schemas")


SCHEMAS = schema_directory()


class BaseStream(StreamHooks):
    """What every stream of the tap shares, whether it makes requests or not.

    - It is given the run's services (:class:`~tap_zoom_sms.run.RunServices`) when made.
    - No type conformance: records are decoded from Zoom's JSON and made to match their
      schema as their page is parsed (:mod:`tap_zoom_sms.conform`), so every value is
      already a JSON type of its schema; the SDK's recursive conformance would rebuild
      every record to the same result, the largest per-record cost after encoding.
    - The SCHEMA message is written once per run, and no bookmark moves per record
      (see :class:`~tap_zoom_sms.sdk.StreamHooks`).
    """

    schema = StreamSchema(SCHEMAS)
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, *args: t.Any, services: RunServices, **kwargs: t.Any) -> None:
        """Make the stream for a run served by ``services``."""
        self.services = services
        super().__init__(*args, **kwargs)

    def carries(self, record: dict[str, t.Any]) -> bool:
        """Say whether ``record``'s children are to be read: not if a stream map's ``__filter__`` drops it.

        A filter on sessions is how people keep a department's or a number's SMS out of
        the warehouse, so it carries to the session's messages and attachments, and no
        file of theirs is downloaded. A stream mapped to null (or deselected) only
        hides its own records: its children still come (the SDK would stop them too).
        """
        stream_map = self.stream_maps[0]
        return isinstance(stream_map, RemoveRecordTransform) or bool(stream_map.get_filter_result(record))

    def record_written(self, record: dict) -> None:
        """Count the record in the run's progress, with how far it is in the stream's range."""
        self.services.progress.record(self.name, record.get(self.replication_key) if self.replication_key else None)
