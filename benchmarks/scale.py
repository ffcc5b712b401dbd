"""Sessions at scale: synthetic catalogues of 10k, 100k and 1M items through the real service.

For each size this script writes a catalogue CSV in the contract's format (the real
vocabulary's moods and themes, realistic durations, some aftercare songs, some films),
imports it with ``goodcry catalog import`` (timed), starts ``goodcry serve --workers 2``
with rate limits off on a loopback port, drives it from a separate process (a bounded load
client: a fixed number of requests, a few at a time) and prints a table:

    items, import time, session p50/p95/p99, /healthz p50, ratio, sessions/s, RSS of workers

Run:  .venv/bin/python benchmarks/scale.py --sizes 10000,100000,1000000
      (--rounds 3: the load three times per size, each figure's median and the p95's range;
      on a shared machine the same code's p95 moves by a third from run to run)
Also: .venv/bin/python benchmarks/scale.py --rank-only   (in-process ranking micro-benchmark)
      .venv/bin/python benchmarks/scale.py --import-only --sizes 100000,1000000   (import alone)
      .venv/bin/python benchmarks/scale.py --timings WORKDIR/n100000   (each part of a session)
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
# ``python -m recommender.cli`` from this checkout (the same as the ``goodcry`` script).
GOODCRY = [sys.executable, "-m", "recommender.cli"]
HEADER = ["kind", "title", "artist", "director", "year", "duration_s", "tags", "spotify_id",
          "intensity", "aftercare"]
# Sessions each benchmark person creates and rates before the timed requests.
HISTORY_SESSIONS = 5
# The serial calls the ratio compares: this many turns of a block of sessions, then a block of
# /healthz calls (see load_client).
SERIAL_TURNS = 3
SERIAL_SESSIONS = 60
SERIAL_HEALTHZ = 100
WORDS = ("rain", "letter", "river", "winter", "home", "light", "goodbye", "harbour", "silence",
         "garden", "mother", "paper", "ocean", "train", "window", "lantern", "ashes", "bridge")


def vocabulary_ids() -> tuple[list[str], list[str]]:
    data = json.loads((ROOT / "data" / "vocabulary.json").read_text())
    return [m["id"] for m in data["moods"]], [t["id"] for t in data["themes"]]


def write_catalogue(path: Path, n: int, seed: int = 7) -> None:
    """``n`` items: ~88% sad songs, ~7% films, ~5% aftercare songs."""
    rng = random.Random(seed)
    moods, themes = vocabulary_ids()
    artists = [f"Artist {i} {rng.choice(WORDS).title()}" for i in range(max(50, n // 8))]
    directors = [f"Director {i}" for i in range(max(20, n // 60))]
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(HEADER)
        for i in range(n):
            title = f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} no. {i}"
            r = rng.random()
            tags = rng.sample(moods, rng.randint(1, 2)) + rng.sample(themes, rng.randint(0, 2))
            if r < 0.05:
                out.writerow(["song", title, rng.choice(artists), "", rng.randint(1960, 2025),
                              int(min(420, max(120, rng.gauss(220, 40)))), "hope;gratitude", "",
                              1, "true"])
            elif r < 0.12:
                out.writerow(["film", title, "", rng.choice(directors), rng.randint(1950, 2025),
                              rng.randint(80, 160) * 60, ";".join(tags), "",
                              rng.randint(2, 5), "false"])
            else:
                out.writerow(["song", title, rng.choice(artists), "", rng.randint(1960, 2025),
                              int(min(600, max(100, rng.gauss(245, 55)))), ";".join(tags), "",
                              rng.randint(1, 5), "false"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(args: list[str], env: dict, log: Path) -> float:
    started = time.perf_counter()
    with log.open("a") as fh:
        subprocess.run([*GOODCRY, *args], env=env, cwd=ROOT, check=True, stdout=fh, stderr=fh)
    return time.perf_counter() - started


def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("goodcry serve exited early")
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError("goodcry serve did not become ready")


def worker_rss(proc: subprocess.Popen) -> list[int]:
    children = psutil.Process(proc.pid).children(recursive=True)
    return [c.memory_info().rss for c in children]


def server_cpu_s(server_pid: int) -> float:
    """CPU seconds (user + system) the server's workers have used so far."""
    total = 0.0
    for child in psutil.Process(server_pid).children(recursive=True):
        times = child.cpu_times()
        total += times.user + times.system
    return total


