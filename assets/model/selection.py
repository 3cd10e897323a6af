"""Choosing k and fitting the final model (steps 1 and 2 of assets/model/clusters.py).

Candidate k are scored on a sample (silhouette, Davies-Bouldin, bootstrap stability, smallest share, and
actionability: which segments have a distinctive, well-supported trait), the best silhouette among those meeting
the constraints wins (see choose_k for the order of preference), and the final model is fitted on every customer
not flagged as an outlier, every customer assigned.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import (
    adjusted_rand_score,
    davies_bouldin_score,
    pairwise_distances,
    silhouette_score,
)
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state

from assets.features.traits import Actionability
from pipelines.core.config import ModelSettings

SILHOUETTE_SAMPLE = 5_000
BOOTSTRAP_FRACTION = 0.8
# k-means runs its OpenMP loops and BLAS calls on one thread. On a small machine the other core is usually busy
# (DuckDB, the rest of the host) and a second worker thread then spin-waits for it: on 2 cores under load, choosing
# k at 100k customers took 17.7 s with the default two threads and 8.2 s with one OpenMP thread; with BLAS (the
# k-means++ seeding) on one thread too, 10.2 s became 3.5 s. Scores are identical; on an idle machine two threads
# won by 10-20% on the final fit at most.
MODEL_THREADS = 1
DISTANCE_BLOCK_ROWS = 65_536
# Mini-batch k-means draws every batch with numpy's weighted choice, which sums the weights of all its rows at every
# step: at 10M customers its final fit took 80 s of the model step's 98 s. Past this many fitted rows it is fitted on
# a uniform sample of them (its step limit and convergence smoothing then follow the sample's size); on the XL
# features the inertia over every fitted customer came within 0.003% of a fit on all 9.95M. Up to this many fitted
# customers nothing changes.
MINIBATCH_POOL_ROWS = 1_000_000


@dataclass(frozen=True)
class CandidateScore:
    k: int
    silhouette: float
    davies_bouldin: float
    stability: float
    min_share: float
    meets_constraints: bool  # the smallest share and the stability
    # Actionability on the selection sample (None for a run that did not measure it): segments without a
    # distinctive trait, the share of customers in segments with one, the largest segment without one.
    segments_without_trait: int | None = None
    actionable_share: float | None = None
    largest_traitless_share: float | None = None
    # The candidate's centres on the selection sample (scaled space): where the final fit starts without a
    # previous model. Not part of equality: two candidates are the same score whatever their centres.
    centers: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class FittedModel:
    algorithm: str
    k: int
    labels: np.ndarray  # cluster index per customer (0..k-1, before id matching)
    distances: np.ndarray  # distance to the assigned centre in scaled space
    centers_scaled: np.ndarray  # k x features, in the current scaled space
    centers_unscaled: np.ndarray  # k x features, in feature units (after log1p where applied)
    inertia: float
    warm_started: bool  # started from the previous model's centres


def resolve_algorithm(settings: ModelSettings, customers: int) -> str:
    if settings.algorithm != "auto":
        return settings.algorithm
    return "minibatch" if customers >= settings.minibatch_from else "kmeans"


def make_estimator(algorithm: str, k: int, seed: int, init: np.ndarray | None = None, n_init: int = 10):
    if algorithm == "gmm":
        return GaussianMixture(n_components=k, random_state=seed, n_init=1 if init is not None else 3,
                               means_init=init)
    if algorithm == "minibatch":
        return MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=1 if init is not None else 3,
                               init=init if init is not None else "k-means++", batch_size=4096)
    return KMeans(n_clusters=k, random_state=seed, n_init=1 if init is not None else n_init,
                  init=init if init is not None else "k-means++")


def centers_of(estimator) -> np.ndarray:
    return estimator.means_ if isinstance(estimator, GaussianMixture) else estimator.cluster_centers_


def silhouette_sample_distances(sample: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `sample` the silhouette is computed on, and their pairwise distances.

    The same rows `silhouette_score(sample_size=SILHOUETTE_SAMPLE, random_state=seed)` would draw, so each k's
    score is unchanged; the distance matrix (the expensive part) is computed once instead of once per k.
    """
    size = min(SILHOUETTE_SAMPLE, len(sample))
    rows = check_random_state(seed).permutation(len(sample))[:size]
    return rows, pairwise_distances(sample[rows])


