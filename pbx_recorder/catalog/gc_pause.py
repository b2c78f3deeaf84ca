"""Python's cyclic garbage collector held off while a PostgreSQL bulk batch is pipelined.

libpq's pipeline keeps every statement's cursor until the results are read: a 1,000-call batch
holds thousands of cursors (each with its adapters and parameters) alive at once, and every
collection the allocations trigger walks them all again.  In the bench's PostgreSQL fill the
writer spent 13 % of its samples in the collector (py-spy), and held off it wrote 1,533-1,615
calls per CPU second against 1,171 (session 33).  Reference counting still frees everything
that is not in a cycle; what is, the next collection after the batch frees.

Process-wide, as the collector is: nested and concurrent batches count, the first to start
turns it off, the last to end turns it back on, and only if it was on before.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_state = {"depth": 0, "was_on": False}


@contextmanager
def paused() -> Iterator[None]:
    """The cyclic collector off for the block (see the module's text)."""
    with _lock:
        if _state["depth"] == 0:
            _state["was_on"] = gc.isenabled()
            gc.disable()
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0 and _state["was_on"]:
                gc.enable()
