"""Learning: the online taste update, training on stored feedback, versions and their fallback,
explanations, and the evaluation package on a tiny run."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, update

from recommender import learning, tastes
from recommender.cry_sessions import (
    FeedbackInput,
    Recommender,
    create_session,
    record_feedback,
)
from recommender.features import SessionRequest
from recommender.store.models import ModelVersion, PersonTaste, User, utcnow


@pytest.fixture
def rec(tmp_path):
    return Recommender(model_check_s=0.0, matrix_cache=tmp_path / "matrices")


def person(db, name="pat") -> str:
    user = User(username=name, password_hash="not used here")
    db.add(user)
    db.commit()
    return user.id


def ids_of(session):
    return [si.item_id for si in session.items]


def test_an_unknown_words_prompt_finds_loss_of_a_parent(db, rec):
    user = person(db)
    session = create_session(db, rec, user, SessionRequest(prompt="I miss my dad"), seed=1)
    assert "loss_parent" in session.themes
    sad = [si for si in session.items if si.phase != "aftercare"]
    about_parent = [si for si in sad if "loss_parent" in si.item.tag_list]
    # Under 4% of the catalogue is about losing a parent; here it is a good part of the session.
    assert len(about_parent) >= 3 and len(about_parent) >= len(sad) / 4


def test_feedback_updates_taste_once_and_resending_replaces_it(db, rec):
    user = person(db)
    session = create_session(db, rec, user, SessionRequest(moods=("grief",)), seed=2)
    first, second = ids_of(session)[:2]
    record_feedback(db, user, session.id, FeedbackInput([(first, "cried"), (second, "moved")],
                                                        catharsis=5))
    once = dict(db.get(PersonTaste, user).stats)
    assert once[f"item:{first}"][2] == 1 and once[f"item:{second}"][3] == 1
    # Sent again unchanged: the same state, nothing counted twice.
    record_feedback(db, user, session.id, FeedbackInput([(first, "cried"), (second, "moved")],
                                                        catharsis=5))
    db.expire_all()
    assert db.get(PersonTaste, user).stats == once
    # Sent again changed: the earlier reactions are taken back.
    record_feedback(db, user, session.id, FeedbackInput([(first, "skipped")]))
    db.expire_all()
    state = db.get(PersonTaste, user)
    assert f"item:{second}" not in state.stats
    assert state.stats[f"item:{first}"][:3] == [0.0, 1.0, 0.0]
    assert state.n_reactions == 1


def test_crying_at_a_theme_lifts_it_in_the_very_next_session(db, rec):
    user = person(db)
    request = SessionRequest(moods=("grief",), minutes=60, exploration="familiar")
    before = create_session(db, rec, user, request, seed=3)
    sad = [si for si in before.items if si.phase != "aftercare"]
    # The person cries at what is about the rarest theme of this session, and skips the rest.
    # The theme must have room to grow: enough sad items in the catalogue (catalogue ids, and
    # so tie-breaks, differ between databases; a theme with two items could not rise).
    themes = [t for si in sad for t in si.item.tag_list if rec.vocabulary.is_theme(t)]
    in_catalogue = Counter(t for r in rec.matrix(db).records if not r.aftercare for t in r.tags)
    roomy = {t for t in themes if in_catalogue[t] >= 2 * len(sad)} or set(themes)
    loved = min(roomy, key=lambda t: (themes.count(t), t))
    reactions = [(si.item_id, "cried" if loved in si.item.tag_list else "skipped")
                 for si in sad]
    record_feedback(db, user, before.id, FeedbackInput(reactions, catharsis=5))
    after = create_session(db, rec, user, request, seed=3)

    def share(session):
        sad = [si for si in session.items if si.phase != "aftercare"]
        return np.mean([loved in si.item.tag_list for si in sad])

    assert share(after) > share(before)
    skipped = {i for i, r in reactions if r == "skipped"}
    assert len(skipped & set(ids_of(after))) < len(skipped) / 2
    label = rec.vocabulary.label(loved).lower()
    whys = [si.why for si in after.items if loved in si.item.tag_list]
    assert any(("you cried at" in w and label in w) or "made you cry" in w for w in whys), whys


def test_the_online_update_is_quick(db, rec):
    user = person(db)
    session = create_session(db, rec, user, SessionRequest(moods=("grief",)), seed=4)
    reactions = [(i, "cried") for i in ids_of(session)]
    rated = [tastes.RatedItem([f"theme:t{k}", f"item:{i}"], r) for k, (i, r) in
             enumerate(reactions)]
    # The taste update alone, timed loosely: the benchmark prints the real figure.
    import time
    t0 = time.perf_counter()
    tastes.apply_feedback(db, user, previous=[], previous_weight=1.0, current=rated,
                          current_weight=1.0)
    db.commit()
    assert time.perf_counter() - t0 < 2.0


def test_training_uses_feedback_and_records_evaluation_scores(db, rec):
    matrix = rec.matrix(db)
    for k in range(6):
        user = person(db, f"p{k}")
        for j in range(4):
            session = create_session(db, rec, user, SessionRequest(moods=("grief",)),
                                     seed=10 * k + j)
            reactions = [(si.item_id, "cried" if "loss_parent" in si.item.tag_list
                          else "moved" if n == 0 else "skipped")
                         for n, si in enumerate(session.items)]
            record_feedback(db, user, session.id, FeedbackInput(reactions, catharsis=4))
    ranker, sidecar = learning.fit_ranker(db, matrix, rec.vocabulary)
    assert sidecar["kind"] == "learned"
    assert sidecar["n_feedback_reactions"] > 50
    assert 0.0 <= sidecar["evaluation"]["holdout_auc"] <= 1.0
    assert sidecar["coefficients"]["taste_theme"] > 0
    version = learning.save_version(db, ranker, sidecar)
    stored = db.get(ModelVersion, version)
    assert stored.active and stored.sidecar["evaluation"]["holdout_reactions"] > 0


def test_training_features_are_what_serving_saw(db, rec):
    """The vectorised training set's taste columns equal the online state before each session."""
    matrix = rec.matrix(db)
    user = person(db)
    seen = []
    for j in range(3):
        session = create_session(db, rec, user, SessionRequest(moods=("grief",)), seed=j)
        stats = tastes.load_stats(db, user)
        served = tastes.taste_features(matrix, tastes.deviation(matrix, stats))
        reactions = [(i, ("cried", "moved", "skipped")[k % 3])
                     for k, i in enumerate(ids_of(session))]
        record_feedback(db, user, session.id, FeedbackInput(reactions, catharsis=2 + j))
        seen += [(session.id, i, served[matrix.index[i]]) for i, _ in reactions]
    reactions, sessions = learning.load_feedback_frames(db)
    ts = learning.training_set_from_frames(reactions, sessions, matrix, rec.vocabulary)
    X = ts.X[:ts.n_feedback]
    position = {(s, i): k for k, (s, i) in
                enumerate(zip(reactions["session_id"], reactions["item_id"], strict=True))}
    for session_id, item_id, served_row in seen:
        np.testing.assert_allclose(X[position[(session_id, item_id)], 6:], served_row,
                                   atol=1e-5)


