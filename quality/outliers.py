"""Isolation-forest outliers: customers whose buying looks unlike anyone else's.

Scored on per-customer aggregates and per-order extremes (largest order, most items in one order), log-scaled
because money and counts are heavy-tailed. Flagged customers are left out of model fitting, so a handful of
wholesale buyers cannot pull a segment centre towards them, but they are still assigned a segment and marked.

Reusing the forest: a night with one new day changes the inputs of the few customers who ordered that day. Within
`quality.outlier_refit_every_days` days of data after the forest was fitted, a run reuses it (saved beside the
working database: the trees as plain arrays, never a pickle, with each customer's scored row and score) and scores
only the customers whose row changed or who are new; the others keep their score, which the same forest on the
same row would give again. The flag threshold is recomputed from every customer's score, as on a full fit. The
forest is refitted when the window has passed, when the outlier features or the forest settings changed, when the
saved files fail their checksums, or when more than REUSE_MAX_CHANGED of the customers changed.
"""

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
from joblib import parallel_config
from sklearn.ensemble import IsolationForest

from assets.features.customer_features import (
    ORDER_MAXIMA,
    ORDER_MAXIMA_SQL,
    STATS_TABLE,
)
from assets.features.preparation import MedianImputer, data_as_of
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.core.sql import preview_markdown, table_columns

OUTLIER_FEATURES = ["total_spend", "n_orders", "avg_basket_value", "max_order_amount", "max_items_per_order", "income"]
TREES = 200
# Larger than scikit-learn's default of 256: with planted extremes at 0.5% of 20k customers, 4096-row samples
# lifted recall from 0.85-0.93 to 0.95-0.98 at equal precision (bench/outlier_quality.py).
MAX_SAMPLES = 4096
# Trees are built and scored on this many threads: tree code releases the GIL and joblib's threads block instead of
# spinning, so a busy second core costs nothing. 100k customers: 2.7 s on one thread, 1.8 s on two; same scores.
FOREST_THREADS = 2
# Below this many rows, one thread scores a stored forest's rows: splitting costs more than it saves.
SPLIT_SCORING_ROWS = 5_000
# Each tree is built on MAX_SAMPLES customers drawn at random; above this many customers they are drawn from a seeded
# random pool of this size instead of from everyone. scikit-learn's bagging hands every row to every tree as a 0/1
# weight, so building 200 trees touched 200 x 1M rows at 1M customers (2.5 s of CPU, 0.7 s from the pool). Every
# customer is still scored.
FIT_POOL = 100_000
# A reused forest scores changed customers in numpy, tree by tree (fast for the few of one night); past this share
# of changed customers a refit and scikit-learn's scoring of everyone cost no more.
REUSE_MAX_CHANGED = 0.25
FOREST_FOLDER = "outlier_forest"  # beside the working database; never published


def forest_folder(working_database: Path) -> Path:
    """work/<name>.outlier_forest: named after the working database, since two warehouses in one folder share
    work/ (as the churn models' work/<name>.models/)."""
    return working_database.with_name(f"{working_database.stem}.{FOREST_FOLDER}")
STATE_VERSION = 1
_LEAF = -1  # scikit-learn's marker of a leaf in children_left


ORDER_MAXIMA_FROM_ORDERS = f"(SELECT customer_id, {ORDER_MAXIMA_SQL} FROM staging.orders GROUP BY customer_id)"


def order_maxima_source(con) -> str:
    """Where each customer's largest order and basket come from: the order aggregates the features step keeps
    (assets/features/customer_features.py), refreshed only for changed customers, since grouping all 3M orders
    of 1M customers again
    cost 0.5-0.7 s every night. A warehouse whose aggregates predate these columns (the features step adds them on
    its next run) groups the orders as before."""
    kept = table_columns(con, STATS_TABLE) or []
    return STATS_TABLE if set(ORDER_MAXIMA) <= set(kept) else ORDER_MAXIMA_FROM_ORDERS


def outlier_inputs(con) -> pl.DataFrame:
    return con.execute(f"""
        SELECT f.customer_id, f.total_spend, f.n_orders, f.avg_basket_value, f.income, f.age,
               COALESCE(o.max_order_amount, 0) AS max_order_amount,
               COALESCE(o.max_items_per_order, 0) AS max_items_per_order
        FROM features.customer_features f
        LEFT JOIN {order_maxima_source(con)} o USING (customer_id)
        ORDER BY f.customer_id""").pl()


def _log_scaled(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Float64).clip(lower_bound=0).log1p()


