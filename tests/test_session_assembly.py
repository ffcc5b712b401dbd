"""The arc: phases, time, artists, bans, films, crisis, on a small made-up catalogue."""

import numpy as np
import pytest

from recommender.features import ItemRecord, build_item_matrix
from recommender.session import assemble
from recommender.vocabulary import default_vocabulary


def catalogue():
    records = []
    for i in range(40):
        records.append(ItemRecord(
            id=f"s{i}", kind="song", title=f"Song {i}", artist=f"Artist {i % 8}",
            director=None, year=2000, duration_s=180 + 10 * (i % 7), intensity=1 + i % 5,
            aftercare=False, tags=("grief",)))
    for i in range(5):
        records.append(ItemRecord(
            id=f"a{i}", kind="song", title=f"Lift {i}", artist=f"Sunny {i}", director=None,
            year=2010, duration_s=200 + 20 * i, intensity=1, aftercare=True, tags=("hope",)))
    for i, runtime in enumerate((5400, 7800)):
        records.append(ItemRecord(
            id=f"f{i}", kind="film", title=f"Film {i}", artist=None, director=f"Dir {i}",
            year=1999, duration_s=runtime, intensity=3, aftercare=False, tags=("grief",)))
    return build_item_matrix(records, default_vocabulary())


@pytest.mark.parametrize("minutes", [5, 10, 30, 60, 120, 240])
def test_fits_minutes_and_ends_in_aftercare(minutes):
    m = catalogue()
    plan = assemble(m, np.linspace(1, 0, len(m)), minutes=minutes, intensity=3,
                    include_films=True, crisis=False, banned_rows=set())
    assert plan.total_duration_s <= minutes * 60
    assert plan.placements[-1].phase == "aftercare"
    assert m.aftercare[plan.placements[-1].row]
    makers = [m.maker[p.row] for p in plan.placements]
    assert all(makers.count(x) <= 2 for x in makers)
    assert len({p.row for p in plan.placements}) == len(plan.placements)


def test_film_only_when_it_fits_with_room_around_it():
    m = catalogue()
    scores = np.zeros(len(m))
    short = assemble(m, scores, minutes=60, intensity=3, include_films=True, crisis=False,
                     banned_rows=set())
    assert not any(m.is_film[p.row] for p in short.placements)
    long = assemble(m, scores, minutes=120, intensity=3, include_films=True, crisis=False,
                    banned_rows=set())
    films = [p for p in long.placements if m.is_film[p.row]]
    assert len(films) == 1 and films[0].phase == "deepen"
    assert m.duration_s[films[0].row] == 5400


def test_banned_rows_never_appear():
    m = catalogue()
    scores = np.linspace(1, 0, len(m))
    banned = {0, 1, 2, 3, 40}
    plan = assemble(m, scores, minutes=120, intensity=5, include_films=False, crisis=False,
                    banned_rows=banned)
    assert not banned & {p.row for p in plan.placements}


def test_crisis_has_no_deepen_and_stays_gentle():
    m = catalogue()
    plan = assemble(m, np.zeros(len(m)), minutes=60, intensity=5, include_films=True,
                    crisis=True, banned_rows=set())
    assert "deepen" not in {p.phase for p in plan.placements}
    assert all(m.intensity[p.row] <= 2 for p in plan.placements)
    assert not any(m.is_film[p.row] for p in plan.placements)


def test_intensity_caps_every_item():
    m = catalogue()
    plan = assemble(m, np.zeros(len(m)), minutes=90, intensity=2, include_films=False,
                    crisis=False, banned_rows=set())
    assert all(m.intensity[p.row] <= 2 for p in plan.placements)