def score_candidates(scaled: np.ndarray, settings: ModelSettings, algorithm: str,
                     judge: Callable[[np.ndarray, np.ndarray], Actionability] | None = None) -> list[CandidateScore]:
    """Score every candidate k on (a sample of) the scaled fit matrix. `judge(rows, labels)` measures the
    actionability of the sample's segments: `rows` index the sample into `scaled`, `labels` are their segments."""
    rng = np.random.default_rng(settings.seed)
    sample_rows = np.arange(len(scaled)) if len(scaled) <= settings.selection_sample else \
        np.sort(rng.choice(len(scaled), settings.selection_sample, replace=False))
    sample = scaled if len(sample_rows) == len(scaled) else scaled[sample_rows]
    low, high = (settings.k, settings.k) if settings.k else settings.k_range
    silhouette_rows, silhouette_distances = silhouette_sample_distances(sample, settings.seed)
    scores = []
    for k in range(low, min(high, len(sample) - 1) + 1):
        base = make_estimator(algorithm, k, settings.seed, n_init=4).fit(sample)
        labels = base.predict(sample)
        shares = np.bincount(labels, minlength=k) / len(labels)
        agreements = []
        for round_index in range(settings.bootstrap_rounds):
            picked = rng.choice(len(sample), int(len(sample) * BOOTSTRAP_FRACTION), replace=False)
            resampled = make_estimator(algorithm, k, settings.seed + 1 + round_index, n_init=2).fit(sample[picked])
            agreements.append(adjusted_rand_score(labels, resampled.predict(sample)))
        distinct = len(set(labels.tolist()))
        silhouette = float(silhouette_score(silhouette_distances, labels[silhouette_rows], metric="precomputed")) \
            if len(set(labels[silhouette_rows].tolist())) > 1 else -1.0
        davies_bouldin = float(davies_bouldin_score(sample, labels)) if distinct > 1 else float("inf")
        stability = float(np.mean(agreements))
        actionability = judge(sample_rows, labels) if judge else None
        scores.append(CandidateScore(
            k=k, silhouette=round(silhouette, 6), davies_bouldin=round(davies_bouldin, 6),
            stability=round(stability, 6), min_share=round(float(shares.min()), 6),
            meets_constraints=bool(shares.min() >= settings.min_segment_share
                                   and stability >= settings.min_stability),
            segments_without_trait=actionability.segments_without_trait if actionability else None,
            actionable_share=actionability.actionable_share if actionability else None,
            largest_traitless_share=actionability.largest_traitless_share if actionability else None,
            centers=centers_of(base),
        ))
    return scores


def has_catch_all(score: CandidateScore, max_segment_share: float) -> bool:
    """Whether a segment without a distinctive trait holds more than `max_segment_share` of the customers (a
    candidate whose actionability was not measured has none)."""
    return (score.largest_traitless_share or 0.0) > max_segment_share


def every_segment_has_trait(score: CandidateScore) -> bool:
    return not score.segments_without_trait


def choose_k(scores: list[CandidateScore], min_segment_share: float = 0.0,
             max_segment_share: float = 1.0) -> tuple[int, str]:
    """The k to publish, in this order of preference (Davies-Bouldin breaks silhouette ties, then the smaller k):

    1. among the candidates meeting the share and stability constraints, those whose every segment has a
       distinctive, well-supported trait: the best silhouette;
    2. else among those meeting the constraints, those with no trait-less segment above `max_segment_share`: the
       most customers in segments with a trait, then the best silhouette;
    3. else the best silhouette among those meeting the constraints (the catch-all is said in the reason and in
       the verdict, segmentation_strength);
    4. when none meets the constraints, stability is given up before the share: the largest k whose every segment
       holds at least `min_segment_share` (more segments tell customers apart better), preferring one without a
       catch-all. When no k keeps every segment that large either, the best silhouette overall; its smallest
       segments are then merged after the final fit (merge_small_segments), so no published segment is below the
       share either way."""
    def silhouette_first(s: CandidateScore):
        return s.silhouette, -s.davies_bouldin, -s.k

    valid = [s for s in scores if s.meets_constraints]
    actionable = [s for s in valid if every_segment_has_trait(s)]
    if actionable:
        best = max(actionable, key=silhouette_first)
        return best.k, ("best silhouette among candidates meeting share and stability constraints whose every "
                        "segment has a distinctive trait")
    bounded = [s for s in valid if not has_catch_all(s, max_segment_share)]
    if bounded:
        best = max(bounded, key=lambda s: (s.actionable_share or 0.0, *silhouette_first(s)))
        return best.k, (f"no candidate meeting share and stability constraints gave every segment a distinctive "
                        f"trait; the one with the most customers in segments that have one "
                        f"({best.actionable_share:.0%}), none without one above {max_segment_share:.0%}")
    if valid:
        best = max(valid, key=silhouette_first)
        reason = "best silhouette among candidates meeting share and stability constraints"
        if has_catch_all(best, max_segment_share):
            reason += (f"; every one keeps a segment of more than {max_segment_share:.0%} of customers without a "
                       f"distinctive trait ({best.largest_traitless_share:.0%} here)")
        return best.k, reason
    sized = [s for s in scores if s.min_share >= min_segment_share]
    if sized:
        best = max(sized, key=lambda s: (not has_catch_all(s, max_segment_share), s.k))
        return best.k, (f"no candidate met the constraints; the largest k whose every segment holds at least "
                        f"{min_segment_share:.1%} of customers (its stability {best.stability:.2f} is below "
                        "model.min_stability)")
    best = max(scores, key=silhouette_first)
    return best.k, (f"no candidate met the constraints and none kept every segment at {min_segment_share:.1%} of "
                    "customers; best silhouette overall, its smallest segments merged into their nearest neighbour")


