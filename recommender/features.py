"""Features for items, requests and the pairs the ranker scores.

The id <-> row mapping lives here, so the estimator only ever sees arrays.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import (
    TfidfTransformer,
    TfidfVectorizer,
)

from recommender.catalog.identity import normalise_name, normalise_title
from recommender.kept import KeptByBytes
from recommender.vocabulary import Vocabulary

EXPLORATION_MODES = ("familiar", "balanced", "discover")

CONTENT_FEATURES = (
    "mood_match",      # share of the requested moods the item carries
    "theme_match",     # share of the requested themes the item carries
    "text_match",      # cosine between the request words and the item's description
    "intensity_fit",   # 1 when the item's intensity equals the requested one, 0 when 4 apart
    "is_film",
    "aftercare",
)

# What a person's past graded reactions say about an item, one feature per kind of attribute:
# how far above or below the prior their taste for the item's themes, moods, maker, era, kind
# and the item itself lies (posterior log-odds minus the prior's, summed; 0 for someone new).
TASTE_GROUPS = ("theme", "mood", "maker", "era", "kind", "item")
TASTE_FEATURES = tuple(f"taste_{g}" for g in TASTE_GROUPS)

PAIR_FEATURES = CONTENT_FEATURES + TASTE_FEATURES


def era_of(year: int | None) -> str | None:
    """The decade an item belongs to ("1980s"), or None when its year is unknown."""
    return f"{(year // 10) * 10}s" if year else None


def attribute_keys(
    item_id: str, kind: str, tags: Sequence[str], artist: str | None, director: str | None,
    year: int | None, vocabulary: Vocabulary,
) -> list[str]:
    """The attributes a person's taste is learned over: ``group:value`` keys for one item."""
    keys = [f"theme:{t}" for t in tags if vocabulary.is_theme(t)]
    keys += [f"mood:{t}" for t in tags if vocabulary.is_mood(t)]
    maker = normalise_name(artist or director or "")
    if maker:
        keys.append(f"maker:{maker}")
    era = era_of(year)
    if era:
        keys.append(f"era:{era}")
    keys.append(f"kind:{kind}")
    keys.append(f"item:{item_id}")
    return keys


@dataclass(frozen=True)
class SessionRequest:
    """What a person asked for, validated."""

    moods: tuple[str, ...] = ()
    prompt: str | None = None
    minutes: int = 45
    intensity: int = 3
    include_films: bool = True
    exploration: str = "balanced"


@dataclass(frozen=True)
class ItemRecord:
    """The plain facts about one catalogue item that features are built from."""

    id: str
    kind: str
    title: str
    artist: str | None
    director: str | None
    year: int | None
    duration_s: int
    intensity: int
    aftercare: bool
    tags: tuple[str, ...]
    spotify_uri: str | None = None


def item_document(item: ItemRecord, vocabulary: Vocabulary) -> str:
    """The words that describe an item: its title, maker and what its tags mean."""
    words = [item.title, item.artist or "", item.director or ""]
    for tag in item.tags:
        words.append(vocabulary.label(tag))
        for theme in vocabulary.themes:
            if theme.id == tag:
                words.extend(theme.keywords)
    return " ".join(words)


class TextColumn:
    """Many strings kept as one UTF-8 buffer plus offsets: compact, and memory-mappable."""

    def __init__(self, data: np.ndarray, offsets: np.ndarray):
        self.data = data
        self.offsets = offsets

    @classmethod
    def from_strings(cls, values: Sequence[str | None]) -> TextColumn:
        texts = [v if isinstance(v, str) else "" for v in values]
        # Encoded once; a string's length in bytes is its length unless it is not ASCII.
        lengths = np.fromiter((len(t) if t.isascii() else len(t.encode("utf-8")) for t in texts),
                              dtype=np.int64, count=len(texts))
        offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(np.frombuffer("".join(texts).encode("utf-8"), dtype=np.uint8), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, row: int) -> str:
        return self.data[self.offsets[row]:self.offsets[row + 1]].tobytes().decode("utf-8")

    @cached_property
    def _buffer(self) -> memoryview:
        return memoryview(self.data)

    def strings_at(self, rows: np.ndarray) -> list[str]:
        """The strings at ``rows`` (a handful), each decoded from its slice of the buffer:
        for a few rows, two reads of the offsets and plain slicing cost less than
        :meth:`take`'s vectorised gather or a numpy slice per string."""
        buffer, offsets = self._buffer, self.offsets
        return [str(buffer[start:end], "utf-8") for start, end
                in zip(offsets[rows].tolist(), offsets[rows + 1].tolist(), strict=True)]

    def take(self, rows: np.ndarray) -> list[str]:
        """The strings at ``rows``, gathered and decoded in one go."""
        rows = np.asarray(rows, dtype=np.int64)
        starts = self.offsets[rows]
        lengths = self.offsets[rows + 1] - starts
        if not len(rows) or not int(lengths.sum()):
            return [""] * len(rows)
        # Each string followed by a NUL, so one decode and one split give them all back.
        ends = np.cumsum(lengths + 1)
        src = np.repeat(starts - (ends - lengths - 1), lengths + 1) + np.arange(int(ends[-1]))
        buf = self.data[np.minimum(src, len(self.data) - 1)]
        buf[ends - 1] = 0
        parts = buf.tobytes().decode("utf-8").split("\x00")[:-1]
        if len(parts) != len(rows):  # a string holding a NUL itself: the slow way
            return [self[int(r)] for r in rows]
        return parts