def test_never_two_versions_of_one_title_and_no_era_dominates():
    records = []
    for i in range(12):
        records.append(ItemRecord(
            id=f"h{i}", kind="song", title="Hallelujah" + (" (Live)" if i % 2 else ""),
            artist=f"Singer {i}", director=None, year=1994, duration_s=240, intensity=3,
            aftercare=False, tags=("grief",)))
    for i in range(30):
        records.append(ItemRecord(
            id=f"s{i}", kind="song", title=f"Song {i}", artist=f"Artist {i}", director=None,
            year=1960 + 10 * (i % 5) if i >= 10 else 1994, duration_s=200, intensity=3,
            aftercare=False, tags=("grief",)))
    records.append(ItemRecord(
        id="a0", kind="song", title="Lift", artist="Sunny", director=None, year=2010,
        duration_s=200, intensity=1, aftercare=True, tags=("hope",)))
    m = build_item_matrix(records, default_vocabulary())
    scores = np.linspace(1, 0, len(m))  # every Hallelujah and the 1994 songs score highest
    plan = assemble(m, scores, minutes=60, intensity=3, include_films=False, crisis=False,
                    banned_rows=set())
    titles = [m.records[p.row].title for p in plan.placements]
    assert sum(t.startswith("Hallelujah") for t in titles) == 1
    songs = [p for p in plan.placements if p.phase != "aftercare"]
    nineties = [p for p in songs if m.records[p.row].year == 1994]
    assert len(songs) >= 8 and len(nineties) <= len(songs) / 2 + 1


def _reference_arc(m, scores, *, minutes, intensity, include_films, crisis, banned_rows):
    """The arc's rules as recommender.session.assemble states them, walked row by row in
    Python over one stable sort per phase: what the compiled walk must equal."""
    from recommender.session import CRISIS_SHARE, FILM_MARGIN_S, PHASE_SHARE
    from recommender.tastes import taste_attributes

    attrs = taste_attributes(m)
    n, budget = len(m), minutes * 60
    cap = 2 if crisis else intensity
    deepen_cap = cap if crisis or intensity < 3 else min(5, intensity + 1)
    allowed = [i not in banned_rows and m.intensity[i] <= deepen_cap
               and not (crisis and m.has_suicide_theme[i]) for i in range(n)]
    era_cap = max(3, int(0.5 * budget / 240))
    chosen, makers, eras, titles = set(), {}, {}, set()

    def take(row):
        chosen.add(row)
        if m.maker[row]:
            makers[m.maker[row]] = makers.get(m.maker[row], 0) + 1
        titles.add(int(attrs.title_code[row]))
        if attrs.era_code[row]:
            eras[attrs.era_code[row]] = eras.get(attrs.era_code[row], 0) + 1

    def best(rows):
        return max(rows, key=lambda r: (scores[r], -r))

    fits = [i for i in range(n)
            if m.aftercare[i] and not m.is_film[i] and m.duration_s[i] <= budget]
    care = ([i for i in fits if allowed[i] and m.intensity[i] <= 2]
            or [i for i in fits if allowed[i]] or fits)
    if not care:
        return None
    care_row = best(care)
    take(care_row)
    remaining = budget - int(m.duration_s[care_row])
    placed = {"settle": [], "deepen": [], "release": []}
    if include_films and not crisis:
        films = [i for i in range(n) if allowed[i] and not m.aftercare[i] and m.is_film[i]
                 and m.duration_s[i] <= remaining - FILM_MARGIN_S]
        if films:
            film = best(films)
            take(film)
            remaining -= int(m.duration_s[film])
            placed["deepen"].append(film)
    songs = [i for i in range(n) if allowed[i] and not m.aftercare[i] and not m.is_film[i]]
    song_budget, carry = remaining, 0
    for phase, share in (CRISIS_SHARE if crisis else PHASE_SHARE).items():
        phase_budget = int(song_budget * share) + carry
        target = {"deepen": intensity + (0.5 if intensity >= 3 else 0.0),
                  "settle": max(1.0, intensity - 1.5)}.get(phase, max(1.0, intensity - 1.0))
        phase_cap = deepen_cap if phase == "deepen" else cap
        walk = []
        for i in songs:
            value = scores[i] - np.float64(np.float32(0.35) * np.abs(
                np.float32(m.intensity[i]) - np.float32(target)))
            if m.intensity[i] <= phase_cap and np.isfinite(value):
                walk.append((-value, i))
        spent = 0
        for _, row in sorted(walk):
            length = int(m.duration_s[row])
            if (row in chosen or length > phase_budget - spent or length > remaining
                    or (m.maker[row] and makers.get(m.maker[row], 0) >= 2)
                    or int(attrs.title_code[row]) in titles
                    or (attrs.era_code[row] and eras.get(attrs.era_code[row], 0) >= era_cap)):
                continue
            take(row)
            spent += length
            remaining -= length
            placed[phase].append(row)
            if phase_budget - spent < 90:
                break
        carry = phase_budget - spent
    climb = sorted(placed["settle"], key=lambda r: (bool(m.is_film[r]),
                                                     float(m.intensity[r]), -scores[r]))
    climb += sorted(placed["deepen"], key=lambda r: (bool(m.is_film[r]),
                                                      float(m.intensity[r]), -scores[r]))
    down = sorted(placed["release"], key=lambda r: (-float(m.intensity[r]), -scores[r]))
    return ([(r, "settle") for r in climb[:len(placed["settle"])]]
            + [(r, "deepen") for r in climb[len(placed["settle"]):]]
            + [(r, "release") for r in down] + [(care_row, "aftercare")])


