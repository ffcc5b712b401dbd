"""The risk screen, the care card and the aftercare steps."""

from pathlib import Path

import pytest

from recommender.care import (
    AFTERCARE_STEPS,
    CareVerdict,
    care_document,
    normalise_for_screen,
    screen_memory,
    screen_note,
    screen_request,
    screen_texts,
)

DATA = Path(__file__).parent / "data"
MAX_FALSE_ALARM_RATE = 0.05


def _lines(name: str) -> list[str]:
    text = (DATA / name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_phrase_sets_are_big_enough():
    assert len(_lines("risk_phrases.txt")) >= 120
    assert len(_lines("ordinary_sad.txt")) >= 120


def test_every_risk_phrase_is_caught():
    missed = [phrase for phrase in _lines("risk_phrases.txt") if not screen_texts(phrase).crisis]
    assert not missed, f"{len(missed)} risk phrases missed: {missed}"


def test_false_alarm_rate_on_ordinary_sad_sentences():
    sentences = _lines("ordinary_sad.txt")
    alarms = [s for s in sentences if screen_texts(s).crisis]
    rate = len(alarms) / len(sentences)
    print(f"\nfalse alarms: {len(alarms)}/{len(sentences)} = {rate:.1%}")
    assert rate <= MAX_FALSE_ALARM_RATE, f"false alarm rate {rate:.1%}: {alarms}"


@pytest.mark.parametrize(
    ("text", "crisis"),
    [
        ("I'm not suicidal, just sad", False),
        ("I'm not okay, I want to die", True),
        ("I'm not okay I want to die", True),
        ("I don't want to live anymore", True),
        ("I would never kill myself", False),
        ("I'm not suicidal but I want to disappear forever", True),
        ("my dad died", False),
        ("since mum passed I cry every night", False),
        ("the song about a suicide I heard", False),
        ("my dog is going to die", False),
        ("I am going to die", True),
        ("I want to DIE", True),
        ("I wanna diiiie", True),
        ("suicidel", True),
        ("kil myself", True),
        ("I want to kíll myself", True),  # accents folded
        ("I don\u2019t want to be here anymore", True),  # curly apostrophe
        ("I lost a part of myself when she left", False),
        ("this song kills me every time", False),
    ],
)
def test_screen_cases(text, crisis):
    assert screen_texts(text).crisis is crisis


def test_verdict_names_rules_and_never_carries_the_text():
    text = "everyone would be better off without me"
    verdict = screen_texts("a sad song please", None, text)
    assert isinstance(verdict, CareVerdict)
    assert verdict.crisis
    assert "better_off_without_me" in verdict.reasons
    assert all(text not in reason and " " not in reason for reason in verdict.reasons)


def test_screen_with_nothing_to_read_is_calm():
    assert screen_texts() == CareVerdict(crisis=False, reasons=())
    assert screen_texts(None, "") == CareVerdict(crisis=False, reasons=())


def test_normalisation_folds_case_accents_contractions_and_stretched_letters():
    assert normalise_for_screen("I'M SOOO Tíred, I CAN'T") == "i am so tired . i canot"
    assert normalise_for_screen("dont wanna") == "do not want to"


def _resource_regions(document):
    return {r["region"]: r for r in document["resources"]}


@pytest.mark.parametrize("crisis", [True, False])
def test_care_document_always_lists_the_resources(crisis):
    document = care_document(CareVerdict(crisis=crisis, reasons=("want_to_die",) if crisis else ()))
    assert set(document) >= {"crisis", "resources", "message", "aftercare", "not_therapy"}
    assert document["crisis"] is crisis
    for resource in document["resources"]:
        assert set(resource) == {"name", "contact", "url", "region"}
    regions = _resource_regions(document)
    assert "988" in regions["US"]["name"] and "988" in regions["US"]["contact"]
    assert "text" in regions["US"]["contact"].lower()
    assert regions["UK & Ireland"]["name"] == "Samaritans"
    assert "116 123" in regions["UK & Ireland"]["contact"]
    assert "findahelpline.com" in regions["Elsewhere"]["url"]
    assert "not therapy" in document["not_therapy"]
    assert document["aftercare"] == list(AFTERCARE_STEPS)


def test_crisis_message_puts_hope_and_help_first_without_method_talk():
    crisis = care_document(CareVerdict(crisis=True, reasons=("want_to_die",)))["message"]
    calm = care_document(CareVerdict(crisis=False, reasons=()))["message"]
    assert crisis != calm
    first_sentences = crisis[:400]
    assert "988" in first_sentences and "116 123" in first_sentences
    assert "findahelpline.com" in crisis
    assert "ease" in crisis or "hope" in crisis
    for word in ("pills", "rope", "overdose", "method", "jump"):
        assert word not in crisis.lower()
    assert "988" not in calm  # a calm card does not alarm, the resources sit beside it


def test_aftercare_steps_cover_the_care_guidance():
    joined = " ".join(AFTERCARE_STEPS).lower()
    for needle in ("water", "enjoy", "upbeat", "friend", "quiet", "hug"):
        assert needle in joined


def test_a_memorys_screen_is_kept_by_a_digest_and_equals_screening_its_words():
    from recommender import care

    pairs = [("Zanzibar nights", "the night I wanted to end my life"),
             ("Zanzibar mornings", "tea on the balcony"), ("Zanzibar", None)]
    for title, text in pairs * 2:
        assert screen_memory(title, text) == screen_texts(title, text)
    with care._screened_lock:
        kept = list(care._screened.items())
    assert all(isinstance(key, bytes) for key, _ in kept)
    assert "zanzibar" not in repr(kept).lower() and "balcony" not in repr(kept)


def test_a_journal_notes_screen_is_kept_by_a_digest_of_its_words_alone():
    from recommender import care

    note = "Quokka evening: I keep thinking I should kill myself before the winter"
    calm = "Quokka morning: cried at the piano piece, then phoned my brother"
    first = screen_note(note)
    assert first == screen_texts(note) and first.crisis
    assert screen_note(note) is first, "the second screen of the same words is the kept one"
    assert screen_note(calm) == screen_texts(calm) and not screen_note(calm).crisis
    # Kept apart from a memory holding the same words, and by digest: no words are kept.
    assert screen_memory(None, calm) == screen_note(calm)
    with care._screened_lock:
        kept = list(care._screened.items())
    assert all(isinstance(key, bytes) for key, _ in kept)
    assert "quokka" not in repr(kept).lower() and "piano" not in repr(kept)
    keys = {key for key, _ in kept}
    assert len({care.hashlib.sha256(b"note\0" + calm.encode()).digest(),
                care.hashlib.sha256(care.json.dumps([None, calm]).encode()).digest()} & keys) == 2


def test_a_requests_screen_equals_screening_its_words_then_its_notes_in_order():
    """The session's verdict: the same reasons, in the same order, as screening the request
    and every note together, whichever of them speak of risk and however often."""
    import random

    risky = _lines("risk_phrases.txt")[:12]
    calm = _lines("ordinary_sad.txt")[:12]
    rng = random.Random(5)
    for _ in range(300):
        prompt = rng.choice([None, "", *risky, *calm])
        notes = [rng.choice(["", *risky, *calm]) for _ in range(rng.randint(0, 5))]
        assert screen_request(prompt, notes) == screen_texts(prompt, *notes), (prompt, notes)
    both = screen_request(risky[0], [risky[5], risky[0]])
    assert both.crisis and both.reasons == screen_texts(risky[0], risky[5]).reasons
