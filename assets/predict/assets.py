"""The predict assets: the churn, recommendation and customer-value multi-assets, their specs, and the run tables
they write."""

import time
from datetime import datetime

import dagster as dg
import duckdb
import numpy as np
import polars as pl

from assets.predict.churn import (
    BEHAVIOUR_FEATURES,
    CALIBRATION_BINS,
    MIN_GAIN_OVER_RECENCY,
    ChurnResult,
    calibration_table,
    churn_recipe,
    profile_features,
    train_churn,
)
from assets.predict.churn_store import (
    choose_churn_model,
    models_folder,
    remove_other_models,
    save_model,
    score_with_stored,
)
from assets.predict.clv import (
    DECILE_SCHEMA,
    VALUE_COLUMNS,
    clv_eval_window,
    evaluate_customer_value,
    publish_customer_value,
    rfm_summaries,
)
from assets.predict.clv import MODEL_NAME as CLV_MODEL_NAME
from assets.predict.recommendations import (
    EVALUATION_COLUMNS,
    RECOMMENDATION_SCHEMA,
    RULE_SCHEMA,
    SOURCE_RULES,
    choose_rules,
    choose_source,
    evaluate_recommendations,
    load_first_purchases,
    load_purchases,
    mine_rules,
    recommend,
    rules_recipe,
)
from assets.predict.runs import (
    EVALUATED,
    FITTED,
    MINED,
    NO_CATEGORIES,
    NO_CATEGORIES_REASON,
    NO_DATES,
    ONE_CLASS,
    REUSED,
    SHORT_HISTORY,
    SKIPPED,
    TOO_FEW_BUYERS,
    plan_time_split,
)
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.core.sql import preview_markdown

SCHEMA = "predict"


# --- reading and writing the warehouse ------------------------------------------------------------------------------

RUN_TABLES = {
    "churn_model_runs": """
        run_id VARCHAR, trained_at TIMESTAMP, status VARCHAR, reason VARCHAR, model VARCHAR, horizon_days INTEGER,
        min_history_days INTEGER,
        data_start TIMESTAMP, data_end TIMESTAMP, train_cutoff TIMESTAMP, eval_cutoff TIMESTAMP,
        n_train BIGINT, n_eval BIGINT, train_churn_rate DOUBLE, eval_churn_rate DOUBLE, auc DOUBLE, brier DOUBLE,
        brier_baseline DOUBLE, calibration_error DOUBLE, min_auc DOUBLE, max_calibration_error DOUBLE,
        high_risk_threshold DOUBLE, n_scored BIGINT, features VARCHAR[], model_action VARCHAR,
        model_version VARCHAR, model_data_end TIMESTAMP, model_decision VARCHAR, model_recipe VARCHAR,
        model_sha256 VARCHAR, retrain_every_days INTEGER, recency_auc DOUBLE, auc_gain_over_recency DOUBLE,
        min_gain_over_recency DOUBLE""",
    "churn_calibration": """
        run_id VARCHAR, bin INTEGER, lower DOUBLE, upper DOUBLE, customers BIGINT, mean_predicted DOUBLE,
        observed_rate DOUBLE""",
    "recommendation_eval": """
        run_id VARCHAR, evaluated_at TIMESTAMP, status VARCHAR, reason VARCHAR, top_n INTEGER, horizon_days INTEGER,
        min_history_days INTEGER, data_start TIMESTAMP, data_end TIMESTAMP,
        eval_cutoff TIMESTAMP, window_end TIMESTAMP, customers_evaluated BIGINT, hits BIGINT, hit_rate DOUBLE,
        popularity_hits BIGINT, popularity_hit_rate DOUBLE, lift_over_popularity DOUBLE,
        min_lift_over_popularity DOUBLE, rules_used BIGINT, rules_action VARCHAR, rules_version VARCHAR,
        rules_data_end TIMESTAMP, rules_decision VARCHAR, rules_recipe VARCHAR, retrain_every_days INTEGER,
        published_source VARCHAR, published_hits BIGINT, published_hit_rate DOUBLE, source_decision VARCHAR""",
    "customer_value_eval": """
        run_id VARCHAR, evaluated_at TIMESTAMP, status VARCHAR, reason VARCHAR, model VARCHAR,
        clv_horizon_days INTEGER, horizon_days INTEGER, min_history_days INTEGER, data_start TIMESTAMP,
        data_end TIMESTAMP, eval_cutoff TIMESTAMP, n_fit BIGINT, n_eval BIGINT, spearman DOUBLE,
        baseline_spearman DOUBLE, predicted_purchases DOUBLE, actual_purchases DOUBLE, top_decile_purchase_share DOUBLE,
        n_scored BIGINT, repeat_buyers BIGINT, bgnbd_r DOUBLE, bgnbd_alpha DOUBLE, bgnbd_a DOUBLE, bgnbd_b DOUBLE,
        gg_p DOUBLE, gg_q DOUBLE, gg_v DOUBLE, fit_seconds DOUBLE, eval_seconds DOUBLE, one_time_buyers BIGINT,
        one_time_predicted_purchases DOUBLE, one_time_actual_purchases DOUBLE""",
    "customer_value_deciles": """
        run_id VARCHAR, decile INTEGER, customers BIGINT, min_predicted DOUBLE, max_predicted DOUBLE,
        mean_predicted_purchases DOUBLE, mean_actual_purchases DOUBLE, mean_predicted_spend DOUBLE,
        mean_actual_spend DOUBLE, buyers_share DOUBLE""",
}


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The schema and the run tables (history, appended to); the per-customer tables are replaced each run.
    Columns added since a warehouse was created are added to its tables (NULL in the older rows)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for table, columns in RUN_TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{table} ({columns})")
        present = {row[0] for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [SCHEMA, table]).fetchall()}
        for column in (c.strip() for c in columns.split(",")):
            if column.split()[0] not in present:
                con.execute(f"ALTER TABLE {SCHEMA}.{table} ADD COLUMN {column}")


