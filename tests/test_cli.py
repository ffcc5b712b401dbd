"""The goodcry command line, run as a real process against a real database."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from sqlalchemy import func, select

from recommender.store.db import make_engine, make_session_factory
from recommender.store.models import CatalogItem, ItemTag, ModelVersion

GOODCRY = str(Path(sys.executable).with_name("goodcry"))
HEADER = "kind,title,artist,director,year,duration_s,tags,spotify_id\n"


def run(args, db_url, **kw):
    env = {**os.environ, "GOODCRY_DATABASE_URL": db_url}
    return subprocess.run([GOODCRY, *args], env=env, capture_output=True, text=True,
                          timeout=120, **kw)


def items_named(db_url, title):
    engine = make_engine(db_url)
    with make_session_factory(engine)() as db:
        found = db.scalars(select(CatalogItem).where(CatalogItem.title == title)).all()
        out = [(i.kind, i.artist, i.director, i.year, i.duration_s, i.tag_list,
                i.spotify_uri) for i in found]
    engine.dispose()
    return out


def test_import_lands_good_rows_reports_bad_ones_and_is_idempotent(tmp_path, database_url):
    csv_file = tmp_path / "mine.csv"
    csv_file.write_text(
        HEADER
        + "song,A Brand New Lament,The Test Band,,2019,245,grief;Tearjerker;rainy days,"
          "4uLU6hMCjMI75M1A2tKUQC\n"                                        # line 2: good
        + "song,No Artist Song,,,2001,200,grief,\n"                       # line 3: no artist
        + "film,A Long Goodbye (Test Cut),,Some Director,1999,7200,grief;loss_parent,\n"
        + "opera,Wrong Kind,Someone,,2000,100,grief,\n"                    # line 5: kind
        + "song,Bad Year,Someone,,nineteen,200,grief,\n"                   # line 6: year
        + "song,Bad Id,Someone,,2000,200,grief,not-an-id\n",               # line 7: id
        encoding="utf-8",
    )
    first = run(["catalog", "import", str(csv_file), "--no-progress"], database_url)
    assert first.returncode == 0, first.stderr
    assert "added 2, updated 0, unchanged 0, skipped 4" in first.stdout
    for line, words in [(3, "artist"), (5, "kind"), (6, "year"), (7, "spotify_id")]:
        assert any(f"mine.csv:{line}: skipped" in row and words in row
                   for row in first.stderr.splitlines()), (line, first.stderr)
    assert "mine.csv:2: warning" in first.stderr and "rainy days" in first.stderr
    song = items_named(database_url, "A Brand New Lament")
    assert song == [("song", "The Test Band", None, 2019, 245,
                     ["grief", "release", "rainy days"],
                     "spotify:track:4uLU6hMCjMI75M1A2tKUQC")]
    film = items_named(database_url, "A Long Goodbye (Test Cut)")
    assert film == [("film", None, "Some Director", 1999, 7200, ["grief", "loss_parent"], None)]

    engine = make_engine(database_url)
    with make_session_factory(engine)() as db:
        before = (db.scalar(select(func.count()).select_from(CatalogItem)),
                  db.scalar(select(func.count()).select_from(ItemTag)))
    second = run(["catalog", "import", str(csv_file), "--no-progress"], database_url)
    assert second.returncode == 0
    assert "added 0, updated 0, unchanged 2, skipped 4" in second.stdout
    with make_session_factory(engine)() as db:
        after = (db.scalar(select(func.count()).select_from(CatalogItem)),
                 db.scalar(select(func.count()).select_from(ItemTag)))
    engine.dispose()
    assert before == after


def test_import_updates_an_existing_item_by_identity(tmp_path, database_url):
    csv_file = tmp_path / "update.csv"
    csv_file.write_text(HEADER + "song,Tears in Heaven (Remastered 2011),ERIC CLAPTON,,1992,"
                                 "275,grief;loss_child,\n", encoding="utf-8")
    answer = run(["catalog", "import", str(csv_file), "--no-progress"], database_url)
    assert "added 0, updated 1" in answer.stdout, answer.stdout + answer.stderr
    assert items_named(database_url, "Tears in Heaven (Remastered 2011)")[0][4] == 275


def test_import_with_a_wrong_header_fails_clearly(tmp_path, database_url):
    csv_file = tmp_path / "wrong.csv"
    csv_file.write_text("title,artist\nHurt,Johnny Cash\n", encoding="utf-8")
    answer = run(["catalog", "import", str(csv_file)], database_url)
    assert answer.returncode != 0
    assert "line 1" in answer.stderr and "kind" in answer.stderr


def test_train_stores_and_serves_a_new_version(database_url, client, alice):
    doc = alice.new_session()
    alice.post(f"/api/v1/sessions/{doc['id']}/feedback", json={"reactions": [
        {"item_id": i["item_id"], "reaction": "cried"} for i in doc["items"]]})
    answer = run(["train"], database_url)
    assert answer.returncode == 0, answer.stderr
    assert f"on {len(doc['items'])} reactions" in answer.stdout
    engine = make_engine(database_url)
    with make_session_factory(engine)() as db:
        active = db.scalars(select(ModelVersion).where(ModelVersion.active.is_(True))).all()
    engine.dispose()
    assert len(active) == 1 and active[0].version.startswith("learned-")
    assert active[0].version in answer.stdout
    assert active[0].sidecar["n_feedback_reactions"] == len(doc["items"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_gunicorn_and_stops_on_sigterm(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    port = free_port()
    env = {**os.environ, "GOODCRY_DATABASE_URL": db_url}
    proc = subprocess.Popen([GOODCRY, "serve", "--port", str(port), "--workers", "2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        health = None
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
                break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.3)
        assert health is not None and health.status_code == 200
        assert health.json()["catalog_items"] >= 440
        reg = requests.post(f"http://127.0.0.1:{port}/api/v1/auth/register",
                            json={"username": "served", "password": "long enough pw"}, timeout=10)
        assert reg.status_code == 201
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "goodcry" in page.text
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_serve_shares_busy_clients_between_its_workers(database_url):
    """Clients whose HTTP library would keep a connection open are still served by whichever
    worker is free: each answer closes its connection, so no client stays queued on one
    worker while the other idles, and both workers share the work."""
    import psutil

    from tests.served import Client, Served, children

    def cpu_s(pid: int) -> float:
        times = psutil.Process(pid).cpu_times()
        return times.user + times.system

    with Served(database_url, workers=2) as server:
        workers = children(server.proc.pid)
        assert len(workers) == 2
        people = [Client(server.url, f"sharer{k}") for k in range(4)]
        asking = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        asking.request("GET", "/healthz")  # HTTP/1.1: keep-alive unless the server says not
        answer = asking.getresponse()
        answer.read()
        asking.close()
        assert answer.status == 200
        assert answer.getheader("Connection") == "close" and answer.will_close
        before = {pid: cpu_s(pid) for pid in workers}
        with ThreadPoolExecutor(4) as pool:
            made = list(pool.map(lambda person: [person.new_session()["id"] for _ in range(40)],
                                 people))
        spent = {pid: cpu_s(pid) - before[pid] for pid in workers}
    assert all(len(set(ids)) == 40 for ids in made)
    # Kept alive, four connections opened to idle workers all went to one worker in three
    # starts of eight (and three to one in three more); shared, each does about half.
    assert min(spent.values()) >= sum(spent.values()) / 3, spent


def test_serve_reads_a_large_catalogues_sets_of_tags_before_its_workers_fork(
        database_url, tmp_path, monkeypatch, capsys):
    """What `goodcry serve` prepares before forking: with a catalogue large enough for an
    item-matrix artefact (the bar lowered to the bundled catalogue here), its sets of tags
    are read into memory pairing's cache, which the workers then start with."""
    from recommender import cli, matrix_cache, prompts
    from recommender.vocabulary import default_vocabulary

    monkeypatch.setenv("GOODCRY_MATRIX_CACHE", str(tmp_path / "matrices"))
    monkeypatch.setattr(matrix_cache, "PERSIST_MIN_ITEMS", 0)
    prompts._analysed_by_vocabulary.clear()
    engine = make_engine(database_url)
    try:
        cli._prepare_matrix(make_session_factory(engine))
    finally:
        engine.dispose()
    said = capsys.readouterr().err
    read = int(said.split("goodcry: ")[-1].split()[0])
    assert "item matrix ready" in said and read > 50
    assert len(prompts._analysed_cache(default_vocabulary())) >= read
    prompts._analysed_by_vocabulary.clear()