# The verdict on a run's segmentation, from the chosen k's scores. Measured (issue 19): the seed table scores
# silhouette 0.117 / stability 0.83 at its chosen k, a generated shop of 400 customers 0.151 / 0.94: real
# customers overlap, so a silhouette far above 0.25 is rare and 0.1-0.25 is usable. Uniform noise in 8 or 20
# features meets no constraint (stability 0.03-0.47) with silhouettes of 0.03-0.11.
STRONG, MODERATE, WEAK = "strong", "moderate", "weak"
STRONG_SILHOUETTE = 0.25
STRONG_STABILITY = 0.85
WEAK_SILHOUETTE = 0.10
# What would help, by what was weak (the report says the same in both languages).
HELP_SEPARATION = ("customer attributes that tell customers apart (income, age, household) or product categories "
                   "in the orders")
HELP_STABILITY = "more customers, or a longer order history per customer"


@dataclass(frozen=True)
class Strength:
    level: str  # strong | moderate | weak
    reason: str  # plain language, with the figures; for weak, what data would help


def segmentation_strength(score: CandidateScore, min_stability: float, merged: int = 0,
                          max_segment_share: float = 1.0) -> Strength:
    """strong: constraints met, every segment with a distinctive trait, silhouette >= 0.25 and stability >= 0.85.
    weak: constraints not met (a fallback k), stability below model.min_stability, silhouette below 0.10, segments
    merged to reach the minimum share, or a segment of more than `max_segment_share` of the customers without a
    distinctive trait. moderate otherwise."""
    figures = f"silhouette {score.silhouette:.2f}, stability {score.stability:.2f}"
    problems, helps = [], []
    if has_catch_all(score, max_segment_share):
        problems.append(f"a segment of {score.largest_traitless_share:.0%} of customers has no distinctive trait")
        helps.append(HELP_SEPARATION)
    if merged:
        problems.append(f"{merged} segment(s) below model.min_segment_share were merged into their nearest neighbour")
    if not score.meets_constraints or score.stability < min_stability:
        problems.append("no number of segments met the minimum segment share and stability")
    if score.stability < min_stability:
        problems.append("the segments change when the customers are resampled")
        helps.append(HELP_STABILITY)
    if score.silhouette < WEAK_SILHOUETTE:
        problems.append("the customers do not fall into distinct groups")
        helps.append(HELP_SEPARATION)
    if problems:
        helps = list(dict.fromkeys(helps)) or [HELP_STABILITY, HELP_SEPARATION]
        return Strength(WEAK, f"{'; '.join(problems)}: {figures}; would help: {'; '.join(helps)}")
    if not every_segment_has_trait(score):
        return Strength(MODERATE, f"usable segments, but {score.segments_without_trait} segment(s) holding "
                                  f"{1 - (score.actionable_share or 0.0):.0%} of customers have no distinctive "
                                  f"trait: {figures}")
    if score.silhouette >= STRONG_SILHOUETTE and score.stability >= STRONG_STABILITY:
        return Strength(STRONG, f"well-separated segments that come back on resampled customers: {figures}")
    return Strength(MODERATE, f"usable segments that overlap or shift somewhat: {figures}; strong needs "
                              f"silhouette >= {STRONG_SILHOUETTE:.2f} and stability >= {STRONG_STABILITY:.2f}")


