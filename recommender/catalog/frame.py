"""The catalogue as a pandas DataFrame, for notebooks and analysis."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recommender.paths import CATALOG_CSV
from recommender.vocabulary import Vocabulary, default_vocabulary


def load_catalog_frame(path: Path | str = CATALOG_CSV,
                       vocabulary: Vocabulary | None = None) -> pd.DataFrame:
    """One row per item of a catalogue CSV (``data/catalog.csv`` by default).

    Adds ``tags`` as lists, ``moods`` and ``themes`` (the tags split by the vocabulary),
    ``decade`` (e.g. 1990; missing when the year is unknown) and ``minutes``.
    """
    vocabulary = vocabulary or default_vocabulary()
    frame = pd.read_csv(path, dtype={"spotify_id": "string", "sources": "string"},
                        keep_default_na=False, na_values={"year": [""]})
    frame["year"] = frame["year"].astype("Int64")
    frame["tags"] = frame["tags"].map(lambda cell: [t for t in cell.split(";") if t])
    frame["moods"] = frame["tags"].map(lambda tags: [t for t in tags if vocabulary.is_mood(t)])
    frame["themes"] = frame["tags"].map(lambda tags: [t for t in tags if vocabulary.is_theme(t)])
    frame["decade"] = (frame["year"] // 10) * 10
    frame["minutes"] = frame["duration_s"] / 60.0
    for flag in ("aftercare", "duration_estimated"):
        frame[flag] = frame[flag].astype(str).str.lower().eq("true")
    return frame


def moods_long(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (item, mood): the shape for counting moods by decade, kind or intensity."""
    return frame.explode("moods").dropna(subset=["moods"]).rename(columns={"moods": "mood"})