def _insert_row(con: duckdb.DuckDBPyConnection, table: str, row: dict) -> None:
    columns = ", ".join(row)
    con.execute(f"INSERT INTO {SCHEMA}.{table} ({columns}) VALUES ({', '.join('?' for _ in row)})", list(row.values()))


def _replace(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, order_by: str | None,
             **constants: str) -> None:
    """Replace the table by `frame` plus a column per constant (added in DuckDB: not copied into every row of
    the frame first), sorted by `order_by`, or in the frame's own order when it is None."""
    arrow_frame = frame.to_arrow()  # noqa: F841 - read by DuckDB's replacement scan
    extra = "".join(f", ${name}::VARCHAR AS {name}" for name in constants)
    select = f"SELECT *{extra} FROM arrow_frame"
    if order_by is not None:
        # Sorted again though the frames come in order: writing them in the order they come
        # (preserve_insertion_order) was measured slower (3M recommendations: 2.0 s against 1.6 s), as DuckDB then
        # writes on fewer threads.
        con.execute(f"CREATE OR REPLACE TABLE {SCHEMA}.{table} AS {select} ORDER BY {order_by}", constants)
        return
    # In the frame's order: 0.3 s slower for 3M recommendations, but sorting them held 380 MB more at the step's
    # peak, the whole run's peak at 1M customers (docs/performance.md).
    kept = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
    con.execute("SET preserve_insertion_order = true")
    # No finally: a failed write aborts the caller's transaction, which then refuses every statement, this SET
    # too, and that refusal would replace the write's own error. The caller rolls back and closes the connection.
    con.execute(f"CREATE OR REPLACE TABLE {SCHEMA}.{table} AS {select}", constants)
    con.execute(f"SET preserve_insertion_order = {'true' if kept else 'false'}")


