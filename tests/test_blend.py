"""Each person's blend: their own weights over what the shared model's score is made of
(recommender/tastes.py, fit_blend), refitted on feedback and used when they are served."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from recommender import tastes
from recommender.cry_sessions import FeedbackInput, Recommender, create_session, record_feedback
from recommender.features import SessionRequest
from recommender.store.models import PersonTaste, User


@pytest.fixture
def rec(tmp_path):
    return Recommender(model_check_s=0.0, matrix_cache=tmp_path / "matrices")


def person(db, name="pat") -> str:
    user = User(username=name, password_hash="not used here")
    db.add(user)
    db.commit()
    return user.id


def blend_of(db, user):
    db.expire_all()
    row = db.get(PersonTaste, user)
    return None if row is None else row.blend


def test_every_served_item_keeps_what_its_score_was_made_of(db, rec):
    user = person(db)
    session = create_session(db, rec, user, SessionRequest(moods=("grief",)), seed=1)
    for si in session.items:
        assert len(si.blend_inputs) == len(tastes.BLEND_PARTS)
        # Someone new: no taste yet, so every taste part is 0.
        assert si.blend_inputs[1:] == [0.0] * (len(tastes.BLEND_PARTS) - 1)
    matching = [si for si in session.items if "grief" in si.item.tag_list]
    other = [si for si in session.items if "grief" not in si.item.tag_list
             and si.phase != "aftercare"]
    if matching and other:
        assert (max(si.blend_inputs[0] for si in matching)
                > min(si.blend_inputs[0] for si in other))


def test_crying_only_at_a_theme_outside_the_asked_for_mood_weighs_the_mood_less(db, rec):
    user = person(db)
    request = SessionRequest(moods=("grief",), minutes=60, exploration="familiar")
    first = create_session(db, rec, user, request, seed=11)
    sad = [si for si in first.items if si.phase != "aftercare"]
    themes = Counter(t for si in sad for t in si.item.tag_list if rec.vocabulary.is_theme(t))
    theme = themes.most_common(1)[0][0]
    session = first
    for k in range(6):
        reactions = [(si.item_id, "cried" if theme in si.item.tag_list else "skipped")
                     for si in session.items if si.phase != "aftercare"]
        record_feedback(db, user, session.id, FeedbackInput(reactions, catharsis=3))
        session = create_session(db, rec, user, request, seed=12 + k)
    blend = blend_of(db, user)
    content, taste_theme = blend[0], blend[1 + tastes.TASTE_GROUPS.index("theme")]
    # The shared model weighs both at 1: this person's own history outweighs what they
    # asked for.
    assert taste_theme > 2 * max(content, 0.0)
    assert content < 0.5 * taste_theme


def test_resent_feedback_leaves_the_same_blend(db, rec):
    user = person(db)
    request = SessionRequest(moods=("grief",), exploration="familiar")
    one = create_session(db, rec, user, request, seed=21)
    two = create_session(db, rec, user, request, seed=22)
    fb_one = FeedbackInput([(si.item_id, r) for si, r in
                            zip(one.items, ["cried", "skipped", "moved", "neutral"],
                                strict=False)], catharsis=5, mood_before=3, mood_after=6)
    fb_two = FeedbackInput([(si.item_id, r) for si, r in
                            zip(two.items, ["skipped", "cried", "never_again"], strict=False)],
                           catharsis=2)
    record_feedback(db, user, one.id, fb_one)
    record_feedback(db, user, two.id, fb_two)
    once = blend_of(db, user)
    assert once is not None and once != [1.0] * len(tastes.BLEND_PARTS)
    record_feedback(db, user, one.id, fb_one)
    record_feedback(db, user, two.id, fb_two)
    assert blend_of(db, user) == once
    # Changed feedback changes it; sent back as it was, the first weights return.
    record_feedback(db, user, one.id, FeedbackInput([(one.items[0].item_id, "skipped")]))
    assert blend_of(db, user) != once
    record_feedback(db, user, one.id, fb_one)
    assert blend_of(db, user) == once


def test_a_new_person_is_served_as_the_shared_model_serves_them(db, rec):
    user = person(db)
    assert tastes.load_taste(db, user) == ({}, None)
    assert tastes.fit_blend(db, user) is None
    coef = np.arange(len(tastes.BLEND_PARTS) + 5, dtype=np.float64)
    assert tastes.blended_coefficients(coef, None) is coef
    assert np.array_equal(tastes.blended_coefficients(coef, [1.0] * len(tastes.BLEND_PARTS)),
                          coef)
    request = SessionRequest(moods=("longing",), exploration="balanced")
    shared = create_session(db, rec, user, request, seed=31)
    # Someone else, as new, with a blend at its prior (every weight 1): the same session.
    at_prior = person(db, "pia")
    db.add(PersonTaste(user_id=at_prior, stats={}, n_reactions=0,
                       blend=[1.0] * len(tastes.BLEND_PARTS)))
    db.commit()
    again = create_session(db, rec, at_prior, request, seed=31)
    assert [(si.item_id, si.why, si.score) for si in again.items] == [
        (si.item_id, si.why, si.score) for si in shared.items]
    # A blend that ignores what was asked for changes what is served.
    ignoring = person(db, "ivo")
    db.add(PersonTaste(user_id=ignoring, stats={}, n_reactions=0,
                       blend=[0.0] + [1.0] * (len(tastes.BLEND_PARTS) - 1)))
    db.commit()
    other = create_session(db, rec, ignoring, request, seed=31)
    assert [si.item_id for si in other.items] != [si.item_id for si in shared.items]
