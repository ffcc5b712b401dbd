"""The vocabulary's lookups: every mood and theme by id, and what an unknown tag gets."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from recommender.vocabulary import Mood, Theme, Vocabulary, _fold, default_vocabulary


def test_every_mood_and_theme_is_found_with_its_label():
    vocabulary = default_vocabulary()
    assert vocabulary.moods and vocabulary.themes
    for mood in vocabulary.moods:
        assert vocabulary.is_mood(mood.id) and not vocabulary.is_theme(mood.id)
        assert vocabulary.label(mood.id) == mood.label
    for theme in vocabulary.themes:
        assert vocabulary.is_theme(theme.id) and not vocabulary.is_mood(theme.id)
        assert vocabulary.label(theme.id) == theme.label
    assert not vocabulary.is_mood("not_a_tag") and not vocabulary.is_theme("not_a_tag")
    assert vocabulary.label("not_a_tag") == "not a tag"


def test_a_mood_and_a_theme_of_one_id_read_as_the_mood():
    vocabulary = Vocabulary([Mood("longing", "Longing", "")],
                            [Theme("longing", "Long distance", ()), Theme("home", "Home", ())],
                            {})
    assert vocabulary.label("longing") == "Longing"
    assert vocabulary.label("home") == "Home"
    assert vocabulary.is_mood("longing") and vocabulary.is_theme("longing")


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_folding_plain_ascii_the_quick_way_gives_what_decomposing_gives(text):
    decomposed = unicodedata.normalize("NFKD", text)
    decomposed = "".join(c for c in decomposed if not unicodedata.combining(c))
    assert _fold(text) == decomposed.lower().replace("\u2019", "'").strip()


def test_folding_still_takes_accents_and_curly_apostrophes_off():
    assert _fold("  Ça m\u2019Émeut ") == "ca m'emeut"
