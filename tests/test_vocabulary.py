"""The vocabulary's lookups: every mood and theme by id, and what an unknown tag gets."""

from __future__ import annotations

from recommender.vocabulary import Mood, Theme, Vocabulary, default_vocabulary


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
