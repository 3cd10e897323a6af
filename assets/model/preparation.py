"""The model's view of the features: which columns, log-scaled where heavy-tailed, imputed, standardised and
weighted by feature family.

Step 2 of the model (assets/model/clusters.py): imputation and scaling in a scikit-learn Pipeline, fitted on the
customers not flagged as outliers and applied to every customer.

Weighting (`model.feature_weighting`; docs/segmentation.md has the measurements behind the default):
- a 0/1 flag (is_female, a basket's category flag) is not standardised: its two values are FLAG_SPREAD apart, the
  mean distance between two customers on a standardised feature. Standardised, a flag held by half the customers
  splits them so cleanly that k-means cut the seed table by gender alone (segments 100% and 0% female); a rare
  flag standardised is a jump of 4-5 standard deviations. On its own scale it neither dominates nor vanishes;
- each family (demographics, categories, rfm, payment) is then scaled to a total variance that grows with the
  square root of its column count (`balanced`, the default): 25 category columns weigh 2.5 times 4 RFM columns,
  not 6 times (`columns`, a family by its column count) nor the same (`families`). Measured: with every family
  the same, families that carry no groups (noise demographics, payment) outvoted the one that does, and six
  planted groups came back with an adjusted Rand index of 0.01; by column count, 11 category flags outvoted 4
  demographic fields on the seed table and left a trait-less segment of 41%;
- and the whole space is scaled back to one unit of variance per column on average, so distances (drift,
  model.match_max_distance) keep the size they had with every column standardised.
The weights are folded into the scaler (scale_ / weight), so transform and inverse_transform carry them.
`standardised` standardises every column and weighs each the same (the method before issue 19).
"""

import math

import numpy as np
import polars as pl
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from assets.features.customer_features import feature_family
from assets.features.preparation import MedianImputer

LOG_SCALED = ("n_orders", "total_spend", "avg_basket_value")
SCALER_BLOCK_ROWS = 65_536
# E|X - Y| for two independent standard normal X, Y: how far apart two customers typically are on a standardised
# feature, and so how far apart the two values of a 0/1 flag are put.
FLAG_SPREAD = 2 / math.sqrt(math.pi)


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


def flag_columns(frame: pl.DataFrame, rows: np.ndarray) -> list[bool]:
    """Per column: whether its known values in the rows of the boolean mask `rows` are all 0 or 1."""
    chosen = pl.lit(pl.Series(rows))
    flags = frame.select([pl.col(c).filter(chosen).drop_nulls().is_in([0.0, 1.0]).all().alias(c)
                          for c in frame.columns]).row(0)
    return [bool(flag) for flag in flags]


# model.feature_weighting -> the power of its column count a family's total variance is proportional to.
FAMILY_SIZE_POWER = {"families": 0.0, "balanced": 0.5, "columns": 1.0}


def family_weights(scale: np.ndarray, flags: list[bool], families: list[str], weighting: str) -> np.ndarray:
    """Per column, the factor its standardised values are multiplied by (module docstring): flags back to their
    own scale times FLAG_SPREAD, each family to a total variance of (its columns) ** FAMILY_SIZE_POWER[weighting],
    the whole to one unit per column."""
    weights = np.where(np.asarray(flags, dtype=bool), FLAG_SPREAD * scale, 1.0)
    power = FAMILY_SIZE_POWER[weighting]
    for family in set(families):
        members = np.array([f == family for f in families])
        weights[members] *= np.sqrt(members.sum() ** power / np.sum(weights[members] ** 2))
    return weights * np.sqrt(len(weights) / np.sum(weights ** 2))


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


def prepare(features: np.ndarray | pl.DataFrame, fit_mask: np.ndarray,
            weighting: str = "standardised") -> tuple[Pipeline, np.ndarray, np.ndarray]:
    """preprocessor() fitted on the rows of `fit_mask`, with its transform of every row and of the fitted rows.
    `features`: the feature matrix, or the frame of its columns (feature_frame), which is turned into the matrix
    here once the medians have been taken column by column. `weighting`: a model.feature_weighting; those of
    FAMILY_SIZE_POWER weigh the columns of a frame by family (module docstring), "standardised" leaves every column
    standardised.

    What `preprocessor().fit(matrix[fit_mask])` and two transforms give, with two matrices of every customer: the
    rows imputed and scaled in place, and the fitted rows (at 1M customers each is 230 MB, and allocating and
    filling them cost more than the arithmetic). The rows come back laid out row by row (C order), as k-means
    reads them: its predict() copies a column-ordered matrix first."""
    imputer = MedianImputer().fit(features, rows=fit_mask)
    flags = flag_columns(features, fit_mask) if weighting in FAMILY_SIZE_POWER and isinstance(features, pl.DataFrame) \
        else None
    families = [feature_family(c) for c in features.columns] if flags is not None else None
    if isinstance(features, pl.DataFrame):
        scaled = np.require(features.to_numpy(order="c"), np.float64, ["C_CONTIGUOUS", "WRITEABLE"])
    else:
        scaled = np.array(features, dtype=np.float64, order="C")  # a copy: the caller's matrix keeps its gaps
    imputer.fill(scaled)
    fit_rows = scaled[fit_mask]
    scaler = fit_scaler(fit_rows)
    if flags is not None:
        scaler.scale_ = scaler.scale_ / family_weights(scaler.scale_, flags, families, weighting)
    scaler.transform(fit_rows, copy=False)
    scaler.transform(scaled, copy=False)
    return Pipeline([("impute", imputer), ("scale", scaler)]), scaled, fit_rows
