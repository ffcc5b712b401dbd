"""The prompt library and the pairing of prompts with memories."""

import json
import logging
import math
import os
import random
import re
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from recommender import prompts
from recommender.care import AFTERCARE_STEPS
from recommender.pairing_kernel import _siphash24, char_ngram_hashes
from recommender.prompts import (
    KINDS,
    MAX_USES_PER_MEMORY,
    MEMORY_PHASES,
    MEMORY_THRESHOLD,
    PHASES,
    PROMPTS_JSON,
    MemoryCard,
    PairingPrompt,
    PromptSlot,
    _fill,
    _weighted_choice,
    load_prompt_library,
    match_memories,
    memory_scores,
    pair_prompts,
)
from recommender.vocabulary import default_vocabulary

CARE_TECHNIQUES = {
    "tie_to_life",
    "photos",
    "old_messages",
    "journaling",
    "gratitude",
    "walk",
    "safe_place",
    "confide",
    "workout",
    "watering_eyes",
    "aftercare",
}
CRISIS_TECHNIQUES = {"comfort", "grounding", "confide", "gratitude", "aftercare"}
DEEPENING = {"photos", "old_messages", "journaling", "tie_to_life", "watering_eyes"}

DAD = MemoryCard(
    id="dad",
    title="Dad's fishing trips on the lake",
    text="Every August we rowed out before dawn. He never caught much and never minded.",
    tags=(),
    people=("Dad",),
    places=("Lake Tahoe",),
    when="summers, 1998 to 2010",
)
CONCERT = MemoryCard(
    id="concert",
    title="My first concert, pure joy",
    text="Screaming every word with Jess at fifteen.",
    tags=("joy",),
    people=("Jess",),
    places=("Madison Square Garden",),
    when="2009",
)


def slot(position, phase="deepen", kind="song", title=None, tags=("grief",)):
    return PromptSlot(
        position=position,
        item_id=f"item-{position}",
        kind=kind,
        phase=phase,
        title=title or f"Track {position}",
        artist="Someone" if kind == "song" else None,
        director="Someone" if kind == "film" else None,
        tags=tuple(tags),
    )


def eight_slots(tags=("grief",)):
    phases = ["settle", "settle", "deepen", "deepen", "deepen", "release", "release", "aftercare"]
    kinds = ["song", "song", "song", "film", "song", "song", "film", "song"]
    return [
        slot(i, phase, kind, tags=tags)
        for i, (phase, kind) in enumerate(zip(phases, kinds, strict=True))
    ]


def names_memory(prompt: PairingPrompt, memory: MemoryCard) -> bool:
    return any(name in prompt.text for name in (memory.title, *memory.people, *memory.places))


@pytest.mark.parametrize("technique", sorted(CARE_TECHNIQUES | CRISIS_TECHNIQUES))
@pytest.mark.parametrize("kind", ["song", "film"])
def test_every_technique_has_memoryless_templates_for_songs_and_films(technique, kind):
    library = load_prompt_library()
    templates = [t for t in library.templates if t.technique == technique and kind in t.kinds]
    plain = [t for t in templates if not t.memory and not t.only_in_crisis]
    assert len(plain) >= 2, f"{technique} needs several {kind} variants without a memory"
    assert len({t.text for t in plain}) == len(plain)


def test_memory_templates_name_the_memory():
    library = load_prompt_library()
    with_memory = [t for t in library.templates if t.memory]
    assert {t.technique for t in with_memory} >= {
        "photos",
        "old_messages",
        "journaling",
        "gratitude",
        "walk",
        "confide",
        "tie_to_life",
    }
    for template in with_memory:
        assert template.fields & {"memory_title", "person", "place"}
        assert "title" in template.fields


def test_fragile_techniques_carry_their_warnings():
    library = load_prompt_library()
    assert all("breath" not in t.technique for t in library.templates)
    notes = " ".join(json.loads(PROMPTS_JSON.read_text(encoding="utf-8"))["notes"]).lower()
    assert "breathwork is left out" in notes and "supervision" in notes
    for template in library.templates:
        if template.technique == "watering_eyes":
            assert "feel" in template.text or "memory" in template.text


