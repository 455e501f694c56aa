"""The tap's settings.

What they are (:mod:`.schema`), where they come from (:mod:`.sources`: files and
``TAP_ZOOM_SMS_*`` variables) and which values are refused before any request (:mod:`.checks`).
"""
