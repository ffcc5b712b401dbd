"""Import sad films from the MovieLens tag genome (GroupLens) that a user downloaded.

A MovieLens directory (ml-25m, ml-32m, ...) holds, among others:

- ``movies.csv``: ``movieId,title,genres``; titles carry the year, ``Up (2009)``, and move a
  leading article to the end, ``Shawshank Redemption, The (1994)``;
- ``genome-tags.csv``: ``tagId,tag`` (about 1,100 tags such as ``tearjerker``, ``sad``);
- ``genome-scores.csv``: ``movieId,tagId,relevance`` (relevance 0..1 for every film and tag;
  about 15 million rows, read as a stream).

Genome tags that the vocabulary knows (through its synonyms) and that score at least
``threshold`` become the film's moods and themes. A film comes in only when the genome says
it is sad enough: one of its tags at or above the threshold maps to a sad mood (``sad``,
``tearjerker``, ``depressing``, ``bittersweet``, ``loneliness`` ...). MovieLens names no
director, so a film merges with a catalogue film of the same title and year (within a year);
otherwise it comes in without one.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm import tqdm

from recommender.catalog.identity import normalise_title
from recommender.catalog.merge import Candidate, MergeReport, Problem, merge_candidates
from recommender.catalog.muse import DatasetFileError
from recommender.store.models import CatalogItem
from recommender.vocabulary import Vocabulary, default_vocabulary

SOURCE = "movielens"
DEFAULT_THRESHOLD = 0.7
SAD_MOODS = frozenset(
    {"grief", "heartbreak", "nostalgia", "loneliness", "regret", "longing", "release"}
)
HEADERS = {
    "movies.csv": ("movieId", "title", "genres"),
    "genome-tags.csv": ("tagId", "tag"),
    "genome-scores.csv": ("movieId", "tagId", "relevance"),
}
_YEAR = re.compile(r"\s*\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$")
_ARTICLE = re.compile(r"^(?P<rest>.+), (?P<article>The|A|An|Les|Le|La|L'|Il|Das|Der|Die|El)$")
_ALTERNATE_TITLE = re.compile(r"^(?P<main>.+?)\s+\((?:a\.k\.a\. )?[^()]+\)$")


@dataclass(frozen=True)
class Movie:
    line: int
    movie_id: str
    title: str
    year: int | None
    other_titles: tuple[str, ...] = ()


def _article_first(text: str) -> str:
    article = _ARTICLE.match(text.strip())
    if not article:
        return text.strip()
    joiner = "" if article.group("article").endswith("'") else " "
    return f"{article.group('article')}{joiner}{article.group('rest')}"


def split_title(raw: str) -> tuple[str, int | None, tuple[str, ...]]:
    """A MovieLens title as (title, year, other titles).

    >>> split_title("Shawshank Redemption, The (1994)")
    ('The Shawshank Redemption', 1994, ())
    >>> split_title("Hachiko: A Dog's Story (Hachi: A Dog's Tale) (2009)")
    ("Hachiko: A Dog's Story", 2009, ("Hachi: A Dog's Tale",))
    """
    text = raw.strip()
    year = None
    match = _YEAR.search(text)
    if match:
        year = int(match.group(1))
        text = text[: match.start()].strip()
    others: tuple[str, ...] = ()
    alternate = _ALTERNATE_TITLE.match(text)
    if alternate:  # "Amelie (Fabuleux destin d'Amélie Poulain, Le)": the first title leads
        inner = text[len(alternate.group("main")):].strip()[1:-1]
        inner = re.sub(r"^a\.k\.a\.\s*", "", inner)
        text = alternate.group("main").strip()
        others = (_article_first(inner),)
    return _article_first(text), year, others


def _open(directory: Path, name: str, report: MergeReport):
    path = directory / name
    if not path.is_file():
        raise DatasetFileError(f"{path}: missing; a MovieLens directory holds {', '.join(HEADERS)}")
    fh = path.open(newline="", encoding="utf-8-sig")
    reader = csv.reader(fh)
    header = tuple(c.strip() for c in next(reader, []))
    if header[: len(HEADERS[name])] != HEADERS[name]:
        fh.close()
        raise DatasetFileError(
            f"{name}:1: wrong header {','.join(header) or '(empty)'}; "
            f"expected {','.join(HEADERS[name])}"
        )
    return fh, reader


def read_wanted_tags(
    directory: Path, vocabulary: Vocabulary, report: MergeReport
) -> dict[str, str]:
    """Genome tag ids whose tag maps onto the vocabulary -> the vocabulary id."""
    fh, reader = _open(directory, "genome-tags.csv", report)
    wanted: dict[str, str] = {}
    with fh:
        for row in reader:
            if len(row) != 2 or not row[0].strip().isdigit() or not row[1].strip():
                report.errors.append(Problem("genome-tags.csv", reader.line_num,
                                             f"expected tagId,tag; got {','.join(row)!r}"))
                continue
            mapping = vocabulary.map_tags([row[1]])
            if mapping.tags and not mapping.unknown:
                wanted[row[0].strip()] = mapping.tags[0]
    return wanted


def read_movies(directory: Path, report: MergeReport) -> dict[str, Movie]:
    fh, reader = _open(directory, "movies.csv", report)
    movies: dict[str, Movie] = {}
    with fh:
        for row in reader:
            if len(row) != 3 or not row[0].strip().isdigit() or not row[1].strip():
                report.errors.append(Problem("movies.csv", reader.line_num,
                                             f"expected movieId,title,genres; got {row!r}"))
                continue
            title, year, others = split_title(row[1])
            movies[row[0].strip()] = Movie(reader.line_num, row[0].strip(), title, year, others)
    return movies


def read_relevant_scores(
    directory: Path,
    wanted: dict[str, str],
    threshold: float,
    report: MergeReport,
    progress: bool = False,
) -> dict[str, dict[str, float]]:
    """movieId -> {vocabulary id: best relevance} for wanted tags at or above ``threshold``."""
    fh, reader = _open(directory, "genome-scores.csv", report)
    scores: dict[str, dict[str, float]] = defaultdict(dict)
    rows = tqdm(reader, unit="scores", desc="reading genome-scores.csv") if progress else reader
    with fh:
        for row in rows:
            if len(row) != 3:
                report.errors.append(Problem("genome-scores.csv", reader.line_num,
                                             f"expected movieId,tagId,relevance; got {row!r}"))
                continue
            tag = wanted.get(row[1])
            if tag is None:
                continue
            try:
                relevance = float(row[2])
            except ValueError:
                report.errors.append(Problem("genome-scores.csv", reader.line_num,
                                             f"relevance must be a number, got {row[2]!r}"))
                continue
            if relevance >= threshold and relevance > scores[row[0]].get(tag, 0.0):
                scores[row[0]][tag] = relevance
    return scores


def intensity_for(best_sad_relevance: float) -> int:
    for bound, intensity in ((0.95, 5), (0.9, 4), (0.8, 3)):
        if best_sad_relevance >= bound:
            return intensity
    return 2


def _catalogue_films(db: Session) -> dict[str, list[tuple[int | None, str, str]]]:
    """Normalised title -> [(year, title, director)] of the stored films with a director."""
    films: dict[str, list[tuple[int | None, str, str]]] = defaultdict(list)
    for title, year, director in db.execute(
        select(CatalogItem.title, CatalogItem.year, CatalogItem.director)
        .where(CatalogItem.kind == "film", CatalogItem.director.is_not(None))
    ):
        films[normalise_title(title)].append((year, title, director))
    return films


def _same_film(
    movie: Movie, known: dict[str, list[tuple[int | None, str, str]]]
) -> tuple[str, str] | None:
    """(title, director) of the stored film this one is, by any of its titles and year."""
    for title in (movie.title, *movie.other_titles):
        for year, stored_title, director in known.get(normalise_title(title), []):
            if year is None or movie.year is None or abs(year - movie.year) <= 1:
                return stored_title, director
    return None


def import_movielens(
    db: Session,
    directory: Path | str,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    vocabulary: Vocabulary | None = None,
    progress: bool = False,
) -> MergeReport:
    """Import the films the tag genome calls sad; re-importing changes nothing. Commits."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    vocabulary = vocabulary or default_vocabulary()
    directory = Path(directory)
    report = MergeReport()
    wanted = read_wanted_tags(directory, vocabulary, report)
    movies = read_movies(directory, report)
    scores = read_relevant_scores(directory, wanted, threshold, report, progress)
    known_films = _catalogue_films(db)
    candidates: list[Candidate] = []
    for movie_id, tags in scores.items():
        movie = movies.get(movie_id)
        if movie is None:
            report.warnings.append(Problem(
                "genome-scores.csv", 0, f"movieId {movie_id} is not in movies.csv; ignored"))
            continue
        sad = [r for t, r in tags.items() if t in SAD_MOODS]
        if not sad:
            report.skipped += 1
            continue
        ranked = sorted(tags, key=lambda t: -tags[t])
        candidate = Candidate(
            kind="film", title=movie.title, year=movie.year,
            tags=tuple(t for t in ranked if vocabulary.is_mood(t))
            + tuple(t for t in ranked if vocabulary.is_theme(t)),
            intensity=intensity_for(max(sad)), source=SOURCE,
        )
        same = _same_film(movie, known_films)
        if same is not None:
            candidate = replace(candidate, title=same[0], director=same[1])
        candidates.append(candidate)
    report.skipped += sum(1 for m in movies if m not in scores)
    merge_candidates(db, candidates, report, vocabulary=vocabulary)
    db.commit()
    return report