def test_session_of_eight_has_eight_prompts_and_no_repeated_text():
    slots = eight_slots()
    prompts = pair_prompts(slots, [DAD, CONCERT], seed=7)
    assert len(prompts) == 8
    assert len({p.text for p in prompts}) == 8
    assert all(isinstance(p, PairingPrompt) for p in prompts)


def test_repeated_titles_still_give_distinct_texts():
    slots = [slot(i, "deepen", title="Same Song") for i in range(12)]
    prompts = pair_prompts(slots, [], seed=1)
    assert len({p.text for p in prompts}) == 12


def test_pairing_is_deterministic_per_seed_and_varies_across_seeds():
    slots = eight_slots()
    first = pair_prompts(slots, [DAD], seed=3)
    assert first == pair_prompts(slots, [DAD], seed=3)
    texts = {tuple(p.text for p in pair_prompts(slots, [DAD], seed=s)) for s in range(5)}
    assert len(texts) > 1


def test_dads_fishing_trips_pair_with_a_loss_parent_song():
    song = slot(0, "deepen", title="Dance with My Father", tags=("grief", "loss_parent"))
    [prompt] = pair_prompts([song], [CONCERT, DAD], seed=0)
    assert prompt.memory_id == "dad"
    assert names_memory(prompt, DAD)


def test_unrelated_joyful_memory_does_not_pair_with_a_grief_song():
    song = slot(0, "deepen", title="Dance with My Father", tags=("grief", "loss_parent"))
    [prompt] = pair_prompts([song], [CONCERT], seed=0)
    assert prompt.memory_id is None
    assert not names_memory(prompt, CONCERT)


def test_a_memory_is_used_at_most_twice():
    slots = [
        slot(i, "deepen", title=f"Father song {i}", tags=("grief", "loss_parent")) for i in range(6)
    ]
    prompts = pair_prompts(slots, [DAD], seed=2)
    used = [p.memory_id for p in prompts if p.memory_id]
    assert used.count("dad") == MAX_USES_PER_MEMORY
    assert len(match_memories(slots, [DAD])) == MAX_USES_PER_MEMORY


def test_memories_go_to_the_best_pairs_over_the_threshold_in_order():
    """match_memories takes the pairs over the threshold, highest first (ties to the
    earlier slot, then the earlier memory), each slot once, each memory at most twice,
    aftercare never: the same as listing every pair one by one, on sessions with many
    memories and many ties."""
    rng = random.Random(4)
    themes = [("grief", "loss_parent"), ("heartbreak",), ("nostalgia", "family"), ("grief",)]
    people = ("Dad", "Mum", "Nan", "Sam")
    checked = 0
    for _ in range(12):
        slots = [slot(i, rng.choice(["settle", "deepen", "release", "aftercare"]),
                      title=rng.choice(["Father song", "Dance with My Father", "Nan's waltz",
                                        "Last train"]), tags=rng.choice(themes))
                 for i in range(13)]
        places = ("lake", "kitchen", "station")
        memories = [MemoryCard(f"m{k}", f"{rng.choice(people)} and the {rng.choice(places)}",
                               rng.choice([DAD.text, GRAN.text, "the last call", ""]), (),
                               (rng.choice(people),), (), None)
                    for k in range(rng.randint(1, 40))]
        scores = memory_scores(slots, memories)
        pairs = sorted(((float(scores[i, j]), i, j) for i, s in enumerate(slots)
                        if s.phase in MEMORY_PHASES for j in range(len(memories))
                        if scores[i, j] >= MEMORY_THRESHOLD),
                       key=lambda p: (-p[0], p[1], p[2]))
        expected, uses = {}, Counter()
        for _, i, j in pairs:
            if i not in expected and uses[j] < MAX_USES_PER_MEMORY:
                expected[i] = memories[j]
                uses[j] += 1
        got = match_memories(slots, memories)
        assert got == expected
        checked += len(got)
    assert checked > 30


