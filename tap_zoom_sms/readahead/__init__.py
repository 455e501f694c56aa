"""Reading ahead of the SDK, so the rate limit stays busy while the SDK writes.

Workers fetch the messages of the sessions listed (:mod:`.prefetch`), and the sessions,
active sessions and window ends wait in :mod:`.queue` to be written, and committed, in order.
"""