def test_a_corrupt_new_version_falls_back_to_the_previous_one(db, rec):
    good_version, _ = rec.model(db)
    ranker, sidecar = learning.fit_ranker(None, rec.matrix(db), rec.vocabulary, seed=1)
    bad = learning.save_version(db, ranker, sidecar)
    db.execute(update(ModelVersion).where(ModelVersion.version == bad)
               .values(artefact=b"not a joblib file"))
    db.commit()
    assert learning.active_version_name(db) == bad
    served, model = rec.model(db)
    assert served == good_version
    user = person(db)
    session = create_session(db, rec, user, SessionRequest(moods=("grief",)), seed=5)
    assert session.model_version == good_version and session.items
    # A tampered artefact that still loads is refused by its checksum.
    db.execute(update(ModelVersion).where(ModelVersion.version == bad)
               .values(artefact=learning.dump_ranker(model)))
    db.commit()
    rec.forget_model()
    assert rec.model(db)[0] == good_version
    assert db.scalar(select(ModelVersion.active).where(ModelVersion.version == bad))


def test_a_broken_active_version_is_not_reloaded_on_every_check(db, rec, caplog):
    good_version, _ = rec.model(db)
    ranker, sidecar = learning.fit_ranker(None, rec.matrix(db), rec.vocabulary, seed=1)
    bad = learning.save_version(db, ranker, sidecar)
    db.execute(update(ModelVersion).where(ModelVersion.version == bad)
               .values(artefact=b"not a joblib file"))
    db.commit()

    def warnings_about_bad():
        return [r for r in caplog.records if r.levelname == "WARNING" and bad in r.getMessage()]

    with caplog.at_level("WARNING", logger="recommender.learning"):
        assert rec.model(db)[0] == good_version
        assert len(warnings_about_bad()) == 1
        for _ in range(3):  # model_check_s is 0: every call checks the store
            assert rec.model(db)[0] == good_version
        assert len(warnings_about_bad()) == 1
        rec.unservable_retry_s = 0.0  # once the retry period has passed, it is tried again
        assert rec.model(db)[0] == good_version
        assert len(warnings_about_bad()) == 2
    rec.unservable_retry_s = 300.0
    # A newly activated version is served at once, retry period or not.
    fixed = learning.save_version(db, ranker, sidecar)
    assert rec.model(db)[0] == fixed


