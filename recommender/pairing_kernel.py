"""The compiled parts of memory pairing, by Numba: the character n-grams of texts, hashed,
and one analyzer's TF-IDF cosine of a session's slots against a person's memories.

What they compute is what ``recommender.prompts`` describes (scikit-learn's ``char_wb``
n-grams; a TfidfVectorizer fitted on the session's documents alone, ``sublinear_tf``,
smoothed IDF, rows scaled to length 1); tests/test_prompts.py holds them to
scikit-learn's own analyzer and numbers. Done in Python and NumPy, the weighing took some
fifty array calls a session, most on a few hundred values, where each call's own cost is
the work, and each new word of a title was cut into n-grams in Python: reading a session's
slots and weighing them took 1.6-1.8 ms of a session with ten memories, 0.65-0.8 ms with
these (BENCHMARKS.md, seventeenth round). What does not depend on the session's slots (the
memories' terms' table, their entries grouped by term, the sums their lengths follow from)
is worked out once per person's memories and kept with them: weighing a session's slots
against ten memories then takes a third less (97 against 143 us warm for the char n-grams
and words of 50 sessions' slots).

Each function is compiled for its one signature when this module is imported, and kept in
``__pycache__`` beside it (or, where that cannot be written, in the user's cache folder; set
``NUMBA_CACHE_DIR`` where neither can be): the first import after a change compiles (several
seconds), later ones load it (under a second, most of it Numba's own import).
"""

from __future__ import annotations

import secrets

import numpy as np
from numba import njit, types

__all__ = ["char_ngram_hashes", "slot_memory_cosines", "term_table"]

# A term's place in a table is the top bits of its hash times this odd constant (Fibonacci
# hashing): every bit of the hash counts, whatever hashes come in (they come well mixed:
# SipHash, Python's for word terms and _gram_hash for character n-grams).
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _array(kind):  # a read-only array type, which writable arrays pass as too
    return types.Array(kind, 1, "C", readonly=True)


@njit(types.Tuple((types.int64[::1], types.int32[::1]))(_array(types.int64)), cache=True,
      nogil=True)
def term_table(used):
    """An open-addressed table numbering ``used`` (distinct int64 term hashes): its keys and
    each key's index in ``used`` (-1 where empty), at least twice as many places as terms.
    A person's memories' table is made once and kept with them (``prompts._Merged``)."""
    size, bits = 16, 4
    while size < 2 * used.shape[0]:
        size, bits = size * 2, bits + 1
    mask, shift = np.uint64(size - 1), np.uint64(64 - bits)
    keys = np.zeros(size, dtype=np.int64)
    codes = np.full(size, -1, dtype=np.int32)
    for code in range(used.shape[0]):
        place = (np.uint64(used[code]) * _MIX) >> shift
        while codes[place] >= 0:
            place = (place + np.uint64(1)) & mask
        codes[place] = code
        keys[place] = used[code]
    return keys, codes


# Compiled for these types when the module is imported (not at a session's first call);
# like the functions below, it takes its arrays read-only, and writable ones as well.
_SIGNATURE = types.float64[:, ::1](
    _array(types.int64), _array(types.int64),  # the slots' own hashes, how many a slot has
    _array(types.int32), _array(types.int64),  # the slots' pieces, how many a slot has
    _array(types.int64), _array(types.int32),  # the pieces' terms' table (term_table)
    _array(types.int64), _array(types.int32), _array(types.int64),  # pieces' entries
    _array(types.int32),  # per piece term, its number among the memories' (or -1)
    _array(types.int64), _array(types.int32),  # the memories' term table (term_table)
    _array(types.int64),  # per term, the memories having it
    _array(types.int64), _array(types.int32), _array(types.float64),  # entries by term
    _array(types.float64), _array(types.float64), _array(types.float64),  # per memory sums
    types.int64)


@njit(types.UniTuple(types.uint64, 2)(_array(types.int32)), cache=True, nogil=True,
      inline="always")
def _shift_mask(table_codes):
    """How a :func:`term_table` of this size places a hash: the shift and the mask."""
    bits = 0
    while (1 << bits) < table_codes.shape[0]:
        bits += 1
    return np.uint64(64 - bits), np.uint64(table_codes.shape[0] - 1)


@njit(types.int64(_array(types.int64), _array(types.int32), types.uint64, types.uint64,
                  types.int64), cache=True, nogil=True, inline="always")
