"""Simulated people with hidden tastes, and how they react to what they are shown.

A simulated person cries at what touches their hidden taste: a couple of themes they love
(and one they cannot bear), an era or two, songs over films or the other way round, a few
favourite artists and directors. They ask for sessions in a mood that goes with what they
love, as a real person would, but the request never names the hidden taste itself.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from recommender.features import ItemMatrix, SessionRequest
from recommender.tastes import taste_attributes
from recommender.vocabulary import Vocabulary


@dataclass(frozen=True)
class HiddenTaste:
    loved_themes: tuple[str, ...]
    hated_themes: tuple[str, ...]
    loved_eras: tuple[str, ...]
    prefers_kind: str
    favourite_makers: tuple[str, ...]
    moods: tuple[str, ...]          # the moods they ask for, one per session
    base: float = -2.6


@dataclass
class SimulatedPerson:
    name: str
    taste: HiddenTaste
    rng: np.random.Generator
    utility: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def request(self, session_index: int, *, minutes: int = 45,
                exploration: str = "balanced") -> SessionRequest:
        mood = self.taste.moods[session_index % len(self.taste.moods)]
        return SessionRequest(moods=(mood,), minutes=minutes, intensity=3,
                              include_films=True, exploration=exploration)

    def react(self, rows: list[int], matrix: ItemMatrix) -> list[str]:
        """A graded reaction per shown row (aftercare rows get none: ``""``)."""
        out = []
        for row in rows:
            if matrix.aftercare[row]:
                out.append("")
                continue
            u = self.utility[row] + self.rng.normal(0.0, 0.3)
            p_cry = expit(u)
            draw = self.rng.random()
            if draw < p_cry:
                out.append("cried")
            elif draw < p_cry + (1.0 - p_cry) * 0.6 * expit(u + 1.2):
                out.append("moved")
            elif u < -3.0 and self.rng.random() < 0.2:
                out.append("never_again")
            elif u < -2.0:
                out.append("skipped")
            else:
                out.append("neutral")
        return out


def make_people(
    matrix: ItemMatrix, vocabulary: Vocabulary, n: int, seed: int
) -> list[SimulatedPerson]:
    """``n`` people with hidden tastes drawn from what the catalogue actually holds."""
    rng = np.random.default_rng(seed)
    attrs = taste_attributes(matrix, vocabulary)
    sad = np.flatnonzero(~matrix.aftercare)
    theme_counts: Counter[str] = Counter()
    era_counts: Counter[str] = Counter()
    maker_rows: dict[str, list[int]] = {}
    for row in sad:
        rec = matrix.records[int(row)]
        theme_counts.update(t for t in rec.tags if vocabulary.is_theme(t) and t != "suicide")
        if attrs.era[row]:
            era_counts[attrs.era[row]] += 1
        maker = rec.artist or rec.director
        if maker:
            maker_rows.setdefault(maker, []).append(int(row))
    themes = [t for t, c in theme_counts.items() if c >= 8]
    eras = [e for e, c in era_counts.items() if c >= 15]
    makers = sorted(maker_rows)
    people = []
    for k in range(n):
        loved = tuple(rng.choice(themes, size=2, replace=False))
        hated = tuple(rng.choice([t for t in themes if t not in loved], size=1))
        taste = HiddenTaste(
            loved_themes=loved,
            hated_themes=hated,
            loved_eras=tuple(rng.choice(eras, size=int(rng.integers(1, 3)), replace=False)),
            prefers_kind=str(rng.choice(["song", "film"], p=[0.7, 0.3])),
            favourite_makers=tuple(rng.choice(makers, size=4, replace=False)),
            moods=_moods_for(loved, matrix, vocabulary, rng),
        )
        person = SimulatedPerson(f"sim{seed}-{k}", taste, np.random.default_rng([seed, k]))
        person.utility = utility(taste, matrix, attrs.era)
        people.append(person)
    return people


def _moods_for(themes, matrix: ItemMatrix, vocabulary: Vocabulary, rng) -> tuple[str, ...]:
    """The moods most often carried by items about ``themes``: what the person asks for."""
    counts: Counter[str] = Counter()
    for rec in matrix.records:
        if not rec.aftercare and set(rec.tags) & set(themes):
            counts.update(t for t in rec.tags if vocabulary.is_mood(t)
                          and t not in ("hope", "joy", "gratitude"))
    common = [m for m, _ in counts.most_common(3)] or ["release"]
    return tuple(rng.permutation(common))


def utility(taste: HiddenTaste, matrix: ItemMatrix, era: np.ndarray) -> np.ndarray:
    """The hidden log-odds of crying, per catalogue row."""
    u = np.full(len(matrix), taste.base)
    for row, rec in enumerate(matrix.records):
        tags = set(rec.tags)
        u[row] += 1.6 * len(tags & set(taste.loved_themes))
        u[row] -= 1.5 * len(tags & set(taste.hated_themes))
        if era[row] in taste.loved_eras:
            u[row] += 1.0
        u[row] += 0.6 if rec.kind == taste.prefers_kind else -0.6
        if (rec.artist or rec.director) in taste.favourite_makers:
            u[row] += 1.5
        if set(taste.moods) & tags:
            u[row] += 0.4
    return u
