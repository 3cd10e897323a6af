"""Checks on the predictive layer (assets/predict): warnings, never blocking."""

import dagster as dg

from assets.predict.clv import one_time_miss, predictions_not_finite, ranks_no_better
from assets.predict.recommendations import SOURCE_POPULARITY
from assets.predict.runs import EVALUATED, NO_CATEGORIES, NO_DATES, TRAINED
from pipelines.core.resources import WarehouseResource


def _latest_row(warehouse: WarehouseResource, table: str, run_id: str) -> dict | None:
    with warehouse.connect(read_only=True) as con:
        frame = con.execute(f"SELECT * FROM predict.{table} WHERE run_id = ?", [run_id]).pl()
    return frame.row(0, named=True) if frame.height else None


def customer_value_problems(row: dict) -> list[str]:
    """What a judged customer-value run's row falls short of: a ranking better than the past purchase rate, and
    one-time buyers' purchases within clv.ONE_TIME_TOLERANCE of what they made; empty when it meets both."""
    spearman, baseline, days = row["spearman"], row["baseline_spearman"], row["horizon_days"]
    problems = []
    if predictions_not_finite(row):
        problems.append(f"the model's held-out predictions are not finite numbers ({row['predicted_purchases']}): its "
                        "values cannot be used")
    elif spearman is None:  # every prediction alike, or nobody bought on the window
        problems.append(f"held-out Spearman of predicted against actual purchases over the last {days} days is "
                        "undefined: the predictions or the purchases do not vary")
    elif ranks_no_better(row):
        problems.append(f"held-out Spearman {spearman:.3f} of predicted against actual purchases over the last "
                        f"{days} days is no better than ranking by past purchase rate ({baseline:.3f})")
    miss = one_time_miss(row)
    if miss is not None:
        predicted, actual = row["one_time_predicted_purchases"], row["one_time_actual_purchases"]
        problems.append(
            f"the {row['one_time_buyers']:,} one-time buyers were predicted {predicted:,.1f} purchases over the last "
            f"{days} days and made {actual:,.0f}" + (f" ({miss:.1f}x)" if miss != float("inf") else "")
            + f": their values are {'overstated' if miss > 1 else 'understated'}")
    return problems


def churn_problems(row: dict) -> list[str]:
    """What a trained churn run's row falls short of: predict.min_auc, predict.max_calibration_error and the margin
    over ranking by recency alone; empty when it meets them."""
    problems = []
    if row["auc"] < row["min_auc"]:
        problems.append(f"held-out AUC {row['auc']:.3f} is below predict.min_auc {row['min_auc']}")
    if row["calibration_error"] > row["max_calibration_error"]:
        problems.append(f"calibration error {row['calibration_error']:.3f} is above predict.max_calibration_error "
                        f"{row['max_calibration_error']}")
    gain, margin = row.get("auc_gain_over_recency"), row.get("min_gain_over_recency")
    if gain is not None and margin is not None and gain < margin:
        # A model worse than recency is said to be below it, not "only -0.090 over" it.
        compared = f"only {gain:+.3f} over" if gain >= 0 else f"{-gain:.3f} below"
        problems.append(f"held-out AUC {row['auc']:.3f} is {compared} ranking by recency alone "
                        f"({row['recency_auc']:.3f}); the model adds nothing over recency (margin {margin})")
    return problems


@dg.asset_check(asset=dg.AssetKey(["predict", "churn_model_runs"]), blocking=False)
def churn_model_quality(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """The churn model of this run ranks and calibrates well enough on the held-out window: AUC at least
    `predict.min_auc`, at least min_gain_over_recency (MIN_GAIN_OVER_RECENCY) above ranking by recency alone, and
    calibration error at most `predict.max_calibration_error`. A warning only: the scores are still published. A
    run that could not train (no order dates, too short a history) passes with its reason; a run whose model was
    judged before recency_auc was recorded is not judged against recency."""
    row = _latest_row(warehouse, "churn_model_runs", context.run.run_id)
    if row is None or row["status"] != TRAINED:
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   description=f"not trained: {row['reason'] if row else 'no run row'}",
                                   metadata={"status": row["status"] if row else "missing"})
    problems = churn_problems(row)
    return dg.AssetCheckResult(
        passed=not problems, severity=dg.AssetCheckSeverity.WARN, description="; ".join(problems) or None,
        metadata={"auc": row["auc"], "min_auc": row["min_auc"], "calibration_error": row["calibration_error"],
                  "max_calibration_error": row["max_calibration_error"], "brier": row["brier"],
                  "brier_baseline": row["brier_baseline"],
                  **{k: row[k] for k in ("recency_auc", "auc_gain_over_recency") if row.get(k) is not None}})


