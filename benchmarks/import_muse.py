"""Benchmark: import a synthetic 90,000-row MuSe file into a fresh store, then re-import it.

    .venv/bin/python benchmarks/import_muse.py [--rows 90000]

Prints the seconds each import took and the rows per second. The file has MuSe's real header
and a realistic mix: sad, happy and neutral seeds, unknown seeds, a few malformed rows.
"""

from __future__ import annotations

import argparse
import csv
import random
import tempfile
import time
from pathlib import Path

from recommender.bootstrap import prepare_store
from recommender.catalog.muse import import_muse
from recommender.store.db import make_engine, make_session_factory

HEADER = ["lastfm_url", "track", "artist", "seeds", "number_of_emotion_tags", "valence_tags",
          "arousal_tags", "dominance_tags", "mbid", "spotify_id", "genre"]
SEEDS = ["sad", "melancholy", "bittersweet", "lonely", "heartbreak", "tearjerker", "happy",
         "upbeat", "aggressive", "energetic", "calm", "dark", "romantic", "nostalgic", "angry"]


def write_synthetic(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(HEADER)
        for n in range(rows):
            if n % 1000 == 999:  # a malformed row now and then
                out.writerow(["x", f"Broken {n}", "Nobody", "['sad'", "1", "x", "3", "4", "",
                              "", "pop"])
                continue
            seeds = rng.sample(SEEDS, rng.randint(1, 3))
            out.writerow([
                f"https://www.last.fm/music/a{n}", f"Synthetic Song {n}",
                f"Synthetic Artist {n % 9000}", repr(seeds), rng.randint(1, 30),
                f"{rng.uniform(1, 8.5):.2f}", f"{rng.uniform(1, 7):.2f}",
                f"{rng.uniform(2, 7):.2f}", "", "", rng.choice(["pop", "rock", "folk"]),
            ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=90_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "muse_synthetic.csv"
        write_synthetic(data, args.rows)
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        factory = make_session_factory(engine)
        prepare_store(engine, factory)  # migrations and the bundled catalogue
        for label in ("first import", "re-import"):
            with factory() as db:
                started = time.perf_counter()
                report = import_muse(db, data, progress=True)
                seconds = time.perf_counter() - started
            print(f"{label}: {args.rows} rows in {seconds:.1f} s "
                  f"({args.rows / seconds:,.0f} rows/s); {report.summary()}")
        engine.dispose()


if __name__ == "__main__":
    main()