def test_crisis_mode_offers_no_deepening_and_no_memories():
    slots = eight_slots(tags=("grief", "loss_parent"))
    for seed in range(10):
        prompts = pair_prompts(slots, [DAD], seed=seed, crisis=True)
        assert len(prompts) == 8
        for prompt in prompts:
            assert prompt.technique in CRISIS_TECHNIQUES, prompt.technique
            assert prompt.technique not in DEEPENING
            assert prompt.memory_id is None
            assert not names_memory(prompt, DAD)


def test_aftercare_slots_get_aftercare_prompts_and_never_a_memory():
    slots = [
        slot(i, "aftercare", kind=kind, tags=("joy", "grief", "loss_parent"))
        for i, kind in enumerate(["song", "film", "song", "film"])
    ]
    prompts = pair_prompts(slots, [DAD], seed=4)
    lowered_steps = [s[:1].lower() + s[1:] for s in AFTERCARE_STEPS]
    for prompt in prompts:
        assert prompt.technique == "aftercare"
        assert prompt.memory_id is None
        assert any(s in prompt.text for s in (*AFTERCARE_STEPS, *lowered_steps))
    assert len({p.text for p in prompts}) == 4


def test_grandma_and_dementia_bridge_to_ageing_memory_loss():
    grandma = MemoryCard(
        "gran",
        "Sundays at Gran's",
        "Grandma baking before the dementia came.",
        (),
        ("Grandma",),
        ("her kitchen",),
        None,
    )
    film = slot(0, "deepen", kind="film", title="Still Alice", tags=("ageing_memory_loss",))
    heartbreak = slot(1, "deepen", title="Someone Like You", tags=("heartbreak", "breakup"))
    prompts = pair_prompts([film, heartbreak], [grandma], seed=0)
    assert prompts[0].memory_id == "gran"
    assert prompts[1].memory_id is None


def test_memory_text_is_never_logged(caplog):
    secret = MemoryCard(
        "s", "A private title", "Something nobody else should ever read.", (), ("Dad",), (), None
    )
    with caplog.at_level(logging.DEBUG):
        pair_prompts([slot(0, tags=("grief", "loss_parent"))], [secret], request_text="my dad")
    assert "nobody else" not in caplog.text
    assert "private title" not in caplog.text


@pytest.mark.parametrize("title", [
    "Plain Title", "Two  spaces", " leading", "trailing ", "tab\there", "new\nline",
    "no\u00a0break", "ideographic\u3000space", "line\u2028separator", "", "   ", "x",
])
def test_filled_prompts_have_their_whitespace_squashed(title):
    library = load_prompt_library()
    for template in library.templates:
        fields = {"title": title, "memory_title": title, "person": title, "place": title,
                  "step": "Drink water", "step_lower": "drink water"}
        text = template.text.format(**{name: fields[name] for name in template.fields})
        assert _fill(template, fields) == re.sub(r"\s+", " ", text).strip()


def test_offers_step_is_whether_any_candidate_names_a_step():
    library = load_prompt_library()
    seen = set()
    for kind in KINDS:
        for phase in PHASES:
            for crisis in (False, True):
                for memory in (False, True):
                    offers = library.offers_step(kind, phase, crisis=crisis, memory=memory)
                    assert offers == any(t.takes_step for t in library.candidates(
                        kind, phase, crisis=crisis, memory=memory))
                    seen.add(offers)
    assert seen == {True, False}


def test_weighted_choice_draws_as_random_choices_with_the_technique_weights():
    """The pick is ``random.choices``' own draw with each template weighted by how little
    its technique was used (squared) and a fifth for the technique just used."""
    options = list(load_prompt_library().candidates("song", "deepen", crisis=False,
                                                    memory=False))
    techniques = sorted({t.technique for t in options})
    assert len(techniques) > 2
    for seed in range(300):
        state = random.Random(seed)
        uses = Counter({t: state.randrange(3) for t in techniques})
        last = state.choice([None, *techniques])
        weights = [1.0 / (1 + uses[t.technique]) ** 2 * (0.2 if t.technique == last else 1.0)
                   for t in options]
        expected = random.Random(seed).choices(options, weights=weights, k=1)[0]
        assert _weighted_choice(random.Random(seed), options, uses, last) is expected


