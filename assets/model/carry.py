"""Stable segment ids and carrying k between runs (steps 3 and 4 of assets/model/clusters.py).

The previous run's model (segments.model_runs, model.segment_centers), the match of new centres to old ids, the
drift since the previous run, and why a run must re-choose k or may carry it.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment

from assets.model.selection import CandidateScore
from pipelines.core.config import ModelSettings
from pipelines.core.sql import table_exists

CHOSEN, CARRIED = "chosen", "carried"


@dataclass(frozen=True)
class PreviousRun:
    """The chosen row of the latest run in segments.model_runs: what a run may carry."""

    run_id: str
    k: int  # segments published (the chosen candidate's k, less the segments merged into others)
    algorithm: str
    feature_columns: list[str]
    selection_key: str | None  # None: written before k could be carried
    k_selected_run_id: str | None
    k_selected_as_of: datetime | None
    mean_distance: float | None
    candidate_k: int | None = None  # the chosen candidate's k (k + the segments merged)

    @property
    def merged(self) -> int:
        return (self.candidate_k or self.k) - self.k


@dataclass(frozen=True)
class Drift:
    """How far this run's model moved from the previous run's: measured on every run after the first."""

    moved_share: float | None  # customers in both runs whose segment id changed, over customers in both
    distance_change: float | None  # mean distance to centre (fitted customers), relative to the previous run
    unmatched: int  # clusters that matched no previous segment (they got a new id)

    def exceeded(self, settings: ModelSettings) -> str | None:
        """Why this counts as drift, or None."""
        reasons = []
        if self.moved_share is not None and self.moved_share > settings.drift_max_moved_share:
            reasons.append(f"{self.moved_share:.1%} of customers changed segment "
                           f"(model.drift_max_moved_share {settings.drift_max_moved_share:.1%})")
        if self.distance_change is not None and self.distance_change > settings.drift_max_distance_rise:
            reasons.append(f"mean distance to centre rose {self.distance_change:+.1%} "
                           f"(model.drift_max_distance_rise {settings.drift_max_distance_rise:.1%})")
        if self.unmatched:
            reasons.append(f"{self.unmatched} segment(s) matched no previous segment")
        return "; ".join(reasons) or None

    def describe(self) -> str:
        moved = "n/a" if self.moved_share is None else f"{self.moved_share:.1%}"
        change = "n/a" if self.distance_change is None else f"{self.distance_change:+.1%}"
        return f"moved {moved}, mean distance {change}"


def match_segment_ids(
    centers_scaled: np.ndarray, sizes: np.ndarray, previous: dict[int, np.ndarray], to_scaled, max_distance: float,
    next_id: int,
) -> dict[int, int]:
    """cluster index -> stable segment id. Without a previous model, ids follow size (1 = largest)."""
    k = len(centers_scaled)
    order = sorted(range(k), key=lambda c: (-sizes[c], tuple(np.round(centers_scaled[c], 9))))
    if not previous:
        return {cluster: rank + 1 for rank, cluster in enumerate(order)}
    previous_ids = sorted(previous)
    previous_scaled = to_scaled(np.vstack([previous[i] for i in previous_ids]))
    cost = np.linalg.norm(centers_scaled[:, None, :] - previous_scaled[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(cost)
    mapping = {r: previous_ids[c] for r, c in zip(rows, cols) if cost[r, c] <= max_distance}
    for cluster in order:
        if cluster not in mapping:
            mapping[cluster] = next_id
            next_id += 1
    return mapping


def load_previous_centers(con: duckdb.DuckDBPyConnection, columns: list[str]) -> tuple[dict[int, np.ndarray], int]:
    """The latest model's centres on the current feature columns, and the next unused segment id."""
    if not table_exists(con, "model.segment_centers"):
        return {}, 1
    rows = con.execute("""
        SELECT segment_id, feature, center FROM model.segment_centers
        WHERE model_version = (SELECT model_version FROM model.segment_centers ORDER BY fitted_at DESC LIMIT 1)
    """).fetchall()
    used = con.execute("SELECT max(segment_id) FROM model.segment_centers").fetchone()[0] or 0
    by_segment: dict[int, dict[str, float]] = {}
    for segment_id, feature, center in rows:
        by_segment.setdefault(segment_id, {})[feature] = center
    if not by_segment or any(set(columns) - set(values) for values in by_segment.values()):
        # A feature the previous model did not have (a new category) leaves nothing comparable: fresh ids.
        return {}, used + 1
    return {sid: np.array([values[c] for c in columns]) for sid, values in by_segment.items()}, used + 1