def median_floors(inputs: pl.DataFrame, usable: list[str]) -> np.ndarray:
    """Per feature, the median of its log-scaled values: the floor of outlier_matrix."""
    return np.array(inputs.select([_log_scaled(c).median().alias(c) for c in usable]).row(0), dtype=np.float64)


def outlier_matrix(inputs: pl.DataFrame, usable: list[str], floors: np.ndarray | None = None) -> np.ndarray:
    """The forest's view of each customer: log-scaled, with values below the median (`floors`, the current data's
    medians when None) raised to it."""
    # Only unusually *high* values matter (a one-order customer is not an anomaly): values below the median are
    # raised to it, so the forest cannot isolate the quiet end of the distribution.
    if floors is None:
        floors = median_floors(inputs, usable)
    matrix = inputs.select([pl.max_horizontal(_log_scaled(c), pl.lit(float(floor))).alias(c)
                            for c, floor in zip(usable, floors)]).to_numpy()
    # The caller fills its gaps in place; polars hands out a read-only view when it can avoid a copy (one column).
    return np.require(matrix, requirements="W")


def score_distinct_rows(forest: IsolationForest, rows: np.ndarray) -> np.ndarray:
    """forest.score_samples(rows), scoring each distinct row once.

    After the median floor many customers share the same row (at 1M customers, 41% are repeats), and the trees
    see float32 values, so rows equal in float32 get equal scores: scoring the distinct ones gives the same
    numbers for a fraction of the work (scoring is the step's largest cost)."""
    as_seen = np.ascontiguousarray(rows, dtype=np.float32)  # the trees' own dtype
    names = [f"c{j}" for j in range(as_seen.shape[1])]
    groups = (pl.DataFrame(as_seen, schema=names, orient="row").with_row_index("row")
              .group_by(names).agg(pl.col("row")))
    distinct = groups.select(names).to_numpy()
    members = groups.get_column("row")
    scores = np.empty(len(as_seen))
    scores[members.explode().to_numpy()] = np.repeat(forest.score_samples(distinct), members.list.len().to_numpy())
    return scores


def _average_path_length(n: np.ndarray) -> np.ndarray:
    """Expected path length of an unsuccessful search in a binary tree of n points (scikit-learn's c(n))."""
    n = np.asarray(n, dtype=np.float64)
    result = np.zeros_like(n)
    result[n == 2] = 1.0
    more = n > 2
    result[more] = 2.0 * (np.log(n[more] - 1.0) + np.euler_gamma) - 2.0 * (n[more] - 1.0) / n[more]
    return result


@dataclass(frozen=True)
class Trees:
    """An isolation forest as plain arrays, enough to score rows exactly as scikit-learn does: every tree's nodes
    end to end (`offsets[t]` is tree t's first node; child indices are within the tree)."""

    children_left: np.ndarray
    children_right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    leaf_value: np.ndarray  # depth of the leaf + c(samples in it) - 1: what a row ending there adds to its depth
    offsets: np.ndarray
    denominator: float  # trees x c(max_samples)

    @classmethod
    def of(cls, forest: IsolationForest) -> "Trees":
        parts = {name: [] for name in ("children_left", "children_right", "feature", "threshold", "leaf_value")}
        offsets = [0]
        for estimator in forest.estimators_:
            tree = estimator.tree_
            parts["children_left"].append(tree.children_left.astype(np.int32))
            parts["children_right"].append(tree.children_right.astype(np.int32))
            parts["feature"].append(tree.feature.astype(np.int32))
            parts["threshold"].append(tree.threshold.astype(np.float64))
            parts["leaf_value"].append(tree.compute_node_depths() + _average_path_length(tree.n_node_samples) - 1.0)
            offsets.append(offsets[-1] + tree.node_count)
        return cls(**{name: np.concatenate(values) for name, values in parts.items()},
                   offsets=np.array(offsets, dtype=np.int64),
                   denominator=float(len(forest.estimators_) * _average_path_length([forest.max_samples_])[0]))

    def score_samples(self, rows: np.ndarray) -> np.ndarray:
        """What IsolationForest.score_samples gives for `rows` (lower = stranger), one tree at a time, every row
        of a tree level at once. From SPLIT_SCORING_ROWS rows, blocks of rows are scored on FOREST_THREADS threads:
        numpy releases the GIL while it indexes, so 28k changed rows at L took 0.7 s instead of 1.1 s. Each row's
        depths are still added tree by tree in the same order, so the scores are the same to the last bit."""
        as_seen = np.ascontiguousarray(rows, dtype=np.float32)  # scikit-learn compares float32 values
        if len(as_seen) >= SPLIT_SCORING_ROWS:
            blocks = np.array_split(as_seen, FOREST_THREADS)
            with ThreadPoolExecutor(FOREST_THREADS) as pool:
                depths = np.concatenate(list(pool.map(self._depths, blocks)))
        else:
            depths = self._depths(as_seen)
        if self.denominator == 0:
            return -np.ones(len(as_seen))
        return -(2 ** (-depths / self.denominator))

    def _depths(self, as_seen: np.ndarray) -> np.ndarray:
        """Each row's path length summed over the trees, in tree order."""
        depths = np.zeros(len(as_seen))
        for first, end in zip(self.offsets[:-1], self.offsets[1:]):
            left, right = self.children_left[first:end], self.children_right[first:end]
            feature, threshold = self.feature[first:end], self.threshold[first:end]
            node = np.zeros(len(as_seen), dtype=np.int64)
            pending = np.nonzero(left[node] != _LEAF)[0]
            while len(pending):
                at = node[pending]
                go_left = as_seen[pending, feature[at]] <= threshold[at]
                node[pending] = np.where(go_left, left[at], right[at])
                pending = pending[left[node[pending]] != _LEAF]
            depths += self.leaf_value[first:end][node]
        return depths


