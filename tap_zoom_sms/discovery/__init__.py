"""Message discovery: which months hold messages of which sessions, so a backfill reads only those.

A session is listed (``filter_type=last_message_time``) only in the month of its last
message, and its earlier messages lie in earlier months. The exhaustive walk reads
every month from the run's lower bound up to each session's last message: on a long
backfill most of those requests come back empty (four to six times the requests the
API needs). Zoom's session lists can also say which sessions *sent*
(``sent_message_time``) or *received* (``received_message_time``) a message in a
window: listing each month by both tells which sessions have messages in that month,
and their details are read there, once (``message_discovery: activity``).

Zoom documents each filter in one sentence, so the tap checks them as it goes, and
falls back to the exhaustive walk when they fall short:

- every session listed by its last message in a month must be among that month's
  active sessions (this costs nothing);
- a sample of the sessions of the backfill's latest months (listed by their last
  message, so they have the longest histories in the range) is walked exhaustively
  over the whole range, and the activity list of every month where the walk finds
  messages must name the session (about 5% of a backfill's requests). The walk runs
  in the background from the run's start, beside the months being read, and each
  month is checked before its bookmark is committed.

The sessions stream (:mod:`tap_zoom_sms.streams.sessions`) reads month by month: two months'
active sessions at most are held at once, and the state holds no session.

Here: :mod:`.activity` reads the activity lists and checks them against the sessions listed,
:mod:`.sample` walks a sample of sessions exhaustively and checks the lists against it,
:mod:`.boundary` writes a message on a month's first instant once.
"""