class Loopback:
    """A plain HTTP/1.1 client on one connection, opened again when the server closes it
    (sync workers close after each answer): the timed calls cost the load process, which
    shares the machine's cores with the server, as little CPU as they can."""

    def __init__(self, base: str):
        address = urllib.parse.urlsplit(base)
        self.host, self.port = address.hostname, address.port
        self.connection: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: dict | None = None,
             token: str | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        reused = self.connection is not None
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            self.connection.request(method, path, body=data, headers=headers)
            answer = self.connection.getresponse()
            payload = answer.read()
        except (ConnectionError, http.client.HTTPException):
            self.connection.close()
            self.connection = None
            if not reused:
                raise
            return self.call(method, path, body, token)  # a kept-alive connection had gone
        if answer.will_close:
            self.connection.close()
            self.connection = None
        return answer.status, payload


# What a benchmark person writes down when asked for memories (``--memories``): a few
# sentences each, about the people, places and losses sessions pair them with.
MEMORY_PEOPLE = ("Dad", "Mum", "Nan", "Grandad", "my sister", "Sam", "Alex", "Rosa",
                 "my best friend", "Biscuit, our old dog")
MEMORY_PLACES = ("the lake", "the seaside", "her kitchen", "the hospital", "the old house",
                 "Lisbon", "the allotment", "the school gates", "the train station")
MEMORY_SCENES = (
    "{who} teaching me to ride a bike at {where}, holding the saddle long after I could "
    "balance. I still hear the gravel.",
    "The last phone call with {who}. I was in a hurry and said I would call back on Sunday.",
    "Sunday dinners at {where} with {who}, the radio on and the windows steamed up.",
    "The day we moved out of {where}. {who} stood in the empty hallway and cried.",
    "Walking {who} home from the hospital, slowly, the summer before everything changed.",
    "The breakup. {who} packed the records and left the key on the table at {where}.",
    "Fishing with {who} at {where} before dawn; we never caught much and never minded.",
    "{who}'s funeral. Everyone sang, and I could not get a word out.",
    "Our first flat at {where}: no furniture, a mattress, and {who} laughing at my cooking.",
    "Reading letters from {who} that I found in a shoebox at {where}, years later.",
    "Graduation day. {who} was not there, and I kept looking at the door.",
    "The night {who} told me about the diagnosis, at {where}, very calmly.",
)
MEMORY_TAGS = ("grief", "family", "father", "mother", "breakup", "loneliness", "nostalgia",
               "friendship", "loss", "home", "childhood", "illness")
MEMORY_WHEN = (None, "summer 2019", "1998", "when I was nine", "last winter", "every August")


def benchmark_memories(rng: random.Random, n: int) -> list[dict]:
    """``n`` memories in the contract's shape, varied by ``rng``."""
    made = []
    for _ in range(n):
        who, where = rng.choice(MEMORY_PEOPLE), rng.choice(MEMORY_PLACES)
        scenes = rng.sample(MEMORY_SCENES, rng.randint(1, 3))
        made.append({
            "title": f"{who.split(',')[0]} at {where}",
            "text": " ".join(scene.format(who=who, where=where) for scene in scenes),
            "tags": rng.sample(MEMORY_TAGS, rng.randint(0, 3)), "people": [who],
            "places": [where], **({"when": when} if (when := rng.choice(MEMORY_WHEN)) else {}),
        })
    return made