@dataclass(frozen=True)
class ForestState:
    """A fitted forest and what it saw: enough for a later run to score only the customers that changed."""

    features: list[str]
    floors: np.ndarray  # outlier_matrix's floor per feature, from the fitting run
    fill: np.ndarray  # the imputed value per feature, from the fitting run
    trees: Trees
    seed: int
    fitted_as_of: datetime  # the data's date when the forest was fitted (latest order time)
    fitted_run_id: str
    customers: pl.DataFrame  # customer_id, c0.. (the scored row, float32), normality


@dataclass(frozen=True)
class Scored:
    table: pl.DataFrame  # quality.outliers without run_id
    state: ForestState | None  # None when there was nothing to fit
    rescored: int  # customers scored by this run (everyone on a fit)
    reused: bool


def _row_frame(customer_ids: pl.Series, rows32: np.ndarray, normality: np.ndarray) -> pl.DataFrame:
    frame = pl.DataFrame(rows32, schema=[f"c{j}" for j in range(rows32.shape[1])], orient="row")
    return frame.with_columns(customer_ids.alias("customer_id"), pl.Series("normality", normality))


def score_outliers(inputs: pl.DataFrame, contamination: float, seed: int) -> pl.DataFrame:
    """One row per customer: anomaly score (higher = stranger), flag, and the feature that stands out most."""
    return score_with_state(inputs, contamination, seed).table


