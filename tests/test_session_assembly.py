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


def test_ranked_blocks_walk_the_finite_rows_by_value_then_position():
    from recommender.session import _ranked_blocks

    rng = np.random.default_rng(8)
    for n, head in ((40, 256), (600, 16), (5000, 256)):
        # Few distinct values (many ties) and some refused rows (-inf).
        adjusted = rng.integers(0, 7, n).astype(np.float64) / 4 - 1
        adjusted[rng.random(n) < 0.2] = -np.inf
        rows = rng.permutation(10 * n)[:n]
        walked = np.concatenate(list(_ranked_blocks(rows, adjusted, head=head)))
        finite = [i for i in range(n) if np.isfinite(adjusted[i])]
        expected = rows[sorted(finite, key=lambda i: (-adjusted[i], i))]
        np.testing.assert_array_equal(walked, expected)