def load_client(base: str, n_requests: int, concurrency: int, seed: int,
                server_pid: int | None = None, memories: int = 0) -> dict:
    """Runs in its own process: register people (each with ``memories`` memories), then
    time sessions and /healthz.

    With ``server_pid``, also the CPU time the server's workers and this client spent on the
    concurrent sessions (what a session costs, whatever else the machine is doing)."""
    moods, _ = vocabulary_ids()
    rng = random.Random(seed)
    tokens = []
    for i in range(concurrency * 2):
        answer = requests.post(f"{base}/api/v1/auth/register", timeout=30, json={
            "username": f"bench{seed}x{i}", "password": "a long benchmark passphrase"})
        answer.raise_for_status()
        tokens.append(answer.json()["token"])
        # Their own generator: the timed requests stay the same with or without memories.
        for memory in benchmark_memories(random.Random(f"{seed}-{i}"), memories):
            requests.post(f"{base}/api/v1/memories", json=memory, timeout=30, headers={
                "Authorization": f"Bearer {tokens[-1]}"}).raise_for_status()
    bodies = [{"moods": rng.sample(moods, rng.randint(1, 2)), "minutes": rng.choice((30, 45, 90,
               150)), "intensity": rng.randint(1, 5),
               "prompt": rng.choice([None, "missing my grandmother", "the end of a long love"])}
              for _ in range(n_requests)]
    local = __import__("threading").local()

    def http() -> requests.Session:
        if not hasattr(local, "s"):
            local.s = requests.Session()
        return local.s

    def loopback() -> Loopback:
        if not hasattr(local, "loopback"):
            local.loopback = Loopback(base)
        return local.loopback

    def session_call(i: int) -> float:
        body = {k: v for k, v in bodies[i].items() if v is not None}
        started = time.perf_counter()
        status, payload = loopback().call("POST", "/api/v1/sessions", body,
                                          tokens[i % len(tokens)])
        took = time.perf_counter() - started
        if status != 201:
            raise RuntimeError(f"session request failed: {status} {payload[:300]!r}")
        return took

    def health_call(_i: int) -> float:
        started = time.perf_counter()
        status, payload = loopback().call("GET", "/healthz")
        took = time.perf_counter() - started
        if status != 200:
            raise RuntimeError(f"/healthz failed: {status} {payload[:300]!r}")
        return took

    def rated_session(i: int) -> None:
        """A session the person then rates, as someone who has used goodcry a while."""
        headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
        body = {k: v for k, v in bodies[i % len(bodies)].items() if v is not None}
        made = http().post(f"{base}/api/v1/sessions", json=body, timeout=120, headers=headers)
        made.raise_for_status()
        reactions = [{"item_id": item["item_id"],
                      "reaction": rng_local().choice(("cried", "moved", "neutral", "skipped"))}
                     for item in made.json()["items"] if item["phase"] != "aftercare"]
        http().post(f"{base}/api/v1/sessions/{made.json()['id']}/feedback", timeout=120,
                    headers=headers, json={"reactions": reactions, "catharsis": 4,
                                           "mood_before": 3, "mood_after": 6}
                    ).raise_for_status()

    def rng_local() -> random.Random:
        if not hasattr(local, "rng"):
            local.rng = random.Random(seed)
        return local.rng

    with ThreadPoolExecutor(concurrency) as pool:
        # Every person has rated HISTORY_SESSIONS sessions before anything is timed, so the
        # timed sessions read a real taste, bans and history.
        list(pool.map(rated_session, range(len(tokens) * HISTORY_SESSIONS)))
        list(pool.map(session_call, range(min(20, n_requests))))  # warm up both workers
        health = list(pool.map(health_call, range(200)))
        cpu_before = server_cpu_s(server_pid) if server_pid else 0.0
        client_before = time.process_time()
        started = time.perf_counter()
        sessions = list(pool.map(session_call, range(n_requests)))
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - client_before
        server_cpu = (server_cpu_s(server_pid) - cpu_before) if server_pid else float("nan")
    # Latency alone (one request at a time), as the ratio against /healthz is meant: a block
    # of sessions, then a block of /healthz calls, SERIAL_TURNS times, so that a swing in the
    # machine's speed during the run falls on both kinds alike. Each block is long enough
    # that nearly every call in it follows a call of its own kind (a /healthz call right
    # after a session is slower: see BENCHMARKS.md, "The order of the serial calls").
    serial, health_serial = [], []
    per_block = min(SERIAL_SESSIONS, n_requests)
    for turn in range(SERIAL_TURNS):
        serial.append([session_call((turn * per_block + i) % n_requests)
                       for i in range(per_block)])
        health_serial.append([health_call(i) for i in range(SERIAL_HEALTHZ)])
    return {"sessions": sessions, "health": health, "elapsed": elapsed, "serial": serial,
            "health_serial": health_serial, "server_cpu_ms": server_cpu / n_requests * 1000,
            "client_cpu_ms": client_cpu / n_requests * 1000}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000.0, q))