class ItemRecords(Sequence[ItemRecord]):
    """The catalogue's items as columns; an :class:`ItemRecord` is made only when asked for.

    ``tags`` is a list of ``;``-joined tag strings, one per item (kept as a TextColumn);
    ``maker_key`` and ``title_key`` are the normalised maker and title (as in identity keys).
    A column is a TextColumn or an array for the whole catalogue. The records of a subset
    (:meth:`take`) are a view: the same columns and the catalogue rows they stand for.
    """

    def __init__(self, ids: np.ndarray, columns: dict, rows: np.ndarray | None = None):
        self.ids = ids
        self.columns = columns
        self.rows = rows

    def column(self, name: str) -> np.ndarray | list[str]:
        """One column's values for these records, in order."""
        col = self.columns[name]
        if self.rows is None:
            return col.take(np.arange(len(col))) if isinstance(col, TextColumn) else col
        return col.take(self.rows) if isinstance(col, TextColumn) else col[self.rows]

    @classmethod
    def from_records(cls, records: Sequence[ItemRecord]) -> ItemRecords:
        return cls(np.array([r.id.encode("utf-8") for r in records], dtype="S")
                   if records else np.zeros(0, dtype="S16"), {
            "is_film": np.array([r.kind == "film" for r in records], dtype=bool),
            "title": TextColumn.from_strings([r.title for r in records]),
            "artist": TextColumn.from_strings([r.artist for r in records]),
            "director": TextColumn.from_strings([r.director for r in records]),
            "year": np.array([r.year or 0 for r in records], dtype=np.int32),
            "duration_s": np.array([r.duration_s for r in records], dtype=np.int64),
            "intensity": np.array([r.intensity for r in records], dtype=np.int8),
            "aftercare": np.array([r.aftercare for r in records], dtype=bool),
            "tags": TextColumn.from_strings([";".join(r.tags) for r in records]),
            "spotify_uri": TextColumn.from_strings([r.spotify_uri for r in records]),
            "maker_key": TextColumn.from_strings(
                [normalise_name(r.artist or r.director or "") for r in records]),
            "title_key": TextColumn.from_strings([normalise_title(r.title) for r in records]),
        })

    def __len__(self) -> int:
        return len(self.ids)

    # The columns a record is built from, in _record's order.
    _RECORD_COLUMNS = ("is_film", "title", "artist", "director", "year", "duration_s",
                       "intensity", "aftercare", "tags", "spotify_uri")

    @staticmethod
    def _record(item_id: bytes, is_film, title: str, artist: str, director: str, year,
                duration_s, intensity, aftercare, tags: str, uri: str) -> ItemRecord:
        """A record from its stored values (empty strings and year 0 stand for none)."""
        return ItemRecord(id=item_id.decode("utf-8"), kind="film" if is_film else "song",
                          title=title, artist=artist or None, director=director or None,
                          year=int(year) or None, duration_s=int(duration_s),
                          intensity=int(intensity), aftercare=bool(aftercare),
                          tags=tuple(tags.split(";")) if tags else (), spotify_uri=uri or None)

    def __getitem__(self, row):  # type: ignore[override]
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        item_id = self.ids[row]
        if self.rows is not None:
            row = int(self.rows[row])
        return self._record(item_id, *(self.columns[name][row] for name in self._RECORD_COLUMNS))

    def __iter__(self):
        for row in range(len(self)):
            yield self[row]

    def at(self, rows: Sequence[int]) -> list[ItemRecord]:
        """The records at ``rows`` (a session's few), each column read once for all of them:
        the same records as ``[self[r] for r in rows]``, without numpy's per-value reads."""
        rows = np.asarray(rows, dtype=np.intp)
        base = rows if self.rows is None else self.rows[rows]

        def column(name: str) -> list:
            col = self.columns[name]
            return col.strings_at(base) if isinstance(col, TextColumn) else col[base].tolist()

        return [self._record(*values) for values in zip(
            self.ids[rows].tolist(), *(column(name) for name in self._RECORD_COLUMNS),
            strict=True)]

    def take(self, rows: np.ndarray) -> ItemRecords:
        """The records at ``rows``, as a view over the same columns (nothing is copied)."""
        rows = np.asarray(rows, dtype=np.int64)
        base = rows if self.rows is None else self.rows[rows]
        return ItemRecords(self.ids[rows], self.columns, base)


