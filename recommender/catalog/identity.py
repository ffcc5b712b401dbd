"""Identity of a catalogue item: the same song or film however a source spells it.

Two rows are the same item when they have the same kind, the same normalised title and the same
normalised artist (songs) or director (films). Normalising folds case and accents, drops
"feat." credits, edition suffixes such as "- Remastered 2011" or "(Live)", leading articles,
punctuation and extra whitespace.
"""

from __future__ import annotations

import re
import unicodedata

# "feat. X" / "ft. X" / "featuring X", in brackets anywhere or trailing without brackets.
_FEATURING_IN_BRACKETS = re.compile(
    r"\s*[\(\[]\s*(?:feat\b\.?|ft\b\.?|featuring\b|with\s)[^\)\]]*[\)\]]", re.IGNORECASE
)
_FEATURING_TRAILING = re.compile(r"\s+(?:feat\b\.?|ft\.|featuring\b).*$", re.IGNORECASE)

# What an edition suffix says once its dash or brackets are taken away.
_EDITION = (
    r"(?:\d{4}\s+)?(?:digital(?:ly)?\s+)?"
    r"(?:remaster(?:ed)?|live|radio\s+edit|single\s+edit|edit|mono|stereo|demo"
    r"|single\s+version|album\s+version|[\w']+\s+version|[\w']+\s+mix|bonus\s+track)"
    r"(?:\b.*)?"
)
_EDITION_AFTER_DASH = re.compile(r"\s+[-\u2013\u2014]\s+" + _EDITION + r"$", re.IGNORECASE)
_EDITION_IN_BRACKETS = re.compile(r"\s*[\(\[]\s*" + _EDITION + r"\s*[\)\]]$", re.IGNORECASE)

_LEADING_ARTICLE = re.compile(r"^(?:the|a|an)\s+(?=\S)")
_APOSTROPHES_AND_DOTS = re.compile(r"['\u2018\u2019`.]")
_OTHER_PUNCTUATION = re.compile(r"[^\w\s]|_")
_WHITESPACE = re.compile(r"\s+")


def _fold(text: str) -> str:
    """Lower case without accents (NFKD, combining marks dropped)."""
    if text.isascii():  # nothing to decompose: the common case, kept fast for bulk imports
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _drop_featuring(text: str) -> str:
    text = _FEATURING_IN_BRACKETS.sub("", text)
    return _FEATURING_TRAILING.sub("", text)


def _drop_edition_suffixes(text: str) -> str:
    while True:
        shorter = _EDITION_IN_BRACKETS.sub("", _EDITION_AFTER_DASH.sub("", text)).strip()
        if shorter == text or not shorter:
            return text
        text = shorter


def _squash(text: str) -> str:
    text = text.replace("&", " and ")
    text = _APOSTROPHES_AND_DOTS.sub("", text)
    text = _OTHER_PUNCTUATION.sub(" ", text)
    text = _WHITESPACE.sub(" ", text).strip()
    return _LEADING_ARTICLE.sub("", text)


# Folded text made only of these, with no "feat"/"ft." credit, has no credit or edition
# suffix to drop and nothing but dots and apostrophes to squash: most titles and names.
_PLAIN = re.compile(r"[a-z0-9 .'`]*")
_ARTICLES = frozenset({"the", "a", "an"})


def _is_plain(folded: str) -> bool:
    return _PLAIN.fullmatch(folded) is not None and "feat" not in folded and "ft." not in folded


def _squash_plain(folded: str) -> str:
    """:func:`_squash` of plain text (see ``_PLAIN``), without the regular expressions: a
    bulk import normalises a million titles."""
    words = folded.replace(".", "").replace("'", "").replace("`", "").split()
    if len(words) > 1 and words[0] in _ARTICLES:
        del words[0]
    return " ".join(words)


def normalise_title(title: str) -> str:
    """The comparable form of a song or film title.

    >>> normalise_title("The Boys of Summer - Remastered 2011")
    'boys of summer'
    """
    text = _fold(title or "").strip()
    if _is_plain(text):
        return _squash_plain(text)
    text = _drop_edition_suffixes(_drop_featuring(text))
    return _squash(text)


def normalise_name(name: str) -> str:
    """The comparable form of an artist or director name.

    >>> normalise_name("Mark Ronson feat. Bruno Mars")
    'mark ronson'
    """
    text = _fold(name or "").strip()
    if _is_plain(text):
        return _squash_plain(text)
    return _squash(_drop_featuring(text))


def identity_key(kind: str, title: str, name: str) -> str:
    """The key two rows share exactly when they are the same item."""
    return f"{(kind or '').strip().lower()}|{normalise_title(title)}|{normalise_name(name)}"
