"""Pairing prompts: a technique for every song or film, tied to the person's memories by meaning.

Each slot of a session gets one :class:`PairingPrompt`. Memories are matched to slots with a
TF-IDF cosine (words and character n-grams) plus a bridge through the shared vocabulary, so
"Grandma" and "dementia" find a song tagged ``ageing_memory_loss`` without sharing a word.

Memory text is private: nothing here logs it.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import random
import re
import string
import sys
import threading
import weakref
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import pairwise
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from recommender.care import AFTERCARE_STEPS
from recommender.kept import KeptByBytes
from recommender.pairing_kernel import char_ngram_hashes, slot_memory_cosines, term_table
from recommender.paths import DATA_DIR
from recommender.vocabulary import THEME_MOODS, Vocabulary, default_vocabulary

__all__ = [
    "MEMORY_THRESHOLD",
    "MemoryCard",
    "PairingPrompt",
    "PromptLibrary",
    "PromptSlot",
    "PromptTemplate",
    "load_prompt_library",
    "match_memories",
    "memory_scores",
    "pair_prompts",
    "prefill_tag_readings",
]

log = logging.getLogger(__name__)

PROMPTS_JSON = DATA_DIR / "prompts.json"
PHASES = ("settle", "deepen", "release", "aftercare")
KINDS = ("song", "film")
MEMORY_PHASES = frozenset({"settle", "deepen", "release"})
MAX_USES_PER_MEMORY = 2

# Weights of the two similarity signals and the bar a memory must clear to be named.
BRIDGE_WEIGHT = 0.65
TFIDF_WEIGHT = 0.35
MEMORY_THRESHOLD = 0.30
# Moods are broad ("grief" fits many memories); themes are specific, so they count more.
MOOD_WEIGHT = 0.5
THEME_WEIGHT = 1.0


@dataclass(frozen=True)
class MemoryCard:
    """A memory the person wrote down, as the pairing sees it."""

    id: str
    title: str
    text: str
    tags: tuple[str, ...]
    people: tuple[str, ...]
    places: tuple[str, ...]
    when: str | None

    @cached_property
    def digest(self) -> bytes:
        """A digest of everything the memory says: what is kept of it per worker (its
        analysis, its risk screen) is kept by this, so nothing kept spells its words."""
        fields = [self.title, self.text, self.tags, self.people, self.places, self.when]
        try:  # orjson: a fifth of the standard library's time
            words = orjson.dumps(fields)
        except orjson.JSONEncodeError:  # a lone surrogate, which the standard library escapes
            words = b"\0" + json.dumps(fields).encode()
        return hashlib.sha256(words).digest()


@dataclass(frozen=True)
class PromptSlot:
    """One song or film in a session, with what the pairing needs to know about it."""

    position: int
    item_id: str
    kind: str  # "song" | "film"
    phase: str  # settle | deepen | release | aftercare
    title: str
    artist: str | None
    director: str | None
    tags: tuple[str, ...]  # mood and theme ids


@dataclass(frozen=True)
class PairingPrompt:
    """What to do while a song plays or a film runs, perhaps naming one of the person's memories."""

    technique: str
    text: str
    memory_id: str | None


@dataclass(frozen=True)
class PromptTemplate:
    id: str
    technique: str
    kinds: tuple[str, ...]
    phases: tuple[str, ...]
    memory: bool
    only_in_crisis: bool
    text: str

    @cached_property
    def fields(self) -> frozenset[str]:
        """The template's placeholders (parsed once: templates are read on every request)."""
        return frozenset(
            name for _, name, _, _ in string.Formatter().parse(self.text) if name is not None
        )

    @cached_property
    def takes_step(self) -> bool:
        """Whether the template names an aftercare step."""
        return "step" in self.fields or "step_lower" in self.fields


@dataclass(frozen=True)
class Technique:
    id: str
    label: str
    care: str  # deepening | comfort | grounding | release | confide | aftercare
    crisis_safe: bool