# --- what the matching keeps per worker ---------------------------------------------------

GRAN = MemoryCard("gran", "Sundays at Gran's", "Grandma baking before the dementia came.", (),
                  ("Grandma",), ("her kitchen",), None)
STOP_WORDS_ONLY = MemoryCard("the", "the", "and the of", (), (), (), None)


def _session_documents(slots, memories, vocabulary) -> tuple[list[str], list[str]]:
    """The whole documents the matching reads, written out: a slot's title, artist, director
    and its tags' words (of their known concepts, else of the tags), and a memory's words
    and its concepts' words."""
    def tags_words(tags):
        concepts = prompts._concepts_of_tags(tags, vocabulary)
        return [word for word in prompts._describe_tags(concepts or tags, vocabulary) if word]

    left = [" ".join(p for p in (s.title, s.artist or "", s.director or "", *tags_words(s.tags))
                     if p) for s in slots]
    right = [" ".join([prompts._memory_words(m),
                       *prompts._describe_tags(prompts._memory_concepts(m, vocabulary),
                                               vocabulary)]) for m in memories]
    return left, right


def _fitted_similarity(left: list[str], right: list[str]) -> np.ndarray:
    """The matching's TF-IDF similarity as scikit-learn computes it: a TfidfVectorizer per
    analyzer fitted on the session's documents, rows normalised, the two averaged."""
    blocks = []
    for vectorizer in (
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), stop_words="english",
                        sublinear_tf=True, token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z']+\b"),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True),
    ):
        try:
            matrix = normalize(vectorizer.fit_transform(left + right))
        except ValueError:  # nothing but stop words
            continue
        blocks.append((matrix[:len(left)] @ matrix[len(left):].T).toarray())
    return np.mean(blocks, axis=0) if blocks else np.zeros((len(left), len(right)))


# Titles the matching's slot terms (put together from a title's and its tags' words) must
# read as scikit-learn's analyzers read the whole: runs of spaces and tabs, accents and
# capitals, punctuation, one-letter words, a word twice, a last word that is a stop word.
AWKWARD_TITLES = ("Dance  with\tMy FATHER", "L'été — Ölmez dağ, yolu!", "a b c", "Ça va ça va",
                  "Gran\u00a0and\nDad", "İstanbul ß ﬁre", "Songs for the", "Rock'")

# None, one, several known and several unknown (free-form) tags.
TAG_SETS = ((), ("loss_parent",), ("grief", "loss_partner", "first_love"),
            ("rainy_day", "old_radio"))


@pytest.mark.parametrize("memories", [[DAD, CONCERT, GRAN], [DAD], [STOP_WORDS_ONLY],
                                      [STOP_WORDS_ONLY, GRAN]])
def test_tfidf_similarity_is_scikit_learns_on_the_session_documents(memories):
    vocabulary = default_vocabulary()
    slots = [*eight_slots(tags=("grief", "loss_parent")),
             slot(9, title="Still Alice", kind="film", tags=("ageing_memory_loss",)),
             slot(10, title="the", tags=()),
             *(slot(11 + i, title=title, tags=TAG_SETS[i % len(TAG_SETS)])
               for i, title in enumerate(AWKWARD_TITLES))]
    left, right = _session_documents(slots, memories, vocabulary)
    ours = prompts._tfidf_similarity(
        prompts._slots_read(slots, vocabulary)[1],
        prompts._memories_analysed(memories, vocabulary)[1])
    np.testing.assert_allclose(ours, _fitted_similarity(left, right), rtol=0, atol=1e-12)
    assert ours.shape == (len(slots), len(memories))


