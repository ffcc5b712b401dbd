"""Work over a million rows at once: imports and item-matrix builds.

Such work creates millions of small container objects (rows, tuples, lists) that live until
it ends. CPython's cyclic garbage collector sweeps all of them again and again as they
accumulate; none of them is cyclic garbage, so the sweeps only cost time (a fifth to a third
of an import). :func:`collector_paused` turns the collector off for the duration.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (reference counting still frees
    everything that is not in a cycle); the collector is back on afterwards if it was on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