def fresh_store(n: int, workdir: Path) -> tuple[Path, dict, Path]:
    """The size's folder with its catalogue CSV (written once) and an empty SQLite store
    holding the bundled catalogue and the trained content model; returns the CSV, the
    environment the CLI and server run with, and the log file."""
    folder = workdir / f"n{n}"
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "catalogue.csv"
    if not csv_path.exists():
        write_catalogue(csv_path, n)
    db = folder / "goodcry.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    env = {**os.environ, "GOODCRY_DATABASE_URL": f"sqlite:///{db}",
           "GOODCRY_MATRIX_CACHE": str(folder / "matrices"), "GOODCRY_RATE_LIMITS": "off",
           "GOODCRY_SECRET_KEY": "benchmark-secret-key-benchmark-secret-key",
           "PYTHONPATH": str(ROOT)}
    log = folder / "log.txt"
    # The content model is trained on the bundled catalogue first (training on a million
    # synthetic items is the model's own concern, not a session's).
    run_cli(["train"], env, log)
    return csv_path, env, log


def bench_size(n: int, workdir: Path, requests_n: int, concurrency: int,
               threads: int = 1, rounds: int = 1, memories: int = 0) -> list[dict]:
    """One row per round: the catalogue is imported and served once, then the load client
    runs ``rounds`` times (new people each round), so the spread between rounds shows how
    much of a difference is the machine's own noise."""
    csv_path, env, log = fresh_store(n, workdir)
    import_s = run_cli(["catalog", "import", str(csv_path)], env, log)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("a") as fh:
        proc = subprocess.Popen([*GOODCRY, "serve", "--workers", "2", "--threads",
                                 str(threads), "--port", str(port)],
                                env=env, cwd=ROOT, stdout=fh, stderr=fh)
    rows = []
    try:
        wait_ready(base, proc)
        from concurrent.futures import ProcessPoolExecutor
        for round_ in range(rounds):
            with ProcessPoolExecutor(1) as client:
                result = client.submit(load_client, base, requests_n, concurrency,
                                       n * 100 + round_, proc.pid, memories).result()
            rss = worker_rss(proc)
            rows.append({**_row(n, import_s, requests_n, result, rss), "memories": memories})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    return rows


def _row(n: int, import_s: float, requests_n: int, result: dict, rss: list[int]) -> dict:
    """A round's figures. The ratio is the median of every serial session over the median of
    every serial /healthz call; ``ratio_turns`` gives each turn's, and ``ratio_first`` the
    first turn's alone (how rounds before the fourteenth measured it)."""
    serial = [t for block in result["serial"] for t in block]
    health = [t for block in result["health_serial"] for t in block]
    h50, s50 = statistics.median(health) * 1000, statistics.median(serial) * 1000
    turns = [statistics.median(a) / statistics.median(b)
             for a, b in zip(result["serial"], result["health_serial"], strict=True)]
    return {
        "items": n, "import_s": import_s,
        "p50": pct(result["sessions"], 50), "p95": pct(result["sessions"], 95),
        "p99": pct(result["sessions"], 99),
        "serial_p50": s50, "serial_p95": pct(serial, 95), "healthz_p50": h50,
        "ratio": s50 / h50, "ratio_first": turns[0], "ratio_turns": turns,
        "per_s": requests_n / result["elapsed"],
        "rss_mib": sum(rss) / 2**20, "rss_max_mib": max(rss) / 2**20,
        "server_cpu_ms": result["server_cpu_ms"], "client_cpu_ms": result["client_cpu_ms"],
        "load": os.getloadavg()[0],
    }


def median_row(rows: list[dict]) -> dict:
    """Each figure's median over the rounds of one size (the figures of one row need not
    come from the same round)."""
    return {key: (statistics.median(r[key] for r in rows) if key != "items" else rows[0][key])
            for key in rows[0] if not isinstance(rows[0][key], list)}


