"""Load: many concurrent clients create sessions and rate them against `goodcry serve`.

    .venv/bin/python benchmarks/load.py --clients 32 --seconds 60 --workers 2
    .venv/bin/python benchmarks/load.py --database-url postgresql+psycopg://... (PostgreSQL)
    .venv/bin/python benchmarks/load.py --url http://127.0.0.1:8000 (an already running one)

Without ``--url`` it starts `goodcry serve --workers N` on a free loopback port with rate
limits off, on a fresh database (SQLite in a temporary folder unless ``--database-url``).
Each client registers, then loops for the given time: create a session, post feedback for
it, and now and then read it back. At the end every acknowledged feedback is checked in the
database (reactions stored exactly once). Prints throughput, p50/p95/p99 latency per kind
of request, errors and lost writes; exits non-zero on any error or lost write.
Traffic goes only to the loopback server it names; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from recommender.store.db import make_engine, make_session_factory  # noqa: E402
from recommender.store.models import Reaction  # noqa: E402
from tests.served import Served  # noqa: E402

REACTIONS = ("cried", "moved", "neutral", "skipped")


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.acknowledged: dict[str, dict[str, str]] = {}

    def record(self, kind: str, seconds: float, ok: bool, detail: str = "") -> None:
        with self.lock:
            self.latency[kind].append(seconds)
            if not ok:
                self.errors[f"{kind}: {detail}"] += 1


def client_loop(base: str, n: int, until: float, tally: Tally) -> None:
    http = requests.Session()
    started = time.perf_counter()
    answer = http.post(f"{base}/api/v1/auth/register",
                       json={"username": f"load{n}-{os.getpid()}", "password": "load test pw 1"},
                       timeout=60)
    tally.record("register", time.perf_counter() - started, answer.status_code == 201,
                 str(answer.status_code))
    if answer.status_code != 201:
        return
    http.headers["Authorization"] = f"Bearer {answer.json()['token']}"
    k = 0
    while time.monotonic() < until:
        k += 1
        t = time.perf_counter()
        try:
            made = http.post(f"{base}/api/v1/sessions", timeout=60, json={
                "moods": [("grief", "heartbreak", "nostalgia", "regret")[k % 4]],
                "minutes": 30, "exploration": "balanced"})
            ok = made.status_code == 201
            tally.record("create session", time.perf_counter() - t, ok, str(made.status_code))
            if not ok:
                continue
            session = made.json()
            body = {"reactions": [{"item_id": i["item_id"], "reaction": REACTIONS[(j + k) % 4]}
                                  for j, i in enumerate(session["items"])],
                    "catharsis": 1 + k % 5, "mood_before": 4, "mood_after": 6}
            t = time.perf_counter()
            rated = http.post(f"{base}/api/v1/sessions/{session['id']}/feedback", json=body,
                              timeout=60)
            ok = rated.status_code == 201
            tally.record("feedback", time.perf_counter() - t, ok, str(rated.status_code))
            if ok:
                with tally.lock:
                    tally.acknowledged[session["id"]] = {
                        r["item_id"]: r["reaction"] for r in body["reactions"]}
            if k % 5 == 0:
                t = time.perf_counter()
                read = http.get(f"{base}/api/v1/sessions/{session['id']}", timeout=60)
                tally.record("read session", time.perf_counter() - t,
                             read.status_code == 200, str(read.status_code))
        except requests.RequestException as exc:
            tally.record("connection", time.perf_counter() - t, False, type(exc).__name__)


def lost_writes(database_url: str, acknowledged: dict[str, dict[str, str]]) -> tuple[int, int]:
    engine = make_engine(database_url)
    stored: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    with make_session_factory(engine)() as db:
        for sid, item, reaction in db.execute(
                select(Reaction.session_id, Reaction.item_id, Reaction.reaction)):
            stored[sid][item].append(reaction)
    engine.dispose()
    lost = doubled = 0
    for sid, reactions in acknowledged.items():
        for item, reaction in reactions.items():
            got = stored.get(sid, {}).get(item, [])
            lost += reaction not in got
            doubled += len(got) > 1
    return lost, doubled


def percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=os.environ.get("GOODCRY_LOAD_DATABASE_URL"))
    parser.add_argument("--url", help="an already running server (its database must be "
                                      "given with --database-url to verify writes)")
    args = parser.parse_args()
    if args.seconds > 600:
        parser.error("--seconds is bounded at 600")

    tmp = tempfile.TemporaryDirectory(prefix="goodcry-load-")
    database_url = args.database_url or f"sqlite:///{Path(tmp.name) / 'load.sqlite'}"
    server = None
    if args.url:
        if not args.url.startswith(("http://127.", "http://localhost", "http://[::1]")):
            parser.error("--url must be a loopback address")
        base = args.url.rstrip("/")
    else:
        server = Served(database_url, workers=args.workers,
                        log_path=Path(tmp.name) / "serve.log")
        server.wait_ready(timeout=300)
        base = server.url
    tally = Tally()
    try:
        print(f"load: {args.clients} clients for {args.seconds:g}s against {base} "
              f"({args.workers} workers, {database_url.split(':')[0]})", flush=True)
        until = time.monotonic() + args.seconds
        threads = [threading.Thread(target=client_loop, args=(base, n, until, tally))
                   for n in range(args.clients)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=args.seconds + 120)
        elapsed = time.monotonic() - started
    finally:
        if server is not None:
            server.stop()

    total = sum(len(v) for v in tally.latency.values())
    errors = sum(tally.errors.values())
    print(f"requests: {total} in {elapsed:.1f}s = {total / elapsed:.1f} req/s; "
          f"sessions rated: {len(tally.acknowledged)} "
          f"({len(tally.acknowledged) / elapsed:.1f}/s)")
    print(f"{'request':16} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for kind, values in sorted(tally.latency.items()):
        print(f"{kind:16} {len(values):7d} {1000 * percentile(values, 50):8.1f} "
              f"{1000 * percentile(values, 95):8.1f} {1000 * percentile(values, 99):8.1f}")
    print(f"errors: {errors}" + "".join(f"\n  {k}: {v}" for k, v in tally.errors.items()))
    if args.url and not args.database_url:
        print("lost writes: not checked (give --database-url)")
        return 1 if errors else 0
    lost, doubled = lost_writes(database_url, tally.acknowledged)
    print(f"lost writes: {lost}; reactions stored twice: {doubled} "
          f"(checked {sum(len(v) for v in tally.acknowledged.values())} acknowledged reactions)")
    tmp.cleanup()
    return 1 if errors or lost or doubled else 0


if __name__ == "__main__":
    sys.exit(main())
