"""Build the bundled catalogue (``data/catalog.csv``) from the editorial lists and annotations.

The editorial lists (``sad_songs.csv``, ``sad_films.csv``, ``uplifting.csv``) say which songs
and films are widely named as sad or uplifting, and by whom. The annotation files beside them
(``annotations_<list>.csv``) give each row its moods, themes, intensity and duration, and say
whether to keep it. This module joins the two on (kind, title, name), drops rows that are not
kept or not annotated yet, merges rows that are the same item, and writes the catalogue plus a
``README.md`` describing the data folder.

Rebuild with ``python -m recommender.catalog.build``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

from recommender.catalog.identity import identity_key, normalise_name, normalise_title
from recommender.paths import CATALOG_CSV, DATA_DIR

CATALOG_HEADER = (
    "kind", "title", "artist", "director", "year", "duration_s", "tags", "spotify_id",
    "intensity", "aftercare", "duration_estimated", "sources",
)
ANNOTATION_HEADER = (
    "kind", "title", "name", "moods", "themes", "intensity", "duration_s",
    "duration_estimated", "keep", "note",
)
KINDS = ("song", "film")
MAX_MOODS = 3
MAX_THEMES = 3


@dataclass(frozen=True)
class EditorialList:
    """One editorial CSV, the column naming the artist/director, and its annotation file."""

    file: str
    name_column: str
    annotations: str
    aftercare: bool


EDITORIAL_LISTS = (
    EditorialList("sad_songs.csv", "artist", "annotations_songs.csv", aftercare=False),
    EditorialList("sad_films.csv", "director", "annotations_films.csv", aftercare=False),
    EditorialList("uplifting.csv", "artist_or_director", "annotations_uplifting.csv",
                  aftercare=True),
)


class CatalogBuildError(ValueError):
    """An input file cannot be used at all (missing, or a wrong header)."""


@dataclass(frozen=True)
class DroppedRow:
    file: str
    line: int
    kind: str
    title: str
    name: str
    reason: str


@dataclass(frozen=True)
class MergedRow:
    """A row folded into an item that an earlier row already introduced."""

    file: str
    line: int
    kind: str
    title: str
    name: str
    kept_title: str
    kept_name: str


@dataclass
class BuildReport:
    out_path: Path
    songs: int = 0
    films: int = 0
    aftercare: int = 0
    rows_read: int = 0
    dropped: list[DroppedRow] = field(default_factory=list)
    merged: list[MergedRow] = field(default_factory=list)

    @property
    def items(self) -> int:
        return self.songs + self.films

    def summary(self) -> str:
        return (
            f"wrote {self.items} items ({self.songs} songs, {self.films} films, "
            f"{self.aftercare} aftercare) to {self.out_path}; read {self.rows_read} rows, "
            f"dropped {len(self.dropped)}, merged {len(self.merged)} duplicates"
        )


@dataclass
class _Item:
    """A catalogue item being assembled from one or more editorial rows."""

    kind: str
    title: str
    name: str
    year: str
    moods: list[str]
    themes: list[str]
    intensity: int
    duration_s: int
    duration_estimated: bool
    aftercare: bool
    sources: list[str]

    def absorb(self, other: _Item) -> None:
        """Fold a duplicate row in: union of tags and sources, the better facts win."""
        self.moods += [m for m in other.moods if m not in self.moods]
        self.themes += [t for t in other.themes if t not in self.themes]
        self.sources += [s for s in other.sources if s not in self.sources]
        self.aftercare = self.aftercare or other.aftercare
        self.year = self.year or other.year
        if self.duration_estimated and not other.duration_estimated:
            self.duration_s, self.duration_estimated = other.duration_s, False

    def sort_key(self) -> tuple[str, str, str, str, str]:
        return (self.kind, normalise_title(self.title), normalise_name(self.name),
                self.title, self.name)

    def as_row(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "title": self.title,
            "artist": self.name if self.kind == "song" else "",
            "director": self.name if self.kind == "film" else "",
            "year": self.year,
            "duration_s": str(self.duration_s),
            "tags": ";".join(self.moods + self.themes),
            "spotify_id": "",
            "intensity": str(self.intensity),
            "aftercare": _bool_text(self.aftercare),
            "duration_estimated": _bool_text(self.duration_estimated),
            "sources": ";".join(self.sources),
        }


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


def _split(cell: str | None) -> list[str]:
    return [part.strip() for part in (cell or "").split(";") if part.strip()]


def _read_rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """The rows of a CSV with the line each starts on (the header is line 1)."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise CatalogBuildError(f"{path.name}: missing columns {missing}")
        rows = []
        line = reader.line_num + 1
        for row in reader:
            rows.append((line, {k: (v or "").strip() for k, v in row.items() if k}))
            line = reader.line_num + 1
        return rows


