"""Item matrices kept on disk, one per catalogue generation, memory-mapped by every worker.

A large catalogue's matrix takes a while to build (a bulk load and a TF-IDF fit), so it is
built once (by the importer, by ``goodcry serve`` before it forks, or by the first worker
that needs it), written as plain ``.npy`` arrays, and opened read-only with ``mmap``: the
workers of one machine share its pages instead of each holding a copy.

Artefacts are named by the catalogue generation (a token renewed with every catalogue
revision, see :mod:`recommender.store.catalog`), so a changed catalogue never meets a
stale matrix.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sqlalchemy.orm import Session

from recommender.bulk_work import collector_paused
from recommender.features import ItemIndex, ItemMatrix, ItemRecords, TextColumn
from recommender.paths import PROJECT_ROOT
from recommender.store.catalog import catalog_generation, catalog_revision, item_frames
from recommender.vocabulary import Vocabulary

log = logging.getLogger(__name__)

# Below this many items a matrix is built in memory in well under a second: not worth a file.
PERSIST_MIN_ITEMS = 20_000
# Artefacts of other generations untouched for this long are removed.
STALE_AFTER_S = 24 * 3600
FORMAT = "3"  # 3: the vectoriser pickled with the standard (C) pickler

_ARRAYS = ("intensity", "duration_s", "is_film", "aftercare", "maker", "has_suicide_theme")
_SPARSE = ("moods", "themes", "text")
_TEXT_COLUMNS = ("title", "artist", "director", "tags", "spotify_uri", "maker_key",
                 "title_key")


def default_cache_dir() -> Path:
    """``GOODCRY_MATRIX_CACHE``, or ``item-matrices`` in the instance folder."""
    configured = os.environ.get("GOODCRY_MATRIX_CACHE")
    return Path(configured) if configured else PROJECT_ROOT / "instance" / "item-matrices"


def _save_sparse(directory: Path, name: str, matrix: sp.spmatrix) -> None:
    np.save(directory / f"{name}.data.npy", matrix.data)
    np.save(directory / f"{name}.indices.npy", matrix.indices)
    np.save(directory / f"{name}.indptr.npy", matrix.indptr)
    np.save(directory / f"{name}.shape.npy", np.array(matrix.shape, dtype=np.int64))


def _load_sparse(directory: Path, name: str, kind=sp.csr_matrix):
    def part(p: str) -> np.ndarray:
        return np.asarray(np.load(directory / f"{name}.{p}.npy", mmap_mode="r"))

    shape = tuple(int(x) for x in np.load(directory / f"{name}.shape.npy"))
    return kind((part("data"), part("indices"), part("indptr")), shape=shape, copy=False)


def save_matrix(matrix: ItemMatrix, directory: Path) -> None:
    """Write ``matrix`` to ``directory`` (atomically: a temporary folder, then a rename)."""
    tmp = directory.with_name(f"{directory.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    records = matrix.records
    if not isinstance(records, ItemRecords) or records.rows is not None:
        records = ItemRecords.from_records(list(records))
    np.save(tmp / "ids.npy", records.ids)
    for name in _ARRAYS:
        np.save(tmp / f"{name}.npy", np.asarray(getattr(matrix, name)))
    np.save(tmp / "year.npy", records.columns["year"])
    np.save(tmp / "record_intensity.npy", records.columns["intensity"])
    for name in _TEXT_COLUMNS:
        col: TextColumn = records.columns[name]
        np.save(tmp / f"{name}.data.npy", col.data)
        np.save(tmp / f"{name}.offsets.npy", col.offsets)
    for name in _SPARSE:
        _save_sparse(tmp, name, getattr(matrix, name))
    by_term = matrix.text_by_term
    if by_term is None:
        by_term = sp.csc_matrix(matrix.text)
    _save_sparse(tmp, "text_by_term", by_term)
    names = TextColumn.from_strings(list(matrix.maker_names))
    np.save(tmp / "maker_names.data.npy", names.data)
    np.save(tmp / "maker_names.offsets.npy", names.offsets)
    # The standard pickler: joblib's pure-Python one takes seconds on a large vocabulary.
    with open(tmp / "vectorizer.pickle", "wb") as fh:
        pickle.dump(matrix.vectorizer, fh, protocol=pickle.HIGHEST_PROTOCOL)
    (tmp / "revision").write_text(str(matrix.revision))
    (tmp / "format").write_text(FORMAT)
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(tmp, directory)


def _load_vectorizer(path: Path):
    with open(path, "rb") as fh:  # our own artefact, written by save_matrix
        return pickle.load(fh)


def load_matrix(directory: Path) -> ItemMatrix:
    """Open a saved matrix; its arrays are memory-mapped read-only."""
    def arr(name: str) -> np.ndarray:
        # A plain ndarray view of the mapping (np.memmap's own indexing is slow per call).
        return np.asarray(np.load(directory / f"{name}.npy", mmap_mode="r"))

    ids = arr("ids")
    plain = {name: arr(name) for name in _ARRAYS}
    columns = {
        name: TextColumn(arr(f"{name}.data"), arr(f"{name}.offsets")) for name in _TEXT_COLUMNS
    }
    columns.update(
        is_film=plain["is_film"], aftercare=plain["aftercare"],
        duration_s=plain["duration_s"], year=arr("year"), intensity=arr("record_intensity"),
    )
    records = ItemRecords(ids, columns)
    return ItemMatrix(
        records=records,
        index=ItemIndex(ids),
        moods=_load_sparse(directory, "moods"),
        themes=_load_sparse(directory, "themes"),
        text=_load_sparse(directory, "text"),
        vectorizer=_load_vectorizer(directory / "vectorizer.pickle"),
        revision=int((directory / "revision").read_text()),
        text_by_term=_load_sparse(directory, "text_by_term", sp.csc_matrix),
        maker_names=TextColumn(arr("maker_names.data"), arr("maker_names.offsets")),
        **plain,
    )


def build_from_store(db: Session, vocabulary: Vocabulary) -> ItemMatrix:
    """The catalogue's matrix, built from a bulk load of the store."""
    from recommender.features import build_item_matrix_from_frames

    revision = catalog_revision(db)
    with collector_paused():
        items, tags = item_frames(db)
        return build_item_matrix_from_frames(items, tags, vocabulary, revision)