def test_evaluation_runs_every_method_on_the_same_people(tmp_path):
    from recommender.evaluation.report import evaluate
    from recommender.evaluation.simulation import SimulationConfig

    config = SimulationConfig(people=2, sessions=3, retrain_every=2)
    evaluation = evaluate(config, out_dir=tmp_path / "out", workdir=tmp_path / "work")
    curves = evaluation.simulation.curves()
    assert list(curves.columns) == list(config.methods) and len(curves) == 3
    assert ((curves >= 0) & (curves <= 1)).all().all()
    assert (tmp_path / "out" / "learning_curves.png").stat().st_size > 1000
    assert set(evaluation.replay.index) == {"goodcry", "content match", "popularity", "random"}
    assert "Targets:" in evaluation.text()
    # The run names the library versions its figures came from.
    from importlib.metadata import version
    assert f"river {version('river')}" in evaluation.text()
    assert f"scikit-learn {version('scikit-learn')}" in evaluation.text()
    # Whether sessions answered the ask: content match ranks by the asked-for mood, random
    # picks do not.
    in_mood = evaluation.simulation.after(evaluation.rated, "in_asked_mood")
    assert in_mood["content match"] >= 0.8 > in_mood["random"]
    assert "Share of those sessions' sad items that carry the asked-for mood" in \
        evaluation.text()
    oracle = evaluation.after()["oracle (hidden taste)"]
    assert f"the oracle (ranking by each person's hidden taste from the first session) " \
           f"reaches {oracle:.3f}" in evaluation.text()
    # The oracle that keeps to the ask does keep to it.
    assert in_mood["oracle within the ask"] >= 0.95
    assert "Ceiling: the oracle within the ask" in evaluation.text()


def test_the_oracle_shows_each_person_what_their_hidden_taste_loves_most(db, rec):
    """The ceiling the report compares with: sessions built from the hidden taste hold
    the items of highest true utility the arc allows, and make people cry more than
    random picks do on the same people."""
    from recommender.evaluation.baselines import HiddenTasteOracle, RandomPolicy
    from recommender.evaluation.people import make_people
    from recommender.evaluation.simulation import SimulationConfig, run_policy

    matrix, vocabulary = rec.matrix(db), rec.vocabulary
    config = SimulationConfig(people=6, sessions=3, seed=3)
    people = make_people(matrix, vocabulary, config.people, config.seed)
    oracle = HiddenTasteOracle({p.name: p.utility for p in people})
    rng = np.random.default_rng(0)
    for person in people:
        scores = oracle.scores(person.name, None, matrix, rng)
        top = np.argsort(-scores)[:20]   # ties in utility are broken by a tiny jitter
        assert person.utility[top].min() >= np.sort(person.utility)[-20] - 0.06
    by_oracle = pd.DataFrame(run_policy(oracle, people, config, matrix, vocabulary))
    people = make_people(matrix, vocabulary, config.people, config.seed)
    by_chance = pd.DataFrame(run_policy(RandomPolicy(), people, config, matrix, vocabulary))
    assert by_oracle.cried_rate.mean() > by_chance.cried_rate.mean() + 0.1


def test_the_same_model_saved_twice_in_a_second_is_two_versions(db, rec):
    """Preparing a store trains the content model; `goodcry train` right after, on no
    feedback yet, fits the very same model within the same second."""
    ranker, sidecar = learning.fit_ranker(None, rec.matrix(db), rec.vocabulary, seed=1)
    first = learning.save_version(db, ranker, sidecar)
    second = learning.save_version(db, ranker, sidecar)
    assert first != second
    assert learning.active_version_name(db) == second
    assert set(db.scalars(select(ModelVersion.version))) >= {first, second}