def _load_vocabulary(path: Path) -> tuple[set[str], set[str]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {m["id"] for m in raw["moods"]}, {t["id"] for t in raw["themes"]}


def _annotation_problem(ann: dict[str, str], moods: set[str], themes: set[str]) -> str | None:
    """Why an annotation cannot be used, or None when it is sound."""
    ann_moods, ann_themes = _split(ann["moods"]), _split(ann["themes"])
    if not 1 <= len(ann_moods) <= MAX_MOODS:
        return f"annotation needs 1-{MAX_MOODS} moods"
    if len(ann_themes) > MAX_THEMES:
        return f"annotation has more than {MAX_THEMES} themes"
    unknown = [m for m in ann_moods if m not in moods] + [t for t in ann_themes if t not in themes]
    if unknown:
        return f"annotation uses tags outside the vocabulary: {', '.join(unknown)}"
    try:
        intensity, duration = int(ann["intensity"]), int(ann["duration_s"])
    except ValueError:
        return "annotation intensity or duration is not a whole number"
    if not 1 <= intensity <= 5:
        return "annotation intensity outside 1..5"
    if duration <= 0:
        return "annotation duration is not positive"
    if ann["duration_estimated"].lower() not in {"true", "false"}:
        return "annotation duration_estimated is not true/false"
    if ann["keep"].lower() not in {"true", "false"}:
        return "annotation keep is not true/false"
    return None


def _collect_items(
    editorial_dir: Path, moods: set[str], themes: set[str], report: BuildReport
) -> list[_Item]:
    items: dict[str, _Item] = {}
    for listing in EDITORIAL_LISTS:
        source_path = editorial_dir / listing.file
        if not source_path.exists():
            raise CatalogBuildError(f"missing editorial list {source_path}")
        source_rows = _read_rows(source_path, ("kind", "title", listing.name_column, "year",
                                               "sources"))
        annotation_path = editorial_dir / listing.annotations
        annotations: dict[tuple[str, str, str], deque[tuple[int, dict[str, str]]]]
        annotations = defaultdict(deque)
        if annotation_path.exists():
            for line, ann in _read_rows(annotation_path, ANNOTATION_HEADER):
                annotations[(ann["kind"], ann["title"], ann["name"])].append((line, ann))

        for line, row in source_rows:
            report.rows_read += 1
            kind, title, name = row["kind"], row["title"], row[listing.name_column]

            def drop(reason: str, *, file: str = listing.file, line: int = line,
                     kind: str = kind, title: str = title, name: str = name) -> None:
                report.dropped.append(DroppedRow(file, line, kind, title, name, reason))

            pending = annotations.get((kind, title, name))
            if not pending:
                drop("not annotated yet")
                continue
            _, ann = pending.popleft()
            problem = _annotation_problem(ann, moods, themes)
            if kind not in KINDS:
                drop(f"unknown kind {kind!r}")
            elif not title:
                drop("no title")
            elif problem:
                drop(problem)
            elif ann["keep"].lower() == "false":
                drop(ann["note"] or "marked not to keep")
            elif not _split(row["sources"]):
                drop("no sources")
            else:
                item = _Item(
                    kind=kind, title=title, name=name, year=row["year"],
                    moods=_split(ann["moods"]), themes=_split(ann["themes"]),
                    intensity=int(ann["intensity"]), duration_s=int(ann["duration_s"]),
                    duration_estimated=ann["duration_estimated"].lower() == "true",
                    aftercare=listing.aftercare, sources=_split(row["sources"]),
                )
                key = identity_key(kind, title, name)
                if key in items:
                    kept = items[key]
                    kept.absorb(item)
                    report.merged.append(MergedRow(listing.file, line, kind, title, name,
                                                   kept.title, kept.name))
                else:
                    items[key] = item

        for leftovers in annotations.values():
            for ann_line, ann in leftovers:
                report.dropped.append(DroppedRow(
                    listing.annotations, ann_line, ann["kind"], ann["title"], ann["name"],
                    f"annotation matches no row of {listing.file}",
                ))
    return sorted(items.values(), key=_Item.sort_key)


def build_catalog(
    editorial_dir: Path, out_path: Path, vocabulary_path: Path | None = None
) -> BuildReport:
    """Join the editorial lists with their annotations and write the catalogue CSV.

    Also writes ``README.md`` next to ``out_path``, describing the data folder and listing
    every dropped row with its file, line and reason.
    """
    editorial_dir, out_path = Path(editorial_dir), Path(out_path)
    vocabulary_path = vocabulary_path or editorial_dir.parent / "vocabulary.json"
    moods, themes = _load_vocabulary(vocabulary_path)
    report = BuildReport(out_path=out_path)
    items = _collect_items(editorial_dir, moods, themes, report)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CATALOG_HEADER, lineterminator="\n")
        writer.writeheader()
        for item in items:
            writer.writerow(item.as_row())

    report.songs = sum(1 for i in items if i.kind == "song")
    report.films = sum(1 for i in items if i.kind == "film")
    report.aftercare = sum(1 for i in items if i.aftercare)
    (out_path.parent / "README.md").write_text(_data_readme(report, out_path.name),
                                                encoding="utf-8")
    return report