def score_with_state(inputs: pl.DataFrame, contamination: float, seed: int, saved: ForestState | None = None,
                     as_of: datetime | None = None, run_id: str = "") -> Scored:
    """score_outliers, reusing `saved` (a forest fitted on the same features) for the customers whose row has not
    changed, or fitting a new forest when `saved` is None or too many customers changed."""
    usable = [c for c in OUTLIER_FEATURES if inputs.get_column(c).null_count() < inputs.height]
    if saved is not None and saved.features != usable:
        raise ValueError(f"the saved forest has features {saved.features}, the data {usable}")
    floors = saved.floors if saved is not None else median_floors(inputs, usable)
    matrix = outlier_matrix(inputs, usable, floors)
    customer_ids = inputs.get_column("customer_id")
    state, rescored, reused = None, inputs.height, False
    if inputs.height < 2:
        scores, flags = np.zeros(inputs.height), np.zeros(inputs.height, dtype=bool)
        filled = np.nan_to_num(matrix)
    else:
        imputer = MedianImputer()
        if saved is not None:
            imputer.statistics_, imputer.n_features_in_ = saved.fill, len(usable)
        else:
            imputer.fit(matrix)
        filled = imputer.fill(matrix)  # the matrix outlier_matrix made for this call: filled where it is
        rows32 = filled.astype(np.float32)
        normality = None
        if saved is not None:
            current = _row_frame(customer_ids, rows32, np.zeros(len(rows32)))
            joined = current.join(saved.customers, on="customer_id", how="left", suffix="_saved",
                                  maintain_order="left")
            same = pl.all_horizontal([pl.col(f"c{j}") == pl.col(f"c{j}_saved") for j in range(len(usable))])
            unchanged = joined.select(same.fill_null(False)).to_series().to_numpy()
            changed = np.nonzero(~unchanged)[0]
            if len(changed) <= REUSE_MAX_CHANGED * len(rows32):
                normality = joined.get_column("normality_saved").to_numpy().copy()
                normality[changed] = saved.trees.score_samples(rows32[changed])
                state = ForestState(usable, floors, saved.fill, saved.trees, saved.seed, saved.fitted_as_of,
                                    saved.fitted_run_id, _row_frame(customer_ids, rows32, normality))
                rescored, reused = len(changed), True
        if normality is None:
            if saved is not None:  # too many changed: a fresh fit, on the current data's floors
                return score_with_state(inputs, contamination, seed, None, as_of, run_id)
            # contamination="auto" only stops fit() from scoring every row to place its threshold; the threshold
            # is set below from the one scoring pass, exactly as scikit-learn would (the contamination percentile
            # of the scores of the fitted rows), so each row is scored once instead of three times.
            forest = IsolationForest(n_estimators=TREES, max_samples=min(MAX_SAMPLES, inputs.height),
                                     contamination="auto", random_state=seed)
            pool = filled
            if len(filled) > FIT_POOL:
                pool = filled[np.sort(np.random.default_rng(seed).choice(len(filled), FIT_POOL, replace=False))]
            with parallel_config(backend="threading", n_jobs=FOREST_THREADS):
                normality = score_distinct_rows(forest.fit(pool), filled)  # lower = stranger
            state = ForestState(usable, floors, imputer.statistics_, Trees.of(forest), seed,
                                as_of or datetime.now(UTC).replace(tzinfo=None), run_id,
                                _row_frame(customer_ids, rows32, normality))
        threshold = np.percentile(normality, 100.0 * contamination)
        scores, flags = -normality, normality < threshold  # IsolationForest.predict's rule
    # Explain a flag with the feature furthest from the median, in robust (IQR) units of the scaled values. The
    # median and the quartiles partition one copy of the matrix, the distances are worked out in one array, and
    # raw values are not copied again: at 1M customers each copy is 48 MB of fresh memory.
    partitioned = np.array(filled)
    median = np.median(partitioned, axis=0, overwrite_input=True)
    spread = np.subtract(*np.percentile(partitioned, [75, 25], axis=0, overwrite_input=True))
    del partitioned
    spread[spread == 0] = 1.0
    distance = filled - median
    np.abs(distance, out=distance)
    distance /= spread
    top = np.argmax(distance, axis=1) if len(usable) else np.zeros(inputs.height, dtype=int)
    raw = inputs.select(usable).to_numpy().astype(float, copy=False)
    medians = np.nanmedian(raw, axis=0)
    rows = np.arange(inputs.height)
    table = pl.DataFrame({
        "customer_id": customer_ids,
        "score": np.round(scores, 6),
        "is_outlier": flags,
        "top_feature": pl.Series(np.array(usable, dtype=object)[top] if usable else [None] * inputs.height,
                                 dtype=pl.String),
        "top_feature_value": raw[rows, top] if usable else np.full(inputs.height, np.nan),
        "population_median": medians[top] if usable else np.full(inputs.height, np.nan),
    })
    return Scored(table, state, rescored, reused)


# --- the saved forest ---------------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _replace(path: Path, write) -> None:
    """Write through a temporary name and rename: a reader sees the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.tmp")
    write(temporary)
    os.replace(temporary, path)


def save_forest(state: ForestState, folder: Path) -> None:
    """The forest as arrays (.npz, read back without pickle), the scored rows (.parquet) and a manifest naming
    both with their SHA-256, written last: a run killed half-way leaves files that fail the check, not a mix."""
    folder.mkdir(parents=True, exist_ok=True)
    trees = state.trees
    arrays = {"children_left": trees.children_left, "children_right": trees.children_right,
              "feature": trees.feature, "threshold": trees.threshold, "leaf_value": trees.leaf_value,
              "offsets": trees.offsets, "floors": state.floors, "fill": state.fill}
    def write_arrays(path: Path) -> None:
        with path.open("wb") as handle:  # a file object: np.savez would add ".npz" to a temporary name
            np.savez(handle, **arrays)

    _replace(folder / "forest.npz", write_arrays)
    _replace(folder / "customers.parquet", lambda path: state.customers.write_parquet(path))
    manifest = {
        "version": STATE_VERSION, "features": state.features, "seed": state.seed, "trees": TREES,
        "max_samples": MAX_SAMPLES, "fit_pool": FIT_POOL, "denominator": trees.denominator,
        "fitted_as_of": state.fitted_as_of.isoformat(), "fitted_run_id": state.fitted_run_id,
        "sha256": {name: _sha256(folder / name) for name in ("forest.npz", "customers.parquet")},
    }
    _replace(folder / "manifest.json", lambda path: path.write_text(json.dumps(manifest, indent=1), "utf-8"))


def load_forest(folder: Path, features: list[str], seed: int) -> tuple[ForestState | None, str]:
    """The saved forest when it is intact and was fitted like this run would fit it; else None and why."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None, "no saved forest"
    if manifest.get("version") != STATE_VERSION:
        return None, "the saved forest is from another version of this step"
    if manifest.get("features") != features:
        return None, f"outlier features changed (saved {manifest.get('features')}, now {features})"
    wanted = {"seed": seed, "trees": TREES, "max_samples": MAX_SAMPLES, "fit_pool": FIT_POOL}
    if any(manifest.get(key) != value for key, value in wanted.items()):
        return None, "forest settings changed"
    try:
        if any(_sha256(folder / name) != digest for name, digest in manifest["sha256"].items()):
            return None, "the saved forest's files fail their checksum"
        with np.load(folder / "forest.npz", allow_pickle=False) as arrays:
            loaded = {name: arrays[name] for name in arrays.files}
        customers = pl.read_parquet(folder / "customers.parquet")
    except (OSError, KeyError, ValueError) as exc:
        return None, f"the saved forest cannot be read ({exc.__class__.__name__})"
    trees = Trees(**{name: loaded[name] for name in ("children_left", "children_right", "feature", "threshold",
                                                     "leaf_value", "offsets")},
                  denominator=float(manifest["denominator"]))
    return ForestState(features, loaded["floors"], loaded["fill"], trees, seed,
                       datetime.fromisoformat(manifest["fitted_as_of"]), manifest["fitted_run_id"],
                       customers), ""