@dg.asset_check(asset=dg.AssetKey(["predict", "recommendation_eval"]), blocking=False)
def recommendations_beat_popularity(context: dg.AssetCheckExecutionContext,
                                    warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """The co-purchase rules of this run hit at least `predict.min_lift_over_popularity` times as often as
    recommending the most popular categories, on the held-out window. A warning only: where the rules do not beat
    popularity the run already publishes the popularity ranking (published_source), which the description says; a
    run that could not be
    judged (no order dates, too short a history) passes with its reason, and so does a run that skipped
    recommendations because the export has no categories."""
    row = _latest_row(warehouse, "recommendation_eval", context.run.run_id)
    if row is not None and row["status"] == NO_CATEGORIES:
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   description=f"skipped: {row['reason']}", metadata={"status": row["status"]})
    if row is None or row["status"] != EVALUATED:
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   description=f"not evaluated: {row['reason'] if row else 'no run row'}",
                                   metadata={"status": row["status"] if row else "missing"})
    lift, bar = row["lift_over_popularity"], row["min_lift_over_popularity"]
    passed = lift is not None and lift >= bar
    return dg.AssetCheckResult(
        passed=passed, severity=dg.AssetCheckSeverity.WARN,
        description=None if passed else (
            f"hit-rate@{row['top_n']} {row['hit_rate']:.3f} is {lift or 0:.2f}x the popularity baseline "
            f"{row['popularity_hit_rate']:.3f}, below predict.min_lift_over_popularity {bar}"
            + ("; the most popular categories are published instead"
               if row.get("published_source") == SOURCE_POPULARITY else "")),
        metadata={"hit_rate": row["hit_rate"], "popularity_hit_rate": row["popularity_hit_rate"],
                  "lift_over_popularity": lift, "min_lift_over_popularity": bar,
                  "customers_evaluated": row["customers_evaluated"],
                  "published_source": row.get("published_source") or ""})


@dg.asset_check(asset=dg.AssetKey(["predict", "customer_value_eval"]), blocking=False)
def customer_value_quality(context: dg.AssetCheckExecutionContext,
                           warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """The customer values of this run were judged on held-out time (predict.clv_eval_days), rank customers'
    purchases better than their past purchase rate does, and predict one-time buyers' purchases within a factor of
    clv.ONE_TIME_TOLERANCE of what they made. A warning only: the values are still published. Values
    published without a judgement (too short a history for the window, too few buyers to evaluate) fail it, so the
    run says so; exports without order dates pass with their reason (nothing is published)."""
    row = _latest_row(warehouse, "customer_value_eval", context.run.run_id)
    if row is None or row["status"] == NO_DATES:
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   description=f"not computed: {row['reason'] if row else 'no run row'}",
                                   metadata={"status": row["status"] if row else "missing"})
    if row["status"] != EVALUATED:
        published = (row.get("n_scored") or 0) > 0
        return dg.AssetCheckResult(
            passed=not published, severity=dg.AssetCheckSeverity.WARN,
            description=(f"customer values published but not judged on held-out time: {row['reason']}"
                         if published else f"not published: {row['reason']}"),
            metadata={"status": row["status"]})
    spearman, baseline = row["spearman"], row["baseline_spearman"]
    problems = customer_value_problems(row)
    return dg.AssetCheckResult(
        passed=not problems, severity=dg.AssetCheckSeverity.WARN, description="; ".join(problems) or None,
        metadata={"spearman": spearman, "baseline_spearman": baseline, "horizon_days": row["horizon_days"],
                  "n_eval": row.get("n_eval"), "one_time_buyers": row.get("one_time_buyers"),
                  "one_time_predicted_purchases": row.get("one_time_predicted_purchases"),
                  "one_time_actual_purchases": row.get("one_time_actual_purchases")})


CHECKS = [churn_model_quality, recommendations_beat_popularity, customer_value_quality]
