"""The tap's streams: one module each (see docs/architecture.md for how a run drives them)."""

from tap_zoom_sms.streams.attachments import AttachmentsStream
from tap_zoom_sms.streams.contact_center import ContactCenterSmsStream
from tap_zoom_sms.streams.messages import SmsMessagesStream
from tap_zoom_sms.streams.sessions import SmsSessionsStream

STREAM_TYPES = (SmsSessionsStream, SmsMessagesStream, AttachmentsStream, ContactCenterSmsStream)
