"""Writing Singer messages: msgspec encoding, flushed at STATE messages rather than per record."""

from __future__ import annotations

import json
import sys
import typing as t

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib import StateMessage

from tap_zoom_sms import interrupts

if t.TYPE_CHECKING:
    from singer_sdk.singerlib import Message


class SingerOutput(MsgSpecWriter):
    """The SDK's msgspec writer, without a flush after every message.

    The stock writers encode with the json module and flush stdout after every
    record: two costs per record that dominate a fast extraction. Records are
    buffered and flushed before each STATE message leaves (and at exit), so a
    target still receives every record before the STATE that covers it; what a
    killed process had not flushed lies after its last STATE and is read again. A
    stop signal that arrives while a message is written waits until it is whole.
    """

    def serialize_message(self, message: Message) -> bytearray:
        """Encode a message; text UTF-8 cannot hold (a lone surrogate, kept by ``repair_text: false``) as a JSON escape.

        msgspec refuses such text, and the stdlib's ASCII-only JSON writes it as the
        escape Zoom sent it as (backslash, u, d83d): valid JSON, which a target may take or refuse.
        """
        try:
            return super().serialize_message(message)
        except UnicodeEncodeError:
            return bytearray(json.dumps(message.to_dict(), ensure_ascii=True, default=str).encode() + b"\n")

    def write_message(self, message: Message) -> None:
        """Write a message; flush when it is a STATE."""
        out = sys.stdout.buffer
        with interrupts.deferred():
            out.write(self.format_message(message))
            if isinstance(message, StateMessage):
                out.flush()