class PromptLibrary:
    """The prompt templates of ``data/prompts.json``."""

    ALLOWED_FIELDS = frozenset({"title", "memory_title", "person", "place", "step", "step_lower"})

    def __init__(self, techniques: dict[str, Technique], templates: list[PromptTemplate]):
        self.techniques = techniques
        self.templates = templates
        # Per kind of slot: its templates, and whether any of them names an aftercare step.
        self._candidates: dict[tuple[str, str, bool, bool],
                               tuple[tuple[PromptTemplate, ...], bool]] = {}
        for template in templates:
            if template.technique not in techniques:
                raise ValueError(f"template {template.id}: unknown technique {template.technique}")
            unknown = template.fields - self.ALLOWED_FIELDS
            if unknown:
                raise ValueError(f"template {template.id}: unknown placeholders {sorted(unknown)}")
            if template.memory != bool(template.fields & {"memory_title", "person", "place"}):
                raise ValueError(f"template {template.id}: memory flag disagrees with its text")

    @classmethod
    def load(cls, path: Path = PROMPTS_JSON) -> PromptLibrary:
        raw = json.loads(path.read_text(encoding="utf-8"))
        techniques = {
            tid: Technique(tid, t["label"], t["care"], bool(t["crisis_safe"]))
            for tid, t in raw["techniques"].items()
        }
        counters: Counter[str] = Counter()
        templates = []
        for t in raw["templates"]:
            counters[t["technique"]] += 1
            templates.append(
                PromptTemplate(
                    id=f"{t['technique']}-{counters[t['technique']]}",
                    technique=t["technique"],
                    kinds=tuple(t["kinds"]),
                    phases=tuple(t["phases"]),
                    memory=bool(t["memory"]),
                    only_in_crisis=bool(t.get("only_in_crisis", False)),
                    text=t["text"],
                )
            )
        return cls(techniques, templates)

    def crisis_safe(self, technique: str) -> bool:
        return self.techniques[technique].crisis_safe

    def candidates(
        self, kind: str, phase: str, *, crisis: bool, memory: bool
    ) -> list[PromptTemplate]:
        """Templates suiting a slot; in crisis only comfort, grounding, confide, aftercare.

        Worked out once per kind of slot (the library does not change once loaded)."""
        return list(self._candidates_of(kind, phase, crisis, memory)[0])

    def offers_step(self, kind: str, phase: str, *, crisis: bool, memory: bool) -> bool:
        """Whether any of :meth:`candidates` names an aftercare step (kept with them)."""
        return self._candidates_of(kind, phase, crisis, memory)[1]

    def _candidates_of(self, kind: str, phase: str, crisis: bool, memory: bool
                       ) -> tuple[tuple[PromptTemplate, ...], bool]:
        key = (kind, phase, crisis, memory)
        cached = self._candidates.get(key)
        if cached is None:
            found = self._find_candidates(kind, phase, crisis=crisis, memory=memory)
            cached = self._candidates[key] = (found, any(t.takes_step for t in found))
        return cached

    def _find_candidates(
        self, kind: str, phase: str, *, crisis: bool, memory: bool
    ) -> tuple[PromptTemplate, ...]:
        out = []
        for template in self.templates:
            if kind not in template.kinds or phase not in template.phases:
                continue
            if template.memory != memory:
                continue
            if crisis and not self.crisis_safe(template.technique):
                continue
            if template.only_in_crisis and not crisis:
                continue
            out.append(template)
        if crisis:
            # Where a technique has words written for a crisis, use only those.
            crisis_written = {t.technique for t in out if t.only_in_crisis}
            out = [t for t in out if t.only_in_crisis or t.technique not in crisis_written]
        return tuple(out)


@lru_cache(maxsize=4)
def load_prompt_library(path: Path = PROMPTS_JSON) -> PromptLibrary:
    return PromptLibrary.load(path)


# --------------------------------------------------------------------------------------------
# Matching memories to slots by meaning.
# --------------------------------------------------------------------------------------------


def _concepts_of_tags(tags: tuple[str, ...] | list[str], vocabulary: Vocabulary) -> set[str]:
    return {t for t in vocabulary.map_tags(list(tags)).tags if t in vocabulary.tag_ids}


def _weighted(concepts: set[str], vocabulary: Vocabulary) -> dict[str, float]:
    """Concepts as a weighted vector; themes also lend a little to the mood they imply."""
    vector: dict[str, float] = {}
    for concept in concepts:
        weight = THEME_WEIGHT if vocabulary.is_theme(concept) else MOOD_WEIGHT
        vector[concept] = max(vector.get(concept, 0.0), weight)
        implied = THEME_MOODS.get(concept)
        if implied:
            vector[implied] = max(vector.get(implied, 0.0), MOOD_WEIGHT)
    return vector


def _memory_words(memory: MemoryCard) -> str:
    parts = [memory.title, memory.text, *memory.tags, *memory.people, *memory.places]
    if memory.when:
        parts.append(memory.when)
    return " . ".join(p for p in parts if p)


def _memory_concepts(memory: MemoryCard, vocabulary: Vocabulary) -> set[str]:
    moods, themes = vocabulary.infer_tags(_memory_words(memory))
    return set(moods) | set(themes) | _concepts_of_tags(memory.tags, vocabulary)


def _describe_tags(tags: set[str] | tuple[str, ...], vocabulary: Vocabulary) -> list[str]:
    """The words of tags' labels (and a theme's keywords), the tags taken in sorted order: a
    set of tags reads the same in every process, whatever order it was made in."""
    words = []
    themes = {t.id: t for t in vocabulary.themes}
    moods = {m.id: m for m in vocabulary.moods}
    for tag in sorted(tags):
        if tag in moods:
            words.append(moods[tag].label)
        elif tag in themes:
            words.append(themes[tag].label)
            words.extend(themes[tag].keywords)
        else:
            words.append(tag.replace("_", " "))
    return words