class ItemIndex(Mapping[str, int]):
    """Item id -> matrix row by binary search over the ids (no per-item Python objects)."""

    def __init__(self, ids: np.ndarray):
        self._n = len(ids)
        if self._n < 2 or bool(np.all(ids[1:] > ids[:-1])):
            self._order = None
            self._sorted = ids
        else:
            self._order = np.argsort(ids, kind="stable")
            self._sorted = ids[self._order]
        self._ids = ids

    def _find(self, key: object) -> int | None:
        if not isinstance(key, str) or not self._n:
            return None
        k = key.encode("utf-8")
        pos = int(np.searchsorted(self._sorted, k))
        if pos < self._n and self._sorted[pos] == k:
            return int(self._order[pos]) if self._order is not None else pos
        return None

    def rows_of(self, keys: Sequence[str]) -> np.ndarray:
        """The rows of those ``keys`` that are here (unknown ones left out), in one search."""
        if not self._n or not len(keys):
            return np.zeros(0, dtype=np.int64)
        wanted = np.array([k.encode("utf-8") for k in keys], dtype="S")
        pos = np.minimum(np.searchsorted(self._sorted, wanted), self._n - 1)
        pos = pos[self._sorted[pos] == wanted]
        return (self._order[pos] if self._order is not None else pos).astype(np.int64)

    def __getitem__(self, key: str) -> int:
        row = self._find(key)
        if row is None:
            raise KeyError(key)
        return row

    def __contains__(self, key: object) -> bool:
        return self._find(key) is not None

    def __iter__(self):
        return (i.decode("utf-8") for i in self._ids)

    def __len__(self) -> int:
        return self._n


@dataclass
class ItemMatrix:
    """Every catalogue item as rows of arrays, built once per catalogue revision.

    ``maker`` holds a code per item for its normalised artist or director (0: none), so
    "the same maker" is an integer comparison; ``maker_names[code]`` is that name.
    ``text_by_term`` is ``text`` in column (term) order: the inverted index candidate
    retrieval reads.
    """

    records: Sequence[ItemRecord]
    index: Mapping[str, int]
    moods: sp.csr_matrix
    themes: sp.csr_matrix
    text: sp.csr_matrix
    vectorizer: TfidfVectorizer
    intensity: np.ndarray
    duration_s: np.ndarray
    is_film: np.ndarray
    aftercare: np.ndarray
    maker: np.ndarray
    has_suicide_theme: np.ndarray
    revision: int = 0
    extra: dict = field(default_factory=dict)
    text_by_term: sp.csc_matrix | None = None
    maker_names: Sequence[str] = ("",)

    def __len__(self) -> int:
        return len(self.records)

    def subset(self, rows: np.ndarray) -> ItemMatrix:
        """The items at ``rows`` (in that order) as a matrix of their own. Its sparse
        tables (moods, themes, text) are cut from this matrix's when first read: a request's
        candidates often need none of them (see :class:`RequestMatch`)."""
        rows = np.asarray(rows, dtype=np.int64)
        records = (self.records.take(rows) if isinstance(self.records, ItemRecords)
                   else ItemRecords.from_records([self.records[int(r)] for r in rows]))
        return _ItemSubset(
            records=records, index=ItemIndex(records.ids),
            moods=None, themes=None, text=None,
            vectorizer=self.vectorizer, intensity=self.intensity[rows],
            duration_s=self.duration_s[rows], is_film=self.is_film[rows],
            aftercare=self.aftercare[rows], maker=self.maker[rows],
            has_suicide_theme=self.has_suicide_theme[rows], revision=self.revision,
            extra={"parent_rows": rows, "parent": self}, maker_names=self.maker_names,
        )


class _CutOnRead:
    """A subset's sparse table: its parent's rows, cut on the first read and then kept."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, matrix: ItemMatrix | None, owner: type | None = None):
        if matrix is None:
            return self
        table = matrix.__dict__.get(self.name)
        if table is None:
            table = getattr(matrix.extra["parent"], self.name)[matrix.extra["parent_rows"]]
            matrix.__dict__[self.name] = table
        return table

    def __set__(self, matrix: ItemMatrix, table: sp.csr_matrix | None) -> None:
        matrix.__dict__[self.name] = table


class _ItemSubset(ItemMatrix):
    """An :class:`ItemMatrix` of some of another's rows (see :meth:`ItemMatrix.subset`)."""

    moods = _CutOnRead()
    themes = _CutOnRead()
    text = _CutOnRead()


def _tag_matrix(records: Sequence[ItemRecord], ids: Sequence[str]) -> sp.csr_matrix:
    col = {t: j for j, t in enumerate(ids)}
    rows, cols = [], []
    for i, rec in enumerate(records):
        for tag in rec.tags:
            j = col.get(tag)
            if j is not None:
                rows.append(i)
                cols.append(j)
    data = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(records), len(ids)), dtype=np.float32)


def _text_vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(
        strip_accents="unicode", lowercase=True, stop_words="english", sublinear_tf=True,
        min_df=1, dtype=np.float32,
    )