def _find(table_keys, table_codes, shift, mask, value):
    """``value``'s code in a :func:`term_table` placed by ``shift`` and ``mask`` (-1 when it
    is not there)."""
    place = (np.uint64(value) * _MIX) >> shift
    while table_codes[place] >= 0:
        if table_keys[place] == value:
            return table_codes[place]
        place = (place + np.uint64(1)) & mask
    return -1


@njit([_SIGNATURE], cache=True, nogil=True)
def slot_memory_cosines(hashes, lengths, pieces, piece_lengths, piece_keys, piece_codes,
                        piece_starts, piece_terms, piece_counts, piece_memory,
                        table_keys, table_codes, frequency, starts, row, tf,
                        sum0, sum1, sum2, memories):
    """The cosine of every slot with every memory for one analyzer.

    A slot's terms come in two parts. Its own (``hashes``, int64 hashes, a term as often as
    the slot has it, slot after slot, ``lengths`` how many each has): its head's and the
    word pairs across its tags' descriptions. And its tags' pieces (``pieces``, slot after
    slot, ``piece_lengths`` how many each has), each piece's terms numbered once per worker
    (see ``prompts._Pieces``): their hashes' table (``piece_keys``, ``piece_codes``), piece
    ``p``'s terms at ``piece_starts[p]:piece_starts[p + 1]`` (``piece_terms``, each once,
    ``piece_counts`` times), and each piece term's number among the memories' terms
    (``piece_memory``, -1 where no memory has it). A piece's terms cost a slot two reads
    each, not a hash and a search of two tables.

    The memories come merged (a ``prompts._Merged``): their terms' table (:func:`term_table`)
    and in how many memories each term appears (``frequency``); their entries (a term of a
    memory) grouped by term, term ``t``'s at ``starts[t]:starts[t + 1]``, each with its memory
    (``row``) and sublinear term frequency (``tf``); and per memory the sums over its entries
    of tf², tf² b and tf² b², b = log(1 + frequency), from which the memory's length under
    any number of documents follows; ``memories`` is how many there are.

    Returns the (slots, memories) cosines; a row of a slot with no terms is zeros."""
    slots = lengths.shape[0]
    known = frequency.shape[0]
    raw = hashes.shape[0]
    piece_total = 0
    for i in range(pieces.shape[0]):
        piece_total += piece_starts[pieces[i] + 1] - piece_starts[pieces[i]]
    entries = raw + piece_total
    # Every entry's term is numbered first: by the memories' numbering when they have it,
    # else by this call's own numbering of the terms new to the memories (from ``known``
    # on): a piece term through ``piece_new``, any other through a table of its own.
    size, bits = 16, 4
    while size < 2 * raw:
        size, bits = size * 2, bits + 1
    mask, shift = np.uint64(size - 1), np.uint64(64 - bits)
    keys = np.empty(size, dtype=np.int64)
    codes = np.full(size, -1, dtype=np.int32)
    piece_new = np.full(piece_memory.shape[0], -1, dtype=np.int32)
    entry_code = np.empty(entries, dtype=np.int32)
    entry_count = np.empty(entries, dtype=np.int64)
    memory_shift, memory_mask = _shift_mask(table_codes)
    piece_shift, piece_mask = _shift_mask(piece_codes)
    slot_start = np.empty(slots + 1, dtype=np.int64)
    terms = known
    at = 0
    filled = 0
    next_piece = 0
    for slot in range(slots):
        slot_start[slot] = filled
        for _ in range(lengths[slot]):
            value = hashes[at]
            at += 1
            code = _find(table_keys, table_codes, memory_shift, memory_mask, value)
            if code < 0:
                term = _find(piece_keys, piece_codes, piece_shift, piece_mask, value)
                if term >= 0:
                    code = piece_new[term]
                    if code < 0:
                        code = terms
                        piece_new[term] = code
                        terms += 1
                else:
                    place = (np.uint64(value) * _MIX) >> shift
                    while True:
                        code = codes[place]
                        if code < 0:
                            code = terms
                            codes[place] = code
                            keys[place] = value
                            terms += 1
                            break
                        if keys[place] == value:
                            break
                        place = (place + np.uint64(1)) & mask
            entry_code[filled] = code
            entry_count[filled] = 1
            filled += 1
        for _ in range(piece_lengths[slot]):
            piece = pieces[next_piece]
            next_piece += 1
            for e in range(piece_starts[piece], piece_starts[piece + 1]):
                term = piece_terms[e]
                code = piece_memory[term]
                if code < 0:
                    code = piece_new[term]
                    if code < 0:
                        code = terms
                        piece_new[term] = code
                        terms += 1
                entry_code[filled] = code
                entry_count[filled] = piece_counts[e]
                filled += 1
    slot_start[slots] = filled
    # Each (slot, term) pair is kept once with its count; a slot's entries are together, so
    # a term's last slot says whether this slot has it already.
    slot_frequency = np.zeros(terms, dtype=np.int64)
    last_slot = np.full(terms, -1, dtype=np.int32)
    open_pair = np.empty(terms, dtype=np.int32)
    pair_term = np.empty(entries, dtype=np.int32)
    pair_slot = np.empty(entries, dtype=np.int32)
    pair_count = np.zeros(entries, dtype=np.int64)
    shared = np.empty(min(known, entries), dtype=np.int32)  # memory terms slots have too
    shared_count = 0
    pairs = 0
    for slot in range(slots):
        for e in range(slot_start[slot], slot_start[slot + 1]):
            code = entry_code[e]
            if last_slot[code] != slot:
                last_slot[code] = slot
                if code < known and slot_frequency[code] == 0:
                    shared[shared_count] = code
                    shared_count += 1
                slot_frequency[code] += 1
                pair_term[pairs] = code
                pair_slot[pairs] = slot
                pair_count[pairs] = entry_count[e]
                open_pair[code] = pairs
                pairs += 1
            else:
                pair_count[open_pair[code]] += entry_count[e]
    # IDF by document frequency over both sides (a few dozen values, so a table), and the
    # sublinear term frequency by count likewise.
    documents = slots + memories
    idf = np.log((1.0 + documents) / (1.0 + np.arange(documents + 1))) + 1.0
    most = 1
    for p in range(pairs):
        most = max(most, pair_count[p])
    sublinear = 1.0 + np.log(np.arange(1, most + 1).astype(np.float64))
    # Each side's weights and lengths: a memory term's frequency counts the slots having it.
    slot_weight = np.empty(pairs, dtype=np.float64)
    slot_length = np.zeros(slots, dtype=np.float64)
    for p in range(pairs):
        code = pair_term[p]
        df = slot_frequency[code] + (frequency[code] if code < known else 0)
        weight = sublinear[pair_count[p] - 1] * idf[df]
        slot_weight[p] = weight
        slot_length[pair_slot[p]] += weight * weight
    # A memory's squared length with every term's frequency its memories' alone is
    # sum (tf (a - b))^2, a = log(1 + documents) + 1, from the three kept sums; the terms
    # slots have too then count those slots as well.
    a = np.log(1.0 + documents) + 1.0
    memory_length = np.empty(memories, dtype=np.float64)
    for memory in range(memories):
        memory_length[memory] = a * a * sum0[memory] - 2.0 * a * sum1[memory] + sum2[memory]
    shared_idf = np.zeros(known, dtype=np.float64)
    for i in range(shared_count):
        code = shared[i]
        alone = idf[frequency[code]]
        both = idf[frequency[code] + slot_frequency[code]]
        shared_idf[code] = both
        for e in range(starts[code], starts[code + 1]):
            memory_length[row[e]] += tf[e] * tf[e] * (both * both - alone * alone)
    for slot in range(slots):
        slot_length[slot] = 1.0 / np.sqrt(slot_length[slot]) if slot_length[slot] > 0 else 0.0
    for memory in range(memories):
        memory_length[memory] = (1.0 / np.sqrt(memory_length[memory])
                                 if memory_length[memory] > 0 else 0.0)
    # Each slot's entry of a shared term meets that term's memory entries (a few each: no
    # dense rows).
    cosines = np.zeros((slots, memories), dtype=np.float64)
    for p in range(pairs):
        code = pair_term[p]
        if code < known:
            slot = pair_slot[p]
            weight = slot_weight[p] * slot_length[slot]
            idf_both = shared_idf[code]
            for e in range(starts[code], starts[code + 1]):
                cosines[slot, row[e]] += weight * (tf[e] * idf_both * memory_length[row[e]])
    return cosines