def import_only(n: int, workdir: Path) -> dict:
    """``goodcry catalog import`` of ``n`` rows into a fresh store (bundled catalogue and
    content model in it first, as in :func:`bench_size`): wall time, CPU time of the import
    process, load average before and after."""
    import resource

    csv_path, env, log = fresh_store(n, workdir)
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = run_cli(["catalog", "import", str(csv_path)], env, log)
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {"items": n, "import_s": wall, "cpu_s": cpu, "load_before": load_before,
            "load_after": os.getloadavg()[0]}


def rank_only(n: int = 100_000, repeats: int = 50) -> None:
    """In-process: features, ranker and arc for one request over ``n`` candidates."""
    sys.path.insert(0, str(ROOT))
    from recommender.features import (
        ItemRecord,
        SessionRequest,
        build_item_matrix,
        pair_features,
        request_vector,
    )
    from recommender.learning import fit_ranker
    from recommender.session import assemble
    from recommender.vocabulary import default_vocabulary

    vocabulary = default_vocabulary()
    moods, themes = vocabulary_ids()
    rng = random.Random(3)
    records = [ItemRecord(
        id=f"{i:016x}", kind="song", title=f"Song {i}", artist=f"Artist {i % 9000}",
        director=None, year=2000, duration_s=rng.randint(150, 360), intensity=rng.randint(1, 5),
        aftercare=i % 20 == 0,
        tags=tuple(rng.sample(moods, 2) + rng.sample(themes, 1)) if i % 20 else ("hope",))
        for i in range(n)]
    matrix = build_item_matrix(records, vocabulary)
    ranker, _ = fit_ranker(None, build_item_matrix(records[:3000], vocabulary), vocabulary)
    request = SessionRequest(moods=("grief",), prompt="missing my grandmother", minutes=60)
    times, cpu = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        vec = request_vector(request, matrix, vocabulary)
        scores = ranker.score_items(pair_features(matrix, vec))
        top = np.argpartition(-scores, 1000)[:1000]
        top = top[np.argsort(-scores[top], kind="stable")]
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    print(f"in-process ranking of {n} candidates (request vector, pair features, ranker "
          f"scores, the best 1,000 in order): p50 {pct(times, 50):.1f} ms, "
          f"p95 {pct(times, 95):.1f} ms over {repeats} runs (CPU p50 {pct(cpu, 50):.1f} ms)")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        vec = request_vector(request, matrix, vocabulary)
        scores = ranker.score_items(pair_features(matrix, vec))
        assemble(matrix, scores, minutes=60, intensity=3, include_films=True, crisis=False,
                 banned_rows=set())
        times.append(time.perf_counter() - started)
    print(f"the same, then the arc assembled from all {n} (features + ranker + arc): "
          f"p50 {pct(times, 50):.1f} ms, p95 {pct(times, 95):.1f} ms over {repeats} runs")

    from recommender.retrieval import candidate_rows

    times = []
    for i in range(repeats):
        started = time.perf_counter()
        vec = request_vector(request, matrix, vocabulary)
        rows = candidate_rows(matrix, vec, request, crisis=False, rng=np.random.default_rng(i))
        small = matrix.subset(rows)
        scores = ranker.score_items(pair_features(small, vec))
        assemble(small, scores, minutes=60, intensity=3, include_films=True, crisis=False,
                 banned_rows=set())
        times.append(time.perf_counter() - started)
    print(f"in-process, as served: retrieval from {n} items to {len(rows)} candidates, then "
          f"features + ranker + arc: p50 {pct(times, 50):.1f} ms, p95 {pct(times, 95):.1f} ms")


def in_process_client(folder: Path):
    """A test client of the app on the store an earlier run left in ``folder`` (its database
    and matrix artefacts), rate limits off."""
    os.environ.update({
        "GOODCRY_DATABASE_URL": f"sqlite:///{folder / 'goodcry.sqlite'}",
        "GOODCRY_MATRIX_CACHE": str(folder / "matrices"), "GOODCRY_RATE_LIMITS": "off",
        "GOODCRY_SECRET_KEY": "benchmark-secret-key-benchmark-secret-key"})
    sys.path.insert(0, str(ROOT))
    from web import create_app

    return create_app({"PREPARE_STORE": False}).test_client()


