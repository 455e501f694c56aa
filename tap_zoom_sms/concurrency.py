"""How many sessions' messages are fetched at once, when the settings do not say.

Each worker makes one request at a time, so the requests in flight are the busy
workers, and by Little's law holding R requests a second at L seconds a request
takes R x L of them. Zoom's latency is not known before a run and changes during
one, so the default is sized for a latency budget above what Zoom takes from a
worker in another region (about 1 s): more workers than the latency needs cost a
thread each and wait their turn at the limiter, fewer leave the limit unused.

The sessions stream reads up to ``4 x workers`` fetches ahead (see
:mod:`tap_zoom_sms.readahead.prefetch`), ``2 x workers`` of them started, and the workers start
the next themselves. The session list's next page takes the limiter's next turn
(see :mod:`tap_zoom_sms.ratelimit`) and one latency, while the fetches ahead hold
``4 x workers`` requests, ``4 x workers / R`` seconds of the limit: four times the
budget, so the list's pages never leave the workers without sessions.
"""

from __future__ import annotations

import math
import typing as t

#: Seconds a request may take with the limit still held: Zoom's 1 s from far away, and a margin.
LATENCY_BUDGET_SECONDS = 1.5
#: Workers with no client-side limit (0): the limit then says nothing of what is needed.
UNLIMITED_WORKERS = 8
#: The most the settings accept (and threads a run will start for messages, or for files).
MAX_WORKERS = 64


def default_workers(requests_per_second: float) -> int:
    """Return the workers that hold ``requests_per_second`` at up to the latency budget."""
    if requests_per_second <= 0:
        return UNLIMITED_WORKERS
    return max(1, min(MAX_WORKERS, math.ceil(requests_per_second * LATENCY_BUDGET_SECONDS)))


def message_workers(config: t.Mapping[str, t.Any]) -> int:
    """Return ``max_concurrent_requests`` if set, else the default for the Medium limit."""
    explicit = config.get("max_concurrent_requests")
    if explicit is not None:
        return int(explicit)
    return default_workers(float(config.get("medium_requests_per_second") or 0))