def order_dates(con: duckdb.DuckDBPyConnection) -> tuple[datetime | None, datetime | None]:
    return con.execute("SELECT min(order_ts), max(order_ts) FROM staging.orders").fetchone()


CHURN_SPECS = [
    dg.AssetSpec([SCHEMA, "churn_risk"], group_name="predict", kinds={"duckdb", "scikitlearn"},
                 deps=[["staging", "orders"], ["features", "customer_features"]],
                 description="One row per customer: churn_risk, the calibrated probability of no purchase in the "
                             "next predict.horizon_days days (NULL without orders or without a model), at_risk, "
                             "and the model_version that scored."),
    dg.AssetSpec([SCHEMA, "churn_model_runs"], group_name="predict", kinds={"duckdb"},
                 deps=[["staging", "orders"], ["features", "customer_features"]],
                 description="One row per run: cutoffs, held-out AUC, Brier score and calibration error, whether "
                             "the run trained its model or reused the latest one, or why churn could not be "
                             "trained."),
    dg.AssetSpec([SCHEMA, "churn_calibration"], group_name="predict", kinds={"duckdb"},
                 deps=[["staging", "orders"], ["features", "customer_features"]],
                 description="One row per training run and probability bin on the held-out window: mean predicted "
                             "churn against the observed churn rate."),
]


