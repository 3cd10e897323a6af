"""The model's view of the features: which columns, log-scaled where heavy-tailed, imputed and standardised.

Step 2 of the model (assets/model/clusters.py): imputation and scaling in a scikit-learn Pipeline, fitted on the
customers not flagged as outliers and applied to every customer.
"""

import numpy as np
import polars as pl
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from assets.features.customer_features import feature_family
from assets.features.preparation import MedianImputer

LOG_SCALED = ("n_orders", "total_spend", "avg_basket_value")
SCALER_BLOCK_ROWS = 65_536


# Why a family of model.features has no column at all in features.customer_features.
ABSENT_FAMILY_REASONS = {
    "categories": "the export has no product category (orders.columns.category: null)",
    "payment": "the orders carry no payment method",
}


def family_choice(families: list[str], columns: list[str], features: pl.DataFrame) -> tuple[list[str], dict]:
    """Of the families chosen in model.features: those the model clusters on (some column selected), in the order
    chosen, and why each other one is skipped. A shop declared without categories has no `cat_` column while
    model.features lists categories by default: that family is skipped, not an error."""
    used = [f for f in families if any(feature_family(c) == f for c in columns)]
    present = {feature_family(column) for column in features.columns}
    skipped = {f: ABSENT_FAMILY_REASONS.get(f, "no such column in features.customer_features") if f not in present
               else "every column empty or constant" for f in families if f not in used}
    return used, skipped


def select_feature_columns(features: pl.DataFrame, families: list[str], rows: np.ndarray | None = None) -> list[str]:
    """Columns of the chosen families that carry information (not all-null, not constant) in the rows of the
    boolean mask `rows` (every row when None)."""
    candidates = [c for c in features.columns if feature_family(c) in families]
    if not candidates:
        return []
    # A column at a time, not a filtered copy of the whole frame (230 MB at 1M customers) to look at.
    values = {c: pl.col(c) if rows is None else pl.col(c).filter(pl.lit(pl.Series(rows))) for c in candidates}
    # min == max over the known values is "fewer than two distinct values", for all columns in one pass.
    bounds = features.select([values[c].min().alias(f"min{i}") for i, c in enumerate(candidates)]
                             + [values[c].max().alias(f"max{i}") for i, c in enumerate(candidates)]).row(0)
    low, high = bounds[:len(candidates)], bounds[len(candidates):]
    return [c for c, lo, hi in zip(candidates, low, high) if lo is not None and lo != hi]


def feature_frame(features: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """The model's view of each feature column, as floats."""
    # Counts and money are heavy-tailed: log1p keeps a few big spenders from owning a cluster.
    return features.select([
        pl.col(c).cast(pl.Float64).log1p().alias(c) if c in LOG_SCALED else pl.col(c).cast(pl.Float64)
        for c in columns
    ])


def preprocessor() -> Pipeline:
    return Pipeline([("impute", MedianImputer()), ("scale", StandardScaler())])


def fit_scaler(rows: np.ndarray) -> StandardScaler:
    """StandardScaler().fit(rows) for a C-ordered matrix without gaps (as prepare() gives): the same two-pass mean
    and variance from the same sums. scikit-learn first counts the missing values of every cell, in a float copy of
    the whole matrix, and then subtracts the mean in another: 2 x 230 MB at 1M customers. Memory never touched
    before is slow to hand out on this VM (about 2 ms per MB), so those copies were 0.5-1 s of the model step;
    here the deviations are taken a block of rows at a time. tests/test_model_carry.py pins every fitted
    attribute to scikit-learn's."""
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    samples = float(len(rows))
    count = np.full(rows.shape[1], samples)
    total = np.sum(rows, axis=0)
    centre = total / count
    correction = squares = None
    for start in range(0, len(rows), SCALER_BLOCK_ROWS):
        deviations = rows[start:start + SCALER_BLOCK_ROWS] - centre
        correction = _running_sum(correction, deviations)
        deviations **= 2
        squares = _running_sum(squares, deviations)
    variance = (squares - correction ** 2 / count) / count
    mean = (0.0 + total) / count  # scikit-learn adds its running sum (0): -0.0 becomes 0.0
    # Columns indistinguishable from a constant keep scale 1, by scikit-learn's bound (_is_constant_feature).
    eps = np.finfo(np.float64).eps
    constant = variance <= samples * eps * variance + (samples * mean * eps) ** 2
    scale = np.sqrt(variance)
    scale[constant] = 1.0
    scaler = StandardScaler()
    scaler.mean_, scaler.var_, scaler.scale_ = mean, variance, scale
    scaler.n_samples_seen_, scaler.n_features_in_ = count[0], rows.shape[1]
    return scaler


def _running_sum(running: np.ndarray | None, block: np.ndarray) -> np.ndarray:
    """np.sum(axis=0) over the rows summed so far and `block`, as over all of them at once: numpy adds the rows of
    a C-ordered matrix one after another, so the running sum enters as the block's first row."""
    return np.sum(block if running is None else np.vstack([running, block]), axis=0)


def prepare(features: np.ndarray | pl.DataFrame, fit_mask: np.ndarray) -> tuple[Pipeline, np.ndarray, np.ndarray]:
    """preprocessor() fitted on the rows of `fit_mask`, with its transform of every row and of the fitted rows.
    `features`: the feature matrix, or the frame of its columns (feature_frame), which is turned into the matrix
    here once the medians have been taken column by column.

    What `preprocessor().fit(matrix[fit_mask])` and two transforms give, with two matrices of every customer: the
    rows imputed and scaled in place, and the fitted rows (at 1M customers each is 230 MB, and allocating and
    filling them cost more than the arithmetic). The rows come back laid out row by row (C order), as k-means
    reads them: its predict() copies a column-ordered matrix first."""
    imputer = MedianImputer().fit(features, rows=fit_mask)
    if isinstance(features, pl.DataFrame):
        scaled = np.require(features.to_numpy(order="c"), np.float64, ["C_CONTIGUOUS", "WRITEABLE"])
    else:
        scaled = np.array(features, dtype=np.float64, order="C")  # a copy: the caller's matrix keeps its gaps
    imputer.fill(scaled)
    fit_rows = scaled[fit_mask]
    scaler = fit_scaler(fit_rows)
    scaler.transform(fit_rows, copy=False)
    scaler.transform(scaled, copy=False)
    return Pipeline([("impute", imputer), ("scale", scaler)]), scaled, fit_rows
