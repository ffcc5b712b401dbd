"""Training the ranker and keeping its versions, so every worker serves the same model."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import platform
from dataclasses import dataclass
from datetime import UTC, datetime

import joblib
import numpy as np
import sklearn
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from recommender.features import (
    PAIR_FEATURES,
    ItemMatrix,
    SessionRequest,
    pair_features,
    request_vector,
)
from recommender.ranker import CryRanker
from recommender.store.models import CrySession, ModelVersion, Reaction
from recommender.vocabulary import Vocabulary

log = logging.getLogger(__name__)

# Graded outcomes of a reaction; 1 = the item reached the person.
REACTION_LABEL = {"cried": 1, "moved": 1, "neutral": 0, "skipped": 0, "never_again": 0}
REACTION_WEIGHT = {"cried": 2.0, "moved": 1.0, "neutral": 1.0, "skipped": 1.0,
                   "never_again": 2.0}


@dataclass(frozen=True)
class TrainingSet:
    X: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    n_feedback: int


def catalogue_pseudo_requests(
    matrix: ItemMatrix, vocabulary: Vocabulary, *, seed: int = 0, negatives: int = 4
) -> TrainingSet:
    """Self-supervision from the catalogue: an item's own tags, asked for, should find it.

    For every sad item, a request is made from a random part of its moods and themes and a
    random intensity; the item is a positive and ``negatives`` random other items are
    negatives. This teaches the content model how to weigh mood, theme, text and intensity
    matches before anyone has given feedback.
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
    X = np.vstack(Xs) if Xs else np.zeros((0, len(PAIR_FEATURES)), dtype=np.float32)
    y = np.concatenate(ys) if ys else np.zeros(0, dtype=int)
    return TrainingSet(X, y, np.ones(len(y)), 0)


def feedback_training_set(
    db: Session, matrix: ItemMatrix, vocabulary: Vocabulary
) -> TrainingSet:
    """Pair features for every stored reaction, labelled by how the item landed."""
    Xs, ys, ws = [], [], []
    sessions = {s.id: s for s in db.scalars(select(CrySession))}
    by_session: dict[str, list[Reaction]] = {}
    for reaction in db.scalars(select(Reaction)):
        by_session.setdefault(reaction.session_id, []).append(reaction)
    count = 0
    for session_id, reactions in by_session.items():
        session = sessions.get(session_id)
        if session is None:
            continue
        req = request_from_stored(session.request)
        vec = request_vector(req, matrix, vocabulary)
        rows = [matrix.index[r.item_id] for r in reactions if r.item_id in matrix.index]
        kept = [r for r in reactions if r.item_id in matrix.index]
        if not rows:
            continue
        Xs.append(pair_features(matrix, vec, np.array(rows)))
        ys.append([REACTION_LABEL[r.reaction] for r in kept])
        ws.append([REACTION_WEIGHT[r.reaction] for r in kept])
        count += len(kept)
    if not Xs:
        return TrainingSet(np.zeros((0, len(PAIR_FEATURES)), dtype=np.float32),
                           np.zeros(0, dtype=int), np.zeros(0), 0)
    return TrainingSet(np.vstack(Xs), np.concatenate(ys), np.concatenate(ws), count)


def request_from_stored(request: dict) -> SessionRequest:
    return SessionRequest(
        moods=tuple(request.get("moods") or ()),
        prompt=request.get("prompt"),
        minutes=int(request.get("minutes", 45)),
        intensity=int(request.get("intensity", 3)),
        include_films=bool(request.get("include_films", True)),
        exploration=request.get("exploration", "balanced"),
    )


def fit_ranker(
    db: Session | None, matrix: ItemMatrix, vocabulary: Vocabulary, *, seed: int = 0
) -> tuple[CryRanker, dict]:
    """Fit the ranker on catalogue self-supervision plus all stored feedback."""
    pseudo = catalogue_pseudo_requests(matrix, vocabulary, seed=seed)
    real = (feedback_training_set(db, matrix, vocabulary) if db is not None
            else TrainingSet(np.zeros((0, pseudo.X.shape[1])), np.zeros(0), np.zeros(0), 0))
    X = np.vstack([pseudo.X, real.X]) if len(real.y) else pseudo.X
    y = np.concatenate([pseudo.y, real.y]).astype(int) if len(real.y) else pseudo.y
    # Real feedback outweighs the catalogue's self-supervision, row for row.
    w = np.concatenate([pseudo.weight, real.weight * 4.0]) if len(real.y) else pseudo.weight
    ranker = CryRanker().fit(X, y, sample_weight=w)
    kind = "learned" if real.n_feedback else "content"
    sidecar = {
        "kind": kind,
        "features": list(PAIR_FEATURES),
        "trained_at": datetime.now(UTC).isoformat(),
        "n_catalogue_examples": len(pseudo.y),
        "n_feedback_reactions": int(real.n_feedback),
        "catalog_revision": matrix.revision,
        "catalog_items": len(matrix),
        "libraries": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "joblib": joblib.__version__,
        },
        "coefficients": dict(zip(PAIR_FEATURES,
                                 (float(c) for c in ranker.contributions(np.ones((1, len(
                                     PAIR_FEATURES))))[0]), strict=True)),
        "training_accuracy": float(ranker.score(X, y)),
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
            ranker = load_ranker(mv.artefact)
            if hashlib.sha256(mv.artefact).hexdigest() != mv.sidecar.get("sha256"):
                raise ValueError("artefact does not match its sidecar checksum")
        except Exception as exc:  # a corrupt artefact must never take the service down
            log.warning("model version %s failed to load (%s); trying an older one",
                        mv.version, type(exc).__name__)
            continue
        return mv.version, ranker
    return None


def sidecar_json(db: Session, version: str) -> str:
    mv = db.get(ModelVersion, version)
    return json.dumps(mv.sidecar if mv else {}, indent=2)
