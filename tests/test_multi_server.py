"""Two `goodcry serve` processes on different ports, sharing one database, behave as one
service: accounts, sessions, feedback, bans, rate limits and a newly trained model are seen
by both. On PostgreSQL when the suite runs there; otherwise on one shared SQLite file (two
processes on one WAL database work too), so this never skips."""

from __future__ import annotations

import os
import subprocess
import time

import requests

from tests.served import GOODCRY, Client, Served


def wait_for_model(server_url: str, version: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    health = {}
    while time.monotonic() < deadline:
        health = requests.get(f"{server_url}/healthz", timeout=10).json()
        if health["model_version"] == version:
            return health
        time.sleep(0.25)
    raise AssertionError(f"{server_url} still serves {health.get('model_version')}")


def test_two_servers_on_one_database_are_one_service(database_url, tmp_path):
    with Served(database_url, workers=1, rate_limits=True, log_path=tmp_path / "a.log") as a, \
         Served(database_url, workers=1, rate_limits=True, log_path=tmp_path / "b.log") as b:
        alice_a = Client(a.url, "alice")
        alice_b = alice_a.at(b.url)
        # an account made on one server signs in on the other
        assert alice_b.get("/api/v1/me").json()["username"] == "alice"
        taken = requests.post(f"{b.url}/api/v1/auth/register",
                              json={"username": "alice", "password": "another password"},
                              timeout=30)
        assert taken.status_code == 409

        # sessions and feedback, alternating servers
        first = alice_a.new_session()
        assert alice_b.get(f"/api/v1/sessions/{first['id']}").json()["id"] == first["id"]
        banned = first["items"][1]["item_id"]
        rated = alice_b.post(f"/api/v1/sessions/{first['id']}/feedback", json={
            "reactions": [{"item_id": first["items"][0]["item_id"], "reaction": "cried"},
                          {"item_id": banned, "reaction": "never_again"}],
            "catharsis": 5})
        assert rated.status_code == 201
        seen = alice_a.get(f"/api/v1/sessions/{first['id']}").json()
        assert seen["feedback"]["catharsis"] == 5
        # the ban made on b holds in every later session, from either server
        for client in (alice_a, alice_b, alice_a, alice_b):
            later = client.new_session(exploration="familiar")
            assert banned not in [i["item_id"] for i in later["items"]]
        listed = {s["id"] for s in alice_b.get("/api/v1/sessions").json()["sessions"]}
        assert first["id"] in listed and len(listed) == 5

        # rate limits are one count for the service, not one per server
        wrong = {"username": "alice", "password": "not her password"}
        codes = [requests.post(f"{(a, b)[k % 2].url}/api/v1/auth/token", json=wrong,
                               timeout=30).status_code for k in range(11)]
        assert codes == [401] * 10 + [429], codes

        # a model trained by `goodcry train` is served by both within a few seconds
        before = requests.get(f"{a.url}/healthz", timeout=10).json()["model_version"]
        trained = subprocess.run([GOODCRY, "train"], capture_output=True, text=True,
                                 timeout=300,
                                 env={**os.environ, "GOODCRY_DATABASE_URL": database_url})
        assert trained.returncode == 0, trained.stderr
        version = next(word for word in trained.stdout.split() if word.startswith("learned-"))
        assert version != before
        for server in (a, b):
            health = wait_for_model(server.url, version)
            assert health["model_fallback"] is False
        assert alice_b.new_session()["model_version"] == version
        assert alice_a.new_session()["model_version"] == version
