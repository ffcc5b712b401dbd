"""Session assembly: the arc (settle -> deepen -> release -> aftercare) fitted to the minutes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


@dataclass(frozen=True)
class Placement:
    row: int
    phase: str
    score: float


@dataclass(frozen=True)
class ArcPlan:
    placements: list[Placement]
    total_duration_s: int


def _phase_target(phase: str, intensity: int) -> float:
    if phase == "deepen":
        # The peak sits between what was asked for and the one step further deepen may go.
        return intensity + (0.5 if intensity >= 3 else 0.0)
    if phase == "settle":
        return max(1.0, intensity - 1.5)
    return max(1.0, intensity - 1.0)


def _ranked_blocks(rows: np.ndarray, adjusted: np.ndarray, head: int = 256):
    """``rows`` in the order of a stable descending sort of ``adjusted`` (finite values
    only), in blocks that grow. Only the head is selected and sorted at first; the rest is
    sorted only if the walk gets that far."""
    finite = np.flatnonzero(np.isfinite(adjusted))
    values = adjusted[finite]
    parts = []
    if len(finite) > 4 * head:
        cut = np.partition(values, len(values) - head)[len(values) - head]
        top = values >= cut
        parts.append((finite[top], values[top]))
        parts.append((finite[~top], values[~top]))
    else:
        parts.append((finite, values))
    size = 32
    for idx, vals in parts:
        ordered = rows[idx[np.lexsort((idx, -vals))]]
        start = 0
        while start < len(ordered):
            yield ordered[start:start + size]
            start += size
            size = min(size * 2, 4096)


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
    """
    from recommender.tastes import taste_attributes

    attrs = taste_attributes(matrix)
    budget = minutes * 60
    n = len(matrix)
    allowed = np.ones(n, dtype=bool)
    if banned_rows:
        allowed[list(banned_rows)] = False
    # Intensity caps how deep a session goes: nothing harder than asked for, except that
    # from intensity 3 up the deepen phase may go one step further at its peak.
    cap = 2 if crisis else intensity
    deepen_cap = cap if crisis or intensity < 3 else min(5, intensity + 1)
    allowed &= matrix.intensity <= deepen_cap
    if crisis:
        allowed &= ~matrix.has_suicide_theme
    used_makers: dict = {}
    used_eras: dict[int, int] = {}
    used_titles: set[int] = set()
    chosen: set[int] = set()
    era_cap = max(MIN_PER_ERA, int(MAX_ERA_SHARE * budget / TYPICAL_SONG_S))
    era_of, title_of = attrs.era_code, attrs.title_code  # numbers: 0 is an unknown decade

    def take(row: int) -> None:
        chosen.add(row)
        maker = matrix.maker[row]
        if maker:
            used_makers[maker] = used_makers.get(maker, 0) + 1
        used_titles.add(int(title_of[row]))
        era = int(era_of[row])
        if era:
            used_eras[era] = used_eras.get(era, 0) + 1

    # 1. Aftercare: the best-fitting uplifting song that fits the time, a gentle one
    # (intensity 1-2) when there is one: a session never ends on a tear-jerker.
    fits = matrix.aftercare & ~matrix.is_film & (matrix.duration_s <= budget)
    care_rows = np.flatnonzero(allowed & fits & (matrix.intensity <= 2))
    if len(care_rows) == 0:
        care_rows = np.flatnonzero(allowed & fits)
    if len(care_rows) == 0:
        care_rows = np.flatnonzero(matrix.aftercare & ~matrix.is_film
                                   & (matrix.duration_s <= budget))
    if len(care_rows) == 0:
        raise ValueError(f"no aftercare song fits in {minutes} minutes")
    aftercare_row = int(care_rows[np.argmax(scores[care_rows])])
    take(aftercare_row)
    remaining = budget - int(matrix.duration_s[aftercare_row])

    sad = allowed & ~matrix.aftercare
    placements: dict[str, list[Placement]] = {p: [] for p in PHASES}
    placements["aftercare"].append(Placement(aftercare_row, "aftercare",
                                             float(scores[aftercare_row])))

    # 2. A film as the centrepiece of the deepen phase, when it fits.
    if include_films and not crisis:
        films = np.flatnonzero(sad & matrix.is_film
                               & (matrix.duration_s <= remaining - FILM_MARGIN_S))
        if len(films):
            film = int(films[np.argmax(scores[films])])
            take(film)
            remaining -= int(matrix.duration_s[film])
            placements["deepen"].append(Placement(film, "deepen", float(scores[film])))

    # 3. Songs, phase by phase, each phase preferring its own intensity.
    songs = np.flatnonzero(sad & ~matrix.is_film)
    song_scores, song_intensity = scores[songs], matrix.intensity[songs]
    maker_of = np.asarray(matrix.maker)
    shares = CRISIS_SHARE if crisis else PHASE_SHARE
    song_budget = remaining
    carry = 0
    for phase, share in shares.items():
        phase_budget = int(song_budget * share) + carry
        target = _phase_target(phase, intensity)
        phase_cap = deepen_cap if phase == "deepen" else cap
        adjusted = song_scores - 0.35 * np.abs(song_intensity - target)
        adjusted[song_intensity > phase_cap] = -np.inf
        spent = 0
        # Walk the ranking in growing blocks; a vectorised pass first drops the rows that the
        # exact checks below would refuse anyway (too long, maker or decade already full).
        # Those limits only tighten as items are taken, so the choice is the same as walking
        # row by row, without a Python step for every song of a large catalogue. The facts
        # the walk checks are read for a block at once, as Python values.
        blocks = _ranked_blocks(songs, adjusted)
        phase_done = False
        for block in blocks:
            if phase_done:
                break
            durations = matrix.duration_s[block]
            keep = durations <= min(phase_budget - spent, remaining)
            makers = maker_of[block]
            full_makers = [m for m, c in used_makers.items() if c >= MAX_PER_MAKER]
            if full_makers:
                keep &= ~np.isin(makers, full_makers)
            eras = era_of[block]
            for era in (e for e, c in used_eras.items() if c >= era_cap):
                keep &= eras != era
            walked = block[keep]
            for row, dur, maker, era, title in zip(
                    walked.tolist(), durations[keep].tolist(), makers[keep].tolist(),
                    eras[keep].tolist(), title_of[walked].tolist(), strict=True):
                if row in chosen or dur > phase_budget - spent or dur > remaining:
                    continue
                if maker and used_makers.get(maker, 0) >= MAX_PER_MAKER:
                    continue
                if title in used_titles or (era and used_eras.get(era, 0) >= era_cap):
                    continue
                take(row)
                spent += dur
                remaining -= dur
                placements[phase].append(Placement(row, phase, float(scores[row])))
                if phase_budget - spent < 90:
                    phase_done = True
                    break
        carry = phase_budget - spent

    # Order within phases: settle and deepen climb in intensity (film last in deepen),
    # release comes down again.
    def key_up(p: Placement) -> tuple:
        return (bool(matrix.is_film[p.row]), float(matrix.intensity[p.row]), -p.score)

    ordered: list[Placement] = []
    ordered += sorted(placements["settle"], key=key_up)
    ordered += sorted(placements["deepen"], key=key_up)
    ordered += sorted(placements["release"],
                      key=lambda p: (-float(matrix.intensity[p.row]), -p.score))
    ordered += placements["aftercare"]
    total = int(sum(int(matrix.duration_s[p.row]) for p in ordered))
    return ArcPlan(ordered, total)