@dg.multi_asset(specs=CHURN_SPECS, pool="duckdb_writer")
def churn_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """Churn risk per customer from a time-split, calibrated gradient-boosting model, with its held-out AUC and
    calibration recorded per run; the model is retrained every predict.retrain_every_days days of data."""
    settings = source.load().predict
    run_id = context.run.run_id
    models_dir = models_folder(warehouse.file)
    with warehouse.connect() as con:
        ensure_tables(con)
        first, last = order_dates(con)
        split, reason, _ = plan_time_split(first, last, settings)
        columns = BEHAVIOUR_FEATURES + profile_features(con)
        stored, decision = (None, None) if reason else \
            choose_churn_model(con, models_dir, run_id, split, columns, settings)
        result: ChurnResult | str = reason if reason else (
            score_with_stored(con, stored, split, columns) if stored else train_churn(con, split, columns, settings))
        model = {}
        if isinstance(result, str):
            status = NO_DATES if split is None else SHORT_HISTORY if reason else ONE_CLASS
            run = {"status": status, "reason": result, "model": None, "n_scored": 0}
            calibration = calibration_table(np.array([]), np.array([]))
            scores = pl.DataFrame(schema={"customer_id": pl.String, "churn_risk": pl.Float64})
        else:
            run, calibration, scores = result.run, result.calibration, result.scores  # noqa: F841 - read by DuckDB
            if stored:
                model = {"model_action": REUSED, "model_version": stored.version,
                         "model_data_end": stored.trained["data_end"], "model_recipe": stored.trained["model_recipe"],
                         "model_sha256": stored.trained["model_sha256"]}
            else:
                recipe = churn_recipe(settings)
                # Written before the run row that points at it: a run that dies in between leaves an unused file.
                sha256 = save_model(models_dir, run_id, result.model, columns, recipe)
                model = {"model_action": FITTED, "model_version": run_id, "model_data_end": split.data_end,
                         "model_recipe": recipe, "model_sha256": sha256}
            model["model_decision"] = decision
        row = {"run_id": run_id, "trained_at": datetime.now(), **run, **model,
               "horizon_days": settings.horizon_days, "min_history_days": settings.min_history_days,
               "min_auc": settings.min_auc,
               "max_calibration_error": settings.max_calibration_error,
               "high_risk_threshold": settings.high_risk_threshold, "min_gain_over_recency": MIN_GAIN_OVER_RECENCY,
               "retrain_every_days": settings.retrain_every_days, "features": columns}
        if split is not None:
            row.update(data_start=split.data_start, data_end=split.data_end)
            # A reusing run keeps the cutoffs its model was judged at; any other run records its own.
            row.setdefault("train_cutoff", split.train_cutoff)
            row.setdefault("eval_cutoff", split.eval_cutoff)
        # The scores, the run row and the calibration bins appear together or not at all.
        con.execute("BEGIN TRANSACTION")
        con.execute("""
            CREATE OR REPLACE TABLE predict.churn_risk AS
            SELECT f.customer_id, s.churn_risk, s.churn_risk >= $threshold AS at_risk,
                   $horizon::INTEGER AS horizon_days, $scored_as_of::TIMESTAMP AS scored_as_of,
                   CASE WHEN s.churn_risk IS NOT NULL THEN $model_version::VARCHAR END AS model_version,
                   $run_id AS run_id
            FROM features.customer_features f LEFT JOIN scores s USING (customer_id)
            ORDER BY f.customer_id""", {"threshold": settings.high_risk_threshold, "horizon": settings.horizon_days,
                                        "scored_as_of": split.data_end if split else None,
                                        "model_version": model.get("model_version"), "run_id": run_id})
        con.execute("DELETE FROM predict.churn_model_runs WHERE run_id = ?", [run_id])
        con.execute("DELETE FROM predict.churn_calibration WHERE run_id = ?", [run_id])
        _insert_row(con, "churn_model_runs", row)
        calibrated = calibration.with_columns(pl.lit(run_id).alias("run_id"))  # noqa: F841
        con.execute("INSERT INTO predict.churn_calibration BY NAME SELECT * FROM calibrated")
        con.execute("COMMIT")
        if model.get("model_action") == FITTED:
            remove_other_models(models_dir, keep=run_id)
        [(customers, scored_customers, at_risk)] = con.execute(
            "SELECT count(*), count(churn_risk), count(*) FILTER (WHERE at_risk) FROM predict.churn_risk").fetchall()
        preview = con.execute("SELECT * FROM predict.churn_risk ORDER BY customer_id LIMIT 5").pl()
    summary = {k: row.get(k) for k in ("status", "reason", "auc", "recency_auc", "auc_gain_over_recency", "brier",
                                       "calibration_error", "n_train", "n_eval",
                                       "model_action", "model_version", "model_decision")}
    yield dg.MaterializeResult(asset_key=[SCHEMA, "churn_risk"], metadata={
        "dagster/row_count": customers, "scored": scored_customers, "at_risk": at_risk, "status": run["status"],
        "reason": run.get("reason") or "", "model_version": model.get("model_version") or "",
        "preview": dg.MetadataValue.md(preview_markdown(preview))})
    yield dg.MaterializeResult(asset_key=[SCHEMA, "churn_model_runs"], metadata={
        **{k: v for k, v in summary.items() if v is not None}, "dagster/row_count": 1})
    yield dg.MaterializeResult(asset_key=[SCHEMA, "churn_calibration"], metadata={
        "dagster/row_count": calibration.height,
        "bins": dg.MetadataValue.md(preview_markdown(calibration, rows=CALIBRATION_BINS))})


RECOMMENDATION_SPECS = [
    dg.AssetSpec([SCHEMA, "category_rules"], group_name="predict", kinds={"duckdb"},
                 deps=[["staging", "order_lines"], ["features", "customer_features"]],
                 description="One row per rule antecedent -> consequent over customers: support, confidence, lift "
                             "(mined again every predict.retrain_every_days days of data; empty for an export "
                             "declared without categories)."),
    dg.AssetSpec([SCHEMA, "next_category"], group_name="predict", kinds={"duckdb"},
                 deps=[["staging", "order_lines"], ["features", "customer_features"]],
                 description="Up to predict.top_n rows per customer: the categories they have not bought yet, "
                             "ranked, with the score and whether rules or popularity picked them (empty for an "
                             "export declared without categories)."),
    dg.AssetSpec([SCHEMA, "recommendation_eval"], group_name="predict", kinds={"duckdb"},
                 deps=[["staging", "order_lines"], ["staging", "orders"], ["features", "customer_features"]],
                 description="One row per run: hit-rate@N on the held-out window against the popularity baseline, "
                             "or why it could not be judged; whether the run mined its rules, reused them or "
                             "skipped them (status no_categories: the export has no categories)."),
]