def _prune(cache_dir: Path, keep: str) -> None:
    now = time.time()
    for entry in cache_dir.iterdir():
        if entry.name in (keep, ".lock") or not entry.is_dir():
            continue
        try:
            if now - entry.stat().st_mtime > STALE_AFTER_S:
                shutil.rmtree(entry, ignore_errors=True)
        except FileNotFoundError:
            continue


def cached_matrix(
    db: Session, vocabulary: Vocabulary, cache_dir: Path | None,
    *, persist_min_items: int = PERSIST_MIN_ITEMS, wait: bool = True,
) -> ItemMatrix | None:
    """The catalogue's matrix: from its artefact when there is one, else built (and saved
    when the catalogue is large enough to be worth it). One builder at a time per folder:
    with ``wait=False``, None when another process is building it right now."""
    generation = catalog_generation(db)
    if cache_dir is None or generation is None:
        return build_from_store(db, vocabulary)
    target = cache_dir / f"items-{generation}"
    if (target / "format").exists() and (target / "format").read_text() == FORMAT:
        return load_matrix(target)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        try:
            if (target / "format").exists():
                return load_matrix(target)
            started = time.monotonic()
            matrix = build_from_store(db, vocabulary)
            if len(matrix) < persist_min_items:
                return matrix
            save_matrix(matrix, target)
            _prune(cache_dir, target.name)
            log.info("built the item matrix for %d items in %.1f s", len(matrix),
                     time.monotonic() - started)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    # Serve from the mapped files, so this process shares pages with the other workers.
    return load_matrix(target)


def prepare_artefact(db: Session, vocabulary: Vocabulary, cache_dir: Path | None = None
                     ) -> ItemMatrix | None:
    """Build the current catalogue's artefact now if it is large enough to want one, so no
    worker has to build it while serving: its matrix when an artefact is ready, else None."""
    from recommender.store.catalog import count_items

    if count_items(db) < PERSIST_MIN_ITEMS:
        return None
    return cached_matrix(db, vocabulary, cache_dir or default_cache_dir())
