"""What a worker keeps between requests (recommender/kept.py): bounded in bytes, least
recently used first out."""

from __future__ import annotations

from dataclasses import dataclass

from recommender.kept import KeptByBytes


@dataclass
class Entry:
    name: str
    nbytes: int


def test_entries_are_found_by_key_and_the_least_recently_used_go_first():
    kept = KeptByBytes(300)
    a, b, c = Entry("a", 100), Entry("b", 100), Entry("c", 100)
    for key, entry in (("a", a), ("b", b), ("c", c)):
        kept.put(key, entry)
    assert kept.get("missing") is None
    assert kept.get_many(["a", "missing", ("tuple", "key")]) == [a, None, None]
    # "a" was just read: "b" is now the least recently used and goes for "d".
    d = Entry("d", 100)
    kept.put("d", d)
    assert kept.get_many(["a", "b", "c", "d"]) == [a, None, c, d]
    assert len(kept) == 3


def test_an_entry_larger_than_the_whole_is_not_kept_and_evicts_nothing():
    kept = KeptByBytes(300)
    small = Entry("small", 10)
    kept.put("small", small)
    kept.put("huge", Entry("huge", 301))
    assert kept.get("huge") is None and kept.get("small") is small