@dg.multi_asset(specs=RECOMMENDATION_SPECS, pool="duckdb_writer")
def recommendation_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """Co-purchase rules, the top categories each customer has not bought yet, and their held-out hit-rate
    against recommending the most popular categories."""
    config = source.load()
    settings = config.predict
    run_id = context.run.run_id
    with warehouse.connect() as con:
        ensure_tables(con)
        first, last = order_dates(con)
        split, _, eval_reason = plan_time_split(first, last, settings)
        if not config.has_categories:
            # Nothing to mine, recommend or judge: the tables keep their columns, empty, and the run row carries the
            # status that the check (quality/checks/predict.py) and the report read.
            stored, decision = None, f"skipped: {NO_CATEGORIES_REASON}"
            rules, picks = pl.DataFrame(schema=RULE_SCHEMA), pl.DataFrame(schema=RECOMMENDATION_SCHEMA)
            evaluation = {"status": NO_CATEGORIES, "reason": NO_CATEGORIES_REASON}
            provenance = {"rules_action": SKIPPED, "rules_version": None, "rules_data_end": None,
                          "rules_recipe": None}
            source = {"published_source": None, "source_decision": None}
        else:
            stored, decision = choose_rules(con, run_id, split, eval_reason, settings)
            if stored:
                # Reused rules need no purchase dates: only which categories each customer bought.
                everything = load_purchases(con)
                rules = stored.rules
                evaluation = {k: stored.mined[k] for k in EVALUATION_COLUMNS}
                provenance = {"rules_action": REUSED, "rules_version": stored.version,
                              "rules_data_end": stored.mined["data_end"],
                              "rules_recipe": stored.mined["rules_recipe"]}
            else:
                first_purchases = load_first_purchases(con)
                everything = first_purchases.before(None)
                rules = mine_rules(everything, settings)
                evaluation = ({"status": NO_DATES if split is None else SHORT_HISTORY, "reason": eval_reason}
                              if eval_reason else evaluate_recommendations(first_purchases, split, settings))
                del first_purchases  # the purchase dates are let go before the picks are made and written
                provenance = {"rules_action": MINED, "rules_version": run_id,
                              "rules_data_end": split.data_end if split else None,
                              "rules_recipe": rules_recipe(settings)}
            # Rules or popularity, whichever did better on the held-out window (a reusing run decides from the
            # evaluation it keeps, so rules and choice change together, at the mining cadence).
            source = choose_source(evaluation)
            picks = recommend(everything, rules if source["published_source"] == SOURCE_RULES else None,
                              settings.top_n)
            del everything  # writing the picks is the step's peak: it need not hold the purchases too
        row = {"run_id": run_id, "evaluated_at": datetime.now(), **evaluation, **provenance, **source,
               "rules_decision": decision, "top_n": settings.top_n, "horizon_days": settings.horizon_days,
               "min_history_days": settings.min_history_days,
               "min_lift_over_popularity": settings.min_lift_over_popularity,
               "retrain_every_days": settings.retrain_every_days}
        if split is not None:
            row.update(data_start=split.data_start, data_end=split.data_end)
        con.execute("BEGIN TRANSACTION")
        if not stored:
            _replace(con, "category_rules", rules, "antecedent, lift DESC, consequent", run_id=run_id)
        # recommend() gives the picks by customer_id (load_purchases' ORDER BY customer_id), then rank: written
        # in that order, not sorted again.
        _replace(con, "next_category", picks, None, run_id=run_id, rules_version=row["rules_version"])
        con.execute("DELETE FROM predict.recommendation_eval WHERE run_id = ?", [run_id])
        _insert_row(con, "recommendation_eval", row)
        con.execute("COMMIT")
    yield dg.MaterializeResult(asset_key=[SCHEMA, "category_rules"], metadata={
        "dagster/row_count": rules.height, "rules_action": row["rules_action"], "rules_version": row["rules_version"],
        "strongest": dg.MetadataValue.md(preview_markdown(rules.sort("lift", descending=True), rows=10))})
    yield dg.MaterializeResult(asset_key=[SCHEMA, "next_category"], metadata={
        "dagster/row_count": picks.height, "customers": int(picks["rank"].eq(1).sum()),
        "from_rules": int((picks["source"] == SOURCE_RULES).sum()),
        "preview": dg.MetadataValue.md(preview_markdown(picks, rows=9))})
    yield dg.MaterializeResult(asset_key=[SCHEMA, "recommendation_eval"], metadata={
        "dagster/row_count": 1, "status": row["status"], "reason": row.get("reason") or "",
        "rules_action": row["rules_action"], "rules_decision": row["rules_decision"] or "",
        "published_source": row["published_source"] or "", "source_decision": row["source_decision"] or "",
        **{k: row[k] for k in ("hit_rate", "popularity_hit_rate", "lift_over_popularity", "customers_evaluated",
                               "published_hit_rate") if row.get(k) is not None}})