def maker_codes(normalised: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """A code per normalised artist or director name (0 for none), and the names by code."""
    codes, uniques = pd.factorize(pd.Series(list(normalised), dtype=object), sort=False)
    names = ["", *(str(u) for u in uniques)]
    codes = codes.astype(np.int64) + 1
    empty = [i for i, u in enumerate(uniques) if u == ""]
    if empty:
        codes[codes == empty[0] + 1] = 0
    return codes, names


def build_item_matrix(
    records: Sequence[ItemRecord], vocabulary: Vocabulary, revision: int = 0
) -> ItemMatrix:
    records = list(records)
    vectorizer = _text_vectorizer()
    docs = [item_document(r, vocabulary) for r in records]
    text = vectorizer.fit_transform(docs) if records else sp.csr_matrix((0, 0), dtype=np.float32)
    columns = ItemRecords.from_records(records)
    makers, maker_names = maker_codes(
        [normalise_name(r.artist or r.director or "") for r in records])
    return ItemMatrix(
        records=columns,
        index=ItemIndex(columns.ids),
        moods=_tag_matrix(records, vocabulary.mood_ids),
        themes=_tag_matrix(records, vocabulary.theme_ids),
        text=sp.csr_matrix(text),
        vectorizer=vectorizer,
        intensity=np.array([r.intensity for r in records], dtype=np.float32),
        duration_s=np.array([r.duration_s for r in records], dtype=np.int64),
        is_film=np.array([r.kind == "film" for r in records], dtype=bool),
        aftercare=np.array([r.aftercare for r in records], dtype=bool),
        maker=makers,
        has_suicide_theme=np.array(["suicide" in r.tags for r in records], dtype=bool),
        revision=revision,
        text_by_term=sp.csc_matrix(text) if records else None,
        maker_names=maker_names,
    )


def _string_tokens(strings: Sequence[str], vectorizer: TfidfVectorizer):
    """The tokens the vectoriser's analyser makes of each string, as (string index, token)
    arrays: ASCII strings lower-cased and tokenised column by column (the analyser's accent
    stripping leaves ASCII alone), the others through the analyser's own preprocessor."""
    values = pd.Series(list(strings), dtype=object)
    plain = values.map(str.isascii).to_numpy(dtype=bool)
    text = values.str.lower()
    if not plain.all():
        text[~plain] = values[~plain].map(vectorizer.build_preprocessor())
    tokens = text.str.findall(vectorizer.token_pattern).explode().dropna()
    tokens = tokens[~tokens.isin(vectorizer.get_stop_words())]
    return tokens.index.to_numpy(np.int64), tokens.to_numpy(dtype=object)


def _fit_text_by_parts(
    n: int, parts: Sequence[tuple[sp.csr_matrix, Sequence[str]]]
) -> tuple[TfidfVectorizer, sp.csr_matrix]:
    """The text vectoriser fitted on ``n`` documents made of parts, and their TF-IDF matrix.

    Each part is an incidence matrix (documents x distinct strings: how often document i
    holds string j) and the distinct strings. Document i is its strings joined by spaces;
    as the analyser's tokens never span a space, its word counts are the sum of its strings'
    counts, so each distinct string (a maker, a tag's words, a title) is tokenised once.
    Vocabulary, idf and matrix are those ``_text_vectorizer().fit_transform(documents)``
    gives; the vectoriser is an ordinary fitted ``TfidfVectorizer``.
    """
    vectorizer = _text_vectorizer()
    pieces = [_string_tokens(strings, vectorizer) for _, strings in parts]
    codes, terms = pd.factorize(np.concatenate([tokens for _, tokens in pieces]))
    if not len(terms):
        raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
    ordered = sorted(terms.tolist())
    columns = pd.Index(ordered).get_indexer(terms)[codes]
    counts = sp.csr_matrix((n, len(ordered)), dtype=vectorizer.dtype)
    start = 0
    for (incidence, strings), (rows, tokens) in zip(parts, pieces, strict=True):
        in_strings = sp.csr_matrix(
            (np.ones(len(rows), dtype=vectorizer.dtype),
             (rows, columns[start:start + len(tokens)])),
            shape=(len(strings), len(ordered)))
        start += len(tokens)
        counts = counts + sp.csr_matrix(incidence, dtype=vectorizer.dtype) @ in_strings
    counts = sp.csr_matrix(counts)
    counts.sum_duplicates()
    counts.sort_indices()
    transformer = TfidfTransformer(norm=vectorizer.norm, use_idf=vectorizer.use_idf,
                                   smooth_idf=vectorizer.smooth_idf,
                                   sublinear_tf=vectorizer.sublinear_tf).fit(counts)
    vectorizer.vocabulary_ = dict(zip(ordered, range(len(ordered)), strict=True))
    vectorizer.fixed_vocabulary_ = False
    vectorizer.idf_ = transformer.idf_
    return vectorizer, sp.csr_matrix(transformer.transform(counts, copy=False))


def _strings(column: pd.Series) -> list:
    """A column's values as a list (missing ones not str), without iterating pandas' own
    string array in Python."""
    return column.to_numpy(dtype=object).tolist()


def _incidence(n: int, rows: np.ndarray, codes: np.ndarray, width: int) -> sp.csr_matrix:
    """Documents x strings, 1 where document ``rows[k]`` holds string ``codes[k]``
    (``codes`` < 0: nothing)."""
    keep = codes >= 0
    return sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32),
                          (rows[keep], codes[keep])), shape=(n, width))


