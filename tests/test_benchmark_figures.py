"""The scale benchmark's figures from its timings (benchmarks/scale.py): the ratio against
/healthz takes every serial turn together, and the first turn's ratio is reported apart.

Only the arithmetic that turns timings into a table is checked here; the timings themselves
come from a served run (BENCHMARKS.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "scale.py"
_spec = importlib.util.spec_from_file_location("scale_benchmark", _SCRIPT)
scale = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scale)


def _result(serial: list[list[float]], health: list[list[float]]) -> dict:
    """A load client's answer, in seconds, with three serial turns of each kind."""
    return {"sessions": [0.010, 0.012, 0.020, 0.011], "health": [0.001] * 4, "elapsed": 2.0,
            "serial": serial, "health_serial": health, "server_cpu_ms": 5.0,
            "client_cpu_ms": 0.5}


def _row(serial, health):
    return scale._row(100_000, 7.0, 4, _result(serial, health), [300 * 2**20, 310 * 2**20])


def test_the_ratio_takes_every_turn_together_and_the_first_turn_apart():
    # Sessions of 6, 4 and 5 ms in the three turns; /healthz of 1, 2 and 1 ms.
    row = _row([[0.006] * 3, [0.004] * 3, [0.005] * 3], [[0.001] * 5, [0.002] * 5, [0.001] * 5])
    assert row["serial_p50"] == pytest.approx(5.0)
    assert row["healthz_p50"] == pytest.approx(1.0)
    assert row["ratio"] == pytest.approx(5.0)
    assert row["ratio_first"] == pytest.approx(6.0)
    assert row["ratio_turns"] == pytest.approx([6.0, 2.0, 5.0])
    assert row["serial_p95"] == pytest.approx(6.0)
    assert row["per_s"] == pytest.approx(2.0)


def test_the_table_gives_both_ratios_with_their_ranges(capsys):
    rounds = [_row([[0.006] * 3, [0.004] * 3, [0.005] * 3],
                   [[0.001] * 5, [0.002] * 5, [0.001] * 5]),
              _row([[0.003] * 3] * 3, [[0.001] * 5] * 3)]
    median = scale.median_row(rounds)
    assert "ratio_turns" not in median  # a list per round has no median
    assert median["ratio"] == pytest.approx(4.0)
    assert median["ratio_first"] == pytest.approx(4.5)
    scale.print_table([median], [rounds])
    header, _rule, line = capsys.readouterr().out.splitlines()
    cells = [c.strip() for c in line.strip("|").split("|")]
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert cells[columns.index("ratio")] == "4.0x (3.0-5.0)"
    assert cells[columns.index("ratio, first turn")] == "4.5x (3.0-6.0)"


def test_benchmark_memories_are_the_contracts_and_pair_with_items(client):
    """``--memories``: what each benchmark person writes down is accepted by the API as it
    is, differs from memory to memory, comes out the same from the same generator, and
    gets named by a session's prompts (so the benchmark times the pairing's work)."""
    import random

    made = scale.benchmark_memories(random.Random("7-0"), 10)
    assert made == scale.benchmark_memories(random.Random("7-0"), 10)
    assert len({m["text"] for m in made}) == 10
    token = client.post("/api/v1/auth/register", json={
        "username": "benchperson", "password": "a long benchmark passphrase"}).get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    ids = {client.post("/api/v1/memories", json=m, headers=headers).get_json()["id"]
           for m in made}
    assert len(ids) == 10
    named = set()
    for minutes in (45, 90, 150):
        doc = client.post("/api/v1/sessions", headers=headers, json={
            "moods": ["grief"], "prompt": "missing my dad", "minutes": minutes}).get_json()
        named |= {i["prompt"]["memory_id"] for i in doc["items"]} - {None}
    assert named and named <= ids
