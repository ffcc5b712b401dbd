"""The identity rules that decide when two rows are the same song or film."""

import pytest

from recommender.catalog.identity import identity_key, normalise_name, normalise_title


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Nothing Compares 2 U", "nothing compares 2 u"),
        ("HALLELUJAH", "hallelujah"),
        ("Amélie", "amelie"),
        ("Les Misérables", "les miserables"),
        ("Uptown Funk (feat. Bruno Mars)", "uptown funk"),
        ("Uptown Funk [ft. Bruno Mars]", "uptown funk"),
        ("Stay featuring Mikky Ekko", "stay"),
        ("The Boys of Summer - Remastered 2011", "boys of summer"),
        ("Heroes - 2017 Remaster", "heroes"),
        ("Let It Be (Remastered)", "let it be"),
        ("Hey Jude (Live)", "hey jude"),
        ("Don't Stop Me Now - Live at Wembley", "dont stop me now"),
        ("Mr. Blue Sky (Radio Edit)", "mr blue sky"),
        ("Hurt - Single Version", "hurt"),
        ("The Notebook", "notebook"),
        ("A Star Is Born", "star is born"),
        ("An Affair to Remember", "affair to remember"),
        ('"Heroes"', "heroes"),
        ("Monsters, Inc.", "monsters inc"),
        ("Marley & Me", "marley and me"),
        ("  Stand   by  Me ", "stand by me"),
    ],
)
def test_normalise_title(raw, expected):
    assert normalise_title(raw) == expected


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Live and Let Die", "live and let die"),
        ("I Wanna Dance with Somebody (Who Loves Me)", "i wanna dance with somebody who loves me"),
        ("Demons", "demons"),
        ("Mix Tape", "mix tape"),
    ],
)
def test_words_that_only_look_like_suffixes_stay(title, expected):
    assert normalise_title(title) == expected


def test_a_title_that_is_only_an_article_is_kept():
    assert normalise_title("A") == "a"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Sinéad O'Connor", "sinead oconnor"),
        ("The Beatles", "beatles"),
        ("Mark Ronson feat. Bruno Mars", "mark ronson"),
        ("Jay-Z ft. Alicia Keys", "jay z"),
        ("Bob Marley & the Wailers", "bob marley and the wailers"),
        ("Bob Marley and The Wailers", "bob marley and the wailers"),
        ("R.E.M.", "rem"),
        ("", ""),
    ],
)
def test_normalise_name(raw, expected):
    assert normalise_name(raw) == expected


def test_identity_key_joins_spellings_of_the_same_item():
    assert identity_key("song", "Let It Be - Remastered 2009", "The Beatles") == identity_key(
        "song", "let it be", "Beatles"
    )
    assert identity_key("film", "Amélie", "Jean-Pierre Jeunet") == identity_key(
        "film", "AMELIE", "Jean-Pierre Jeunet"
    )


def test_identity_key_separates_kinds_and_artists():
    assert identity_key("song", "Hurt", "Johnny Cash") != identity_key("song", "Hurt",
                                                                        "Nine Inch Nails")
    assert identity_key("song", "Up", "") != identity_key("film", "Up", "")


def test_plain_text_shortcut_equals_the_full_rules():
    """Plain ASCII text skips the regular expressions; it must come out as the full rules
    make it, over many random spellings built from the characters that matter."""
    import random

    from recommender.catalog import identity

    def full_title(title: str) -> str:
        text = identity._fold(title).strip()
        return identity._squash(identity._drop_edition_suffixes(identity._drop_featuring(text)))

    def full_name(name: str) -> str:
        return identity._squash(identity._drop_featuring(identity._fold(name).strip()))

    rng = random.Random(11)
    pieces = ["the", "a", "an", "The", "A ", "feat", "ft.", "Ft", "featuring", ".", "'", "`",
              " ", "  ", "\t", "-", "(", ")", "live", "remaster", "2011", "&", "_", ",", "é",
              "x", "Rain", "no.", "0", "THE", "theory", "an.", "a'"]
    plain_seen = 0
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 7)))
        assert normalise_title(text) == full_title(text), text
        assert normalise_name(text) == full_name(text), text
        plain_seen += identity._is_plain(identity._fold(text).strip())
    assert plain_seen > 1000  # the shortcut was taken often enough to mean something