def test_what_a_person_was_shown_follows_every_session_stored(db, rec, monkeypatch):
    """What each person was shown is kept per worker and follows the database: sessions
    this worker made, sessions stored elsewhere (another worker, the ORM), a session stored
    late with an older time behind more than LATE_SLACK newer ones, and a deleted account.
    Each answer is checked against the database's own."""
    from datetime import timedelta

    from recommender import shown as shown_module
    from recommender.accounts import delete_user
    from recommender.shown import LATE_SLACK, shown_to
    from recommender.store.models import CatalogItem, CrySession, SessionItem

    def stored(user_id):
        return set(db.scalars(select(SessionItem.item_id).join(
            CrySession, CrySession.id == SessionItem.session_id)
            .where(CrySession.user_id == user_id)))

    def elsewhere(user_id, items, when=None):
        """A session stored without this worker's knowing (another worker's, say)."""
        made = CrySession(user_id=user_id, model_version="x", request={}, moods=[],
                          total_duration_s=1, care={})
        if when is not None:
            made.created_at = when
        for position, item in enumerate(items, start=1):
            made.items.append(SessionItem(position=position, item=item, phase="release",
                                          technique="listen", prompt_text="", why=""))
        db.add(made)
        db.commit()
        return made

    user, other = person(db), person(db, "sam")
    catalogue = list(db.scalars(select(CatalogItem).order_by(CatalogItem.id)))
    assert shown_to(db, user).all() == set()
    first = ids_of(create_session(db, rec, user, SessionRequest(moods=("grief",)), seed=2))
    assert shown_to(db, user).all() == set(first) == stored(user)
    assert shown_to(db, user).among([*first, "not-an-item"]) == set(first)
    assert shown_to(db, other).all() == set()
    # Stored elsewhere, for someone else and for this person: found by the count.
    elsewhere(other, catalogue[:1])
    assert shown_to(db, other).all() == {catalogue[0].id} == stored(other)
    assert shown_to(db, user).among([catalogue[0].id]) == set(first) & {catalogue[0].id}
    outside = [item for item in catalogue if item.id not in first][:3]
    elsewhere(user, outside)
    assert shown_to(db, user).all() == set(first) | {i.id for i in outside} == stored(user)
    # A session stored with an older time than LATE_SLACK + 1 newer ones this worker knows.
    for seed in range(LATE_SLACK + 1):
        create_session(db, rec, user, SessionRequest(moods=("longing",)), seed=seed)
    late_item = next(i for i in catalogue if i.id not in stored(user))
    elsewhere(user, [late_item], when=utcnow() - timedelta(days=1))
    assert late_item.id in shown_to(db, user).all()
    assert shown_to(db, user).all() == stored(user)
    # Read afresh (a new worker), the same.
    monkeypatch.setattr(shown_module, "_kept",
                        type(shown_module._kept)(shown_module.SHOWN_CACHE_BYTES))
    assert shown_to(db, user).all() == stored(user)
    # When this worker is up to date, only the count is read: an item's showing removed
    # behind its back (nothing in goodcry removes one) is still known.
    gone = db.scalars(select(SessionItem).join(CrySession).where(
        CrySession.user_id == user)).first()
    db.delete(gone)
    db.commit()
    assert gone.item_id in shown_to(db, user).all()
    # A deleted account has nothing left, here too.
    delete_user(db, user)
    assert shown_to(db, user).all() == set()
    assert stored(other) == shown_to(db, other).all() == {catalogue[0].id}


def test_thompson_draws_for_unmet_attributes_follow_the_prior():
    from scipy import stats as scistats

    from recommender import tastes

    rng = np.random.default_rng(11)
    draws = tastes._prior_draws(rng, 20_000)
    a = tastes.PRIOR_STRENGTH * tastes.PRIOR_MEAN
    b = tastes.PRIOR_STRENGTH * (1.0 - tastes.PRIOR_MEAN)
    assert scistats.kstest(draws, scistats.beta(a, b).cdf).pvalue > 0.001
    # Each request gets a fresh array (changing it leaves the pool alone), its own window.
    again = tastes._prior_draws(np.random.default_rng(11), 20_000)
    assert np.array_equal(draws, again)
    draws[:] = -1.0
    assert (tastes._prior_draws(np.random.default_rng(11), 20_000) >= 0).all()
    other = tastes._prior_draws(np.random.default_rng(12), 20_000)
    assert not np.array_equal(again, other)
    # Longer than the pool: drawn afresh, still from the prior.
    long = tastes._prior_draws(rng, tastes.PRIOR_DRAW_POOL + 5)
    assert len(long) == tastes.PRIOR_DRAW_POOL + 5 and 0.3 < long.mean() < 0.4


