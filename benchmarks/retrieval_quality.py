"""What candidate retrieval costs in session quality on a big catalogue.

On the bundled catalogue (under RETRIEVE_ABOVE items) every item is ranked, so
`goodcry evaluate` never exercises retrieval. This runs the same simulated people through
goodcry's real session path (`create_session`, `store_feedback`, `update_taste`) on a
synthetic catalogue of `--size` items, once per retrieval design, on copies of one store:

* `request only, 1000`: the design before the taste pools (the request's prior alone,
  1,000 songs, 100 films, 100 aftercare songs);
* `request + taste (current)`: the shipped constants of `recommender.retrieval` (the
  request's pools plus the songs and films of the person's best-loved themes and makers).

The earlier design is set by overriding the module's pool sizes and its taste hook in this
process only. Prints the mean cried-rate (share of a session's sad items that made the
person cry) over sessions 1-3 and after half the sessions, per seed and on average (speed
is measured by `benchmarks/scale.py`: runs in one process here are not comparable). Usage:

    .venv/bin/python benchmarks/retrieval_quality.py --size 100000 --seeds 7,8,9

The store is built by the scale benchmark's `fresh_store` + `goodcry catalog import` (about
15 s at 100k); the simulated people are drawn once per seed (about 40 s at 100k).
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import pandas as pd  # noqa: E402
import scale  # noqa: E402

import recommender.retrieval as retrieval  # noqa: E402
from recommender.cry_sessions import Recommender  # noqa: E402
from recommender.evaluation.people import make_people  # noqa: E402
from recommender.evaluation.simulation import SimulationConfig, run_goodcry  # noqa: E402
from recommender.store.db import make_engine, make_session_factory  # noqa: E402


@contextmanager
def request_only_1000():
    saved = (retrieval.SONG_CANDIDATES, retrieval.FILM_CANDIDATES,
             retrieval.AFTERCARE_CANDIDATES, retrieval.LovedAttributes.of)
    retrieval.SONG_CANDIDATES, retrieval.FILM_CANDIDATES = 1000, 100
    retrieval.AFTERCARE_CANDIDATES = 100
    retrieval.LovedAttributes.of = classmethod(lambda cls, stats, vocabulary: None)
    try:
        yield
    finally:
        (retrieval.SONG_CANDIDATES, retrieval.FILM_CANDIDATES,
         retrieval.AFTERCARE_CANDIDATES, retrieval.LovedAttributes.of) = saved


@contextmanager
def current():
    yield


DESIGNS = {"request only, 1000": request_only_1000, "request + taste (current)": current}


def run(store: Path, matrices: Path, work: Path, design: str, seed: int, people_n: int,
        sessions: int, people_cache: dict) -> dict:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copy(store, work / "goodcry.sqlite")
    engine = make_engine(f"sqlite:///{work / 'goodcry.sqlite'}")
    factory = make_session_factory(engine)
    rec = Recommender(model_check_s=0.0, matrix_cache=matrices)
    config = SimulationConfig(people=people_n, sessions=sessions, seed=seed, retrain_every=0)
    try:
        with factory() as db, DESIGNS[design]():
            matrix = rec.matrix(db)
            if seed not in people_cache:
                people_cache[seed] = make_people(matrix, rec.vocabulary, people_n, seed)
            # The same people (hidden tastes, reaction draws) for every design.
            people = copy.deepcopy(people_cache[seed])
            rows, _ = run_goodcry(db, rec, people, config, matrix)
    finally:
        engine.dispose()
    frame = pd.DataFrame(rows)
    half = sessions // 2
    return {"design": design, "seed": seed,
            "early": frame[frame.session <= 3].cried_rate.mean(),
            "late": frame[frame.session > half].cried_rate.mean()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--seeds", default="7,8,9")
    parser.add_argument("--people", type=int, default=16)
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="goodcry-retrieval-"))
    folder = workdir / f"n{args.size}"
    if not (folder / "goodcry.sqlite").exists() or not (folder / "matrices").exists():
        csv_path, env, log = scale.fresh_store(args.size, workdir)
        scale.run_cli(["catalog", "import", str(csv_path)], env, log)
    print(f"store: {folder}", flush=True)
    people_cache: dict = {}
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for design in DESIGNS:
            result = run(folder / "goodcry.sqlite", folder / "matrices", workdir / "run",
                         design, seed, args.people, args.sessions, people_cache)
            print(f"seed {seed} | {design:26s} | sessions 1-3 {result['early']:.3f} | "
                  f"sessions {args.sessions // 2 + 1}-{args.sessions} {result['late']:.3f}",
                  flush=True)
            results.append(result)
    table = pd.DataFrame(results).groupby("design", sort=False)[
        ["early", "late"]].mean()
    print(f"\nMean over seeds {args.seeds}, {args.people} people x {args.sessions} sessions, "
          f"{args.size:,} items:")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
