"""The compiled part of a person's taste, by Numba: a request's candidates' rows cut from the
whole catalogue's table of taste attributes (``recommender.tastes._subset_attributes``).

The cut keeps the candidates' entries and renumbers the attributes they use, in sorted
order. Done with NumPy, it marked the used attributes in an array as long as the
catalogue has attributes (115,678 at 100,000 items: one per item, maker, theme, mood, era
and kind) and read the marks back, some ten array calls; here the marks go into a scratch
array kept per thread and only the candidates' few thousand entries are touched (its marks
are cleared before it returns).

Compiled for its signatures when this module is imported and kept in ``__pycache__`` beside
it, as ``recommender.retrieval_kernel``'s functions are (``NUMBA_CACHE_DIR`` where that cannot
be written).
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit, types

__all__ = ["cut_rows"]


def _array(kind):  # a read-only array type, which writable arrays pass as too
    return types.Array(kind, 1, "C", readonly=True)


def _signature(index):
    return types.Tuple((types.int64[::1], types.int64[::1], types.int64[::1],
                        types.int64[::1]))(
        _array(index), _array(index), _array(types.int64), types.int32[::1])


@njit([_signature(types.int32), _signature(types.int64)], cache=True, nogil=True)
def _cut(indptr, indices, rows, scratch):
    """The rows' entries of a CSR table (``indptr``, ``indices``): where each row's entries
    start in the cut, each entry's column renumbered among the used ones, the used columns
    in order, and each entry's place in the table. ``scratch`` holds -1 for every column on
    the way in and on the way out."""
    n = rows.shape[0]
    starts = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        starts[i + 1] = starts[i] + (indptr[rows[i] + 1] - indptr[rows[i]])
    entries = starts[n]
    at = np.empty(entries, dtype=np.int64)
    touched = np.empty(entries, dtype=np.int64)
    used_count = 0
    e = 0
    for i in range(n):
        for place in range(indptr[rows[i]], indptr[rows[i] + 1]):
            at[e] = place
            e += 1
            column = indices[place]
            if scratch[column] < 0:
                scratch[column] = 0
                touched[used_count] = column
                used_count += 1
    used = np.sort(touched[:used_count])
    for j in range(used_count):
        scratch[used[j]] = j
    columns = np.empty(entries, dtype=np.int64)
    for k in range(entries):
        columns[k] = scratch[indices[at[k]]]
    for j in range(used_count):
        scratch[used[j]] = -1
    return starts, columns, used, at


_scratch = threading.local()


def cut_rows(indptr: np.ndarray, indices: np.ndarray, width: int, rows: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ``rows`` of a CSR table ``width`` columns wide: the cut's row starts, its
    entries' columns renumbered among the used ones (in sorted order), the used columns of
    the table, and each entry's place in the table (to read its value)."""
    kept = getattr(_scratch, "arrays", None)
    if kept is None:
        kept = _scratch.arrays = {}
    scratch = kept.get(width)
    if scratch is None:
        scratch = kept[width] = np.full(width, -1, dtype=np.int32)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= len(indptr) - 1):
        # The compiled pass reads without bounds checks.
        raise IndexError(f"rows outside the table's {len(indptr) - 1}")
    kind = np.int64 if indptr.dtype == np.int64 or indices.dtype == np.int64 else np.int32
    return _cut(np.ascontiguousarray(indptr, dtype=kind),
                np.ascontiguousarray(indices, dtype=kind), rows, scratch)
