"""The garbage collector, set for a long-running server process.

CPython's cyclic collector makes a full pass over every tracked object once enough have
survived its younger passes. A server holds many long-lived objects (its modules, the
ORM's mappings, the classifier, and for each open socket its buffers and tasks), and
under load the requests waiting in line live long enough to survive the young passes.
At 10,000 sockets and 200 replies/s the full passes took about 1.2 ms of CPU per reply
and held the event loop up to 0.9 s each (``bench/ws_fanout.py``, docs/benchmarks.md).
"""

from __future__ import annotations

import gc

# CPython's defaults are (700, 10, 10): a young pass every 700 allocations, so objects
# that would have been freed a moment later are promoted, and count toward a full pass.
THRESHOLDS = (50_000, 50, 100)


def settle_after_start() -> None:
    """Called once the process has started: what starting made lives as long as the
    process, so it is set aside from the collector's passes (``gc.freeze``), and young
    objects get time to be freed by their last reference going before a pass sees them."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
