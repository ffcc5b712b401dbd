"""Session assembly: the arc (settle -> deepen -> release -> aftercare) fitted to the minutes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommender.arc_kernel import walk_arc
from recommender.features import ItemMatrix

PHASES = ("settle", "deepen", "release", "aftercare")
# Share of the song time (after the film and the aftercare item) each phase gets.
PHASE_SHARE = {"settle": 0.25, "deepen": 0.45, "release": 0.30}
CRISIS_SHARE = {"settle": 0.5, "release": 0.5}
MAX_PER_MAKER = 2
# No decade may fill more than this share of a session's songs (at least MIN_PER_ERA allowed).
MAX_ERA_SHARE = 0.5
MIN_PER_ERA = 3
# A typical song's length, to estimate how many songs a session will hold.
TYPICAL_SONG_S = 240
# A film is the centrepiece only when this much song time is left around it.
FILM_MARGIN_S = 8 * 60
# A phase ends once less than this many seconds of its time are left.
PHASE_DONE_BELOW_S = 90
# Of many songs (more than four times this), a phase sorts its best this many first, and the
# rest only if its walk gets past them.
RANKED_HEAD = 256


@dataclass(frozen=True)
class Placement:
    row: int
    phase: str
    score: float


@dataclass(frozen=True)
class ArcPlan:
    placements: list[Placement]
    total_duration_s: int


def assemble(
    matrix: ItemMatrix,
    scores: np.ndarray,
    *,
    minutes: int,
    intensity: int,
    include_films: bool,
    crisis: bool,
    banned_rows: set[int],
) -> ArcPlan:
    """Choose and order items for a session from per-item ``scores`` (one per matrix row).

    The total duration never exceeds ``minutes``; the last item is always an aftercare item;
    at most two items share an artist or director; never two versions of the same title
    (a cover and the original of "Hallelujah"); no decade takes more than half the songs;
    banned rows never appear; a crisis session holds no deepen items and nothing about
    suicide.

    Nothing goes deeper than the intensity asked for, except that from intensity 3 up the
    deepen phase may go one step further at its peak (a crisis session stays at 2 or
    below). First the aftercare song: the best-scored uplifting song that fits the time, a
    gentle one (intensity 1-2) when there is one, else any allowed one, else any that fits
    (a session never ends on a tear-jerker). Then a film as the deepen phase's centrepiece
    when one fits with ``FILM_MARGIN_S`` to spare. Then songs, phase by phase, each phase's
    time its share of what is left (``PHASE_SHARE``; what a phase leaves goes to the next):
    the songs walked from the best by their score less 0.35 for each step their intensity
    lies from the phase's target (deepen: the intensity asked for, half a step more from 3
    up; settle one and a half steps below, release one below, neither below 1), ties by
    row, each taken if it fits what is left and breaks no rule above, until less than
    ``PHASE_DONE_BELOW_S`` of the phase's time is left. Within settle and deepen the items
    climb in intensity (a film last), release comes down again, aftercare closes.
    """
    from recommender.tastes import taste_attributes

    attrs = taste_attributes(matrix)
    budget = minutes * 60
    shares = CRISIS_SHARE if crisis else PHASE_SHARE
    # The compiled walk reads without bounds checks: a score per row, bans among the rows.
    if len(scores) != len(matrix):
        raise ValueError(f"{len(scores)} scores for a matrix of {len(matrix)} rows")
    banned = np.fromiter(banned_rows, dtype=np.int64, count=len(banned_rows))
    if len(banned) and (banned.min() < 0 or banned.max() >= len(matrix)):
        raise IndexError(f"banned rows outside the matrix's {len(matrix)}")
    # The walk itself is compiled (recommender/arc_kernel.py): every rule above, row by row,
    # from each phase's best by score and closeness to the phase's intensity.
    rows, phases = walk_arc(
        np.ascontiguousarray(scores, dtype=np.float64),
        np.ascontiguousarray(matrix.duration_s, dtype=np.int64),
        np.ascontiguousarray(matrix.intensity, dtype=np.float32),
        np.ascontiguousarray(matrix.is_film, dtype=bool),
        np.ascontiguousarray(matrix.aftercare, dtype=bool),
        np.ascontiguousarray(matrix.has_suicide_theme, dtype=bool),
        np.ascontiguousarray(matrix.maker, dtype=np.int64),
        np.ascontiguousarray(attrs.era_code, dtype=np.int32),
        np.ascontiguousarray(attrs.title_code, dtype=np.int32),
        banned, budget, intensity, include_films, crisis,
        np.array([shares.get(phase, 0.0) for phase in PHASES[:3]]),
        MAX_PER_MAKER, max(MIN_PER_ERA, int(MAX_ERA_SHARE * budget / TYPICAL_SONG_S)),
        FILM_MARGIN_S, RANKED_HEAD, PHASE_DONE_BELOW_S)
    if not len(rows):
        raise ValueError(f"no aftercare song fits in {minutes} minutes")
    ordered = [Placement(row, PHASES[phase], float(scores[row]))
               for row, phase in zip(rows.tolist(), phases.tolist(), strict=True)]
    return ArcPlan(ordered, int(matrix.duration_s[rows].sum()))