def reusable_forest(folder: Path, inputs: pl.DataFrame, seed: int, refit_every_days: int,
                    as_of: datetime) -> tuple[ForestState | None, str]:
    """The saved forest if this run may reuse it, else None; and why."""
    if refit_every_days == 0:
        return None, "quality.outlier_refit_every_days is 0: refitted on every run"
    usable = [c for c in OUTLIER_FEATURES if inputs.get_column(c).null_count() < inputs.height]
    saved, problem = load_forest(folder, usable, seed)
    if saved is None:
        return None, problem
    age = (as_of - saved.fitted_as_of).total_seconds() / 86_400
    if age < 0:
        return None, f"the data now ends {-age:.1f} days before the data the forest was fitted on"
    if age >= refit_every_days:
        return None, f"fitted {age:.1f} days of data ago (quality.outlier_refit_every_days = {refit_every_days})"
    return saved, f"fitted {age:.1f} days of data ago in run {saved.fitted_run_id}"


@dg.asset(
    key=["quality", "outliers"],
    deps=[["features", "customer_features"], ["features", "customer_order_stats"], ["staging", "orders"]],
    group_name="quality",
    kinds={"scikitlearn", "duckdb"},
    pool="duckdb_writer",
)
def outliers(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """One row per customer (grain: customer_id): isolation-forest score, outlier flag and the feature that
    stands out most, from features.customer_features and each customer's largest order and basket (kept with the
    features' order aggregates, or grouped from staging.orders)."""
    quality = source.load().quality
    folder = forest_folder(warehouse.file)
    now = datetime.now(UTC).replace(tzinfo=None)
    with warehouse.connect() as con:
        inputs = outlier_inputs(con)
        as_of = data_as_of(con, now)
        saved, why = reusable_forest(folder, inputs, quality.outlier_seed, quality.outlier_refit_every_days, as_of)
        result = score_with_state(inputs, quality.outlier_contamination, quality.outlier_seed, saved, as_of,
                                  context.run.run_id)
        arrow_scored = result.table.to_arrow()  # noqa: F841 - read by DuckDB's replacement scan
        # The run id is added by DuckDB: not a million copies of it made in polars and handed over first.
        con.execute("CREATE OR REPLACE TABLE quality.outliers AS SELECT *, $run_id::VARCHAR AS run_id "
                    "FROM arrow_scored", {"run_id": context.run.run_id})
    if result.state is not None:
        save_forest(result.state, folder)
    if result.reused:
        forest = f"reused: {why}; rescored {result.rescored} of {result.table.height} customers"
    elif saved is not None:
        forest = f"refitted: more than {REUSE_MAX_CHANGED:.0%} of customers changed"
    else:
        forest = f"refitted: {why}"
    context.log.info(f"outlier forest {forest}")
    flagged = result.table.filter(pl.col("is_outlier")).sort("score", descending=True)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.table.height,
            "flagged": flagged.height,
            "contamination": quality.outlier_contamination,
            "forest": forest,
            "rescored": result.rescored,
            "top_flagged": dg.MetadataValue.md(preview_markdown(flagged, rows=10)),
        }
    )
