"""Import the MuSe musical sentiment dataset (Akiki & Burghardt, 2021) that a user downloaded.

MuSe gives about 90,000 songs with the Last.fm emotion tags they were found by (``seeds``) and
valence, arousal and dominance scores averaged over those tags (roughly 0 to 9; 5 is neutral).
The CSV header must hold::

    track,artist,seeds,number_of_emotion_tags,valence_tags,arousal_tags,dominance_tags,mbid,spotify_id,genre

(other columns, such as ``lastfm_url``, are ignored). ``seeds`` is a Python-list-like string,
``"['sad', 'melancholy']"``; its tags are mapped onto the vocabulary through its synonyms.

Only songs a cry session can use come in: those whose seeds name a mood of the vocabulary,
or, failing that, whose valence and arousal place them in a sad quadrant (low valence, low
arousal: grief; low valence, high arousal: release), plus clearly happy songs (high valence)
as aftercare. The rest are counted as skipped. Valence sets the intensity: the sadder, the
more intense. A malformed row is reported with its line and skipped; seeds outside the
vocabulary are reported once per tag with the first line using it; the rest import.
"""

from __future__ import annotations

import ast
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session
from tqdm import tqdm

from recommender.catalog.merge import Candidate, MergeReport, Problem, merge_candidates
from recommender.vocabulary import TagMapping, Vocabulary, default_vocabulary

SOURCE = "muse"
REQUIRED_COLUMNS = (
    "track", "artist", "seeds", "number_of_emotion_tags", "valence_tags", "arousal_tags",
    "dominance_tags", "mbid", "spotify_id", "genre",
)
VALENCE_LOW = 4.5
VALENCE_HIGH = 6.5
AROUSAL_HIGH = 5.0
SAD_MOODS = frozenset(
    {"grief", "heartbreak", "nostalgia", "loneliness", "regret", "longing", "release"}
)
UPLIFTING_MOODS = frozenset({"joy", "hope", "gratitude"})
_SPOTIFY_ID = re.compile(r"^(?:spotify:track:)?([0-9A-Za-z]{22})$")


class DatasetFileError(ValueError):
    """A dataset file cannot be imported at all (missing, or a wrong header)."""


@dataclass(frozen=True)
class MuseRow:
    line: int
    track: str
    artist: str
    seeds: tuple[str, ...]
    valence: float
    arousal: float
    spotify_id: str | None


_SIMPLE_SEEDS = re.compile(r"^\[\s*(?:'[^'\\]*'(?:\s*,\s*'[^'\\]*')*)?\s*,?\s*\]$")
_QUOTED = re.compile(r"'([^'\\]*)'")


def parse_seeds(text: str) -> tuple[str, ...]:
    """``"['sad', 'melancholy']"`` -> ``('sad', 'melancholy')``; ValueError if malformed."""
    text = text.strip()
    if not text:
        return ()
    if _SIMPLE_SEEDS.match(text):  # the usual shape, without the cost of a parse
        return tuple(v.strip() for v in _QUOTED.findall(text) if v.strip())
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"seeds is not a list of tags: {text[:60]!r}") from None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"seeds is not a list of tags: {text[:60]!r}")
    return tuple(v.strip() for v in value if v.strip())


