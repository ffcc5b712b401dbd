"""Offline replay on stored feedback, split by time.

The older sessions (and their reactions) train the ranker and build each person's taste;
each of the newest sessions is then re-ranked from its stored request over the whole
catalogue and scored against the reactions that session actually received: NDCG@10 and hit
rate@10 (graded: cried 3, moved 2, neutral 1, skipped and never again 0), catalogue
coverage, novelty (mean self-information of what is recommended, from training popularity)
and intra-list diversity (mean pairwise distance between the top items' attributes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from recommender import learning, tastes
from recommender.features import ItemMatrix, attribute_keys, pair_features, request_vector
from recommender.vocabulary import Vocabulary

GAIN = {"cried": 3.0, "moved": 2.0, "neutral": 1.0, "skipped": 0.0, "never_again": 0.0}
K = 10


def _ndcg(ranked_gains: np.ndarray, all_gains: np.ndarray, k: int = K) -> float:
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float((ranked_gains[:k] * discounts[:len(ranked_gains[:k])]).sum())
    ideal = np.sort(all_gains)[::-1][:k]
    idcg = float((ideal * discounts[:len(ideal)]).sum())
    return dcg / idcg if idcg > 0 else 0.0


def _ild(rows: np.ndarray, matrix: ItemMatrix, columns: np.ndarray) -> float:
    """1 - mean pairwise cosine of the items' themes, moods, maker, era and kind."""
    V = tastes.taste_attributes(matrix).weights[rows][:, columns].toarray()
    norms = np.linalg.norm(V, axis=1, keepdims=True)
    V = V / np.where(norms > 0, norms, 1.0)
    sim = V @ V.T
    n = len(rows)
    if n < 2:
        return 0.0
    return float(1.0 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))


def replay(db: Session, matrix: ItemMatrix, vocabulary: Vocabulary, *,
           test_share: float = 0.2, max_test_sessions: int = 500, seed: int = 0) -> pd.DataFrame:
    """One row per method with NDCG@10, hit rate@10, coverage, novelty, diversity."""
    reactions, sessions = learning.load_feedback_frames(db)
    if reactions.empty:
        return pd.DataFrame()
    sessions = sessions.sort_values(["created_at", "id"], kind="stable").reset_index(drop=True)
    cut = int(len(sessions) * (1.0 - test_share))
    train_ids, test_ids = set(sessions["id"][:cut]), sessions["id"][cut:]
    if len(test_ids) > max_test_sessions:
        test_ids = test_ids.sample(max_test_sessions, random_state=seed)
    train = reactions[reactions["session_id"].isin(train_ids)]
    ts = learning.training_set_from_frames(train, sessions[:cut], matrix, vocabulary)
    pseudo = learning.catalogue_pseudo_requests(matrix, vocabulary, seed=seed)
    ranker = learning._fit(pseudo, ts)
    content_ranker = learning._fit(pseudo, learning._empty_set())

    item_ids = pd.Index([r.id for r in matrix.records])
    popularity = np.bincount(item_ids.get_indexer(train["item_id"]).clip(0),
                             minlength=len(matrix)).astype(float)
    self_info = -np.log2((popularity + 1.0) / (popularity.sum() + len(matrix)))
    stats: dict[str, tastes.Stats] = {}
    weights = {row.id: tastes.session_weight(row.catharsis, row.mood_before, row.mood_after)
               for row in sessions[:cut].itertuples()}
    for (user_id, session_id), group in train.groupby(["user_id", "session_id"]):
        rated = []
        for item_id, reaction in zip(group["item_id"], group["reaction"], strict=True):
            row = item_ids.get_indexer([item_id])[0]
            if row >= 0:
                rec = matrix.records[row]
                rated.append(tastes.RatedItem(attribute_keys(
                    rec.id, rec.kind, rec.tags, rec.artist, rec.director, rec.year,
                    vocabulary), reaction))
        tastes._add(stats.setdefault(user_id, {}), rated, weights.get(session_id, 1.0), 1.0)

    rng = np.random.default_rng(seed)
    sad = ~matrix.aftercare
    columns = np.flatnonzero([not k.startswith("item:")
                              for k in tastes.taste_attributes(matrix).ids])
    by_session = reactions.groupby("session_id")
    request_of = dict(zip(sessions["id"], sessions["request"], strict=True))
    results: dict[str, dict[str, list]] = {}
    for session_id in test_ids:
        got = by_session.get_group(session_id)
        user_id = got["user_id"].iloc[0]
        rows = item_ids.get_indexer(got["item_id"])
        gains = np.zeros(len(matrix))
        gains[rows[rows >= 0]] = got["reaction"].map(GAIN).to_numpy()[rows >= 0]
        request = learning.request_from_stored(request_of[session_id])
        vec = request_vector(request, matrix, vocabulary)
        X = pair_features(matrix, vec)
        taste = tastes.taste_features(matrix, tastes.deviation(matrix, stats.get(user_id, {})))
        method_scores = {
            "goodcry": ranker.score_items(pair_features(matrix, vec, taste=taste)),
            "content match": content_ranker.score_items(X),
            "popularity": popularity + 0.01 * rng.random(len(matrix)),
            "random": rng.random(len(matrix)),
        }
        for method, scores in method_scores.items():
            scores = np.where(sad, scores, -np.inf)
            top = np.argsort(-scores, kind="stable")[:K]
            out = results.setdefault(method, {"ndcg": [], "hit": [], "items": [], "novelty": [],
                                              "ild": []})
            out["ndcg"].append(_ndcg(gains[top], gains[rows[rows >= 0]]))
            out["hit"].append(float((gains[top] >= 2).any()))
            out["items"].extend(top.tolist())
            out["novelty"].append(float(self_info[top].mean()))
            out["ild"].append(_ild(top, matrix, columns))
    table = pd.DataFrame([
        {"method": method, f"NDCG@{K}": np.mean(v["ndcg"]), f"hit rate@{K}": np.mean(v["hit"]),
         "coverage": len(set(v["items"])) / len(matrix), "novelty (bits)": np.mean(v["novelty"]),
         "intra-list diversity": np.mean(v["ild"])}
        for method, v in results.items()
    ]).set_index("method")
    table.attrs["train_sessions"] = cut
    table.attrs["test_sessions"] = len(test_ids)
    return table