def _random_catalogue(rng, n_songs):
    records = []
    for i in range(n_songs):
        records.append(ItemRecord(
            id=f"s{i}", kind="song", title=f"Song {rng.integers(0, n_songs // 2 + 1)}",
            artist=f"Artist {rng.integers(0, max(2, n_songs // 6))}", director=None,
            year=int(rng.choice([0, 1975, 1994, 2003, 2019])),
            duration_s=int(rng.integers(120, 420)), intensity=int(rng.integers(1, 6)),
            aftercare=bool(rng.random() < 0.08),
            tags=("grief", "loss") if rng.random() < 0.05 else ("grief",)))
    for i in range(int(rng.integers(0, 4))):
        records.append(ItemRecord(
            id=f"f{i}", kind="film", title=f"Film {i}", artist=None, director=f"Dir {i % 2}",
            year=2001, duration_s=int(rng.integers(4800, 8400)), intensity=int(rng.integers(2, 6)),
            aftercare=False, tags=("grief",)))
    return build_item_matrix(records, default_vocabulary())


@pytest.mark.parametrize("seed", range(6))
def test_the_compiled_walk_equals_the_rules_walked_row_by_row(seed):
    rng = np.random.default_rng(seed)
    # The last catalogue has more songs than the walk sorts at first (RANKED_HEAD = 256,
    # sorted first past 4 x 256): its tail is sorted only when a phase gets that far.
    m = _random_catalogue(rng, (60, 200, 400, 700, 900, 1500)[seed])
    for case in range(25):
        # Scores with many ties, now and then one far ahead.
        scores = rng.integers(0, 6, len(m)).astype(np.float64) / 5
        scores[rng.random(len(m)) < 0.02] += 3
        args = {"minutes": int(rng.choice([5, 20, 45, 90, 150, 240])),
                "intensity": int(rng.integers(1, 6)), "include_films": bool(rng.random() < 0.7),
                "crisis": bool(rng.random() < 0.2),
                "banned_rows": set(rng.choice(len(m), int(rng.integers(0, 20))).tolist())}
        expected = _reference_arc(m, scores, **args)
        if expected is None:
            with pytest.raises(ValueError, match="no aftercare song fits"):
                assemble(m, scores, **args)
            continue
        plan = assemble(m, scores, **args)
        assert [(p.row, p.phase) for p in plan.placements] == expected, (seed, case, args)
        assert [p.score for p in plan.placements] == [float(scores[r]) for r, _ in expected]
        assert plan.total_duration_s == sum(int(m.duration_s[r]) for r, _ in expected)


def test_the_walk_refuses_scores_or_bans_that_do_not_fit_the_matrix():
    m = catalogue()
    args = {"minutes": 60, "intensity": 3, "include_films": True, "crisis": False}
    with pytest.raises(ValueError, match="scores for a matrix of"):
        assemble(m, np.zeros(len(m) - 1), banned_rows=set(), **args)
    for bad in ({len(m)}, {-1}):
        with pytest.raises(IndexError, match="banned rows outside"):
            assemble(m, np.zeros(len(m)), banned_rows=bad, **args)
