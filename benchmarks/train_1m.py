"""Benchmark: ``goodcry train`` on a database holding N stored reactions (default 1,000,000).

Generates people, sessions (10 rated items each, with catharsis and moods) and reactions
into a fresh SQLite database with the bundled catalogue, then runs ``goodcry train`` as a
child process and prints its wall time and peak memory (targets: under 60 s, within 2 GiB).

    .venv/bin/python benchmarks/train_1m.py [--reactions 1000000] [--keep PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select

from recommender.bootstrap import prepare_store
from recommender.store.db import make_engine, make_session_factory
from recommender.store.models import CatalogItem, CrySession, Feedback, Reaction, User

REACTIONS = np.array(["cried", "moved", "neutral", "skipped", "never_again"])
MOODS = ["grief", "heartbreak", "nostalgia", "loneliness", "regret", "longing", "release"]
PROMPTS = [None, "I miss my dad", "my dog died", "we broke up", "missing home", None, None]
PER_SESSION = 10
BATCH = 50_000


def generate(url: str, n_reactions: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    prepare_store(engine, factory)
    with factory() as db:
        items = np.array(db.scalars(select(CatalogItem.id)).all())
    n_sessions = n_reactions // PER_SESSION
    n_users = max(1, n_sessions // 10)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(insert(User), [
            {"id": f"u{k:07d}", "username": f"bench{k}", "password_hash": "-",
             "created_at": start} for k in range(n_users)])
    for lo in range(0, n_sessions, BATCH // PER_SESSION * PER_SESSION):
        hi = min(n_sessions, lo + BATCH // PER_SESSION * PER_SESSION)
        sessions, feedback, reactions = [], [], []
        for s in range(lo, hi):
            sid, uid = f"s{s:08d}", f"u{s % n_users:07d}"
            when = start + timedelta(minutes=s)
            sessions.append({
                "id": sid, "user_id": uid, "created_at": when, "model_version": "bench",
                "request": {"moods": [MOODS[s % len(MOODS)]],
                            "prompt": PROMPTS[s % len(PROMPTS)], "minutes": 45,
                            "intensity": int(1 + s % 5), "include_films": True,
                            "exploration": "balanced"},
                "moods": [MOODS[s % len(MOODS)]], "themes": [], "total_duration_s": 2700,
                "care": {"crisis": False}})
            feedback.append({"session_id": sid, "user_id": uid, "catharsis": int(1 + s % 5),
                             "mood_before": 4, "mood_after": int(3 + s % 5),
                             "created_at": when, "updated_at": when})
            chosen = rng.choice(items, size=PER_SESSION, replace=False)
            outcome = rng.choice(REACTIONS, size=PER_SESSION, p=[0.2, 0.3, 0.3, 0.18, 0.02])
            reactions.extend({"session_id": sid, "user_id": uid, "item_id": i,
                              "reaction": r, "created_at": when}
                             for i, r in zip(chosen, outcome, strict=True))
        with engine.begin() as conn:
            conn.execute(insert(CrySession), sessions)
            conn.execute(insert(Feedback), feedback)
            conn.execute(insert(Reaction), reactions)
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reactions", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="database file to create (kept afterwards)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="goodcry-train-bench-"))
    path = args.keep or workdir / "bench.sqlite"
    url = f"sqlite:///{path}"
    t0 = time.perf_counter()
    generate(url, args.reactions)
    print(f"generated {args.reactions:,} reactions in {time.perf_counter() - t0:.1f} s")
    env = {**os.environ, "GOODCRY_DATABASE_URL": url,
           "GOODCRY_MATRIX_CACHE": str(workdir / "matrices")}
    goodcry = Path(sys.executable).with_name("goodcry")
    t0 = time.perf_counter()
    done = subprocess.run([str(goodcry), "train"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(done.stdout.strip() or done.stderr.strip()[-2000:])
    print(json.dumps({"reactions": args.reactions, "train_wall_s": round(wall, 1),
                      "train_peak_rss_mib": round(peak_mib), "target_wall_s": 60,
                      "target_rss_mib": 2048, "ok": done.returncode == 0 and wall < 60
                      and peak_mib < 2048}))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