def merge_small_segments(model: FittedModel, scaled: np.ndarray, fit_mask: np.ndarray, min_share: float,
                         inverse_transform) -> tuple[FittedModel, int]:
    """Merge the smallest segment into the one with the nearest centre until every segment holds at least
    `min_share` of the customers (all customers: what is published). The merged centre is the fitted customers'
    weighted mean of the two, k-means' centre of their union. Returns the model and how many segments were merged.
    """
    labels, centers = model.labels.copy(), model.centers_scaled.copy()
    alive = list(range(model.k))
    merged = 0
    while len(alive) > 1:
        counts = np.bincount(labels, minlength=model.k)
        smallest = min(alive, key=lambda c: counts[c])
        if counts[smallest] / len(labels) >= min_share:
            break
        others = [c for c in alive if c != smallest]
        target = min(others, key=lambda c: float(np.linalg.norm(centers[c] - centers[smallest])))
        fitted = np.bincount(labels[fit_mask], minlength=model.k).astype(float)
        weight = fitted[target] + fitted[smallest]
        if weight > 0:
            centers[target] = (centers[target] * fitted[target] + centers[smallest] * fitted[smallest]) / weight
        labels[labels == smallest] = target
        alive.remove(smallest)
        merged += 1
    if not merged:
        return model, 0
    renumber = np.full(model.k, -1)
    renumber[alive] = np.arange(len(alive))
    labels, centers = renumber[labels], centers[alive]
    distances = assigned_distances(scaled, centers, labels)
    return FittedModel(
        algorithm=model.algorithm, k=len(alive), labels=labels, distances=distances, centers_scaled=centers,
        centers_unscaled=inverse_transform(centers), inertia=float(np.sum(distances[fit_mask] ** 2)),
        warm_started=model.warm_started,
    ), merged


def assigned_distances(scaled: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each customer's distance to its assigned centre (scaled space)."""
    distances = np.empty(len(scaled))
    # Block by block: the offsets of every customer at once were two more 230 MB matrices at 1M customers. Each
    # row's distance is the same sum whatever the block.
    for start in range(0, len(scaled), DISTANCE_BLOCK_ROWS):
        block = slice(start, start + DISTANCE_BLOCK_ROWS)
        offsets = scaled[block] - centers[labels[block]]
        distances[block] = np.sqrt(np.einsum("ij,ij->i", offsets, offsets))
    return distances


def fit_final(
    prepared: tuple[Pipeline, np.ndarray, np.ndarray], fit_mask: np.ndarray, k: int, algorithm: str, seed: int,
    previous_centers_unscaled: np.ndarray | None, start_centers: np.ndarray | None = None,
) -> tuple[FittedModel, Pipeline]:
    """The final model on the rows of `fit_mask`, every row assigned. `prepared`: what prepare() gives for the
    feature matrix and these rows.

    The fit starts from the previous model's centres (feature units) when given, else from `start_centers` (the
    chosen candidate's, scaled space) with one run instead of several random restarts, else from k-means++."""
    prep, scaled, fit_rows = prepared
    scaler = prep.named_steps["scale"]
    init = scaler.transform(previous_centers_unscaled) if previous_centers_unscaled is not None else start_centers
    pooled = algorithm == "minibatch" and len(fit_rows) > MINIBATCH_POOL_ROWS
    pool = fit_rows[np.sort(np.random.default_rng(seed).choice(len(fit_rows), MINIBATCH_POOL_ROWS, replace=False))] \
        if pooled else fit_rows
    estimator = make_estimator(algorithm, k, seed, init=init).fit(pool)
    labels = estimator.predict(scaled)
    centers = centers_of(estimator)
    distances = assigned_distances(scaled, centers, labels)
    # A pooled fit's own inertia covers the pool only: the published one covers every fitted customer.
    inertia = float(np.sum(distances[fit_mask] ** 2)) if pooled \
        else float(getattr(estimator, "inertia_", np.sum(distances[fit_mask] ** 2)))
    return FittedModel(
        algorithm=algorithm, k=k, labels=labels, distances=distances,
        centers_scaled=centers, centers_unscaled=scaler.inverse_transform(centers),
        inertia=inertia, warm_started=previous_centers_unscaled is not None,
    ), prep
