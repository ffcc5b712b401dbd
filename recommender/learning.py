"""Training the ranker and keeping its versions, so every worker serves the same model."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import platform
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version

import joblib
import numpy as np
import pandas as pd
import scipy
import scipy.sparse as sp
import sklearn
from sklearn.metrics import log_loss, roc_auc_score
from sqlalchemy import String, cast, select, update
from sqlalchemy.orm import Session

from recommender import tastes
from recommender.features import (
    CONTENT_FEATURES,
    PAIR_FEATURES,
    TASTE_GROUPS,
    ItemMatrix,
    SessionRequest,
    pair_features,
    request_vector,
)
from recommender.ranker import CryRanker
from recommender.store.models import CrySession, Feedback, ModelVersion, Reaction
from recommender.vocabulary import Vocabulary

log = logging.getLogger(__name__)

# Graded outcomes of a reaction as a soft target for the ranker (each reaction becomes a
# positive row weighted by its target and a negative row weighted by the rest):
# cried > moved > neutral > skipped; never_again is a firm, heavier no.
REACTION_TARGET = {"cried": 1.0, "moved": 0.6, "neutral": 0.15, "skipped": 0.0,
                   "never_again": 0.0}
REACTION_LABEL = {r: int(t >= 0.5) for r, t in REACTION_TARGET.items()}
REACTION_WEIGHT = {"cried": 1.5, "moved": 1.0, "neutral": 1.0, "skipped": 1.0,
                   "never_again": 2.0}
# Real feedback counts as much as the catalogue's self-supervision, row for row.
FEEDBACK_WEIGHT = 1.0
# How firmly the coefficients are held to the prior (scikit-learn's C: smaller is firmer).
# Learning from the model's own picks sees a narrow range of taste, which pulls the taste
# coefficients towards zero; a firm prior keeps what is known unless the data insists.
PRIOR_C = 1.0
# Before feedback says otherwise, a person's taste for what an item is about counts this
# much (taste features are log-odds above the prior, summed within each kind of attribute).
TASTE_PRIOR = {"taste_theme": 2.0, "taste_mood": 1.0, "taste_maker": 2.0, "taste_era": 2.0,
               "taste_kind": 2.0, "taste_item": 2.0}
HOLDOUT_SHARE = 0.2
HOLDOUT_MAX_ROWS = 200_000


def prior_coefficients() -> np.ndarray:
    return np.array([TASTE_PRIOR.get(name, 0.0) for name in PAIR_FEATURES])


@dataclass(frozen=True)
class TrainingSet:
    """One row per example: its pair features, graded target in [0, 1] and weight."""

    X: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    n_feedback: int
    order: np.ndarray | None = None   # per row: the time rank of its session (for splits)

    @property
    def y(self) -> np.ndarray:
        """The hard label of each row (moved or cried: 1)."""
        return (self.target >= 0.5).astype(int)


def _empty_set() -> TrainingSet:
    return TrainingSet(np.zeros((0, len(PAIR_FEATURES)), dtype=np.float32),
                       np.zeros(0), np.zeros(0), 0, np.zeros(0))


def catalogue_pseudo_requests(
    matrix: ItemMatrix, vocabulary: Vocabulary, *, seed: int = 0, negatives: int = 4
) -> TrainingSet:
    """Self-supervision from the catalogue: an item's own tags, asked for, should find it.

    For every sad item, a request is made from a random part of its moods and themes and a
    random intensity; the item is a positive and ``negatives`` random other items are
    negatives. This teaches the content model how to weigh mood, theme, text and intensity
    matches before anyone has given feedback (the taste columns stay 0: nobody's history).
    """
    rng = np.random.default_rng(seed)
    Xs, ys = [], []
    n = len(matrix)
    for i, rec in enumerate(matrix.records):
        if rec.aftercare:
            continue
        moods = [t for t in rec.tags if vocabulary.is_mood(t)]
        themes = [t for t in rec.tags if vocabulary.is_theme(t)]
        if not moods:
            continue
        k = int(rng.integers(1, len(moods) + 1))
        chosen = tuple(rng.choice(moods, size=k, replace=False))
        words = None
        if themes and rng.random() < 0.5:
            theme = vocabulary.themes[vocabulary.theme_ids.index(rng.choice(themes))]
            words = " ".join(theme.keywords[:2]) or theme.label
        intensity = int(np.clip(rec.intensity + rng.integers(-1, 2), 1, 5))
        req = SessionRequest(moods=chosen, prompt=words, intensity=intensity)
        vec = request_vector(req, matrix, vocabulary)
        rows = np.concatenate([[i], rng.choice(n, size=negatives, replace=False)])
        rows = rows[(rows != i) | (np.arange(len(rows)) == 0)]
        Xs.append(pair_features(matrix, vec, rows))
        ys.append(np.array([1] + [0] * (len(rows) - 1)))
    if not Xs:
        return _empty_set()
    X = np.vstack(Xs)
    y = np.concatenate(ys).astype(np.float64)
    return TrainingSet(X, y, np.ones(len(y)), 0)


def _matrix_item_ids(matrix: ItemMatrix) -> list[str]:
    ids = getattr(matrix.records, "ids", None)
    if ids is not None and getattr(ids, "dtype", None) is not None and ids.dtype.kind == "S":
        return np.char.decode(ids, "utf-8").tolist()
    return [r.id for r in matrix.records]


def library_versions(*more: str) -> dict[str, str]:
    """The Python and library versions a model (or an evaluation run, with ``more``
    installed distributions by name) was made with."""
    versions = {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
                "numpy": np.__version__, "scipy": scipy.__version__, "pandas": pd.__version__,
                "joblib": joblib.__version__}
    return versions | {name: version(name) for name in more}


def _frame(rows: list, columns: list[str]) -> pd.DataFrame:
    """Rows of a Core result as a frame, column by column (far quicker than row by row)."""
    values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    out = {}
    for name, column in zip(columns, values, strict=True):
        array = np.empty(len(column), dtype=object)
        array[:] = column
        out[name] = array
    return pd.DataFrame(out)


def load_feedback_frames(db: Session) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All reactions and the sessions they belong to, as two frames of plain columns.

    ``reactions``: session_id, user_id, item_id, reaction. ``sessions``: id, user_id,
    created_at, request (a dict; equal requests share one), catharsis, mood_before,
    mood_after, in time order. Read with SQL Core (no ORM objects), only the columns
    training needs; each distinct stored request is parsed once.
    """
    conn = db.connection()
    rated = select(Reaction.session_id).distinct().scalar_subquery()
    srows = conn.execute(
        select(CrySession.id, CrySession.user_id, CrySession.created_at,
               cast(CrySession.request, String), Feedback.catharsis, Feedback.mood_before,
               Feedback.mood_after)
        .join(Feedback, Feedback.session_id == CrySession.id, isouter=True)
        .where(CrySession.id.in_(rated))
        .order_by(CrySession.created_at, CrySession.id)).all()
    columns = ["id", "user_id", "created_at", "request", "catharsis", "mood_before",
               "mood_after"]
    sessions = _frame(srows, columns)
    del srows
    if len(sessions):
        codes, raw = pd.factorize(sessions["request"])
        parsed = np.empty(len(raw), dtype=object)
        parsed[:] = [json.loads(r) if isinstance(r, str) else (r or {}) for r in raw]
        sessions["request"] = parsed[codes]
    rrows = conn.execute(select(Reaction.session_id, Reaction.item_id, Reaction.reaction)).all()
    reactions = _frame(rrows, ["session_id", "item_id", "reaction"])
    del rrows
    users = sessions["user_id"].to_numpy(object)
    pos = pd.Index(sessions["id"]).get_indexer(reactions["session_id"])
    reactions.insert(1, "user_id", np.where(pos >= 0, users[pos] if len(users) else None, None))
    return reactions, sessions


def feedback_training_set(
    db: Session, matrix: ItemMatrix, vocabulary: Vocabulary
) -> TrainingSet:
    """Pair features for every stored reaction, labelled and weighted by how it landed.

    Vectorised over reactions: a request vector per distinct stored request, and the
    person-taste columns as they stood before each session (so a reaction never explains
    itself, and training sees what serving saw).
    """
    reactions, sessions = load_feedback_frames(db)
    return training_set_from_frames(reactions, sessions, matrix, vocabulary)


def training_set_from_frames(
    reactions: pd.DataFrame, sessions: pd.DataFrame, matrix: ItemMatrix,
    vocabulary: Vocabulary,
) -> TrainingSet:
    if reactions.empty or sessions.empty:
        return _empty_set()
    sessions = sessions.sort_values(["created_at", "id"], kind="stable").reset_index(drop=True)
    s_pos = pd.Index(sessions["id"]).get_indexer(reactions["session_id"])
    rows = pd.Index(_matrix_item_ids(matrix)).get_indexer(reactions["item_id"])
    keep = (s_pos >= 0) & (rows >= 0) & reactions["reaction"].isin(REACTION_LABEL).to_numpy()
    reactions = reactions[keep]
    s_pos, rows = s_pos[keep], rows[keep]
    if not len(rows):
        return _empty_set()

    # Requests: one vector per distinct stored request.
    # Sessions share their request objects when equal (load_feedback_frames): key each
    # distinct object once, then factorise the keys.
    obj_codes, _ = pd.factorize(sessions["request"].map(id))
    first = pd.Series(np.arange(len(sessions))).groupby(obj_codes).first().to_numpy()
    obj_keys = [json.dumps([sorted(r.get("moods") or []), r.get("prompt") or "",
                            int(r.get("intensity", 3))])
                for r in sessions["request"].to_numpy(object)[first]]
    key_codes, uniques = pd.factorize(np.asarray(obj_keys, dtype=object))
    codes = key_codes[obj_codes]
    vecs = []
    for moods, prompt, intensity in (json.loads(u) for u in uniques):
        request = SessionRequest(moods=tuple(moods), prompt=prompt or None, intensity=intensity)
        vecs.append(request_vector(request, matrix, vocabulary))
    q = codes[s_pos]
    req_moods = np.vstack([v.moods for v in vecs])
    req_themes = np.vstack([v.themes for v in vecs])
    req_text = sp.vstack([v.text for v in vecs]).tocsr()
    req_intensity = np.array([v.intensity for v in vecs], dtype=np.float32)

    n = len(rows)
    X = np.zeros((n, len(PAIR_FEATURES)), dtype=np.float32)
    n_moods = req_moods.sum(axis=1)
    n_themes = req_themes.sum(axis=1)
    mm = np.asarray(matrix.moods[rows].multiply(req_moods[q]).sum(axis=1)).ravel()
    X[:, 0] = np.divide(mm, n_moods[q], out=np.zeros(n, dtype=np.float32),
                        where=n_moods[q] > 0)
    tm = np.asarray(matrix.themes[rows].multiply(req_themes[q]).sum(axis=1)).ravel()
    X[:, 1] = np.divide(tm, n_themes[q], out=np.zeros(n, dtype=np.float32),
                        where=n_themes[q] > 0)
    if req_text.nnz:
        X[:, 2] = np.asarray(matrix.text[rows].multiply(req_text[q]).sum(axis=1)).ravel()
    X[:, 3] = 1.0 - np.abs(matrix.intensity[rows] - req_intensity[q]) / 4.0
    X[:, 4] = matrix.is_film[rows]
    X[:, 5] = matrix.aftercare[rows]

    # Session weights (catharsis, mood lifted) and graded rewards.
    s_weight = np.clip(
        1.0 + 0.15 * (sessions["catharsis"].astype("float64").fillna(3.0).to_numpy() - 3.0)
        + 0.05 * np.clip((sessions["mood_after"].astype("float64")
                          - sessions["mood_before"].astype("float64")).fillna(0.0)
                         .to_numpy(), -4, 4), 0.5, 1.5)[s_pos]
    reaction = reactions["reaction"].to_numpy()
    rw = pd.Series(reaction).map(tastes.WEIGHT).to_numpy(np.float64) * s_weight
    rr = pd.Series(reaction).map(tastes.REWARD).to_numpy(np.float64) * rw
    users, _ = pd.factorize(reactions["user_id"])
    X[:, len(CONTENT_FEATURES):] = _taste_before_session(matrix, rows, users, s_pos, rr, rw)

    target = pd.Series(reaction).map(REACTION_TARGET).to_numpy(np.float64)
    w = pd.Series(reaction).map(REACTION_WEIGHT).to_numpy(np.float64) * s_weight
    return TrainingSet(X, target, w, n, s_pos)


def _taste_before_session(matrix, rows, users, sessions, reward_sum, weight_sum) -> np.ndarray:
    """TASTE_FEATURES per reaction as the person's taste stood before that session.

    ``sessions`` is each reaction's session rank in time. Per (person, attribute), the
    weighted reward sums and counts of all their earlier sessions: exactly what the online
    state held when the session was built (vectorised: one sort, prefix sums per block).
    """
    attrs = tastes.taste_attributes(matrix)
    n_attr = len(attrs.ids)
    W = attrs.weights[rows].tocoo()
    r, a, v = W.row.astype(np.int64), W.col.astype(np.int64), W.data
    del W
    key = users[r].astype(np.int64) * n_attr + a
    sess = sessions[r].astype(np.int64)
    order = np.lexsort((sess, key))
    key_o, sess_o = key[order], sess[order]
    new_block = np.ones(len(order), dtype=bool)
    new_block[1:] = (key_o[1:] != key_o[:-1]) | (sess_o[1:] != sess_o[:-1])
    starts = np.flatnonzero(new_block)
    block_of = np.cumsum(new_block) - 1
    new_key = np.ones(len(starts), dtype=bool)
    new_key[1:] = key_o[starts[1:]] != key_o[starts[:-1]]
    key_start = np.maximum.accumulate(np.where(new_key, np.arange(len(starts)), 0))
    out_s = np.empty(len(order))
    out_n = np.empty(len(order))
    for total, values in ((out_s, reward_sum), (out_n, weight_sum)):
        block = np.add.reduceat(values[r[order]], starts) if len(starts) else np.zeros(0)
        before = np.cumsum(block) - block            # everything earlier, all keys
        before -= before[key_start]                  # ... within this key only
        total[order] = before[block_of]
    del key, sess, order, key_o, sess_o, block_of
    dev = tastes.deviation_from_sums(out_s, out_n)
    G = len(TASTE_GROUPS)
    out = np.bincount(r * G + attrs.group[a], weights=v * dev, minlength=len(rows) * G)
    return out.reshape(len(rows), G).astype(np.float32)


def request_from_stored(request: dict) -> SessionRequest:
    return SessionRequest(
        moods=tuple(request.get("moods") or ()),
        prompt=request.get("prompt"),
        minutes=int(request.get("minutes", 45)),
        intensity=int(request.get("intensity", 3)),
        include_films=bool(request.get("include_films", True)),
        exploration=request.get("exploration", "balanced"),
    )


def prior_precision() -> np.ndarray:
    """How firmly each coefficient is held to :func:`prior_coefficients` (inf: not fitted).

    The taste coefficients are held at ``TASTE_PRIOR``: stored feedback comes from the
    model's own picks, items already chosen for their taste, so it sees a narrow slice of
    taste and would pull those coefficients towards zero (selection bias), weakening what
    each person's online taste adds. Feedback fits the content coefficients and the
    intercept; the per-person learning lives in the taste features themselves.
    """
    return np.array([np.inf if name in TASTE_PRIOR else 1.0 for name in PAIR_FEATURES])


def _fit(pseudo: TrainingSet, real: TrainingSet, rows: np.ndarray | None = None,
         warm_start: CryRanker | None = None) -> CryRanker:
    X, t, w = pseudo.X, pseudo.target, pseudo.weight
    if len(real.target):
        Xr, tr, wr = ((real.X, real.target, real.weight) if rows is None
                      else (real.X[rows], real.target[rows], real.weight[rows]))
        X = np.vstack([X, Xr])
        t = np.concatenate([t, tr])
        w = np.concatenate([w, wr * FEEDBACK_WEIGHT])
    ranker = CryRanker(C=PRIOR_C, prior_coef=prior_coefficients(),
                       prior_precision=prior_precision())
    return ranker.fit_graded(X, t, sample_weight=w, warm_start=warm_start)


def holdout_scores(pseudo: TrainingSet, real: TrainingSet,
                   warm_start: CryRanker | None = None) -> dict:
    """Fit on the older sessions' feedback, score the newest ``HOLDOUT_SHARE`` (by time)."""
    if len(real.target) < 20 or real.order is None:
        return {}
    cut = np.quantile(real.order, 1.0 - HOLDOUT_SHARE)
    train, test = real.order < cut, (real.order >= cut) & (real.weight > 0)
    if len(np.unique(real.y[test])) < 2 or not train.any():
        return {}
    # On a large store a sample is enough to estimate hold-out scores (and keeps train fast).
    rng = np.random.default_rng(0)
    train_rows = np.flatnonzero(train)
    if len(train_rows) > HOLDOUT_MAX_ROWS:
        train_rows = np.sort(rng.choice(train_rows, HOLDOUT_MAX_ROWS, replace=False))
    test_rows = np.flatnonzero(test)
    if len(test_rows) > HOLDOUT_MAX_ROWS // 4:
        test_rows = np.sort(rng.choice(test_rows, HOLDOUT_MAX_ROWS // 4, replace=False))
    ranker = _fit(pseudo, real, train_rows, warm_start)
    p = ranker.predict_proba(real.X[test_rows])[:, 1]
    # Graded targets scored as a positive weighted by the target and a negative by the rest.
    t, w = real.target[test_rows], real.weight[test_rows]
    y = np.concatenate([np.ones(len(t)), np.zeros(len(t))])
    pp = np.concatenate([p, p])
    ww = np.concatenate([w * t, w * (1.0 - t)])
    return {
        "holdout": "newest sessions by time",
        "holdout_reactions": len(test_rows),
        "holdout_auc": round(float(roc_auc_score(y, pp, sample_weight=ww)), 4),
        "holdout_log_loss": round(float(log_loss(y, pp, sample_weight=ww, labels=[0, 1])), 4),
    }


def fit_ranker(
    db: Session | None, matrix: ItemMatrix, vocabulary: Vocabulary, *, seed: int = 0,
    evaluation: dict | None = None,
) -> tuple[CryRanker, dict]:
    """Fit the ranker on catalogue self-supervision plus all stored feedback.

    The solver starts from the served version's coefficients (a refit on much the same
    data takes few steps). The sidecar records the data snapshot, library versions, and
    evaluation scores: a temporal hold-out on the stored feedback, plus whatever
    ``evaluation`` is passed in.
    """
    pseudo = catalogue_pseudo_requests(matrix, vocabulary, seed=seed)
    real = feedback_training_set(db, matrix, vocabulary) if db is not None else _empty_set()
    served = load_servable(db) if db is not None and real.n_feedback else None
    warm = served[1] if served is not None else None
    scores = holdout_scores(pseudo, real, warm)
    ranker = _fit(pseudo, real, warm_start=warm)
    kind = "learned" if real.n_feedback else "content"
    X = np.vstack([pseudo.X, real.X]) if len(real.target) else pseudo.X
    y = np.concatenate([pseudo.y, real.y]) if len(real.target) else pseudo.y
    w = np.concatenate([pseudo.weight, real.weight]) if len(real.target) else pseudo.weight
    sidecar = {
        "kind": kind,
        "features": list(PAIR_FEATURES),
        "trained_at": datetime.now(UTC).isoformat(),
        "n_catalogue_examples": len(pseudo.target),
        "n_feedback_reactions": int(real.n_feedback),
        "warm_start": served[0] if served is not None else None,
        "solver_iterations": int(ranker.n_iter_[0]),
        "catalog_revision": matrix.revision,
        "catalog_items": len(matrix),
        "libraries": library_versions(),
        "coefficients": dict(zip(PAIR_FEATURES, (round(float(c), 4) for c in ranker.coef_[-1]),
                                 strict=True)),
        "evaluation": {
            "training_accuracy": round(float(ranker.score(X, y, sample_weight=w)), 4),
            **scores,
            **(evaluation or {}),
        },
    }
    return ranker, sidecar


def dump_ranker(ranker: CryRanker) -> bytes:
    buf = io.BytesIO()
    joblib.dump(ranker, buf)
    return buf.getvalue()


def load_ranker(artefact: bytes) -> CryRanker:
    ranker = joblib.load(io.BytesIO(artefact))
    if not isinstance(ranker, CryRanker):
        raise TypeError(f"artefact holds a {type(ranker).__name__}, not a CryRanker")
    return ranker


def save_version(db: Session, ranker: CryRanker, sidecar: dict, *, activate: bool = True) -> str:
    """Store a model version (artefact and sidecar in one row) and make it the served one."""
    artefact = dump_ranker(ranker)
    digest = hashlib.sha256(artefact).hexdigest()[:8]
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    version = f"{sidecar['kind']}-{stamp}-{digest}"
    # The same model fitted twice within a second (say the content model that preparing the
    # store trains, then `goodcry train` on no feedback yet) is still a version of its own.
    if db.get(ModelVersion, version) is not None:
        version = f"{version}-{secrets.token_hex(3)}"
    sidecar = {**sidecar, "version": version, "sha256": hashlib.sha256(artefact).hexdigest()}
    db.add(ModelVersion(version=version, artefact=artefact, sidecar=sidecar, active=False))
    db.flush()
    if activate:
        db.execute(update(ModelVersion).values(active=False))
        db.execute(update(ModelVersion).where(ModelVersion.version == version)
                   .values(active=True))
    db.commit()
    return version


def active_version_name(db: Session) -> str | None:
    return db.scalar(select(ModelVersion.version).where(ModelVersion.active.is_(True)))


def load_servable(db: Session) -> tuple[str, CryRanker] | None:
    """The active version if it loads, else the newest older version that does."""
    candidates = db.scalars(
        select(ModelVersion).order_by(ModelVersion.active.desc(), ModelVersion.created_at.desc())
    )
    for mv in candidates:
        try:
            # Checked before unpickling: a damaged or altered artefact is never loaded.
            if hashlib.sha256(mv.artefact or b"").hexdigest() != mv.sidecar.get("sha256"):
                raise ValueError("artefact does not match its sidecar checksum")
            ranker = load_ranker(mv.artefact)
        except Exception as exc:  # a corrupt artefact must never take the service down
            log.warning("model version %s failed to load (%s); trying an older one",
                        mv.version, type(exc).__name__)
            continue
        return mv.version, ranker
    return None


def sidecar_json(db: Session, version: str) -> str:
    mv = db.get(ModelVersion, version)
    return json.dumps(mv.sidecar if mv else {}, indent=2)