def load_previous_run(con: duckdb.DuckDBPyConnection) -> PreviousRun | None:
    if not table_exists(con, "segments.model_runs"):
        return None
    present = {row[0] for row in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'segments' "
        "AND table_name = 'model_runs'").fetchall()}
    carry = [c if c in present else f"NULL AS {c}" for c in
             ("selection_key", "k_selected_run_id", "k_selected_as_of", "mean_distance", "segments_published")]
    row = con.execute(f"""
        SELECT run_id, k, algorithm, feature_columns, {', '.join(carry)} FROM segments.model_runs
        WHERE chosen ORDER BY fitted_at DESC LIMIT 1""").fetchone()
    if row is None:
        return None
    return PreviousRun(run_id=row[0], k=row[8] or row[1], algorithm=row[2], feature_columns=list(row[3] or []),
                       selection_key=row[4], k_selected_run_id=row[5], k_selected_as_of=row[6], mean_distance=row[7],
                       candidate_k=row[1])


def selection_key(settings: ModelSettings, algorithm: str) -> str:
    """Fingerprint of everything that decides which k wins: a change re-chooses k at once."""
    decisive = {"k": settings.k, "k_range": list(settings.k_range), "min_segment_share": settings.min_segment_share,
                "max_segment_share": settings.max_segment_share, "feature_weighting": settings.feature_weighting,
                "min_stability": settings.min_stability, "bootstrap_rounds": settings.bootstrap_rounds,
                "selection_sample": settings.selection_sample, "seed": settings.seed, "algorithm": algorithm}
    return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:12]


def reselect_reason(previous: PreviousRun | None, columns: list[str], key: str, as_of: datetime,
                    previous_centers: dict[int, np.ndarray], settings: ModelSettings) -> str | None:
    """Why this run must re-choose k before any fit, or None when it may carry the previous run's k."""
    if previous is None:
        return "first run: no previous model"
    if settings.reselect_k_every_days == 0:
        return "model.reselect_k_every_days is 0: k is re-chosen on every run"
    if set(previous.feature_columns) != set(columns):
        added = sorted(set(columns) - set(previous.feature_columns))
        removed = sorted(set(previous.feature_columns) - set(columns))
        return f"feature columns changed since the previous run (added {added}, removed {removed})"
    if previous.selection_key is None or previous.k_selected_as_of is None:
        return "the previous run did not record how its k was chosen"
    if previous.selection_key != key:
        return "model settings or algorithm changed since k was chosen"
    if len(previous_centers) != previous.k:
        return "the previous model's centres are not available"
    age = (as_of - previous.k_selected_as_of).total_seconds() / 86_400
    if age < 0:
        return f"the data now ends {-age:.1f} days before the data k was chosen on (reloaded or restated)"
    if age >= settings.reselect_k_every_days:
        return (f"k was chosen {age:.1f} days of data ago "
                f"(model.reselect_k_every_days = {settings.reselect_k_every_days})")
    return None


def moved_share(con: duckdb.DuckDBPyConnection, customer_ids: pl.Series, segment_ids: np.ndarray) -> float | None:
    """Share of the customers in both this run and the previous one whose segment id changed."""
    if not table_exists(con, "model.customer_clusters"):
        return None
    # Read by DuckDB's replacement scan.
    current_assignments = pl.DataFrame(  # noqa: F841
        {"customer_id": customer_ids, "segment_id": segment_ids}).to_arrow()
    both, moved = con.execute("""
        SELECT count(*), count(*) FILTER (WHERE p.segment_id <> c.segment_id)
        FROM current_assignments c JOIN model.customer_clusters p USING (customer_id)""").fetchone()
    return moved / both if both else None


def measure_drift(con, customer_ids: pl.Series, segment_ids: np.ndarray, mean_distance: float,
                  previous: PreviousRun | None, unmatched: int) -> Drift:
    change = mean_distance / previous.mean_distance - 1 if previous is not None and previous.mean_distance else None
    return Drift(moved_share=moved_share(con, customer_ids, segment_ids) if previous is not None else None,
                 distance_change=change, unmatched=unmatched)


def carried_candidates(con: duckdb.DuckDBPyConnection, previous: PreviousRun) -> list[CandidateScore]:
    """The candidate scores of the previous run (themselves those of the run that chose k): a run that carries k
    repeats them, so every run's rows in segments.model_runs show the scores behind its k."""
    columns = {row[0] for row in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'segments' "
        "AND table_name = 'model_runs'").fetchall()}
    # A warehouse from before actionability was measured has no such columns: its candidates count as unmeasured.
    measured = ", segments_without_trait, actionable_share, largest_traitless_share" \
        if "segments_without_trait" in columns else ""
    rows = con.execute(f"""SELECT k, silhouette, davies_bouldin, stability, min_share, meets_constraints{measured}
                           FROM segments.model_runs WHERE run_id = ? ORDER BY k""", [previous.run_id]).fetchall()
    return [CandidateScore(*row) for row in rows]


@dataclass
class Decision:
    """How this run's k came about, for segments.model_runs."""

    decision: str  # chosen | carried
    reason: str
    selected_run_id: str
    selected_as_of: datetime