def post_session(client, body: dict, headers: dict) -> int:
    """POST a session in-process and close the answer, as gunicorn closes each one: the app
    checkpoints SQLite's write-ahead log when an answer is closed, so without it the log
    grows through the whole run and every read searches it (unlike the served app)."""
    answer = client.post("/api/v1/sessions", json=body, headers=headers)
    answer.close()
    return answer.status_code


def profile_sessions(folder: Path, n_requests: int = 40) -> None:
    """In-process pyinstrument profile of POST /api/v1/sessions on a catalogue this script
    already imported into ``folder`` (run the table first)."""
    from pyinstrument import Profiler

    client = in_process_client(folder)
    answer = client.post("/api/v1/auth/register", json={
        "username": f"profile{time.time_ns()}", "password": "a long benchmark passphrase"})
    headers = {"Authorization": f"Bearer {answer.get_json()['token']}"}
    body = {"moods": ["grief"], "minutes": 90, "intensity": 3,
            "prompt": "missing my grandmother"}
    for _ in range(3):  # warm: matrix mapped, model loaded
        post_session(client, body, headers)
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(n_requests):
        post_session(client, body, headers)
    profiler.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=False))


# The parts of a session --timings times: (module, function) as the session code calls them.
TIMED_PARTS = (
    ("recommender.cry_sessions", "create_session_document"),
    ("recommender.cry_sessions", "_recent_journal_notes"),
    ("recommender.cry_sessions", "screen_texts"),
    ("recommender.cry_sessions", "ranking_vector"),
    ("recommender.cry_sessions", "_history"),
    ("recommender.cry_sessions", "narrow_to_candidates"),
    ("recommender.retrieval", "request_match"),
    ("recommender.retrieval", "candidate_rows"),
    ("recommender.retrieval", "_personal_pools"),
    ("recommender.cry_sessions", "score_catalogue"),
    ("recommender.tastes", "deviations"),
    ("recommender.tastes", "taste_features"),
    ("recommender.cry_sessions", "assemble"),
    ("recommender.cry_sessions", "pair_prompts"),
    ("recommender.cry_sessions", "shown_to"),
    ("recommender.cry_sessions", "_why"),
)


def time_parts(folder: Path, n_requests: int = 300) -> None:
    """In-process, what each part of POST /api/v1/sessions costs a session: each function of
    TIMED_PARTS wrapped in a timer, for one of the benchmark people of an earlier run in
    ``folder`` (their rated history, as the load client's people have). Nested parts are
    included in the parts that call them."""
    import collections
    import importlib

    from sqlalchemy import create_engine, text

    with create_engine(f"sqlite:///{folder / 'goodcry.sqlite'}").connect() as conn:
        username = conn.execute(text("SELECT username FROM users WHERE username LIKE 'bench%' "
                                     "ORDER BY username LIMIT 1")).scalar()
    if username is None:
        raise SystemExit(f"no benchmark person in {folder}: run the table first")
    spent: dict[str, float] = collections.defaultdict(float)
    calls: collections.Counter[str] = collections.Counter()

    def timed(label: str, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - started
                calls[label] += 1
        return wrapper

    client = in_process_client(folder)  # first: this checkout's modules are the ones timed
    for module_name, name in TIMED_PARTS:
        module = importlib.import_module(module_name)
        setattr(module, name, timed(f"{module_name.rsplit('.', 1)[1]}.{name}",
                                    getattr(module, name)))
    answer = client.post("/api/v1/auth/token", json={
        "username": username, "password": "a long benchmark passphrase"})
    headers = {"Authorization": f"Bearer {answer.get_json()['token']}"}
    rng = random.Random(1)
    moods, _ = vocabulary_ids()
    bodies = [{"moods": rng.sample(moods, rng.randint(1, 2)),
               "minutes": rng.choice((30, 45, 90, 150)), "intensity": rng.randint(1, 5),
               **({"prompt": rng.choice(("missing my grandmother", "the end of a long love"))}
                  if i % 3 else {})}
              for i in range(n_requests + 10)]
    for body in bodies[:10]:  # warm: matrix mapped, model loaded
        post_session(client, body, headers)
    spent.clear()
    calls.clear()
    started, cpu = time.perf_counter(), time.process_time()
    for body in bodies[10:]:
        if post_session(client, body, headers) != 201:
            raise SystemExit("a session request failed")
    wall = (time.perf_counter() - started) / n_requests * 1000
    cpu = (time.process_time() - cpu) / n_requests * 1000
    print(f"{n_requests} sessions for {username} in-process: {wall:.2f} ms a request "
          f"(CPU {cpu:.2f} ms), parts nested in the parts above them:")
    print("| part | ms a session | calls a session |")
    print("|---|---|---|")
    for label, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"| `{label}` | {seconds / n_requests * 1000:.3f} "
              f"| {calls[label] / n_requests:.1f} |")


