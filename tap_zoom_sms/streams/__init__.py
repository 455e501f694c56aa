"""The tap's streams."""

from tap_zoom_sms.streams.contact_center import ContactCenterSmsStream
from tap_zoom_sms.streams.phone import AttachmentsStream, SmsMessagesStream, SmsSessionsStream

STREAM_TYPES = (SmsSessionsStream, SmsMessagesStream, AttachmentsStream, ContactCenterSmsStream)

__all__ = [
    "STREAM_TYPES",
    "AttachmentsStream",
    "ContactCenterSmsStream",
    "SmsMessagesStream",
    "SmsSessionsStream",
]