# --------------------------------------------------------------------------------------------
# What the matching needs of memories and slots.
# --------------------------------------------------------------------------------------------
#
# The matching weighs terms as a TfidfVectorizer fitted on a session's documents alone (its
# slots' and the person's memories') weighs them, with two analyzers: words and word pairs
# without English stop words, and character 3-5-grams within words. A term is kept as its
# hash: a word term by Python's string hash (the same for the whole life of a worker, where
# everything kept here lives), a character n-gram by recommender/pairing_kernel.py's hash of
# its characters; two of a session's few thousand terms share a 64-bit hash about once in a
# trillion sessions.
#
# Memories change seldom and come back every session: each memory's analysis (its weighted
# concepts and term counts) is kept per worker, keyed by a digest of its words so nothing
# kept spells them, and so are each person's memories' terms merged (a _Side). Analysed for
# every session, 25 memories took 27 ms of a session's CPU instead of 4 (BENCHMARKS.md,
# fifteenth round).
#
# Items mostly come once: three in four of a session's items were new to the worker at 100k
# items, so an item's analysis is not kept. What repeats is kept instead: what each tag and
# each set of tags means (concepts, the words describing them and their terms). A session's
# slots' terms are put together from those and their heads' (title, artist, director) in
# one go, and compiled functions (recommender/pairing_kernel.py) hash the heads' character
# n-grams and weigh the slots against the memories. tests/test_prompts.py holds the result
# to scikit-learn's own vectorizers.
_WORDS = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), stop_words="english",
                         token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z']+\b")
_WORD_ANALYZER = _WORDS.build_analyzer()
# The character analyzer (char_wb, 3 to 5) is recommender/pairing_kernel.py's
# char_ngram_hashes: the same n-grams as scikit-learn's, hashed by a compiled function.
ANALYZERS = 2
# The word analyzer's steps, for a slot's words taken in two parts (see _slots_read).
_PREPROCESS, _TOKENIZE, _STOP_WORDS = (_WORDS.build_preprocessor(), _WORDS.build_tokenizer(),
                                       _WORDS.get_stop_words())
# Kept per vocabulary, least recently used first out, in two caches: what sessions read of
# the catalogue (a set of tags' reading, a few hundred bytes of its own since its tags'
# pieces are shared; a tag's words, about 1 KB) and what they read of people's memories (a
# memory's analysis, about 4.5 KB, and a person's memories merged with their terms' tables,
# 13 KB a memory for ten of them, 5.6 KB for 200).
# Apart, so that a person with many memories cannot push out the catalogue's readings every
# session needs (nor the catalogue a person's memories): in one cache of 16 MB, eight
# people with 200 memories each (2.1 MB a person) pushed out each other and the readings,
# and a session at 100k items took 25.6 ms of CPU in-process instead of 8.2.
ANALYSED_CACHE_BYTES = 16 * 1024 * 1024
MEMORIES_CACHE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class _Analysed:
    """What the matching needs of one memory."""

    vector: dict[str, float]  # its concepts, weighted (see _weighted)
    # Per analyzer: the document's term hashes (sorted, int64) and their counts (uint32).
    terms: tuple[tuple[np.ndarray, np.ndarray], ...]

    @property
    def nbytes(self) -> int:
        """Roughly what the entry holds: its arrays, and a little for the rest."""
        return 512 + sum(columns.nbytes + counts.nbytes for columns, counts in self.terms)


@dataclass(frozen=True)
class _TagsReading:
    """What a set of item tags means to the matching: weighted concepts, and the terms of
    the words that describe them (``_describe_tags`` of their concepts, or of the tags
    themselves when none is known; see _slots_read)."""

    vector: dict[str, float]
    first_token: str  # the description's first word as the word analyzer keeps it, or ""
    # The description's terms are its tags' pieces' (numbered once per worker: _Pieces),
    # here by their numbers, and the set's own: the word pairs across pieces, and the terms
    # of tags the vocabulary does not know (their pieces are not numbered).
    pieces: tuple[int, ...]
    word_terms: tuple[str, ...]  # the pairs across pieces interned: every set shares them
    char_terms: np.ndarray  # hashes
    nbytes: int  # what the reading holds of its own (the pieces are kept, and counted, apart)


@dataclass(frozen=True)
class _PieceTerms:
    """One analyzer's terms of the pieces of every tag the vocabulary knows, numbered: their
    hashes' table (term_table) and each number's hash; piece ``p``'s terms at
    ``starts[p]:starts[p + 1]``, each once with its count."""

    table_keys: np.ndarray  # term_table's keys (int64)
    table_codes: np.ndarray  # term_table's codes (int32; -1 where empty)
    hashes: np.ndarray  # per term number, its hash (int64)
    starts: np.ndarray  # int64
    terms: np.ndarray  # per entry, its term's number (int32)
    counts: np.ndarray  # per entry, how often the piece has it (int64)
    sizes: np.ndarray  # per piece, how many terms it has (int64)


@dataclass(frozen=True)
class _Pieces:
    """What every known tag says in words, numbered once per worker and vocabulary: a
    session's slots carry their tags' pieces as numbers, and the compiled weighing reads a
    piece's terms by number. What this saves is in putting the slots' terms together (no
    piece's arrays copied into each slot's); the weighing takes as long as before, its time
    being in the number of entries (BENCHMARKS.md, twenty-first round)."""

    number: dict[str, int]  # a known tag's piece's number
    analyzers: tuple[_PieceTerms, ...]  # words, character n-grams