# Character n-grams are hashed by SipHash-2-4 (Aumasson and Bernstein's keyed hash, the one
# Python's own string hashes are made of) over the n-gram's UTF-32-LE bytes, with a key
# drawn for each process: like Python's string hashes, a kept hash says nothing of the
# words it came from without the process's key.
_U64 = np.uint64


@njit(types.uint64(types.uint64, types.uint64), cache=True, nogil=True, inline="always")
def _rotl(value, bits):
    return (value << bits) | (value >> (_U64(64) - bits))


@njit(types.UniTuple(types.uint64, 4)(types.uint64, types.uint64, types.uint64, types.uint64),
      cache=True, nogil=True, inline="always")
def _sip_round(v0, v1, v2, v3):
    v0 += v1
    v1 = _rotl(v1, _U64(13)) ^ v0
    v0 = _rotl(v0, _U64(32))
    v2 += v3
    v3 = _rotl(v3, _U64(16)) ^ v2
    v0 += v3
    v3 = _rotl(v3, _U64(21)) ^ v0
    v2 += v1
    v1 = _rotl(v1, _U64(17)) ^ v2
    v2 = _rotl(v2, _U64(32))
    return v0, v1, v2, v3


@njit(types.uint64(types.uint64, types.uint64, types.uint8[::1], types.int64), cache=True,
      nogil=True)