def _score(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not 0.0 <= number <= 10.0:
        raise ValueError(f"{name} must be between 0 and 10, got {number}")
    return number


def parse_row(line: int, raw: dict[str, str | None]) -> MuseRow:
    if None in raw:
        raise ValueError("row has more cells than the header")
    if any(raw.get(c) is None for c in REQUIRED_COLUMNS):
        raise ValueError("row has fewer cells than the header")
    cells = {k: (v or "").strip() for k, v in raw.items()}
    if not cells["track"]:
        raise ValueError("track is empty")
    if not cells["artist"]:
        raise ValueError("artist is empty")
    spotify_id = None
    if cells["spotify_id"]:
        match = _SPOTIFY_ID.match(cells["spotify_id"])
        if not match:
            raise ValueError(f"spotify_id is not a Spotify track id: {cells['spotify_id']!r}")
        spotify_id = match.group(1)
    return MuseRow(
        line=line,
        track=cells["track"],
        artist=cells["artist"],
        seeds=parse_seeds(cells["seeds"]),
        valence=_score(cells["valence_tags"], "valence_tags"),
        arousal=_score(cells["arousal_tags"], "arousal_tags"),
        spotify_id=spotify_id,
    )


def quadrant_moods(valence: float, arousal: float) -> tuple[str, ...]:
    """The mood the valence/arousal quadrant suggests, when the seeds name none."""
    if valence < VALENCE_LOW:
        return ("release",) if arousal >= AROUSAL_HIGH else ("grief",)
    if valence >= VALENCE_HIGH:
        return ("joy",)
    return ()


def intensity_for(valence: float) -> int:
    """The sadder the song's tags, the more intense: 5 below 2.5 valence, 1 from 6.5 up."""
    for bound, intensity in ((2.5, 5), (3.5, 4), (VALENCE_LOW, 3), (VALENCE_HIGH, 2)):
        if valence < bound:
            return intensity
    return 1


def candidate_for(row: MuseRow, tags: tuple[str, ...], vocabulary: Vocabulary) -> Candidate | None:
    """The catalogue item for a row, or None when a cry session has no use for the song."""
    moods = [t for t in tags if vocabulary.is_mood(t)]
    themes = [t for t in tags if vocabulary.is_theme(t)]
    if not moods:
        moods = list(quadrant_moods(row.valence, row.arousal))
    sad = bool(SAD_MOODS.intersection(moods)) or (row.valence < VALENCE_LOW and bool(moods))
    uplifting = (not sad and row.valence >= VALENCE_HIGH
                 and bool(UPLIFTING_MOODS.intersection(moods)))
    if not (sad or uplifting):
        return None
    return Candidate(
        kind="song",
        title=row.track,
        artist=row.artist,
        tags=(*moods, *themes),
        spotify_uri=f"spotify:track:{row.spotify_id}" if row.spotify_id else None,
        intensity=intensity_for(row.valence),
        aftercare=uplifting,
        source=SOURCE,
    )


def read_candidates(
    fh, file: str, vocabulary: Vocabulary, report: MergeReport, bar: tqdm | None = None
) -> Iterator[Candidate]:
    """Candidates from an open MuSe CSV; problems go to ``report`` with file and line."""
    reader = csv.DictReader(fh)
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DatasetFileError(
            f"{file}:1: not a MuSe file: the header lacks {', '.join(missing)} "
            f"(expected {','.join(REQUIRED_COLUMNS)})"
        )
    mappings: dict[tuple[str, ...], TagMapping] = {}  # seed lists repeat: map each once
    unknown_first_line: dict[str, int] = {}
    unknown_rows: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        if bar is not None:
            bar.update(1)
        try:
            row = parse_row(line, raw)
        except ValueError as exc:
            report.errors.append(Problem(file, line, str(exc)))
            continue
        mapping = mappings.get(row.seeds)
        if mapping is None:
            mapping = mappings[row.seeds] = vocabulary.map_tags(list(row.seeds))
        for tag in mapping.unknown:
            unknown_first_line.setdefault(tag, line)
            unknown_rows[tag] = unknown_rows.get(tag, 0) + 1
        known = tuple(t for t in mapping.tags if t not in mapping.unknown)
        candidate = candidate_for(row, known, vocabulary)
        if candidate is None:
            report.skipped += 1
            continue
        yield candidate
    for tag, line in sorted(unknown_first_line.items(), key=lambda kv: kv[1]):
        rows = unknown_rows[tag]
        report.warnings.append(Problem(
            file, line,
            f"seed tag {tag!r} is not in the vocabulary; ignored "
            f"({rows} row{'s' if rows != 1 else ''}, first here)",
        ))


def import_muse(
    db: Session,
    path: Path | str,
    *,
    vocabulary: Vocabulary | None = None,
    progress: bool = False,
) -> MergeReport:
    """Import a MuSe CSV file; re-importing it changes nothing. Commits."""
    vocabulary = vocabulary or default_vocabulary()
    path = Path(path)
    report = MergeReport()
    total = None
    if progress:
        with path.open("rb") as fh:
            total = max(sum(1 for _ in fh) - 1, 0)
    bar = tqdm(total=total, unit="rows", desc=f"importing {path.name}") if progress else None
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            candidates = read_candidates(fh, path.name, vocabulary, report, bar)
            merge_candidates(db, candidates, report, vocabulary=vocabulary)
    finally:
        if bar is not None:
            bar.close()
    db.commit()
    return report
