"""The compiled part of candidate retrieval, by Numba: the best rows of a pool by a prior.

Retrieval (``recommender.retrieval``) keeps, of each pool the arc draws from, the ``k`` rows
of highest prior: of the sad songs (most of a catalogue), of the aftercare songs and films
that fit the time, and of the rows carrying what a person loved (scored by the prior plus
what they carry). Each function here makes one pass over the pool and keeps the best ``k``
seen so far in a heap, so that a row only costs its read and one comparison with the
``k``-th best so far. Done with NumPy, each pool took a gather of its rows' priors, a
sample to estimate a bar, a cut at the bar and a partition (some ten array calls a pool,
five pools a session).

Which of several rows tied at the ``k``-th value are kept is not specified (as with
``numpy.argpartition``); tests/test_scale_paths.py holds every function to an exact sort.
The three functions each write out the same fill-then-replace loop: with the step shared as
a compiled helper they took 25-40% longer (61 against 43 us for the songs' pool at 100,000
rows), the helper's call sitting in the loop every row passes through.

Each function is compiled for its one signature when this module is imported and kept in
``__pycache__`` beside it, as ``recommender.pairing_kernel``'s are (``NUMBA_CACHE_DIR`` where
that cannot be written).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types

__all__ = ["top_in_pool", "top_of_rows", "top_scored"]


def _array(kind):  # a read-only array type, which writable arrays pass as too
    return types.Array(kind, 1, "C", readonly=True)


@njit(types.void(types.float32[::1], types.int64[::1], types.int64, types.int64),
      cache=True, nogil=True)
def _sift_down(values, rows, at, k):
    """Restore the heap (smallest value on top) below ``at``."""
    while True:
        child = 2 * at + 1
        if child >= k:
            return
        if child + 1 < k and values[child + 1] < values[child]:
            child += 1
        if values[child] < values[at]:
            values[child], values[at] = values[at], values[child]
            rows[child], rows[at] = rows[at], rows[child]
            at = child
        else:
            return


@njit(types.void(types.float32[::1], types.int64[::1], types.int64), cache=True, nogil=True)
def _heapify(values, rows, k):
    for at in range(k // 2 - 1, -1, -1):
        _sift_down(values, rows, at, k)


@njit(types.int64[::1](_array(types.float32), _array(types.uint8), types.int64, types.int64,
                       _array(types.boolean), types.int64), cache=True, nogil=True)
def top_in_pool(prior, code, low, high, blocked, k):
    """The (up to) ``k`` rows of highest ``prior`` among the rows whose ``code`` is between
    ``low`` and ``high`` (inclusive) and, when ``blocked`` holds a flag per row, that are
    not blocked (an empty ``blocked`` blocks nothing). Unsorted."""
    n = prior.shape[0]
    screen = blocked.shape[0] > 0
    values = np.empty(max(k, 0), dtype=np.float32)
    rows = np.empty(max(k, 0), dtype=np.int64)
    filled = 0
    i = 0
    while i < n and filled < k:
        c = code[i]
        if low <= c <= high and not (screen and blocked[i]):
            values[filled] = prior[i]
            rows[filled] = i
            filled += 1
        i += 1
    if filled < k:
        return rows[:filled].copy()
    _heapify(values, rows, k)
    bar = values[0] if k > 0 else np.float32(np.inf)
    while i < n:
        value = prior[i]
        if value > bar:  # most rows stop here
            c = code[i]
            if low <= c <= high and not (screen and blocked[i]):
                values[0] = value
                rows[0] = i
                _sift_down(values, rows, 0, k)
                bar = values[0]
        i += 1
    return rows


@njit(types.int64[::1](_array(types.float32), _array(types.int64), types.int64), cache=True,
      nogil=True)
def top_of_rows(prior, pool, k):
    """The (up to) ``k`` rows of ``pool`` of highest ``prior``. Unsorted."""
    n = pool.shape[0]
    if n <= k:
        return pool.copy()
    values = np.empty(max(k, 0), dtype=np.float32)
    rows = np.empty(max(k, 0), dtype=np.int64)
    for i in range(k):
        values[i] = prior[pool[i]]
        rows[i] = pool[i]
    _heapify(values, rows, k)
    bar = values[0] if k > 0 else np.float32(np.inf)
    for i in range(k, n):
        value = prior[pool[i]]
        if value > bar:
            values[0] = value
            rows[0] = pool[i]
            _sift_down(values, rows, 0, k)
            bar = values[0]
    return rows


@njit(types.int64[::1](_array(types.float32), _array(types.int64), _array(types.float32),
                       _array(types.boolean), types.int64), cache=True, nogil=True)
def top_scored(prior, pool, extra, allowed, k):
    """The positions in ``pool`` of the (up to) ``k`` allowed rows of highest score, a row's
    score being ``prior[pool[p]] + extra[p]`` (float32, as NumPy adds them). Unsorted."""
    n = pool.shape[0]
    values = np.empty(max(k, 0), dtype=np.float32)
    positions = np.empty(max(k, 0), dtype=np.int64)
    filled = 0
    p = 0
    while p < n and filled < k:
        if allowed[p]:
            values[filled] = prior[pool[p]] + extra[p]
            positions[filled] = p
            filled += 1
        p += 1
    if filled < k:
        return positions[:filled].copy()
    _heapify(values, positions, k)
    bar = values[0] if k > 0 else np.float32(np.inf)
    while p < n:
        if allowed[p]:
            value = prior[pool[p]] + extra[p]
            if value > bar:
                values[0] = value
                positions[0] = p
                _sift_down(values, positions, 0, k)
                bar = values[0]
        p += 1
    return positions
