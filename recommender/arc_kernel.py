"""The compiled walk of a session's arc, by Numba: which rows ``recommender.session.assemble``
places in each phase, and in what order.

What it computes is what ``assemble`` describes (the rules are there); this is its walk
written out row by row in one compiled call. Done with NumPy and Python, a session's arc
took some hundred array calls on a few hundred candidates and a Python step for every row
walked (86 us warm for 190 candidates, 0.2-0.26 ms of a served session).

Phases are numbered as ``recommender.session.PHASES`` lists them: settle, deepen, release,
aftercare. Like the module's other kernels, the function is compiled for its one signature
when this module is imported and kept in ``__pycache__`` beside it (``NUMBA_CACHE_DIR``
where that cannot be written).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.typed import Dict

__all__ = ["walk_arc"]

SETTLE, DEEPEN, RELEASE, AFTERCARE = 0, 1, 2, 3
_NO_AFTERCARE = -1


def _array(kind):  # a read-only array type, which writable arrays pass as too
    return types.Array(kind, 1, "C", readonly=True)


@njit(types.int64(_array(types.float64), _array(types.int64)), cache=True, nogil=True)
def _best(scores, rows):
    """The row of highest score (the first of equals, or the first NaN, as np.argmax)."""
    best = rows[0]
    for i in range(rows.shape[0]):
        value = scores[rows[i]]
        if value != value:
            return rows[i]
        if value > scores[best]:
            best = rows[i]
    return best


@njit(types.void(types.int64[::1], types.int64, _array(types.float64), _array(types.float32),
                 _array(types.boolean), types.boolean), cache=True, nogil=True)
def _order(rows, count, scores, intensity, is_film, climb):
    """Sort ``rows[:count]`` in place, stably: climbing by (film, intensity, -score), or
    coming down by (-intensity, -score)."""
    for i in range(1, count):
        row = rows[i]
        at = i
        while at > 0:
            other = rows[at - 1]
            if climb:
                a = (np.float64(is_film[row]), np.float64(intensity[row]), -scores[row])
                b = (np.float64(is_film[other]), np.float64(intensity[other]), -scores[other])
                before = a[0] < b[0] or (a[0] == b[0] and (a[1] < b[1] or (
                    a[1] == b[1] and a[2] < b[2])))
            else:
                a2 = (-np.float64(intensity[row]), -scores[row])
                b2 = (-np.float64(intensity[other]), -scores[other])
                before = a2[0] < b2[0] or (a2[0] == b2[0] and a2[1] < b2[1])
            if not before:
                break
            rows[at] = other
            at -= 1
        rows[at] = row


_COUNTS = types.DictType(types.int64, types.int64)


@njit(types.void(types.int64, types.boolean[::1], _array(types.int64), _array(types.int32),
                 _array(types.int32), _COUNTS, _COUNTS, _COUNTS),
      cache=True, nogil=True, inline="always")
def _take(row, chosen, maker, era, title, makers, eras, titles):
    """Place ``row``: it is chosen, and its maker, decade and title are counted."""
    chosen[row] = True
    if maker[row]:
        makers[maker[row]] = makers.get(maker[row], 0) + 1
    titles[np.int64(title[row])] = 1
    if era[row]:
        eras[np.int64(era[row])] = eras.get(np.int64(era[row]), 0) + 1


_SIGNATURE = types.Tuple((types.int64[::1], types.int8[::1]))(
    _array(types.float64), _array(types.int64), _array(types.float32),  # scores, length, intensity
    _array(types.boolean), _array(types.boolean), _array(types.boolean),  # film, aftercare, suicide
    _array(types.int64), _array(types.int32), _array(types.int32),  # maker, era, title codes
    _array(types.int64),  # banned rows
    types.int64, types.int64, types.boolean, types.boolean,  # budget, intensity, films, crisis
    _array(types.float64),  # each phase's share of the song time (settle, deepen, release)
    types.int64, types.int64, types.int64, types.int64, types.int64)


@njit([_SIGNATURE], cache=True, nogil=True)
def walk_arc(scores, length, intensity, is_film, aftercare, suicide, maker, era, title, banned,
             budget, asked, include_films, crisis, shares, max_per_maker, era_cap,
             film_margin, head, stop_below):
    """The rows of a session in order, and each one's phase; no rows (and phase -1) when no
    aftercare song fits. ``shares`` gives each phase's share of the song time (0 skips it),
    ``head`` how many of a phase's best songs are sorted first when there are more than four
    times as many (the rest only if the walk gets past them: all of the best are at least
    as good as any of the rest, so the order is the same as one sort's), ``stop_below`` the
    seconds left in a phase that end it."""
    n = scores.shape[0]
    cap = 2 if crisis else asked
    deepen_cap = cap if crisis or asked < 3 else min(5, asked + 1)
    allowed = np.ones(n, dtype=np.bool_)
    for i in range(banned.shape[0]):
        allowed[banned[i]] = False
    for i in range(n):
        if intensity[i] > deepen_cap or (crisis and suicide[i]):
            allowed[i] = False
    chosen = np.zeros(n, dtype=np.bool_)
    makers = Dict.empty(key_type=types.int64, value_type=types.int64)
    eras = Dict.empty(key_type=types.int64, value_type=types.int64)
    titles = Dict.empty(key_type=types.int64, value_type=types.int64)  # used as a set
    placed = np.empty(n, dtype=np.int64)
    phase_of = np.empty(n, dtype=np.int8)
    placed_count = 0

    # 1. Aftercare: gentle and allowed, else allowed, else any that fits.
    fits = np.empty(n, dtype=np.int64)
    found = 0
    for attempt in range(3):
        found = 0
        for i in range(n):
            if aftercare[i] and not is_film[i] and length[i] <= budget and (
                    attempt == 2 or (allowed[i] and (attempt == 1 or intensity[i] <= 2))):
                fits[found] = i
                found += 1
        if found:
            break
    if not found:
        return np.empty(0, dtype=np.int64), np.full(1, _NO_AFTERCARE, dtype=np.int8)
    care_row = _best(scores, fits[:found])
    remaining = budget - length[care_row]
    _take(care_row, chosen, maker, era, title, makers, eras, titles)

    # 2. A film as the deepen phase's centrepiece, when one fits with room around it.
    by_phase = np.empty((3, n), dtype=np.int64)
    in_phase = np.zeros(3, dtype=np.int64)
    if include_films and not crisis:
        found = 0
        for i in range(n):
            if (allowed[i] and not aftercare[i] and is_film[i]
                    and length[i] <= remaining - film_margin):
                fits[found] = i
                found += 1
        if found:
            film = _best(scores, fits[:found])
            _take(film, chosen, maker, era, title, makers, eras, titles)
            remaining -= length[film]
            by_phase[DEEPEN, 0] = film
            in_phase[DEEPEN] = 1

    # 3. Songs, phase by phase, each walked from its best by score and closeness to the
    # phase's own intensity.
    songs = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        if allowed[i] and not aftercare[i] and not is_film[i]:
            songs[m] = i
            m += 1
    song_budget = remaining
    carry = 0
    values = np.empty(m, dtype=np.float64)
    places = np.empty(m, dtype=np.int64)
    for phase in range(3):
        if shares[phase] == 0.0:
            continue
        phase_budget = np.int64(song_budget * shares[phase]) + carry
        if phase == DEEPEN:
            target = asked + (0.5 if asked >= 3 else 0.0)
            phase_cap = deepen_cap
        else:
            target = max(1.0, asked - (1.5 if phase == SETTLE else 1.0))
            phase_cap = cap
        target32 = np.float32(target)
        finite = 0
        for j in range(m):
            row = songs[j]
            if intensity[row] > phase_cap:
                continue
            value = scores[row] - np.float64(
                np.float32(0.35) * abs(intensity[row] - target32))
            if np.isfinite(value):
                values[finite] = value
                places[finite] = j
                finite += 1
        # The best ``head`` first (all of them when there are few), the rest only if needed.
        if finite > 4 * head:
            cut = np.partition(values[:finite], finite - head)[finite - head]
        else:
            cut = -np.inf
        spent = 0
        done = False
        for part in range(2):
            if done:
                break
            count = 0
            keep = np.empty(finite, dtype=np.int64)
            for j in range(finite):
                if (values[j] >= cut) == (part == 0):
                    keep[count] = j
                    count += 1
            if count == 0:
                continue
            ranked = keep[:count][np.argsort(-values[keep[:count]], kind="mergesort")]
            for j in range(count):
                row = songs[places[ranked[j]]]
                duration = length[row]
                if chosen[row] or duration > phase_budget - spent or duration > remaining:
                    continue
                if maker[row] and makers.get(maker[row], 0) >= max_per_maker:
                    continue
                if np.int64(title[row]) in titles or (
                        era[row] and eras.get(np.int64(era[row]), 0) >= era_cap):
                    continue
                _take(row, chosen, maker, era, title, makers, eras, titles)
                spent += duration
                remaining -= duration
                by_phase[phase, in_phase[phase]] = row
                in_phase[phase] += 1
                if phase_budget - spent < stop_below:
                    done = True
                    break
        carry = phase_budget - spent

    # Order within phases: settle and deepen climb (a film last in deepen), release comes
    # down again, aftercare closes.
    for phase in range(3):
        count = in_phase[phase]
        rows = by_phase[phase, :count].copy()
        _order(rows, count, scores, intensity, is_film, phase != RELEASE)
        for j in range(count):
            placed[placed_count] = rows[j]
            phase_of[placed_count] = phase
            placed_count += 1
    placed[placed_count] = care_row
    phase_of[placed_count] = AFTERCARE
    placed_count += 1
    return placed[:placed_count].copy(), phase_of[:placed_count].copy()
