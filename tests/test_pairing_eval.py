"""Offline evaluation of memory pairing against hand-labelled personas."""

import json
from pathlib import Path

from recommender.prompts import MemoryCard, PromptSlot, pair_prompts

CASES = Path(__file__).parent / "data" / "pairing_personas.json"
MIN_FITTING_SHARE = 0.8
MAX_FALSE_PAIRING_SHARE = 0.10


def _load():
    raw = json.loads(CASES.read_text(encoding="utf-8"))
    personas = {
        p["id"]: [
            MemoryCard(
                id=m["id"],
                title=m["title"],
                text=m["text"],
                tags=tuple(m["tags"]),
                people=tuple(m["people"]),
                places=tuple(m["places"]),
                when=m["when"],
            )
            for m in p["memories"]
        ]
        for p in raw["personas"]
    }
    return personas, raw["cases"]


def test_pairing_names_the_fitting_memory():
    personas, cases = _load()
    assert len(personas) >= 4 and len(cases) >= 10
    fitting = expected_pairs = false_pairings = 0
    failures = []
    for number, case in enumerate(cases):
        memories = personas[case["persona"]]
        s = case["slot"]
        slot = PromptSlot(
            0,
            f"case-{number}",
            s["kind"],
            s["phase"],
            s["title"],
            s["artist"],
            s["director"],
            tuple(s["tags"]),
        )
        [prompt] = pair_prompts([slot], memories, seed=number)
        expected = case["expected"]
        if expected is not None:
            expected_pairs += 1
            memory = next(m for m in memories if m.id == expected)
            named = any(n in prompt.text for n in (memory.title, *memory.people, *memory.places))
            if prompt.memory_id == expected and named:
                fitting += 1
        if prompt.memory_id is not None and prompt.memory_id != expected:
            false_pairings += 1
        if prompt.memory_id != expected:
            failures.append((s["title"], expected, prompt.memory_id))
    fitting_share = fitting / expected_pairs
    false_share = false_pairings / len(cases)
    print(f"\nprompts naming the fitting memory: {fitting}/{expected_pairs} = {fitting_share:.0%}")
    print(f"false pairings: {false_pairings}/{len(cases)} = {false_share:.0%}")
    assert fitting_share >= MIN_FITTING_SHARE, failures
    assert false_share <= MAX_FALSE_PAIRING_SHARE, failures