def _cell(text: str) -> str:
    """Text that is safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ") or "-"


def _data_readme(report: BuildReport, catalog_name: str) -> str:
    lines = [
        "# data/",
        "",
        "What goodcry ships with. Everything here is plain text; the catalogue is generated.",
        "This file is generated too, by the catalogue build: edit `recommender/catalog/build.py`,",
        "not this file.",
        "",
        "## Files",
        "",
        "| file | what it is |",
        "|---|---|",
        f"| `{catalog_name}` | The bundled catalogue: {report.items} items ({report.songs} songs, "
        f"{report.films} films; {report.aftercare} of them aftercare). Built, never edited by "
        "hand. |",
        "| `vocabulary.json` | The mood and theme ids every tag must come from, with labels, "
        "theme keywords and synonyms for free-form tags. |",
        "| `editorial/sad_songs.csv`, `editorial/sad_films.csv` | Songs and films that public "
        "lists, polls and articles name as sad (`kind`, `title`, `artist` or `director`, "
        "`year`, `sources`). |",
        "| `editorial/uplifting.csv` | Songs and films those lists name as uplifting or "
        "feel-good: the aftercare that closes a session. |",
        "| `editorial/SOURCES.md` | What each short name in a `sources` cell is: the list, its "
        "publisher and the page it was read from. Only facts (titles, names, years, membership of "
        "a list) were taken from them. |",
        "| `editorial/annotations_*.csv` | One row per editorial row, written by the project: "
        "`kind,title,name,moods,themes,intensity,duration_s,duration_estimated,keep,note`. "
        "`name` is the artist or director exactly as in the list, so rows join on "
        "(kind, title, name). |",
        "",
        "## Rebuilding",
        "",
        "```",
        "python -m recommender.catalog.build",
        "```",
        "",
        "The build joins every editorial row with its annotation, drops rows that are not "
        "annotated or marked `keep=false`, and merges rows that are the same item (same kind, "
        "title and artist/director once case, accents, \"feat.\" credits, edition suffixes, "
        "leading articles and punctuation are set aside; see `recommender/catalog/identity.py`). "
        "A merged item keeps the first row's title, name and intensity (songs, then films, then "
        "aftercare), gains the union of tags and sources, a known duration over an estimated "
        "one, and is aftercare if any of its rows came from `uplifting.csv`. Rows are sorted by "
        "kind, then normalised title and name. `tests/test_catalog_integrity.py` checks the "
        "committed catalogue equals a fresh build.",
        "",
        f"## Columns of `{catalog_name}`",
        "",
        "| column | meaning |",
        "|---|---|",
        "| `kind` | `song` or `film` |",
        "| `title` | as the first list naming it spells it |",
        "| `artist` | performer of a song (empty for films) |",
        "| `director` | director of a film (empty for songs) |",
        "| `year` | release year, empty when unknown |",
        "| `duration_s` | length in seconds |",
        "| `tags` | `;`-separated: moods first, then themes; all ids from `vocabulary.json` |",
        "| `spotify_id` | empty here; filled when tracks are matched against Spotify |",
        "| `intensity` | 1 (gentle) to 5 (devastating); items only on the uplifting list are 1-2, "
        "a sad item that is also on it keeps its sad intensity |",
        "| `aftercare` | `true` for items from `uplifting.csv`, suited to close a session gently |",
        "| `duration_estimated` | `true` when `duration_s` is an approximation, or a typical "
        "value (about 220 s for a song, 6600 s for a film) when even that is unknown |",
        "| `sources` | `;`-separated short names of the lists naming the item "
        "(see `editorial/SOURCES.md`) |",
        "",
        "Themes are given only where the story is known; `suicide` marks items whose story turns "
        "on one, so sessions can keep them away from people at risk.",
        "",
        f"## Dropped rows ({len(report.dropped)})",
        "",
    ]
    if report.dropped:
        lines += ["| file | line | kind | title | name | reason |", "|---|---|---|---|---|---|"]
        lines += [
            f"| `{d.file}` | {d.line} | {d.kind} | {_cell(d.title)} | {_cell(d.name)} | "
            f"{_cell(d.reason)} |"
            for d in sorted(report.dropped, key=lambda d: (d.file, d.line))
        ]
    else:
        lines.append("None.")
    lines += ["", f"## Merged duplicates ({len(report.merged)})", ""]
    if report.merged:
        lines += ["| file | line | kind | title | name | merged into |",
                  "|---|---|---|---|---|---|"]
        lines += [
            f"| `{m.file}` | {m.line} | {m.kind} | {_cell(m.title)} | {_cell(m.name)} | "
            f"{_cell(m.kept_title)} / {_cell(m.kept_name)} |"
            for m in report.merged
        ]
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recommender.catalog.build",
        description="Build the bundled catalogue from the editorial lists and annotations.",
    )
    parser.add_argument("--editorial-dir", type=Path, default=DATA_DIR / "editorial")
    parser.add_argument("--out", type=Path, default=CATALOG_CSV)
    args = parser.parse_args(argv)
    try:
        report = build_catalog(args.editorial_dir, args.out)
    except CatalogBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
