"""One record per file attached to a message, taken from the message itself, with where its file was stored."""

from __future__ import annotations

import typing as t
from functools import partial

from tap_zoom_sms.basestream import BaseStream
from tap_zoom_sms.streams.messages import SmsMessagesStream, placeable

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_zoom_sms.downloads import Download


class AttachmentsStream(BaseStream):
    """One record per file attached to a message, taken from the message itself.

    With ``attachments_download_path`` set, each record also says where its file
    was stored (or why it was not); files that failed are listed in this stream's
    state (``failed_downloads``) and tried again at the start of the next run.
    """

    name = "attachments"
    primary_keys = ("message_id", "id")
    replication_key = "date_time"
    parent_stream_type = SmsMessagesStream
    state_partitioning_keys: t.ClassVar[list[str]] = []

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Yield the attachments of the message in ``context`` with its keys and time (no request)."""
        assert context is not None  # noqa: S101
        message = context["message"]
        downloads = context.get("downloads") or [None] * len(message["attachments"])
        for attachment, download in zip(message["attachments"], downloads, strict=True):
            if not placeable(attachment):
                where = f"message {message['message_id']} of session {message['session_id']}"
                self.services.record_checks.skip(self.name, "id", attachment.get("id"), where)
                continue
            record = {
                **attachment,
                "message_id": message["message_id"],
                "session_id": message["session_id"],
                "date_time": message.get("date_time"),
            }
            if download is not None:
                record.update(download.fields())
                self._track(record, failed=download.download_error is not None)
            yield record

    def write_from_message(self, message: dict[str, t.Any], downloads: list[Download | None] | None = None) -> None:
        """Write the RECORD messages of a message's attachments (see SmsMessagesStream)."""
        self.write_schema()
        for record in self.get_records({"message": message, "downloads": downloads}):
            self.write_record(record)

    def retry_failed_downloads(self) -> None:
        """Download again the files earlier runs could not, and write their records anew.

        Each is looked up through its message, for a fresh download URL. One whose
        message no longer exists at Zoom is dropped from the list, with a warning.
        """
        downloader = self.services.downloader
        pending = list(self.stream_state.get("failed_downloads") or ())
        if downloader is None or not pending:
            return
        self.logger.info("Retrying %d attachment file(s) that earlier runs could not download", len(pending))
        lookup = self.services.message_lookup
        owed = []
        for item in pending:
            session_id, message_id = item["session_id"], item["message_id"]
            message = lookup(session_id, message_id)
            attachment = next(
                (a for a in (message or {}).get("attachments") or () if a.get("id") == item["attachment_id"]), None
            )
            if message is None or attachment is None:
                self.logger.warning(
                    "Attachment %s of message %s is no longer at Zoom; not retrying it",
                    item["attachment_id"],
                    message_id,
                )
                self._forget(message_id, item["attachment_id"])
                continue
            refresh = partial(lookup, session_id, message_id)
            one = {**message, "session_id": session_id, "attachments": [attachment]}
            owed.append((one, downloader.submit(session_id, message_id, attachment, refresh)))
        for message, download in owed:
            self.write_from_message(message, [download.result()])
        self.write_state_message()

    def _track(self, record: dict[str, t.Any], *, failed: bool) -> None:
        """List a failed file in the state, or take a stored one off the list."""
        if not failed:
            self._forget(record["message_id"], record["id"])
            return
        pending = self.stream_state.setdefault("failed_downloads", [])
        key = {"session_id": record["session_id"], "message_id": record["message_id"], "attachment_id": record["id"]}
        if key not in pending:
            pending.append(key)

    def _forget(self, message_id: str, attachment_id: str) -> None:
        pending = self.stream_state.get("failed_downloads")
        if pending:
            pending[:] = [p for p in pending if (p["message_id"], p["attachment_id"]) != (message_id, attachment_id)]
            if not pending:
                del self.stream_state["failed_downloads"]