def test_stored_stats_are_decoded_again_only_when_the_row_changes(db, rec):
    from recommender.features import attribute_keys
    from recommender.store.models import CatalogItem

    user_id = person(db, "memo")
    assert tastes.load_stats(db, user_id) == {}
    item = db.scalars(select(CatalogItem).where(CatalogItem.aftercare.is_(False))
                      .limit(1)).one()
    keys = attribute_keys(item.id, item.kind, [t.tag for t in item.tags], item.artist,
                          item.director, item.year, rec.vocabulary)
    tastes.apply_feedback(db, user_id, previous=[], previous_weight=1.0,
                          current=[tastes.RatedItem(keys, "cried")], current_weight=1.0)
    db.commit()
    first = tastes.load_stats(db, user_id)
    assert first[f"item:{item.id}"][2] == 1.0
    matrix = rec.matrix(db)
    plain = tastes.posterior(matrix, dict(first))   # a plain dict: worked out afresh
    memoised = tastes.posterior(matrix, first)
    again = tastes.posterior(matrix, tastes.load_stats(db, user_id))
    assert tastes.load_stats(db, user_id) is first   # same stored text: the same object
    for got in (memoised, again):
        assert np.array_equal(got[0], plain[0]) and np.array_equal(got[1], plain[1])
    # The row changes (another worker, say): the next read decodes the new text.
    tastes.apply_feedback(db, user_id, previous=[tastes.RatedItem(keys, "cried")],
                          previous_weight=1.0, current=[tastes.RatedItem(keys, "skipped")],
                          current_weight=1.0)
    db.commit()
    second = tastes.load_stats(db, user_id)
    assert second is not first and second[f"item:{item.id}"][2] == 0.0
    assert tastes.posterior(matrix, second)[0].sum() < plain[0].sum()


def _after_two_rated_sessions(db, rec, k: int) -> str:
    """Someone with a memory about their dad and two rated sessions behind them."""
    from recommender.cry_sessions import create_session_document
    from recommender.memories import add_memory

    user_id = person(db, f"asker{k}")
    add_memory(db, user_id, {
        "title": "Dad's workshop", "people": ["Dad"], "tags": ["father", "home"],
        "text": "Saturday mornings in Dad's workshop: sawdust, the radio, his hands on mine."})
    db.commit()
    taps = ("cried", "moved", "neutral", "skipped")
    for n, request in enumerate((SessionRequest(moods=("joy",), prompt="I miss my dad"),
                                 SessionRequest(moods=("heartbreak",)))):
        document = create_session_document(db, rec, user_id, request, seed=1000 * k + n)
        reactions = [(item["item_id"], taps[i % 4]) for i, item in enumerate(document["items"])
                     if item["phase"] != "aftercare"]
        record_feedback(db, user_id, document["id"],
                        FeedbackInput(reactions=reactions, catharsis=4, mood_before=3,
                                      mood_after=7))
    return user_id


def test_exploration_stays_within_what_the_person_asked_for(db, rec):
    """Exploring a new person's taste must not pull their sessions off what they asked
    for: a mood-only request stays in that mood, and words about a lost parent still bring
    songs about losing a parent and the memory that goes with them. (A wider early
    exploration once lifted the simulation's cried-rate, whose people never ask in words,
    and failed this: EVALUATION.md, "exploring widely while getting to know someone".)"""
    from recommender.cry_sessions import create_session_document

    in_mood, about_parent, paired = [], [], []
    for k in range(12):
        user_id = _after_two_rated_sessions(db, rec, k)
        mood = create_session_document(db, rec, user_id, SessionRequest(moods=("heartbreak",)),
                                       seed=50 + k)
        words = create_session_document(db, rec, user_id,
                                        SessionRequest(prompt="I miss my dad so much"),
                                        seed=77 + k)
        sad = [item for item in mood["items"] if item["phase"] != "aftercare"]
        in_mood.append(np.mean(["heartbreak" in item["tags"] for item in sad]))
        sad = [item for item in words["items"] if item["phase"] != "aftercare"]
        about_parent.append(np.mean(["loss_parent" in item["tags"] for item in sad]))
        paired.append(any(item["prompt"]["memory_id"] for item in words["items"]))
    assert np.mean(in_mood) >= 0.9
    assert np.mean(about_parent) >= 0.15
    assert np.mean(paired) >= 0.85