def _siphash24(k0, k1, data, length):
    """SipHash-2-4 of ``data[:length]`` with the key ``k0``, ``k1`` (two 64-bit halves,
    read little-endian from the 16 key bytes)."""
    v0 = k0 ^ _U64(0x736F6D6570736575)
    v1 = k1 ^ _U64(0x646F72616E646F6D)
    v2 = k0 ^ _U64(0x6C7967656E657261)
    v3 = k1 ^ _U64(0x7465646279746573)
    whole = length // 8
    for block in range(whole + 1):
        word = _U64(length & 0xFF) << _U64(56) if block == whole else _U64(0)
        for i in range(min(8, length - 8 * block)):
            word |= _U64(data[8 * block + i]) << _U64(8 * i)
        v3 ^= word
        for _ in range(2):
            v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
        v0 ^= word
    v2 ^= _U64(0xFF)
    for _ in range(4):
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


@njit(types.int64(_array(types.uint32), types.int64, types.int64, types.uint64, types.uint64,
                  types.uint8[::1]), cache=True, nogil=True)
def _gram_hash(codes, start, stop, k0, k1, scratch):
    """The keyed hash of the n-gram ``codes[start:stop]``, its UTF-32-LE bytes."""
    length = 0
    for at in range(start, stop):
        # A word's padding is the space between it and its neighbour, or lies outside
        # ``codes`` (before the first word, after the last).
        code = 32 if at < 0 or at >= codes.shape[0] else codes[at]
        for i in range(4):
            scratch[length] = (code >> (8 * i)) & 0xFF
            length += 1
    return np.int64(_siphash24(k0, k1, scratch, length))


@njit(types.Tuple((types.int64[::1], types.int64[::1]))(_array(types.uint32),
                                                        _array(types.int64), types.uint64,
                                                        types.uint64),
      cache=True, nogil=True)
def _char_wb_hashes(codes, words, k0, k1):
    """The keyed hashes of the char_wb n-grams (3 to 5) of words written one after another
    with a space (32) between them, ``words`` of them per text; and how many each text has."""
    out = np.empty(3 * (codes.shape[0] + 3 * (words.sum() + 1)), dtype=np.int64)
    scratch = np.empty(4 * 5, dtype=np.uint8)
    counts = np.empty(words.shape[0], dtype=np.int64)
    filled = 0
    start = 0
    for text in range(words.shape[0]):
        before = filled
        for _ in range(words[text]):
            stop = start
            while stop < codes.shape[0] and codes[stop] != 32:
                stop += 1
            # The word padded with a space on each side, as scikit-learn's char_wb does: its
            # n-grams from 3 to 5, and a word too short for an n-gram once, whole.
            first, length = start - 1, stop - start + 2
            for n in range(3, 6):
                if length <= n:
                    out[filled] = _gram_hash(codes, first, first + length, k0, k1, scratch)
                    filled += 1
                    break
                for offset in range(length - n + 1):
                    out[filled] = _gram_hash(codes, first + offset, first + offset + n, k0,
                                             k1, scratch)
                    filled += 1
            start = stop + 1
        counts[text] = filled - before
    return out[:filled].copy(), counts  # a copy: kept hashes hold no spare buffer


def char_ngram_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The hashes of each text's character n-grams as scikit-learn's ``char_wb`` analyzer
    with ``ngram_range=(3, 5)`` lists them (the text lowercased, each word padded with a
    space, short words whole), all texts' one after another; and how many each text has.
    A hash stands for the n-gram's characters alone and the process's key: the same n-gram
    has the same hash in every text of a process, and another in another process."""
    split = [text.lower().split() for text in texts]
    joined = " ".join(word for words in split for word in words)
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return _char_wb_hashes(codes, np.array([len(words) for words in split], dtype=np.int64),
                           *_KEY)


# This process's key for character n-gram hashes (workers forked from it share it).
_KEY = (_U64(secrets.randbits(64)), _U64(secrets.randbits(64)))