def build_item_matrix_from_frames(
    items: pd.DataFrame, tags: pd.DataFrame, vocabulary: Vocabulary, revision: int = 0
) -> ItemMatrix:
    """The same matrix as :func:`build_item_matrix`, from bulk-loaded column frames.

    ``items`` has the item columns (``id, identity_key, kind, title, artist, director, year,
    duration_s, intensity, aftercare, spotify_uri``), ``tags`` has ``item_id, tag,
    position``. Rows are ordered by id. Vectorised throughout; the text vectoriser is fitted
    from each distinct title, maker and tag once (:func:`_fit_text_by_parts`).
    """
    n = len(items)
    # Ordered by id (as bytes: the ids are ASCII), sorted by numpy rather than pandas.
    ids = np.array(_strings(items["id"]), dtype="S") if n else np.zeros(0, dtype="S16")
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    items = items.take(order).reset_index(drop=True)
    row_of = pd.Index(items["id"]).get_indexer(tags["item_id"])
    tags = tags.assign(row=row_of)
    tags = tags[tags["row"] >= 0]
    tags = tags.take(np.lexsort((tags["position"].to_numpy(), tags["row"].to_numpy())))
    tag_rows = tags["row"].to_numpy(np.int64)
    tag_codes, tag_names = pd.factorize(tags["tag"].to_numpy(dtype=object))
    # Where each item's tags start and end in ``tags``.
    bounds = np.searchsorted(tag_rows, np.arange(n + 1))

    def tag_matrix(ids: Sequence[str]) -> sp.csr_matrix:
        column_of = {t: j for j, t in enumerate(ids)}
        col = np.array([column_of.get(t, -1) for t in tag_names], dtype=np.int64)[tag_codes]
        keep = col >= 0
        return sp.csr_matrix(
            (np.ones(int(keep.sum()), dtype=np.float32), (tag_rows[keep], col[keep])),
            shape=(n, len(ids)), dtype=np.float32)

    tag_words = []
    for tag in tag_names:
        words = [vocabulary.label(tag)]
        words += next((th.keywords for th in vocabulary.themes if th.id == tag), [])
        tag_words.append(" ".join(words))
    all_rows = np.arange(n, dtype=np.int64)
    parts = []
    titles = _strings(items["title"])  # (nearly) one per item: not worth counting
    parts.append((_incidence(n, all_rows, all_rows, n), titles))
    for column in ("artist", "director"):
        codes, strings = pd.factorize(items[column].to_numpy(dtype=object))
        parts.append((_incidence(n, all_rows, codes, len(strings)), list(strings)))
    parts.append((_incidence(n, tag_rows, tag_codes, len(tag_names)), tag_words))
    if n:
        vectorizer, text = _fit_text_by_parts(n, parts)
    else:
        vectorizer, text = _text_vectorizer(), sp.csr_matrix((0, 0), dtype=np.float32)
    tag_list = _strings(tags["tag"])
    joined_tags = [";".join(tag_list[a:b]) for a, b in zip(bounds[:-1].tolist(),
                                                           bounds[1:].tolist(), strict=True)]
    is_film = (items["kind"] == "film").to_numpy()
    aftercare = items["aftercare"].fillna(False).to_numpy(bool)
    duration = items["duration_s"].to_numpy(np.int64)
    # The identity key is "kind|normalised title|normalised maker" (no part holds a "|").
    identity = [[*key.split("|", 2), "", ""] for key in _strings(items["identity_key"])]
    title_key = [split[1] for split in identity]
    maker_key = [split[2] for split in identity]
    makers, maker_names = maker_codes(maker_key)
    records = ItemRecords(ids, {
        "is_film": is_film,
        "title": TextColumn.from_strings(titles),
        "artist": TextColumn.from_strings(_strings(items["artist"])),
        "director": TextColumn.from_strings(_strings(items["director"])),
        "year": items["year"].fillna(0).to_numpy(np.int32),
        "duration_s": duration,
        "intensity": items["intensity"].to_numpy(np.int8),
        "aftercare": aftercare,
        "tags": TextColumn.from_strings(joined_tags),
        "spotify_uri": TextColumn.from_strings(_strings(items["spotify_uri"])),
        "maker_key": TextColumn.from_strings(maker_key),
        "title_key": TextColumn.from_strings(title_key),
    })
    suicide = np.zeros(n, dtype=bool)
    suicide[tag_rows[(tags["tag"] == "suicide").to_numpy()]] = True
    return ItemMatrix(
        records=records,
        index=ItemIndex(ids),
        moods=tag_matrix(vocabulary.mood_ids),
        themes=tag_matrix(vocabulary.theme_ids),
        text=text,
        vectorizer=vectorizer,
        intensity=items["intensity"].to_numpy(np.float32),
        duration_s=duration,
        is_film=is_film,
        aftercare=aftercare,
        maker=makers,
        has_suicide_theme=suicide,
        revision=revision,
        text_by_term=sp.csc_matrix(text) if n else None,
        maker_names=maker_names,
    )


