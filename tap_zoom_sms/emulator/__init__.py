"""A Zoom API emulator for tests and the demo: a real HTTP server on 127.0.0.1.

It serves the phone SMS and Contact Center SMS endpoints the way Zoom documents
them, harsh readings included (see docs/emulator.md), from a
deterministic generated account, and counts every request.
"""

from tap_zoom_sms.emulator.data import Account, DatasetSpec
from tap_zoom_sms.emulator.server import Emulator, EmulatorConfig

__all__ = ["Account", "DatasetSpec", "Emulator", "EmulatorConfig"]
