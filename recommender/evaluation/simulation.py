"""The simulation benchmark: simulated people, many sessions each, every method side by side.

goodcry itself runs through its real code path on a real (temporary) database:
``create_session`` (the shared model, the person's taste read from the database, Thompson
sampling, candidate retrieval, the arc), ``record_feedback``'s two steps (``store_feedback``,
then ``update_taste``: the online update of the person's taste, timed on its own) and,
every few rounds, ``learning.fit_ranker`` + ``save_version`` (what
``goodcry train`` does), picked up by the same ``Recommender`` as a new version. The baselines
score the same catalogue matrix and go through the same ``assemble``. Every method meets the
same simulated people, built from the same seed. The two oracles are not baselines but
ceilings: they rank by each person's hidden taste from the first session on, one freely,
one keeping to the asked-for mood.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from recommender import learning
from recommender.bootstrap import prepare_store
from recommender.cry_sessions import (
    FeedbackInput,
    Recommender,
    create_session,
    store_feedback,
    update_taste,
)
from recommender.evaluation.baselines import (
    ORACLE,
    ORACLE_WITHIN_ASK,
    ContentPolicy,
    HiddenTasteOracle,
    Policy,
    PopularityPolicy,
    RandomPolicy,
    RiverLinUCBPolicy,
)
from recommender.evaluation.people import SimulatedPerson, make_people
from recommender.features import ItemMatrix, request_vector
from recommender.session import assemble
from recommender.store.db import make_engine, make_session_factory
from recommender.store.models import User

GOODCRY = "goodcry"


@dataclass(frozen=True)
class SimulationConfig:
    people: int = 20
    sessions: int = 20
    seed: int = 7
    minutes: int = 45
    exploration: str = "balanced"
    retrain_every: int = 5            # rounds between refits of the shared model (0: never)
    methods: tuple[str, ...] = (GOODCRY, "content match", "river LinUCB", "popularity",
                                "random", ORACLE, ORACLE_WITHIN_ASK)


@dataclass
class SimulationResult:
    config: SimulationConfig
    # method, person, session, shown, cried, cried_rate, in_asked_mood (the share of the
    # session's sad items that carry an asked-for mood: whether it answered the ask)
    sessions: pd.DataFrame
    # The online update (update_taste: the person's taste takes in the feedback, committed),
    # wall clock and CPU time; and the whole of recording feedback (store_feedback first).
    update_ms: list[float] = field(default_factory=list)
    update_cpu_ms: list[float] = field(default_factory=list)
    feedback_ms: list[float] = field(default_factory=list)
    feedback_cpu_ms: list[float] = field(default_factory=list)
    database_url: str = ""

    def curves(self) -> pd.DataFrame:
        """Mean cried-rate per session number (rows) and method (columns)."""
        return (self.sessions.pivot_table(index="session", columns="method",
                                          values="cried_rate", aggfunc="mean")
                [list(self.config.methods)])

    def after(self, rated: int = 10, column: str = "cried_rate") -> pd.Series:
        """Mean cried-rate (or another per-session ``column``) per method over the sessions
        after ``rated`` rated sessions."""
        later = self.sessions[self.sessions["session"] > rated]
        return later.groupby("method")[column].mean()[list(self.config.methods)]


def _reaction_feedback(rows, reactions, matrix: ItemMatrix) -> FeedbackInput:
    sad = [r for r in reactions if r]
    cried = sum(r == "cried" for r in sad) / max(1, len(sad))
    return FeedbackInput(
        reactions=[(matrix.records[row].id, r) for row, r in zip(rows, reactions, strict=True)
                   if r],
        catharsis=round(1 + 4 * cried), mood_before=4, mood_after=round(4 + 4 * cried),
    )


def _row(method, person, session, rows, reactions, matrix: ItemMatrix, moods):
    shown = sum(1 for r in reactions if r)
    cried = sum(1 for r in reactions if r == "cried")
    # How well the session answered the ask: its sad items that carry an asked-for mood.
    asked = sum(1 for row, r in zip(rows, reactions, strict=True)
                if r and set(moods) & set(matrix.records[row].tags))
    return {"method": method, "person": person, "session": session, "shown": shown,
            "cried": cried, "cried_rate": cried / shown if shown else 0.0,
            "in_asked_mood": asked / shown if shown else 0.0}


def run_goodcry(db: Session, rec: Recommender, people: list[SimulatedPerson],
                config: SimulationConfig, matrix: ItemMatrix):
    users = {}
    for person in people:
        user = User(username=person.name, password_hash="simulated: cannot sign in")
        db.add(user)
        db.flush()
        users[person.name] = user.id
    db.commit()
    out = []
    times: dict[str, list[float]] = {"update_ms": [], "update_cpu_ms": [], "feedback_ms": [],
                                      "feedback_cpu_ms": []}
    for k in range(config.sessions):
        if config.retrain_every and k and k % config.retrain_every == 0:
            ranker, sidecar = learning.fit_ranker(db, rec.matrix(db), rec.vocabulary)
            learning.save_version(db, ranker, sidecar)
        for i, person in enumerate(people):
            request = person.request(k, minutes=config.minutes, exploration=config.exploration)
            session = create_session(db, rec, users[person.name], request,
                                     seed=config.seed * 100_003 + k * 1009 + i)
            rows = [matrix.index[si.item_id] for si in session.items]
            reactions = person.react(rows, matrix)
            fb = _reaction_feedback(rows, reactions, matrix)
            # What record_feedback does, in its two steps, timed apart.
            t0, c0 = time.perf_counter(), time.process_time()
            stored = store_feedback(db, users[person.name], session.id, fb)
            t1, c1 = time.perf_counter(), time.process_time()
            update_taste(db, stored)
            t2, c2 = time.perf_counter(), time.process_time()
            times["update_ms"].append(1000 * (t2 - t1))
            times["update_cpu_ms"].append(1000 * (c2 - c1))
            times["feedback_ms"].append(1000 * (t2 - t0))
            times["feedback_cpu_ms"].append(1000 * (c2 - c0))
            out.append(_row(GOODCRY, person.name, k + 1, rows, reactions, matrix,
                            request.moods))
    return out, times


def run_policy(policy: Policy, people: list[SimulatedPerson], config: SimulationConfig,
               matrix: ItemMatrix, vocabulary) -> list[dict]:
    out = []
    bans: dict[str, set[int]] = {p.name: set() for p in people}
    for k in range(config.sessions):
        for i, person in enumerate(people):
            rng = np.random.default_rng([config.seed, k, i])
            request = person.request(k, minutes=config.minutes, exploration=config.exploration)
            vec = request_vector(request, matrix, vocabulary)
            scores = policy.scores(person.name, vec, matrix, rng)
            plan = assemble(matrix, scores, minutes=request.minutes,
                            intensity=request.intensity, include_films=request.include_films,
                            crisis=False, banned_rows=bans[person.name])
            rows = [p.row for p in plan.placements]
            reactions = person.react(rows, matrix)
            policy.learn(person.name, vec, rows, reactions)
            bans[person.name] |= {r for r, x in zip(rows, reactions, strict=True)
                                  if x == "never_again"}
            out.append(_row(policy.name, person.name, k + 1, rows, reactions, matrix,
                            request.moods))
    return out


def run_simulation(config: SimulationConfig | None = None,
                   workdir: Path | None = None) -> SimulationResult:
    """Run every method of ``config`` on the same simulated people; returns the curves."""
    config = config or SimulationConfig()
    workdir = Path(workdir or tempfile.mkdtemp(prefix="goodcry-sim-"))
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{workdir / 'simulation.sqlite'}"
    engine = make_engine(url)
    factory = make_session_factory(engine)
    prepare_store(engine, factory)
    rec = Recommender(model_check_s=0.0, matrix_cache=workdir / "item-matrices")
    rows: list[dict] = []
    times: dict[str, list[float]] = {}
    try:
        with factory() as db:
            matrix = rec.matrix(db)
            vocabulary = rec.vocabulary
            content_ranker, _ = learning.fit_ranker(None, matrix, vocabulary)
            content = ContentPolicy(content_ranker)
            policies: dict[str, Policy] = {
                "content match": content,
                "river LinUCB": RiverLinUCBPolicy(content, seed=config.seed),
                "popularity": PopularityPolicy(len(matrix)),
                "random": RandomPolicy(),
            }
            for method in config.methods:
                people = make_people(matrix, vocabulary, config.people, config.seed)
                if method == GOODCRY:
                    got, times = run_goodcry(db, rec, people, config, matrix)
                elif method in (ORACLE, ORACLE_WITHIN_ASK):
                    oracle = HiddenTasteOracle({p.name: p.utility for p in people},
                                               within_ask=method == ORACLE_WITHIN_ASK)
                    got = run_policy(oracle, people, config, matrix, vocabulary)
                else:
                    got = run_policy(policies[method], people, config, matrix, vocabulary)
                rows.extend(got)
    finally:
        engine.dispose()
    return SimulationResult(config, pd.DataFrame(rows), database_url=url, **times)