def print_table(rows: list[dict], rounds: list[list[dict]] | None = None) -> None:
    print("| items | import | p50 ms | p95 ms | p99 ms | serial p50 ms | serial p95 ms "
          "| /healthz p50 ms | ratio | ratio, first turn | sessions/s "
          "| RSS MiB (sum; max worker) | server CPU ms/session | client CPU ms/session | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k, r in enumerate(rows):
        p95, ratio, first = f"{r['p95']:.1f}", f"{r['ratio']:.1f}x", f"{r['ratio_first']:.1f}x"
        if rounds:
            p95s, ratios = [x["p95"] for x in rounds[k]], [x["ratio"] for x in rounds[k]]
            firsts = [x["ratio_first"] for x in rounds[k]]
            p95 += f" ({min(p95s):.1f}-{max(p95s):.1f})"
            ratio += f" ({min(ratios):.1f}-{max(ratios):.1f})"
            first += f" ({min(firsts):.1f}-{max(firsts):.1f})"
        print(f"| {r['items']:,} | {r['import_s']:.0f} s | {r['p50']:.1f} | {p95} "
              f"| {r['p99']:.1f} | {r['serial_p50']:.1f} | {r['serial_p95']:.1f} "
              f"| {r['healthz_p50']:.2f} "
              f"| {ratio} | {first} | {r['per_s']:.0f} | {r['rss_mib']:.0f}; "
              f"{r['rss_max_mib']:.0f} | {r['server_cpu_ms']:.1f} | {r['client_cpu_ms']:.1f} "
              f"| {r['load']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1, help="threads per worker")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of the load client per size (one import, one server); "
                             "the table gives each figure's median and the p95's range")
    parser.add_argument("--memories", type=int, default=0,
                        help="memories each benchmark person writes down before the timed "
                             "sessions (sessions pair them with the items)")
    parser.add_argument("--rank-only", action="store_true")
    parser.add_argument("--import-only", action="store_true",
                        help="time `goodcry catalog import` alone (wall, CPU, load)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="a size folder of an earlier run (e.g. WORKDIR/n100000)")
    parser.add_argument("--timings", type=Path, default=None,
                        help="a size folder of an earlier run: each part of a session timed "
                             "in-process, for one of its benchmark people")
    args = parser.parse_args()
    if args.rank_only:
        rank_only()
        return
    if args.profile:
        profile_sessions(args.profile)
        return
    if args.timings:
        time_parts(args.timings)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="goodcry-scale-"))
    print(f"work folder: {workdir}; machine: {os.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB, load {os.getloadavg()[0]:.1f}",
          flush=True)
    if args.import_only:
        for n in (int(s) for s in args.sizes.split(",")):
            print(json.dumps(import_only(n, workdir)), flush=True)
        return
    per_size = []
    for n in (int(s) for s in args.sizes.split(",")):
        per_size.append(bench_size(n, workdir, args.requests, args.concurrency, args.threads,
                                   args.rounds, args.memories))
    if args.rounds > 1:
        print()
        print(f"each round ({args.rounds} per size, one server per size):")
        print_table([r for rows in per_size for r in rows])
        print()
        print(f"median of the {args.rounds} rounds, with the range of p95 and ratios:")
    print()
    if args.memories:
        print(f"each benchmark person has {args.memories} memories")
    print_table([median_row(rows) for rows in per_size],
                [rows for rows in per_size] if args.rounds > 1 else None)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