def item_years(matrix: ItemMatrix) -> np.ndarray:
    """Each item's year (0 when unknown)."""
    records = matrix.records
    if isinstance(records, ItemRecords):
        return np.asarray(records.column("year"))
    return np.array([r.year or 0 for r in records], dtype=np.int32)


def item_eras(matrix: ItemMatrix) -> np.ndarray:
    """Each item's decade label ("1980s"; "" when its year is unknown)."""
    years = item_years(matrix)
    labels = np.char.add(((years // 10) * 10).astype(str), "s")
    return np.where(years > 0, labels, "").astype(object)


def item_era_codes(matrix: ItemMatrix) -> np.ndarray:
    """Each item's decade as a number: equal for items of one :func:`item_eras` label,
    0 when the year is unknown (a comparison of small integers, not of strings)."""
    years = item_years(matrix).astype(np.int32)
    return np.where(years > 0, years // 10 + 1, 0).astype(np.int32)


def title_codes(title_keys: np.ndarray) -> np.ndarray:
    """A number per item, equal for items whose :func:`item_title_keys` are equal."""
    return pd.factorize(np.asarray(title_keys, dtype=object),
                        use_na_sentinel=False)[0].astype(np.int32)


def item_title_keys(matrix: ItemMatrix) -> np.ndarray:
    """Each item's normalised title (as in its identity key)."""
    records = matrix.records
    if isinstance(records, ItemRecords) and "title_key" in records.columns:
        keys = list(records.column("title_key"))
    else:
        keys = [normalise_title(r.title) for r in records]
    return np.array(keys, dtype=object)


def taste_attribute_table(
    matrix: ItemMatrix, vocabulary: Vocabulary
) -> tuple[tuple[str, ...], np.ndarray, sp.csr_matrix]:
    """:func:`attribute_keys` for every item of ``matrix`` at once, as a table.

    Returns the sorted attribute keys, each key's group (an index into ``TASTE_GROUPS``) and
    an items x keys matrix holding 1 where an item has a key. Vectorised over the matrix's
    columns, so it is cheap for the candidates of one request.
    """
    n = len(matrix)
    rows_all = np.arange(n, dtype=np.int64)
    keys: list[str] = []
    groups: list[int] = []
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # rows, cols, values

    def add(group: str, names: Sequence[str], rows: np.ndarray, cols: np.ndarray,
            values: np.ndarray) -> None:
        parts.append((rows, cols + len(keys), values))
        keys.extend(f"{group}:{name}" for name in names)
        groups.extend([TASTE_GROUPS.index(group)] * len(names))

    for group, tags, ids in (("theme", matrix.themes, vocabulary.theme_ids),
                             ("mood", matrix.moods, vocabulary.mood_ids)):
        coo = sp.coo_matrix(tags)
        used = np.unique(coo.col)
        add(group, [ids[j] for j in used], coo.row.astype(np.int64),
            np.searchsorted(used, coo.col), np.ones(len(coo.row)))
    makers = np.asarray(matrix.maker)
    has_maker = makers > 0
    used = np.unique(makers[has_maker])
    names = (matrix.maker_names.take(used) if isinstance(matrix.maker_names, TextColumn)
             else [matrix.maker_names[c] for c in used])
    add("maker", names, rows_all[has_maker],
        np.searchsorted(used, makers[has_maker]), np.ones(int(has_maker.sum())))
    records = matrix.records
    year = item_years(matrix)
    has_year = year > 0
    decades = (year[has_year] // 10) * 10
    used = np.unique(decades)
    add("era", [f"{d}s" for d in used], rows_all[has_year], np.searchsorted(used, decades),
        np.ones(int(has_year.sum())))
    is_film = np.asarray(matrix.is_film)
    kinds = np.unique(is_film)
    add("kind", ["film" if k else "song" for k in kinds], rows_all,
        np.searchsorted(kinds, is_film), np.ones(n))
    item_ids = (records.ids if isinstance(records, ItemRecords)
                else np.array([r.id.encode("utf-8") for r in records], dtype="S"))
    add("item", [i.decode("utf-8") for i in item_ids], rows_all, rows_all, np.ones(n))

    order = sorted(range(len(keys)), key=keys.__getitem__)
    new_col = np.empty(len(keys), dtype=np.int64)
    new_col[order] = np.arange(len(keys))
    rows = np.concatenate([p[0] for p in parts])
    cols = new_col[np.concatenate([p[1] for p in parts])]
    values = np.concatenate([p[2] for p in parts])
    weights = sp.csr_matrix((values, (rows, cols)), shape=(n, len(keys)))
    return (tuple(keys[j] for j in order), np.asarray(groups, dtype=np.int64)[order], weights)


def query_vector(vectorizer: TfidfVectorizer, text: str) -> sp.csr_matrix:
    """``vectorizer.transform([text])``, without the cost it pays per call for every word of
    the vocabulary (it matters for a large catalogue's vocabulary) and for handling many
    documents: the text's known words counted with the vectorizer's own analyzer, then only
    they are weighted and normalised."""
    if vectorizer.norm not in ("l1", "l2", None):
        return sp.csr_matrix(vectorizer.transform([text]))
    known = vectorizer.vocabulary_
    per_word = Counter(j for j in map(known.get, vectorizer.build_analyzer()(text))
                       if j is not None)
    indices = np.array(sorted(per_word), dtype=np.int32)
    data = np.array([1 if vectorizer.binary else per_word[j] for j in indices.tolist()],
                    dtype=np.float64)
    if vectorizer.sublinear_tf:
        data = 1 + np.log(data)
    if vectorizer.use_idf:
        data = data * vectorizer.idf_[indices]
    if vectorizer.norm == "l2":
        total = float(np.sqrt(np.sum(data * data)))
    elif vectorizer.norm == "l1":
        total = float(np.sum(np.abs(data)))
    else:
        total = 0.0
    if total:
        data = data / total
    return sp.csr_matrix((data.astype(vectorizer.dtype), indices,
                          np.array([0, len(indices)], dtype=np.int32)), shape=(1, len(known)))


@dataclass(frozen=True)
class RequestVector:
    moods: np.ndarray
    themes: np.ndarray
    text: sp.csr_matrix
    intensity: int
    mood_ids: tuple[str, ...]
    theme_ids: tuple[str, ...]


def request_vector(
    request: SessionRequest, matrix: ItemMatrix, vocabulary: Vocabulary
) -> RequestVector:
    """The request in the item space: chosen and inferred moods, themes and words."""
    inferred_moods, themes = vocabulary.infer_tags(request.prompt)
    moods = tuple(dict.fromkeys(request.moods + inferred_moods))
    m = np.array([1.0 if mid in moods else 0.0 for mid in vocabulary.mood_ids], dtype=np.float32)
    t = np.array([1.0 if tid in themes else 0.0 for tid in vocabulary.theme_ids],
                 dtype=np.float32)
    if request.prompt and len(matrix):
        q = query_vector(matrix.vectorizer, request.prompt)
    else:
        q = _no_words(matrix.text.shape[1])
    return RequestVector(m, t, q, request.intensity, moods, themes)


@lru_cache(maxsize=8)
def _no_words(width: int) -> sp.csr_matrix:
    """The word row of a request without words, one per vocabulary width: shared by every
    such request, so its arrays are read-only (building it costs 23 us, a request's)."""
    empty = sp.csr_matrix((1, width), dtype=np.float32)
    for array in (empty.data, empty.indices, empty.indptr):
        array.setflags(write=False)
    return empty


def add_columns(total: np.ndarray, by_column: sp.csc_matrix, columns: np.ndarray,
                weights: np.ndarray) -> None:
    """``total += by_column[:, columns] @ weights``, reading only those columns' rows."""
    for j, w in zip(columns, weights, strict=True):
        start, end = by_column.indptr[j], by_column.indptr[j + 1]
        # Distinct within one column. As numpy's own index type: with the table's 32-bit
        # indices, the read and the write would each convert them (half the time).
        rows = by_column.indices[start:end].astype(np.intp)
        total[rows] += by_column.data[start:end] * np.float32(w)


@dataclass(frozen=True)
class RequestMatch:
    """How well each row matches one request: ``PAIR_FEATURES``' first three columns (its
    moods, themes and words), each None when the request has none. Retrieval works them out
    for every row from the inverted indexes; a request's candidates carry theirs (in
    ``extra["request_match"]``), so their features need no cut of the sparse tables."""

    request: RequestVector
    mood: np.ndarray | None
    theme: np.ndarray | None
    text: np.ndarray | None

    @classmethod
    def of(cls, req: RequestVector, n: int, moods_by_tag: sp.csc_matrix,
           themes_by_tag: sp.csc_matrix, text_by_term: sp.csc_matrix,
           mood_columns: np.ndarray | None = None,
           kept: KeptByBytes | None = None) -> RequestMatch:
        """Every row's match, from the tag and word tables in column order.

        ``mood_columns`` is the mood table held dense, one row per mood (float32, as the
        table): each mood then adds in one contiguous pass instead of a scattered one over
        its carriers (a mood is carried by about one item in seven: 12 against 78 us at
        100,000 items). The sums are the same, added in the same order.

        With ``kept`` (one per catalogue table), the mood and theme columns are kept by the
        requested moods or themes and their weights, read-only: a catalogue knows a few
        dozen moods and themes, and requests ask for the same few again and again, where
        each column is a pass over every row (400 KB at 100,000 items). The words of a
        request's own text are worked out each time."""

        def added(by_column: sp.csc_matrix, columns: np.ndarray, weights: np.ndarray
                  ) -> np.ndarray:
            total = np.zeros(n, dtype=np.float32)
            add_columns(total, by_column, columns, weights)
            return total

        def added_dense(columns: np.ndarray, weights: np.ndarray) -> np.ndarray:
            # 0 + x is x, and a row without the mood adds 0: the scattered sums exactly.
            total = mood_columns[columns[0]] * np.float32(weights[0])
            for j, w in zip(columns[1:], weights[1:], strict=True):
                total += mood_columns[j] * np.float32(w)
            return total

        def known(kind: str, columns: np.ndarray, weights: np.ndarray,
                  work: Callable[[], np.ndarray]) -> np.ndarray:
            if kept is None:
                return work()
            key = (kind, columns.tobytes(), np.asarray(weights).tobytes())
            column = kept.get(key)
            if column is None:
                column = work()
                column.setflags(write=False)  # shared by every request that asks the same
                kept.put(key, column)
            return column

        n_moods, n_themes = float(req.moods.sum()), float(req.themes.sum())
        moods, themes = np.flatnonzero(req.moods), np.flatnonzero(req.themes)
        mood = theme = None
        if n_moods:
            weights = req.moods[moods] / n_moods
            mood = known("mood", moods, weights,
                         lambda: added(moods_by_tag, moods, weights) if mood_columns is None
                         else added_dense(moods, weights))
        if n_themes:
            theme_weights = req.themes[themes] / n_themes
            theme = known("theme", themes, theme_weights,
                          lambda: added(themes_by_tag, themes, theme_weights))
        return cls(
            req,
            mood,
            theme,
            added(text_by_term, req.text.indices, req.text.data) if req.text.nnz else None)

    def take(self, rows: np.ndarray) -> RequestMatch:
        """The match of the rows at ``rows``, in that order."""
        return RequestMatch(*(self.request, *(None if column is None else column[rows]
                                              for column in (self.mood, self.theme, self.text))))


def pair_features(
    matrix: ItemMatrix, req: RequestVector, rows: np.ndarray | None = None,
    taste: np.ndarray | None = None,
) -> np.ndarray:
    """One row of ``PAIR_FEATURES`` per candidate item (all items when ``rows`` is None).

    ``taste`` holds the person's ``TASTE_FEATURES`` for every item of the matrix (see
    :func:`recommender.tastes.taste_features`); without it those columns are 0 (someone new).
    """
    if rows is None:
        # Every row, in order: read the matrix's own arrays (no copy through an index).
        n = len(matrix)
        intensity, is_film, aftercare = matrix.intensity, matrix.is_film, matrix.aftercare
    else:
        rows = np.asarray(rows)
        n = len(rows)
        intensity = matrix.intensity[rows]
        is_film, aftercare = matrix.is_film[rows], matrix.aftercare[rows]
    # Column-major: each feature is written as one contiguous column.
    out = np.zeros((n, len(PAIR_FEATURES)), dtype=np.float32, order="F")
    if n == 0:
        return out
    known = matrix.extra.get("request_match") if rows is None else None
    if known is not None and known.request is req:
        for j, column in enumerate((known.mood, known.theme, known.text)):
            if column is not None:
                out[:, j] = column
    else:
        _request_columns(out, matrix, req, rows)
    out[:, 3] = 1.0 - np.abs(intensity - req.intensity) / 4.0
    out[:, 4] = is_film
    out[:, 5] = aftercare
    if taste is not None:
        out[:, len(CONTENT_FEATURES):] = taste if rows is None else taste[rows]
    return out


def _request_columns(out: np.ndarray, matrix: ItemMatrix, req: RequestVector,
                     rows: np.ndarray | None) -> None:
    """``out``'s mood, theme and word match columns, from the sparse tables (of ``rows``,
    or of every row)."""
    n = out.shape[0]
    n_moods = float(req.moods.sum())
    n_themes = float(req.themes.sum())
    if n_moods:
        moods = matrix.moods if rows is None else matrix.moods[rows]
        out[:, 0] = moods @ req.moods / n_moods
    if n_themes:
        themes = matrix.themes if rows is None else matrix.themes[rows]
        out[:, 1] = themes @ req.themes / n_themes
    if req.text.nnz:
        if rows is None and matrix.text_by_term is not None:
            # Only the columns of the words asked for (the inverted index).
            match = np.zeros(n, dtype=np.float32)
            add_columns(match, matrix.text_by_term, req.text.indices, req.text.data)
            out[:, 2] = match
        else:
            text = matrix.text if rows is None else matrix.text[rows]
            query = np.zeros(text.shape[1], dtype=np.float32)
            query[req.text.indices] = req.text.data
            out[:, 2] = text @ query