@dataclass(frozen=True)
class _Merged:
    """The terms of one analyzer in a person's memories, as the compiled weighing reads them
    (recommender/pairing_kernel.py): the terms numbered by a table, in how many memories
    each appears; the entries (a term of a memory) grouped by term, each with its memory
    and sublinear term frequency; and per memory three sums over its entries, from which
    its length follows for any number of documents (see ``slot_memory_cosines``)."""

    table_keys: np.ndarray  # term_table's keys (int64)
    table_codes: np.ndarray  # term_table's codes (int32; -1 where empty)
    frequency: np.ndarray  # memories listing each term (int64)
    starts: np.ndarray  # term t's entries at starts[t]:starts[t + 1] (int64)
    row: np.ndarray  # per entry, its memory (int32)
    tf: np.ndarray  # per entry, 1 + log(count)
    sum0: np.ndarray  # per memory, the sum of tf^2
    sum1: np.ndarray  # ... of tf^2 log(1 + frequency)
    sum2: np.ndarray  # ... of tf^2 log(1 + frequency)^2
    piece_memory: np.ndarray  # per piece term (_PieceTerms), its number here or -1 (int32)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in vars(self).values())


@dataclass(frozen=True)
class _Side:
    """A person's memories with their terms merged, per analyzer."""

    documents: int
    merged: tuple[_Merged, ...]  # per analyzer
    pieces: _Pieces  # the pieces its merged terms know by number

    @property
    def nbytes(self) -> int:
        return 256 + sum(m.nbytes for m in self.merged)


@dataclass(frozen=True)
class _Slots:
    """A session's slots' terms: per analyzer, the slots' own terms' hashes, each as often
    as a slot has it, slot after slot (int64), and how many each slot has (int64); and the
    numbers of their tags' pieces, slot after slot, and how many each slot has."""

    documents: int
    hashes: tuple[np.ndarray, ...]  # per analyzer
    lengths: tuple[np.ndarray, ...]  # per analyzer
    pieces: np.ndarray  # int32
    piece_lengths: np.ndarray  # int64
    numbered: _Pieces


_analysed_by_vocabulary: weakref.WeakKeyDictionary[Vocabulary, KeptByBytes] = (
    weakref.WeakKeyDictionary())
_memories_by_vocabulary: weakref.WeakKeyDictionary[Vocabulary, KeptByBytes] = (
    weakref.WeakKeyDictionary())
_pieces_by_vocabulary: weakref.WeakKeyDictionary[Vocabulary, _Pieces] = (
    weakref.WeakKeyDictionary())
_analysed_guard = threading.Lock()


def _kept_for(table: weakref.WeakKeyDictionary[Vocabulary, KeptByBytes],
              vocabulary: Vocabulary, budget: int) -> KeptByBytes:
    cache = table.get(vocabulary)
    if cache is None:
        with _analysed_guard:
            cache = table.setdefault(vocabulary, KeptByBytes(budget))
    return cache


def _analysed_cache(vocabulary: Vocabulary) -> KeptByBytes:
    """The catalogue's side: tags' pieces and sets of tags' readings."""
    return _kept_for(_analysed_by_vocabulary, vocabulary, ANALYSED_CACHE_BYTES)


def _memories_cache(vocabulary: Vocabulary) -> KeptByBytes:
    """People's side: memories' analyses and each person's memories merged."""
    return _kept_for(_memories_by_vocabulary, vocabulary, MEMORIES_CACHE_BYTES)


def _memory_key(memory: MemoryCard) -> tuple:
    return ("memory", memory.digest)


def _read_only(*arrays: np.ndarray) -> None:
    """Arrays kept per worker are read by every request after: none may edit them."""
    for array in arrays:
        array.setflags(write=False)


def _hashes(terms: list[str]) -> np.ndarray:
    return np.fromiter(map(hash, terms), dtype=np.int64, count=len(terms))