@pytest.mark.parametrize(("slots", "memories"), [(1, 1), (60, 3), (40, 30)])
def test_tfidf_similarity_is_scikit_learns_for_long_sessions_and_many_memories(slots, memories):
    """Sessions of up to four hours (60 slots) and people with many memories: many more
    terms than the small sessions above, so the compiled function's table of terms grows
    and terms fall on the same place in it."""
    vocabulary = default_vocabulary()
    rng = random.Random(slots * 100 + memories)
    words = ("rain", "goodbye", "mother", "letters", "harbour", "winter", "father", "Ölmez",
             "the", "a", "last", "dance", "kitchen", "l'été", "garden", "train", "sister")
    tag_ids = sorted(vocabulary.tag_ids)
    session = [slot(i, title=" ".join(rng.choices(words, k=rng.randint(1, 6))),
                    kind=rng.choice(KINDS), tags=tuple(rng.sample(tag_ids, rng.randint(0, 4))))
               for i in range(slots)]
    cards = [MemoryCard(f"m{i}", " ".join(rng.choices(words, k=3)),
                        " ".join(rng.choices(words, k=rng.randint(0, 40))),
                        tuple(rng.sample(tag_ids, rng.randint(0, 2))),
                        tuple(rng.sample(("Dad", "Gran", "Sam"), rng.randint(0, 2))),
                        (), None) for i in range(memories)]
    left, right = _session_documents(session, cards, vocabulary)
    ours = prompts._tfidf_similarity(prompts._slots_read(session, vocabulary)[1],
                                     prompts._memories_analysed(cards, vocabulary)[1])
    np.testing.assert_allclose(ours, _fitted_similarity(left, right), rtol=0, atol=1e-12)
    assert ours.shape == (slots, memories) and ours.max() > 0


@pytest.mark.parametrize("texts", [
    list(AWKWARD_TITLES),
    ["", "   ", "x", "ab abc abcd abcde abcdef", "line\u2028separator\u3000and\u00a0more",
     "a lone \ud800 surrogate", GRAN.text, DAD.text],
])
def test_char_ngram_hashes_are_scikit_learns_char_wb_ngrams(texts):
    """Each text's n-grams in scikit-learn's order and number, one hash per distinct
    n-gram and one n-gram per hash."""
    analyzer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).build_analyzer()
    hashes, counts = char_ngram_hashes(texts)
    grams = [analyzer(text) for text in texts]
    assert counts.tolist() == [len(g) for g in grams]
    hash_of: dict[str, int] = {}
    for gram, value in zip([g for text in grams for g in text], hashes.tolist(), strict=True):
        assert hash_of.setdefault(gram, value) == value
    assert len(set(hash_of.values())) == len(hash_of) > 0


def test_a_char_ngram_hash_is_keyed_per_process():
    """As Python's own string hashes are: a kept hash says nothing of its n-gram without
    the process's key."""
    script = ("import json; from recommender.pairing_kernel import char_ngram_hashes; "
              "print(json.dumps(char_ngram_hashes(['Dad', 'dad'])[0].tolist()))")
    seen = [json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True,
                                      text=True, check=True).stdout) for _ in range(2)]
    for hashes in seen:  # " da", "dad", "ad ", " dad", "dad ", " dad ": twice, the same
        assert len(hashes) == 12 and hashes[:6] == hashes[6:] and len(set(hashes)) == 6
    assert not set(seen[0]) & set(seen[1])


@pytest.mark.parametrize(("key", "message", "expected"), [
    # SipHash-2-4's reference vectors (Aumasson and Bernstein's paper and test vectors).
    (bytes(range(16)), b"", 0x726FDB47DD0E0E31),
    (bytes(range(16)), bytes(range(15)), 0xA129CA6149BE45E5),
    (b"0123456789ABCDEF", b"a", 12398370950267227270),
])
def test_the_ngram_hash_is_siphash_2_4(key, message, expected):
    k0, k1 = (int.from_bytes(key[i:i + 8], "little") for i in (0, 8))
    data = np.frombuffer(message + bytes(8), dtype=np.uint8).copy()
    assert int(_siphash24(np.uint64(k0), np.uint64(k1), data, len(message))) == expected


