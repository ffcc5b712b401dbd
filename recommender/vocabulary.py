"""Moods, themes and the synonyms that map free-form tags and words onto them."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from recommender.paths import VOCABULARY_JSON

THEME_MOODS = {
    "loss_parent": "grief",
    "loss_partner": "grief",
    "loss_child": "grief",
    "loss_pet": "grief",
    "loss_friend": "grief",
    "death": "grief",
    "breakup": "heartbreak",
    "unrequited_love": "heartbreak",
    "distance": "longing",
    "homesickness": "longing",
}


@dataclass(frozen=True)
class Mood:
    id: str
    label: str
    description: str


@dataclass(frozen=True)
class Theme:
    id: str
    label: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class TagMapping:
    """The outcome of mapping raw tags onto the vocabulary."""

    tags: tuple[str, ...]
    unknown: tuple[str, ...]


def _fold(text: str) -> str:
    if text.isascii():  # nothing to decompose, no accents: the quick way, the same answer
        return text.lower().strip()
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.lower().replace("\u2019", "'").strip()


# A word as keyword patterns delimit it (letters, digits, underscore, apostrophe).
_WORD = re.compile(r"[\w']+")


class Vocabulary:
    """The moods and themes goodcry knows, loaded from ``data/vocabulary.json``."""

    def __init__(self, moods: list[Mood], themes: list[Theme], synonyms: dict[str, str]):
        self.moods = moods
        self.themes = themes
        self.mood_ids = tuple(m.id for m in moods)
        self.theme_ids = tuple(t.id for t in themes)
        self.tag_ids = self.mood_ids + self.theme_ids
        self._known = set(self.tag_ids)
        self._moods, self._themes = frozenset(self.mood_ids), frozenset(self.theme_ids)
        # A mood's label wins over a theme's of the same id, as the moods are looked at first.
        self._labels = {**{t.id: t.label for t in themes}, **{m.id: m.label for m in moods}}
        self.synonyms = {_fold(k): v for k, v in synonyms.items()}
        unknown_targets = set(self.synonyms.values()) - self._known
        if unknown_targets:
            raise ValueError(f"tag synonyms point at unknown tags: {sorted(unknown_targets)}")
        self._keyword_patterns = self._compile_keywords()
        # Each keyword's pattern under the first word it starts with: a text is searched only
        # with the patterns whose first word it holds (a match starts at a whole word).
        self._patterns_by_word: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
        for tag, kw, pattern in self._keyword_patterns:
            first = _WORD.match(kw)
            self._patterns_by_word.setdefault(first.group() if first else "", []).append(
                (tag, pattern))

    @classmethod
    def load(cls, path: Path = VOCABULARY_JSON) -> Vocabulary:
        raw = json.loads(path.read_text(encoding="utf-8"))
        moods = [Mood(m["id"], m["label"], m["description"]) for m in raw["moods"]]
        themes = [Theme(t["id"], t["label"], tuple(t.get("keywords", ()))) for t in raw["themes"]]
        return cls(moods, themes, raw.get("tag_synonyms", {}))

    def is_mood(self, tag: str) -> bool:
        return tag in self._moods

    def is_theme(self, tag: str) -> bool:
        return tag in self._themes

    def label(self, tag: str) -> str:
        label = self._labels.get(tag)
        return label if label is not None else tag.replace("_", " ")

    def map_tags(self, raw_tags: list[str]) -> TagMapping:
        """Map raw tags onto vocabulary ids; keep unknown ones as free-form tags."""
        out: list[str] = []
        unknown: list[str] = []
        for raw in raw_tags:
            tag = _fold(raw)
            if not tag:
                continue
            if tag in self._known:
                mapped = tag
            elif tag in self.synonyms:
                mapped = self.synonyms[tag]
            elif tag.replace(" ", "_") in self._known:
                mapped = tag.replace(" ", "_")
            else:
                mapped = re.sub(r"\s+", " ", tag)
                unknown.append(mapped)
            if mapped not in out:
                out.append(mapped)
        return TagMapping(tuple(out), tuple(unknown))

    def _compile_keywords(self) -> list[tuple[str, str, re.Pattern[str]]]:
        pairs: list[tuple[str, str]] = []
        for theme in self.themes:
            pairs.extend((theme.id, kw) for kw in theme.keywords)
        for word, tag in self.synonyms.items():
            pairs.append((tag, word))
        for mood in self.moods:
            pairs.append((mood.id, mood.id))
        compiled = []
        for tag, kw in pairs:
            pattern = r"(?<![\w'])" + re.escape(_fold(kw)) + r"(?![\w'])"
            compiled.append((tag, _fold(kw), re.compile(pattern)))
        return compiled

    def infer_tags(self, text: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Moods and themes that a person's free text speaks of, in vocabulary order."""
        if not text:
            return (), ()
        folded = _fold(text)
        words = set(_WORD.findall(folded)) | {""}
        found = {tag for word in words for tag, pattern in self._patterns_by_word.get(word, ())
                 if pattern.search(folded)}
        moods = tuple(m for m in self.mood_ids if m in found)
        themes = tuple(t for t in self.theme_ids if t in found)
        # Some themes carry their mood even when the word for it was not said.
        implied = {THEME_MOODS[t] for t in themes if t in THEME_MOODS}
        moods = tuple(m for m in self.mood_ids if m in found or m in implied)
        return moods, themes


@lru_cache(maxsize=1)
def default_vocabulary() -> Vocabulary:
    return Vocabulary.load()