CUSTOMER_VALUE_SPECS = [
    dg.AssetSpec([SCHEMA, "customer_value"], group_name="predict", kinds={"duckdb", "scipy"},
                 deps=[["staging", "orders"], ["features", "customer_features"]],
                 description="One row per customer: expected purchases (days with an order) and expected spend over "
                             "the next predict.clv_horizon_days days, the probability of still being a customer and "
                             "the expected order value, from MBG/NBD + Gamma-Gamma fitted on every order (NULL "
                             "without orders or without a model)."),
    dg.AssetSpec([SCHEMA, "customer_value_eval"], group_name="predict", kinds={"duckdb"},
                 deps=[["staging", "orders"], ["features", "customer_features"]],
                 description="One row per run: the model refitted before the last predict.clv_eval_days days "
                             "(horizon_days) and judged on them (Spearman correlation of predicted and actual "
                             "purchases, against the past purchase rate), the fitted parameters, or why it was "
                             "skipped or not judged."),
    dg.AssetSpec([SCHEMA, "customer_value_deciles"], group_name="predict", kinds={"duckdb"},
                 deps=[["staging", "orders"], ["features", "customer_features"]],
                 description="One row per run and decile of predicted purchases on the held-out window: mean "
                             "predicted against actual purchases and spend."),
]