PAIRING_IN_A_PROCESS = """
import json
from recommender.prompts import MemoryCard, PromptSlot, memory_scores
tags = [("grief", "loss_parent", "first_love", "ageing_memory_loss"), ("loss_partner", "grief"),
        ("first_love", "loss_parent"), ("rainy_day", "old_radio", "grief")]
slots = [PromptSlot(i, f"item-{i}", "song", "deepen", f"Song {i}", "Someone", None, tags[i % 4])
         for i in range(12)]
memories = [MemoryCard("m1", "Dad", "Dad teaching me to fish before the dementia", ("dad",),
                       ("Dad",), ("the lake",), None),
            MemoryCard("m2", "First love", "Her letters from the summer we met and lost", (),
                       ("Mia",), (), "2009")]
print(json.dumps(memory_scores(slots, memories, "missing my dad").tolist()))
"""


def test_a_pairing_is_the_same_in_every_process():
    """Tags are described in sorted order, so a set of tags (and what a memory's concepts
    say) reads the same whatever a process's string hashes make of a set's order: two
    workers pair the same session alike."""
    scores = [np.array(json.loads(subprocess.run(
        [sys.executable, "-c", PAIRING_IN_A_PROCESS], capture_output=True, text=True,
        check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout))
        for seed in ("1", "2", "3")]
    # The same to the last bits a sum's order may change (before, up to 0.008 apart).
    for other in scores[1:]:
        np.testing.assert_allclose(other, scores[0], rtol=0, atol=1e-12)
    assert scores[0].max() > 0.3


def test_what_a_worker_keeps_for_matching_cannot_be_edited_by_a_request():
    vocabulary = default_vocabulary()
    song = slot(0, "deepen", title="Dance with My Father", tags=("grief", "loss_parent"))
    memory_scores([song], [DAD, GRAN], vocabulary=vocabulary)
    kept = [*prompts._analysed_cache(vocabulary)._cache.values(),
            *prompts._memories_cache(vocabulary)._cache.values()]
    arrays = [value for entry in kept for value in vars(entry).values()
              if isinstance(value, np.ndarray)]
    arrays += [array for entry in kept if isinstance(entry, prompts._Analysed)
               for pair in entry.terms for array in pair]
    arrays += [array for entry in kept if isinstance(entry, prompts._Side)
               for merged in entry.merged for array in vars(merged).values()]
    arrays += [entry.char_terms for entry in kept if isinstance(entry, prompts._TagsReading)]
    arrays += [array for numbered in prompts._pieces(vocabulary).analyzers
               for array in vars(numbered).values()]
    kinds = {type(entry).__name__ for entry in kept}
    assert {"_Analysed", "_Side", "_TagsReading", "_Piece"} <= kinds
    assert len(arrays) > 10 and not any(array.flags.writeable for array in arrays)


def test_a_changed_memory_is_analysed_again_and_the_kept_analyses_hold_no_text():
    vocabulary = default_vocabulary()
    song = slot(0, "deepen", title="Dance with My Father", tags=("grief", "loss_parent"))
    quiet = MemoryCard("m", "Zanzibarquokka evenings", "nothing much happened", (), (), (), None)
    before = memory_scores([song], [quiet], vocabulary=vocabulary)
    # The same memory, rewritten: its kept analysis must not answer for the new words.
    rewritten = MemoryCard("m", "Dad's fishing trips", DAD.text, (), ("Dad",), (), None)
    after = memory_scores([song], [rewritten], vocabulary=vocabulary)
    prompts._analysed_by_vocabulary.clear()
    prompts._memories_by_vocabulary.clear()
    assert np.array_equal(after, memory_scores([song], [rewritten], vocabulary=vocabulary))
    assert after[0, 0] > before[0, 0] + 0.2
    # Nothing kept spells the memory's words: keys are digests, entries ids and numbers.
    memory_scores([song], [quiet], vocabulary=vocabulary)
    kept = {**prompts._analysed_cache(vocabulary)._cache,
            **prompts._memories_cache(vocabulary)._cache}
    text = repr(list(kept.keys())) + repr(list(kept.values()))
    assert "uokka" not in text.lower() and "nothing much" not in text
    assert any(key[0] == "memory" and isinstance(key[1], bytes) for key in kept)


def test_a_person_with_many_memories_cannot_push_out_the_catalogues_readings(monkeypatch):
    """People's memories and the catalogue's readings are kept apart, each within its own
    budget: however many memories a person has, the readings every session needs stay."""
    vocabulary = default_vocabulary()
    monkeypatch.setattr(prompts, "ANALYSED_CACHE_BYTES", 300_000)
    monkeypatch.setattr(prompts, "MEMORIES_CACHE_BYTES", 300_000)
    prompts._analysed_by_vocabulary.clear()
    prompts._memories_by_vocabulary.clear()
    try:
        song = slot(0, "deepen", title="Dance with My Father", tags=("grief", "loss_parent"))
        memory_scores([song], [DAD], vocabulary=vocabulary)
        readings = prompts._analysed_cache(vocabulary)
        key = ("tags", tuple(sorted(song.tags)))
        assert readings.get(key) is not None
        many = [MemoryCard(f"m{k}", f"Evening {k} at the lake with Dad",
                           f"We rowed out at dawn on day {k} and he told the same story.",
                           (), ("Dad",), ("the lake",), None) for k in range(120)]
        scores = memory_scores([song], many, vocabulary=vocabulary)
        assert scores.shape == (1, 120)
        memories = prompts._memories_cache(vocabulary)
        assert readings.get(key) is not None, "the catalogue's reading was pushed out"
        assert all(k[0] in ("tags", "tag words") for k in readings._cache)
        assert any(k[0] == "memory" for k in memories._cache)
        assert memories._cache.currsize <= 300_000 and readings._cache.currsize <= 300_000
    finally:
        prompts._analysed_by_vocabulary.clear()
        prompts._memories_by_vocabulary.clear()


def test_a_memorys_digest_tells_every_change_apart_and_takes_any_text():
    base = MemoryCard("m", "Nan's kitchen", "the radio on", ("grief",), ("Nan",), (), None)
    variants = [
        MemoryCard("m", "Nan's kitchen", "the radio on", ("grief",), ("Nan",), (), "1998"),
        MemoryCard("m", "Nan's kitchen", "the radio on", (), ("Nan",), ("grief",), None),
        MemoryCard("m", "Nan's kitchen ", "the radio on", ("grief",), ("Nan",), (), None),
        MemoryCard("m", "Nan's kitchen", "the radio on \ud83d", ("grief",), ("Nan",), (), None),
        MemoryCard("m", "Nan's kitchen", "the radio on \\ud83d", ("grief",), ("Nan",), (), None),
    ]
    digests = [card.digest for card in (base, *variants)]
    assert len(set(digests)) == len(digests)
    # The id is not what the memory says: the same words, the same digest.
    same = MemoryCard("other", "Nan's kitchen", "the radio on", ("grief",), ("Nan",), (), None)
    assert same.digest == base.digest


def _catalogue_tag_lists(db) -> list[str]:
    from recommender.features import build_item_matrix_from_frames
    from recommender.store.catalog import item_frames

    matrix = build_item_matrix_from_frames(*item_frames(db), default_vocabulary())
    return [";".join(record.tags) for record in matrix.records]


def test_prefilled_tag_readings_are_the_ones_sessions_would_read(db):
    tag_lists = _catalogue_tag_lists(db)
    vocabulary = default_vocabulary()
    prompts._analysed_by_vocabulary.clear()
    read = prompts.prefill_tag_readings(tag_lists, vocabulary)
    distinct = {tuple(sorted(t.split(";") if t else ())) for t in tag_lists}
    assert read == len(distinct) > 50
    cache = prompts._analysed_cache(vocabulary)
    kept = cache.get_many([("tags", tags) for tags in sorted(distinct)])
    assert all(reading is not None for reading in kept)
    prompts._analysed_by_vocabulary.clear()  # the same sets, read by sessions' own path
    for tags, reading in zip(sorted(distinct), kept, strict=True):
        fresh = prompts._tags_readings([slot(0, tags=tags)], vocabulary)[0]
        assert fresh.vector == reading.vector and fresh.first_token == reading.first_token
        assert fresh.pieces == reading.pieces and fresh.word_terms == reading.word_terms
        assert np.array_equal(fresh.char_terms, reading.char_terms)
    # Read again, nothing is new.
    assert prompts.prefill_tag_readings(tag_lists, vocabulary) == 0


def test_prefill_reads_the_most_common_sets_first_within_its_share(db, monkeypatch):
    tag_lists = _catalogue_tag_lists(db)
    vocabulary = default_vocabulary()
    prompts._analysed_by_vocabulary.clear()
    monkeypatch.setattr(prompts, "PREFILL_SHARE", 20_000 / prompts.ANALYSED_CACHE_BYTES)
    read = prompts.prefill_tag_readings(tag_lists, vocabulary)
    counts = Counter(tuple(sorted(t.split(";") if t else ())) for t in tag_lists).most_common()
    assert 0 < read < len(counts)
    cache = prompts._analysed_cache(vocabulary)
    kept = [cache.get(("tags", tags)) is not None for tags, _ in counts]
    assert kept == [True] * read + [False] * (len(counts) - read)
    assert counts[read - 1][1] >= counts[read][1]
    prompts._analysed_by_vocabulary.clear()


def _concept_cosine(a: dict[str, float], b: dict[str, float]) -> float:
    dot = sum(weight * b.get(concept, 0.0) for concept, weight in a.items())
    norms = math.sqrt(sum(w * w for w in a.values())) * math.sqrt(sum(w * w for w in b.values()))
    return dot / norms if norms else 0.0


@pytest.mark.parametrize(("request_text", "lifts"), [
    ("missing my dad, grief and the lake", True), ("Grandma and her dementia", True),
    ("my first love and the breakup", False),  # no memory here speaks of it
    ("qwzx", False)])
def test_the_request_nudges_the_memories_it_speaks_of(request_text, lifts):
    """With words of the request, each memory a slot already fits gains a tenth of how close
    the request's concepts are to the memory's (capped at 1); a slot it does not fit gains
    nothing."""
    vocabulary = default_vocabulary()
    slots = [slot(0, tags=("grief", "loss_parent")), slot(1, tags=("first_love",)),
             slot(2, title="the", tags=("rainy_day",)), slot(3, tags=("heartbreak", "war"))]
    memories = [DAD, CONCERT, GRAN, STOP_WORDS_ONLY]
    plain = memory_scores(slots, memories, vocabulary=vocabulary)
    nudged = memory_scores(slots, memories, request_text, vocabulary=vocabulary)
    moods, themes = vocabulary.infer_tags(request_text)
    asked = prompts._weighted(set(moods) | set(themes), vocabulary)
    closeness = np.array([
        _concept_cosine(asked, prompts._weighted(prompts._memory_concepts(m, vocabulary),
                                                 vocabulary)) for m in memories])
    # Recomputed from the unclipped sums: plain scores here stay under 1.
    assert plain.max() < 1.0
    expected = np.clip(plain + 0.1 * closeness[np.newaxis, :] * (plain > 0), 0.0, 1.0)
    np.testing.assert_allclose(nudged, expected, rtol=0, atol=1e-12)
    assert (nudged > plain).any() == lifts
    if not lifts:
        assert np.array_equal(nudged, plain)


def test_slots_and_memories_read_with_different_pieces_are_not_weighed_together():
    """The weighing reads a piece's terms by their numbers, which only mean something
    against the pieces the memories' side was merged with."""
    vocabulary = default_vocabulary()
    slots = [slot(0, tags=("grief", "loss_parent"))]
    side = prompts._memories_analysed([DAD, GRAN], vocabulary)[1]
    _, ours = prompts._slots_read(slots, vocabulary)
    assert prompts._tfidf_similarity(ours, side).shape == (1, 2)
    other = prompts._Slots(ours.documents, ours.hashes, ours.lengths, ours.pieces,
                           ours.piece_lengths, prompts._number_pieces(vocabulary))
    with pytest.raises(ValueError, match="different pieces"):
        prompts._tfidf_similarity(other, side)