def test_unseeded_sessions_draw_from_one_generator_per_thread_and_process():
    import os
    import threading

    from recommender import cry_sessions

    mine = cry_sessions._thread_generator()
    assert cry_sessions._thread_generator() is mine
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(cry_sessions._thread_generator()))
    thread.start()
    thread.join()
    assert theirs[0] is not mine
    # A forked worker makes its own: with its parent's copy, its first draws would be the
    # parent's next ones.
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write_end, cry_sessions._thread_generator().bytes(16))
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read_end, 16)
    os.close(read_end)
    os.close(write_end)
    assert len(child) == 16 and child != mine.bytes(16)


def test_why_names_the_asked_moods_and_themes_an_item_matches():
    from types import SimpleNamespace

    from recommender.cry_sessions import _why
    from recommender.features import PAIR_FEATURES, ItemRecord
    from recommender.vocabulary import default_vocabulary

    vocabulary = default_vocabulary()
    record = ItemRecord(id="x", kind="song", title="Song", artist="A", director=None,
                        year=2000, duration_s=200, intensity=3, aftercare=False,
                        tags=("grief", "longing", "loss_parent"))
    vec = SimpleNamespace(mood_ids=("grief", "longing"), theme_ids=("loss_parent",))

    def why(*features: str) -> str:
        contributions = np.zeros(len(PAIR_FEATURES))
        for rank, name in enumerate(features):
            contributions[PAIR_FEATURES.index(name)] = 1.0 - rank / 10
        return _why(record, "deepen", contributions, vec, vocabulary, {}, 0.0, False,
                    "balanced", np.argsort(-contributions).tolist())

    grief, longing = vocabulary.label("grief").lower(), vocabulary.label("longing").lower()
    theme = vocabulary.label("loss_parent").lower()
    assert why("mood_match") == f"Matches '{grief}' and '{longing}'."
    assert why("theme_match", "mood_match") == (
        f"About {theme}; matches '{grief}' and '{longing}'.")
    unmatched = SimpleNamespace(mood_ids=("anger",), theme_ids=())
    contributions = np.zeros(len(PAIR_FEATURES))
    contributions[PAIR_FEATURES.index("mood_match")] = 1.0
    assert _why(record, "deepen", contributions, unmatched, vocabulary, {}, 0.0, False,
                "balanced", np.argsort(-contributions).tolist()) == "A well-loved tear-jerker."


def test_discover_lifts_exactly_the_candidates_never_shown(db, rec):
    """``discover`` adds DISCOVER_UNSEEN_BONUS to each item the person was never shown; what
    they were shown outside the items scored changes nothing (a session asks for the shown
    items among its candidates only)."""
    from recommender.cry_sessions import DISCOVER_UNSEEN_BONUS, _ids_of, score_catalogue
    from recommender.vocabulary import default_vocabulary

    user = person(db)
    matrix = rec.matrix(db)
    _, ranker = rec.model(db)
    request = SessionRequest(moods=("grief",), exploration="discover")
    ids = _ids_of(matrix)
    assert ids == [record.id for record in matrix.records]
    shown = set(ids[:40])

    def scored(seen):
        return score_catalogue(db, matrix, ranker, default_vocabulary(), user, request,
                               np.random.default_rng(7), history=({}, set(), seen))

    base = scored(shown)
    elsewhere = scored(shown | {f"not-in-this-catalogue-{k}" for k in range(500)})
    assert np.array_equal(base.scores, elsewhere.scores)
    assert np.array_equal(base.explored, elsewhere.explored)
    # One item fewer shown: that item alone is lifted, by the bonus.
    fresh = scored(shown - {ids[3]})
    lifted = np.flatnonzero(fresh.scores != base.scores)
    assert lifted.tolist() == [3]
    assert fresh.scores[3] - base.scores[3] == pytest.approx(DISCOVER_UNSEEN_BONUS)
