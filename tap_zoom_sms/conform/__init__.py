"""What Zoom sends is input: records made to match their schemas before anything reads them.

A record Zoom sends with a field of the wrong shape (an array sent as a string, a time
as a number, ``[null]`` among attachments) used to stop the tap with a traceback, on
every run, at the same record; a numeric string against an integer schema passed
through, for a strict target to refuse later, again on every run. So every record is
checked against its stream's schema as its page is parsed, before the tap itself reads
a field of it:

- a value of another type is coerced where that is unambiguous (``"2"`` or ``2.0`` for
  an integer, a number for a string, an epoch number for a date-time, ``"true"`` for a
  boolean); otherwise the field is set to null. Nothing in ``schemas/`` is widened;
- a record without its key (``message_id``, ...) cannot be placed: it is skipped;
- text is made valid for every target: a lone UTF-16 surrogate (half an emoji, from an
  SMS split into segments) cannot be encoded as UTF-8 at all, and PostgreSQL refuses
  U+0000 in text and jsonb; both become U+FFFD, unless ``repair_text`` is off.

Each kind of change is reported in one WARNING line the first time it is met in a
stream's field (a skipped record, every time), and counted in the run's last progress
line. ``malformed_records: fail`` ends the run instead, before the bookmark passes the
window that holds the record.
"""