@dg.multi_asset(specs=CUSTOMER_VALUE_SPECS, pool="duckdb_writer")
def customer_value_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """Customer lifetime value from a buy-till-you-die model (MBG/NBD for purchases, Gamma-Gamma for spend), judged on
    its own held-out window, the last predict.clv_eval_days days (recorded as horizon_days of
    predict.customer_value_eval); fitted every run (seconds at a million customers, see docs/predictions.md)."""
    settings = source.load().predict
    run_id = context.run.run_id
    with warehouse.connect() as con:
        ensure_tables(con)
        first, last = order_dates(con)
        split, _, dates_reason = plan_time_split(first, last, settings)
        deciles = pl.DataFrame(schema=DECILE_SCHEMA)
        scores = pl.DataFrame(schema={"customer_id": pl.String, **{c: pl.Float64 for c in VALUE_COLUMNS}})
        row = {"run_id": run_id, "evaluated_at": datetime.now(), "clv_horizon_days": settings.clv_horizon_days,
               "horizon_days": settings.clv_eval_days, "min_history_days": settings.min_history_days,
               "n_scored": 0}
        if split is None:
            row.update(status=NO_DATES, reason=dates_reason)
        else:
            row.update(data_start=split.data_start, data_end=split.data_end, model=CLV_MODEL_NAME)
            # The held-out window is predict.clv_eval_days, not the churn horizon; a history too short for it is said.
            eval_cutoff, eval_reason = clv_eval_window(split.data_start, split.data_end, settings.clv_eval_days,
                                                       settings.min_history_days)
            # Both fits' summaries and the held-out window's purchases, in one pass over the orders (with no window
            # to judge, the window read is empty: it starts at the data's end).
            started = time.perf_counter()
            summary, past, window = rfm_summaries(con, eval_cutoff or split.data_end, split.data_end)
            read_seconds = time.perf_counter() - started
            published = publish_customer_value(con, split.data_end, settings.clv_horizon_days, summary=summary)
            if isinstance(published, str):
                row.update(status=TOO_FEW_BUYERS, reason=published)
            else:
                figures, scores = published
                # fit_seconds counts the summary SQL, which now reads for the evaluation too.
                row.update(figures, fit_seconds=figures["fit_seconds"] + read_seconds)
                judged = (eval_reason if eval_reason else
                          evaluate_customer_value(con, eval_cutoff, split.data_end, read=(past, window)))
                if isinstance(judged, str):
                    row.update(status=SHORT_HISTORY if eval_reason else TOO_FEW_BUYERS, reason=judged)
                    # Said out loud: the values are published, but nobody measured how well they rank customers.
                    context.log.warning(f"customer value not judged: {judged}")
                else:
                    figures, deciles = judged
                    row.update(figures, status=EVALUATED, reason=None, eval_cutoff=eval_cutoff)
        con.execute("BEGIN TRANSACTION")
        columns = ", ".join(f"v.{c}" for c in VALUE_COLUMNS)
        con.execute(f"""
            CREATE OR REPLACE TABLE predict.customer_value AS
            SELECT f.customer_id, {columns}, $horizon::INTEGER AS clv_horizon_days,
                   $scored_as_of::TIMESTAMP AS scored_as_of, $run_id AS run_id
            FROM features.customer_features f LEFT JOIN scores v USING (customer_id)
            ORDER BY f.customer_id""", {"horizon": settings.clv_horizon_days,
                                        "scored_as_of": split.data_end if split else None, "run_id": run_id})
        con.execute("DELETE FROM predict.customer_value_eval WHERE run_id = ?", [run_id])
        con.execute("DELETE FROM predict.customer_value_deciles WHERE run_id = ?", [run_id])
        _insert_row(con, "customer_value_eval", row)
        tagged = deciles.with_columns(pl.lit(run_id).alias("run_id"))  # noqa: F841 - read by DuckDB
        con.execute("INSERT INTO predict.customer_value_deciles BY NAME SELECT * FROM tagged")
        con.execute("COMMIT")
        [(customers, scored, expected)] = con.execute(
            "SELECT count(*), count(expected_purchases), sum(expected_spend) FROM predict.customer_value").fetchall()
        preview = con.execute("SELECT * FROM predict.customer_value ORDER BY customer_id LIMIT 5").pl()
    yield dg.MaterializeResult(asset_key=[SCHEMA, "customer_value"], metadata={
        "dagster/row_count": customers, "scored": scored, "status": row["status"], "reason": row.get("reason") or "",
        "expected_spend_total": float(expected or 0.0), "preview": dg.MetadataValue.md(preview_markdown(preview))})
    yield dg.MaterializeResult(asset_key=[SCHEMA, "customer_value_eval"], metadata={
        "dagster/row_count": 1, "status": row["status"], "reason": row.get("reason") or "",
        **{k: row[k] for k in ("spearman", "baseline_spearman", "n_eval", "fit_seconds", "eval_seconds")
           if row.get(k) is not None}})
    yield dg.MaterializeResult(asset_key=[SCHEMA, "customer_value_deciles"], metadata={
        "dagster/row_count": deciles.height, "deciles": dg.MetadataValue.md(preview_markdown(deciles, rows=10))})