def _terms(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Term hashes, sorted and each once, and their counts."""
    columns, counts = np.unique(hashes, return_counts=True)
    return columns, counts.astype(np.uint32)


def _merge(hashes: np.ndarray, counts: np.ndarray, rows: np.ndarray, documents: int,
           pieces: _PieceTerms) -> _Merged:
    """Entries (a term's hash, its count, its document; no term twice in a document) merged,
    the terms numbered by a hash table (pandas' factorize), the entries grouped by term in
    their order; and the number here of each of the pieces' terms."""
    codes, used = pd.factorize(hashes) if len(hashes) else (_NO_ROWS, _NO_TERMS)
    frequency = np.bincount(codes, minlength=len(used))
    order = np.argsort(codes, kind="stable")
    starts = np.zeros(len(used) + 1, dtype=np.int64)
    np.cumsum(frequency, out=starts[1:])
    tf = 1.0 + np.log(counts.astype(np.float64))
    squared = tf * tf
    spread = np.log1p(frequency.astype(np.float64))[codes]
    table_keys, table_codes = term_table(np.ascontiguousarray(used, dtype=np.int64))
    return _Merged(
        table_keys, table_codes, frequency.astype(np.int64), starts,
        rows[order].astype(np.int32), tf[order],
        *(np.bincount(rows, weights=squared * spread ** power, minlength=documents)
          .astype(np.float64) for power in range(3)),  # (no entries: bincount gives ints)
        pd.Index(used).get_indexer(pieces.hashes).astype(np.int32))


_NO_TERMS = np.zeros(0, dtype=np.int64)
_NO_ROWS = np.zeros(0, dtype=np.int32)
_NO_TERMS.setflags(write=False)
_NO_ROWS.setflags(write=False)


def _side(documents: list[_Analysed], pieces: _Pieces) -> _Side:
    """Analysed documents' terms merged, per analyzer."""
    merged = []
    for k in range(ANALYZERS):
        lengths = [len(doc.terms[k][0]) for doc in documents]
        merged.append(_merge(np.concatenate([doc.terms[k][0] for doc in documents]),
                             np.concatenate([doc.terms[k][1] for doc in documents]),
                             np.repeat(np.arange(len(documents)), lengths), len(documents),
                             pieces.analyzers[k]))
    return _Side(len(documents), tuple(merged), pieces)


def _word_tokens(text: str) -> list[str]:
    """The words the word analyzer keeps of a text, in order (stop words left out)."""
    return [token for token in _TOKENIZE(_PREPROCESS(text)) if token not in _STOP_WORDS]


def _word_terms(tokens: list[str]) -> list[str]:
    """The word analyzer's terms of kept words: each word, and each pair of neighbours."""
    return [*tokens, *(f"{a} {b}" for a, b in pairwise(tokens))]


@dataclass(frozen=True)
class _Piece:
    """What one tag says in words (``_describe_tags`` of it alone), read as the matching
    reads words: the words the word analyzer keeps, the hashes of its word terms and
    character n-grams."""

    tokens: list[str]
    word_terms: np.ndarray
    char_terms: np.ndarray

    @property
    def nbytes(self) -> int:
        return 256 + self.word_terms.nbytes + self.char_terms.nbytes


def _piece(tag: str, vocabulary: Vocabulary) -> _Piece:
    cache = _analysed_cache(vocabulary)
    key = ("tag words", tag)
    piece = cache.get(key)
    if piece is None:
        text = " ".join(word for word in _describe_tags((tag,), vocabulary) if word)
        tokens = _word_tokens(text)
        piece = _Piece(tokens, _hashes(_word_terms(tokens)), char_ngram_hashes([text])[0])
        _read_only(piece.word_terms, piece.char_terms)
        cache.put(key, piece)
    return piece


def _tags_reading(tags: tuple[str, ...], vocabulary: Vocabulary) -> _TagsReading:
    """A set of tags' reading, put together from each tag's piece: the description is the
    pieces' texts in turn, so its terms are the pieces' and the word pairs across them."""
    concepts = _concepts_of_tags(tags, vocabulary)
    described = sorted(concepts or tags)
    pieces = [_piece(tag, vocabulary) for tag in described]
    tokens = [piece.tokens for piece in pieces if piece.tokens]
    # A pair across two tags' words is one of a few hundred, the same in every set holding
    # both tags: kept once (interned), each set holds a reference.
    across = [sys.intern(f"{before[-1]} {after[0]}") for before, after in pairwise(tokens)]
    vector = _weighted(concepts, vocabulary)
    size = 256 + 64 * len(vector) + 8 * (len(described) + len(across))
    if concepts:  # known tags, whose pieces are numbered
        number = _pieces(vocabulary).number
        numbers, words, chars = tuple(number[tag] for tag in described), across, _NO_TERMS
    else:  # tags the vocabulary does not know: their pieces' terms are the set's own
        numbers = ()
        own = [term for piece in pieces for term in _word_terms(piece.tokens)]
        words = [*own, *across]
        chars = (np.concatenate([piece.char_terms for piece in pieces]) if pieces
                 else _NO_TERMS)
        _read_only(chars)
        size += sum(64 + len(term) for term in own) + chars.nbytes
    return _TagsReading(vector, tokens[0][0] if tokens else "", numbers, tuple(words), chars,
                        size)


def _pieces(vocabulary: Vocabulary) -> _Pieces:
    """The vocabulary's known tags' pieces, numbered (once per worker)."""
    found = _pieces_by_vocabulary.get(vocabulary)
    if found is None:
        made = _number_pieces(vocabulary)  # (reads pieces through the cache, which locks)
        with _analysed_guard:
            found = _pieces_by_vocabulary.setdefault(vocabulary, made)
    return found


def _number_pieces(vocabulary: Vocabulary) -> _Pieces:
    tags = sorted(vocabulary.tag_ids)
    read = [_piece(tag, vocabulary) for tag in tags]
    analyzers = []
    for terms_of in (lambda piece: piece.word_terms, lambda piece: piece.char_terms):
        own = [_terms(terms_of(piece)) for piece in read]  # each term once, with its count
        hashes = np.concatenate([columns for columns, _ in own])
        numbers, used = pd.factorize(hashes) if len(hashes) else (_NO_ROWS, _NO_TERMS)
        used = np.ascontiguousarray(used, dtype=np.int64)
        sizes = np.array([len(columns) for columns, _ in own], dtype=np.int64)
        starts = np.zeros(len(read) + 1, dtype=np.int64)
        np.cumsum(sizes, out=starts[1:])
        table_keys, table_codes = term_table(used)
        piece_terms = _PieceTerms(
            table_keys, table_codes, used, starts, numbers.astype(np.int32),
            np.concatenate([counts for _, counts in own]).astype(np.int64), sizes)
        _read_only(*vars(piece_terms).values())
        analyzers.append(piece_terms)
    return _Pieces({tag: k for k, tag in enumerate(tags)}, tuple(analyzers))


def _tags_readings(slots: list[PromptSlot], vocabulary: Vocabulary) -> list[_TagsReading]:
    """Each slot's tags' reading, kept by the tags in sorted order (an item's tags come in
    its own order; the reading does not depend on it)."""
    cache = _analysed_cache(vocabulary)
    keys = [("tags", tuple(sorted(slot.tags))) for slot in slots]
    found = cache.get_many(keys)
    for i, reading in enumerate(found):
        if reading is None:
            found[i] = reading = _tags_reading(keys[i][1], vocabulary)
            cache.put(keys[i], reading)
    return found


# Of the catalogue's cache (_analysed_cache), the share prefill_tag_readings may fill (the
# rest is for the sets and tags sessions meet later; memories have a cache of their own).
PREFILL_SHARE = 0.5


def prefill_tag_readings(tag_lists: Iterable[str], vocabulary: Vocabulary) -> int:
    """Read a catalogue's sets of tags into the catalogue's cache ahead of sessions, the most
    common first, while they fill at most ``PREFILL_SHARE`` of it; returns how many were read.

    ``tag_lists`` holds each item's tags as the catalogue's table keeps them (joined by
    ``;``). A set of tags is read the first time a session's item carries it, about 20 us
    warm; a fresh worker at 100,000 items (15,818 sets) met about four new ones a session
    after a thousand sessions. ``goodcry serve`` calls this before its workers fork, so each
    starts with them."""
    counts: Counter[tuple[str, ...]] = Counter()
    for joined, count in Counter(tag_lists).items():  # tags in any order are one set
        counts[tuple(sorted(joined.split(";") if joined else ()))] += count
    cache = _analysed_cache(vocabulary)
    budget = int(ANALYSED_CACHE_BYTES * PREFILL_SHARE)
    spent = read = 0
    for tags, _ in counts.most_common():
        key = ("tags", tags)
        if cache.get(key) is not None:
            continue
        reading = _tags_reading(tags, vocabulary)
        spent += reading.nbytes
        if spent > budget:
            break
        cache.put(key, reading)
        read += 1
    return read


def _slots_read(slots: list[PromptSlot], vocabulary: Vocabulary
                ) -> tuple[list[dict[str, float]], _Slots]:
    """The slots' weighted concepts, and their terms.

    A slot's document is its head (title, artist, director) and its tags' description (the
    words of ``_describe_tags``), and only the head is new to the worker. So its terms are
    put together from the head's and the description's: the description's are its tags'
    pieces' (numbered once per worker, _Pieces) and the few a set of tags has of its own
    (kept with its reading). The char_wb analyzer takes n-grams within each word, and the
    word analyzer's terms are the parts' own and the pairs across them (the head's last kept
    word and the description's first; a piece's last and the next one's first).
    tests/test_prompts.py holds the sum to scikit-learn's analyzers on the whole document."""
    readings = _tags_readings(slots, vocabulary)
    numbered = _pieces(vocabulary)
    heads = [" ".join(p for p in (slot.title, slot.artist or "", slot.director or "") if p)
             for slot in slots]
    head_grams, head_gram_counts = char_ngram_hashes(heads)
    words: list[str] = []
    word_lengths = []
    for head, reading in zip(heads, readings, strict=True):
        tokens = _word_tokens(head)
        before = len(words)
        words += _word_terms(tokens)
        if tokens and reading.first_token:
            words.append(f"{tokens[-1]} {reading.first_token}")
        words += reading.word_terms
        word_lengths.append(len(words) - before)
    if any(len(reading.char_terms) for reading in readings):
        counts = head_gram_counts.tolist()
        parts, start = [], 0
        for reading, grams in zip(readings, counts, strict=True):
            parts += (head_grams[start:start + grams], reading.char_terms)
            start += grams
        chars = np.concatenate(parts)
        char_lengths = head_gram_counts + np.array([len(r.char_terms) for r in readings],
                                                   dtype=np.int64)
    else:
        chars, char_lengths = head_grams, head_gram_counts
    return [reading.vector for reading in readings], _Slots(
        len(slots), (_hashes(words), chars),
        (np.array(word_lengths, dtype=np.int64), char_lengths),
        np.array([k for reading in readings for k in reading.pieces], dtype=np.int32),
        np.array([len(reading.pieces) for reading in readings], dtype=np.int64), numbered)


def _memories_analysed(memories: list[MemoryCard], vocabulary: Vocabulary
                       ) -> tuple[list[_Analysed], _Side]:
    """Each memory's analysis, and the memories' terms merged (both kept: a person's
    memories are the same from one session to the next)."""
    cache = _memories_cache(vocabulary)
    keys = [_memory_key(m) for m in memories]
    found = cache.get_many(keys)
    for i, analysed in enumerate(found):
        if analysed is None:
            memory = memories[i]
            concepts = _memory_concepts(memory, vocabulary)
            document = " ".join([_memory_words(memory), *_describe_tags(concepts, vocabulary)])
            analysed = _Analysed(_weighted(concepts, vocabulary),
                                 (_terms(_hashes(_WORD_ANALYZER(document))),
                                  _terms(char_ngram_hashes([document])[0])))
            _read_only(*(array for pair in analysed.terms for array in pair))
            cache.put(keys[i], analysed)
            found[i] = analysed
    key = ("memories", *(digest for _, digest in keys))
    side = cache.get(key)
    if side is None:
        side = _side(found, _pieces(vocabulary))
        for merged in side.merged:
            _read_only(*vars(merged).values())
        cache.put(key, side)
    return found, side


def _tfidf_similarity(left: _Slots, right: _Side) -> np.ndarray:
    """Cosine similarity of every slot to every memory, words and char n-grams: per
    analyzer, the documents' counts weighed as a TfidfVectorizer fitted on the documents of
    both sides alone weighs them (``sublinear_tf``, smoothed IDF, rows scaled to length 1),
    then the two similarities averaged. Worked out from the terms by a compiled function
    (recommender/pairing_kernel.py); tests/test_prompts.py holds it to scikit-learn's
    TfidfTransformer and normalize, which took 0.6 ms a call on a session's 40 documents."""
    if left.numbered is not right.pieces:
        raise ValueError("the slots and the memories were read with different pieces")
    total = np.zeros((left.documents, right.documents))
    blocks = 0
    for hashes, lengths, pieces, theirs in zip(left.hashes, left.lengths,
                                               left.numbered.analyzers, right.merged,
                                               strict=True):
        if (not len(hashes) and not len(theirs.tf)
                and not pieces.sizes[left.pieces].any()):  # nothing but stop words
            continue
        blocks += 1
        total += slot_memory_cosines(
            hashes, lengths, left.pieces, left.piece_lengths, pieces.table_keys,
            pieces.table_codes, pieces.starts, pieces.terms, pieces.counts, theirs.piece_memory,
            theirs.table_keys, theirs.table_codes, theirs.frequency, theirs.starts, theirs.row,
            theirs.tf, theirs.sum0, theirs.sum1, theirs.sum2, right.documents)
    return total / blocks if blocks else total


def _concept_matrix(vectors: list[dict[str, float]], index: dict[str, int]) -> np.ndarray:
    matrix = np.zeros((len(vectors), len(index)))
    for row, vector in enumerate(vectors):
        for concept, weight in vector.items():
            matrix[row, index[concept]] = weight
    return matrix


def _cosines(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The cosine of every row of ``left`` with every row of ``right`` (0 where either row
    is all zeros)."""
    norms = np.sqrt((left * left).sum(axis=1))[:, np.newaxis] * np.sqrt(
        (right * right).sum(axis=1))[np.newaxis, :]
    dots = left @ right.T
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def memory_scores(
    slots: list[PromptSlot],
    memories: list[MemoryCard],
    request_text: str | None = None,
    vocabulary: Vocabulary | None = None,
) -> np.ndarray:
    """How well each memory fits each slot, in [0, 1]; rows are slots, columns memories."""
    if not slots or not memories:
        return np.zeros((len(slots), len(memories)))
    vocabulary = vocabulary or default_vocabulary()
    slot_vectors, slot_side = _slots_read(slots, vocabulary)
    memory_facts, memory_side = _memories_analysed(memories, vocabulary)
    tfidf = _tfidf_similarity(slot_side, memory_side)
    asked = []
    if request_text:
        moods, themes = vocabulary.infer_tags(request_text)
        asked.append(_weighted(set(moods) | set(themes), vocabulary))
    # The slots' concepts and the request's against the memories', in one matrix and one
    # product: the rows, then the memories.
    vectors = [*slot_vectors, *asked, *(f.vector for f in memory_facts)]
    index: dict[str, int] = {}
    for vector in vectors:
        for concept in vector:
            index.setdefault(concept, len(index))
    concepts = _concept_matrix(vectors, index)
    rows = len(slot_vectors) + len(asked)
    bridge = _cosines(concepts[:rows], concepts[rows:])
    scores = BRIDGE_WEIGHT * bridge[:len(slot_vectors)] + TFIDF_WEIGHT * tfidf
    if asked:
        # What the person asked for today nudges the memories it speaks of (never alone).
        nudge = bridge[len(slot_vectors)]
        scores = scores + 0.1 * nudge[np.newaxis, :] * (scores > 0)
    return np.clip(scores, 0.0, 1.0)


def match_memories(
    slots: list[PromptSlot],
    memories: list[MemoryCard],
    request_text: str | None = None,
    threshold: float = MEMORY_THRESHOLD,
) -> dict[int, MemoryCard]:
    """Best memory for each slot that has one: above threshold, each memory at most twice.

    Returns a mapping from the slot's index in ``slots`` to its memory. Aftercare slots never
    get a memory: aftercare closes the session and does not reopen anything.
    """
    scores = memory_scores(slots, memories, request_text)
    pairs = [
        (float(scores[i, j]), i, j)
        for i, slot in enumerate(slots)
        if slot.phase in MEMORY_PHASES
        for j in range(len(memories))
        if scores[i, j] >= threshold
    ]
    # Highest score first; ties go to the earlier slot and the earlier memory.
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    chosen: dict[int, MemoryCard] = {}
    uses: Counter[int] = Counter()
    for _, i, j in pairs:
        if i in chosen or uses[j] >= MAX_USES_PER_MEMORY:
            continue
        chosen[i] = memories[j]
        uses[j] += 1
    return chosen


# --------------------------------------------------------------------------------------------
# Choosing and filling templates.
# --------------------------------------------------------------------------------------------


def _memory_fields(memory: MemoryCard) -> dict[str, str]:
    fields = {"memory_title": memory.title.strip()}
    if memory.people:
        fields["person"] = memory.people[0].strip()
    if memory.places:
        fields["place"] = memory.places[0].strip()
    return {k: v for k, v in fields.items() if v}


def _step_fields(step: str) -> dict[str, str]:
    return {"step": step, "step_lower": step[:1].lower() + step[1:]}


_SPACES = re.compile(r"\s+")


def _fill(template: PromptTemplate, fields: dict[str, str]) -> str:
    text = template.text.format(**{name: fields[name] for name in template.fields})
    # A printable text holds no whitespace but plain spaces (tabs, newlines and Unicode
    # spaces are not printable): without a double, a leading or a trailing one, the
    # squash below would give it back unchanged (2 us a prompt for nothing).
    if (text.isprintable() and "  " not in text and not text.startswith(" ")
            and not text.endswith(" ")):
        return text
    return _SPACES.sub(" ", text).strip()


def _weighted_choice(
    rng: random.Random,
    options: list[PromptTemplate],
    technique_uses: Counter[str],
    last: str | None,
) -> PromptTemplate:
    """Pick a template, favouring techniques used less so far and not the one just used.

    The draw is ``rng.choices(options, weights=..., k=1)``'s own (one ``rng.random()`` over
    the running sums), spelled out: a session makes one per item."""
    by_technique: dict[str, float] = {}
    cumulative: list[float] = []
    total = 0.0
    for option in options:
        technique = option.technique
        weight = by_technique.get(technique)
        if weight is None:
            weight = 1.0 / (1 + technique_uses.get(technique, 0)) ** 2
            if technique == last:
                weight *= 0.2
            by_technique[technique] = weight
        total += weight
        cumulative.append(total)
    return options[bisect.bisect(cumulative, rng.random() * total, 0, len(options) - 1)]


def pair_prompts(
    slots: list[PromptSlot],
    memories: list[MemoryCard],
    request_text: str | None = None,
    seed: int = 0,
    crisis: bool = False,
) -> list[PairingPrompt]:
    """One prompt per slot, in the same order; deterministic for a given seed.

    In crisis mode no deepening technique is offered and no memory is reopened: only
    comfort, grounding, talking to someone and aftercare.
    """
    library = load_prompt_library()
    rng = random.Random(seed)
    matched = {} if crisis else match_memories(slots, memories, request_text)
    used_templates: set[str] = set()
    used_texts: set[str] = set()
    used_steps: Counter[str] = Counter()
    technique_uses: Counter[str] = Counter()
    last_technique: str | None = None
    prompts: list[PairingPrompt] = []

    for index, slot in enumerate(slots):
        kind = slot.kind if slot.kind in KINDS else "song"
        phase = slot.phase if slot.phase in PHASES else "deepen"
        memory = matched.get(index)
        fields = {"title": slot.title}
        options: list[PromptTemplate] = []
        offers_step = False
        if memory is not None:
            fields.update(_memory_fields(memory))
            options = [
                t
                for t in library.candidates(kind, phase, crisis=crisis, memory=True)
                if t.fields - {"step", "step_lower"} <= fields.keys()
            ]
            offers_step = any(t.takes_step for t in options)
            if not options:
                memory = None
        if memory is None:
            options = library.candidates(kind, phase, crisis=crisis, memory=False)
            offers_step = library.offers_step(kind, phase, crisis=crisis, memory=False)
        if not options:  # an unknown phase/kind combination: fall back to plain comfort
            options = library.candidates(kind, "settle", crisis=True, memory=False)
            offers_step = library.offers_step(kind, "settle", crisis=True, memory=False)

        if phase == "aftercare" or offers_step:
            least = min(used_steps.get(s, 0) for s in AFTERCARE_STEPS)
            steps = [s for s in AFTERCARE_STEPS if used_steps.get(s, 0) == least]
            step = rng.choice(steps)
            fields.update(_step_fields(step))
        else:
            step = None

        fresh = [t for t in options if t.id not in used_templates]
        pool = fresh or options
        text = ""
        template = pool[0]
        for _ in range(len(pool) * 2):
            template = _weighted_choice(rng, pool, technique_uses, last_technique)
            text = _fill(template, fields)
            if text not in used_texts:
                break
        else:
            for candidate in pool:
                template, text = candidate, _fill(candidate, fields)
                if text not in used_texts:
                    break
        if text in used_texts:  # the same title twice with every variant spent
            text = f"{text} (again, at your own pace)"

        if step is not None and template.takes_step:
            used_steps[step] += 1
        used_templates.add(template.id)
        used_texts.add(text)
        technique_uses[template.technique] += 1
        last_technique = template.technique
        prompts.append(
            PairingPrompt(
                technique=template.technique,
                text=text,
                memory_id=memory.id if memory is not None and template.memory else None,
            )
        )

    log.debug(
        "paired %d prompts, %d with a memory, crisis=%s",
        len(prompts),
        sum(p.memory_id is not None for p in prompts),
        crisis,
    )
    return prompts
