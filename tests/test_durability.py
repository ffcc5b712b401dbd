"""Nothing lost: reactions from many concurrent clients are each stored exactly once, and
every reaction the server acknowledged (201) survives SIGKILL of the master and workers.

Runs against real `goodcry serve --workers 2` processes on the suite's database flavour
(SQLite in WAL mode by default, PostgreSQL when GOODCRY_TEST_DATABASE_URL says so)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import func, select

from recommender.store.db import make_engine, make_session_factory
from recommender.store.models import Feedback, Reaction
from tests.served import Client, Served

REACTIONS = ("cried", "moved", "neutral", "skipped")


def stored_reactions(database_url: str) -> dict[tuple[str, str], list[str]]:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as db:
            found: dict[tuple[str, str], list[str]] = {}
            for row in db.execute(select(Reaction.session_id, Reaction.item_id,
                                         Reaction.reaction)):
                found.setdefault((row.session_id, row.item_id), []).append(row.reaction)
            return found
    finally:
        engine.dispose()


def feedback_for(session: dict, salt: int) -> dict:
    items = [i["item_id"] for i in session["items"]]
    return {"reactions": [{"item_id": item, "reaction": REACTIONS[(k + salt) % 4]}
                          for k, item in enumerate(items)],
            "catharsis": 1 + salt % 5, "mood_before": 3, "mood_after": 6}


def test_concurrent_feedback_is_recorded_exactly_once(database_url, tmp_path):
    with Served(database_url, workers=2, log_path=tmp_path / "serve.log") as server:
        people = [Client(server.url, f"crowd{k}") for k in range(6)]
        sessions = [(p, p.new_session()) for p in people for _ in range(2)]

        def rate(job):
            k, (person, session) = job
            last = None
            for salt in range(3):  # sent again: replaces, never adds
                answer = person.post(f"/api/v1/sessions/{session['id']}/feedback",
                                     json=feedback_for(session, k + salt))
                assert answer.status_code == 201, answer.text
                assert answer.json()["recorded"] == len(session["items"])
                last = feedback_for(session, k + salt)
            return session, last

        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(rate, enumerate(sessions * 2)))
    stored = stored_reactions(database_url)
    expected = {}
    for session, _last in results:
        for item in session["items"]:
            expected[(session["id"], item["item_id"])] = True
    assert set(stored) == set(expected)
    assert all(len(v) == 1 for v in stored.values()), "a reaction was stored twice"
    engine = make_engine(database_url)
    with make_session_factory(engine)() as db:
        assert db.scalar(select(func.count()).select_from(Feedback)) == len(sessions)
    engine.dispose()


def test_every_acknowledged_reaction_survives_sigkill_mid_burst(database_url, tmp_path):
    server = Served(database_url, workers=2, log_path=tmp_path / "serve.log")
    acknowledged: list[tuple[str, str, str]] = []
    lock = threading.Lock()
    stop = threading.Event()
    try:
        server.wait_ready()
        people = [Client(server.url, f"burst{k}") for k in range(6)]
        plans = [(p, [p.new_session(minutes=20) for _ in range(8)]) for p in people]

        def burst(plan):
            person, sessions = plan
            for n, session in enumerate(sessions):
                if stop.is_set():
                    return
                body = feedback_for(session, n)
                try:
                    answer = person.post(f"/api/v1/sessions/{session['id']}/feedback",
                                         json=body)
                except requests.RequestException:
                    return  # the server died under us: this one was never acknowledged
                if answer.status_code == 201:
                    with lock:
                        acknowledged.extend((session["id"], r["item_id"], r["reaction"])
                                            for r in body["reactions"])

        threads = [threading.Thread(target=burst, args=(plan,)) for plan in plans]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # kill once the burst is well under way
            with lock:
                if len(acknowledged) >= 60:
                    break
            time.sleep(0.01)
        killed = server.kill_hard()
        assert len(killed) == 3, killed  # the master and both workers
        stop.set()
        for t in threads:
            t.join(timeout=60)
    finally:
        stop.set()
        server.stop()
    assert acknowledged, "the burst never got going"
    total_planned = sum(len(s["items"]) for _, ss in plans for s in ss)
    assert len(acknowledged) < total_planned, "the kill came after the burst had finished"
    stored = stored_reactions(database_url)
    lost = [a for a in acknowledged if stored.get((a[0], a[1])) != [a[2]]]
    assert not lost, f"{len(lost)} acknowledged reactions lost, e.g. {lost[:3]}"
    # and the database is whole: a new server starts on it and answers
    with Served(database_url, workers=1) as again:
        assert requests.get(f"{again.url}/healthz", timeout=10).json()["status"] == "ok"


def test_a_corrupt_active_model_falls_back_and_health_says_so(client, alice):
    from sqlalchemy import update

    from recommender import learning
    from recommender.store.models import ModelVersion

    store = client.application.extensions["goodcry"]
    healthy = client.get("/healthz").get_json()
    assert healthy["model_fallback"] is False and healthy["model_note"] is None
    previous = healthy["model_version"]
    with store.session_factory() as db:
        served = db.get(ModelVersion, previous)
        newer = learning.save_version(db, learning.load_ranker(served.artefact),
                                      {**served.sidecar, "kind": "learned"})
    store.recommender.forget_model()
    assert client.get("/healthz").get_json()["model_version"] == newer

    for damage in (b"\x80\x04 not a pickle at all", b""):  # corrupt, then missing
        with store.session_factory() as db:
            db.execute(update(ModelVersion).where(ModelVersion.version == newer)
                       .values(artefact=damage))
            db.commit()
        store.recommender.forget_model()
        health = client.get("/healthz").get_json()
        assert health["status"] == "ok"
        assert health["model_version"] == previous
        assert health["model_fallback"] is True
        assert newer in health["model_note"] and previous in health["model_note"]
        assert alice.new_session()["model_version"] == previous


def test_load_script_smoke(database_url):
    """benchmarks/load.py for three seconds: no errors, no lost writes (figures not judged)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "load.py"
    run = subprocess.run([sys.executable, str(script), "--clients", "4", "--seconds", "3",
                          "--workers", "2", "--database-url", database_url],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "errors: 0" in run.stdout and "lost writes: 0;" in run.stdout, run.stdout
    assert "feedback" in run.stdout
