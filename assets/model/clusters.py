"""Model layer: choose k, fit the segments, and keep segment ids stable across refreshes.

1. Candidate k over `model.k_range` are scored on a sample: silhouette, Davies-Bouldin, bootstrap stability
   (mean adjusted Rand index between fits on resamples) and the smallest segment's share. The k with the best
   silhouette among those meeting `model.min_segment_share` and `model.min_stability` wins; every score goes
   to `segments.model_runs`. The silhouette's pairwise distances are computed once per run and shared by every
   candidate (the same customers are scored for each k). When no k meets both, the largest k whose every segment
   meets the share wins; failing that, the best silhouette, and segments under the share are merged into their
   nearest neighbour after the final fit (selection.merge_small_segments): no published segment is below the share.
   The run's verdict (strong | moderate | weak, selection.segmentation_strength) goes on the chosen row.
2. The final model is fitted on every customer not flagged as an outlier, with imputation and scaling in a
   scikit-learn Pipeline, then every customer is assigned. It starts from the previous model's centres when k and
   the features are unchanged, else from the chosen candidate's centres (already fitted on the selection sample),
   so one run of the full data refines a solution instead of ten random restarts.
3. Stable ids: the new centres are matched to the previous model's (Hungarian assignment on distances in the
   current scaled space). A matched cluster keeps its segment id; a new one gets the next free id.
4. Carrying k: choosing k is the expensive, slow-moving decision. Within `model.reselect_k_every_days` days of
   data after k was last chosen, a run keeps the previous k, refits from the previous centres and skips the
   candidate scoring, unless drift is detected: more than `model.drift_max_moved_share` of the customers changed
   segment since the previous run, the mean distance of the fitted customers to their centre rose by more than
   `model.drift_max_distance_rise`, or a cluster no longer matches any previous segment. Then k is re-chosen. k is
   also re-chosen when the feature columns, the model settings or the algorithm changed, and on the first run.
   Each run's decision and its reason are recorded in `segments.model_runs` (`k_decision`, `k_decision_reason`).

The step is one multi_asset with an output per table it writes (assets/model/tables.py writes them in one
transaction); the pieces live beside it: preparation.py (the model's view of the features, imputation and scaling),
selection.py (candidate scores, choosing k, the final fit), carry.py (the previous run, stable ids, drift, whether
to re-choose k).
"""

import hashlib
import json
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from assets.features.preparation import data_as_of
from assets.features.traits import NameSupport, judge_actionability
from assets.model.carry import (
    CARRIED,
    CHOSEN,
    Decision,
    Drift,
    carried_candidates,
    load_previous_centers,
    load_previous_run,
    match_segment_ids,
    measure_drift,
    reselect_reason,
    selection_key,
)
from assets.model.preparation import family_choice, feature_frame, prepare, select_feature_columns
from assets.model.selection import (
    MODEL_THREADS,
    FittedModel,
    choose_k,
    fit_final,
    merge_small_segments,
    resolve_algorithm,
    score_candidates,
    segmentation_strength,
)
from assets.model.tables import missing_value_report, model_table_rows, write_model_tables
from pipelines.core.resources import SourceResource, WarehouseResource
from pipelines.core.sql import preview_markdown

__all__ = ["MODEL_THREADS", "MODEL_SPECS", "model_tables"]

# What the model reads: the features, the outlier flags (left out of the fit), and the orders' latest date (the
# data's own date, on which the window for carrying k is counted).
MODEL_INPUTS = [["features", "customer_features"], ["quality", "outliers"], ["staging", "orders"]]

MODEL_SPECS = [
    dg.AssetSpec(["model", "customer_clusters"], group_name="model", kinds={"scikitlearn", "duckdb"},
                 deps=MODEL_INPUTS,
                 description="One row per customer (grain: customer_id): its stable segment_id, its distance to the "
                             "segment centre (scaled space) and whether the model was fitted on it (fitted_on: "
                             "false for the customers flagged in quality.outliers)."),
    dg.AssetSpec(["model", "segment_centers"], group_name="model", kinds={"scikitlearn", "duckdb"},
                 deps=MODEL_INPUTS,
                 description="One row per model version, segment and feature (grain: model_version, segment_id, "
                             "feature): the segment centre in feature units (after log1p where applied). Every "
                             "model version is kept; the latest one is where the next run matches ids from."),
    dg.AssetSpec(["segments", "model_runs"], group_name="model", kinds={"scikitlearn", "duckdb"},
                 deps=MODEL_INPUTS,
                 description="One row per run and candidate k (grain: run_id, k): silhouette, Davies-Bouldin, "
                             "stability, smallest share, whether it met the constraints and was chosen, how "
                             "the run's k was decided (k_decision chosen or carried, k_decision_reason, drift), "
                             "and the feature columns and families it clustered on."),
    dg.AssetSpec(["quality", "missing_values"], group_name="model", kinds={"duckdb"},
                 deps=[["features", "customer_features"], ["quality", "outliers"]],
                 description="One row per model feature of the latest run (grain: column_name): customers, how "
                             "many had no value and were imputed (imputed_share), and the imputation policy."),
]


# The op keeps the step key the single asset had (model__customer_clusters), which bench/run.py groups by.
@dg.multi_asset(specs=MODEL_SPECS, name="model__customer_clusters", pool="duckdb_writer")
def model_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource, source: SourceResource):
    """One row per customer (grain: customer_id) with its stable segment id, from features.customer_features,
    fitted without the customers flagged in quality.outliers. Candidate k scores and how k was decided (chosen
    or carried, and why) go to segments.model_runs, centres to model.segment_centers."""
    config = source.load()
    settings, segments = config.model, config.segments
    run_id = context.run.run_id
    fitted_at = datetime.now(UTC).replace(tzinfo=None)
    with warehouse.connect() as con:
        features = con.execute("""
            SELECT f.*, COALESCE(o.is_outlier, FALSE) AS _is_outlier
            FROM features.customer_features f LEFT JOIN quality.outliers o USING (customer_id)
            ORDER BY customer_id""").pl()
        fit_mask = ~features.get_column("_is_outlier").to_numpy()
        features = features.drop("_is_outlier")
        if int(fit_mask.sum()) < 3:
            fit_mask = np.ones(features.height, dtype=bool)
        columns = select_feature_columns(features, list(settings.features), rows=fit_mask)
        families, skipped_families = family_choice(list(settings.features), columns, features)
        if not columns:
            raise ValueError(f"no usable feature columns in model.features {list(settings.features)}: " + "; ".join(
                f"{family}: {reason}" for family, reason in skipped_families.items()))
        if skipped_families:
            context.log.info(f"clustering on the feature families {families}; skipped: {skipped_families}")
        algorithm = resolve_algorithm(settings, int(fit_mask.sum()))
        # Serves choosing k and the final model.
        prepared = prepare(feature_frame(features, columns), fit_mask, settings.feature_weighting)
        prep, _, fit_rows = prepared
        to_scaled = prep.named_steps["scale"].transform
        customer_ids = features.get_column("customer_id")
        previous_run = load_previous_run(con)
        previous, next_id = load_previous_centers(con, columns)
        as_of = data_as_of(con, fitted_at)
        key = selection_key(settings, algorithm)

        def assign(model: FittedModel) -> tuple[dict[int, int], np.ndarray, Drift]:
            sizes = np.bincount(model.labels, minlength=model.k)
            mapping = match_segment_ids(model.centers_scaled, sizes, previous, to_scaled,
                                        settings.match_max_distance, next_id)
            segment_ids = np.array([mapping[c] for c in range(model.k)], dtype=np.int32)[model.labels]
            unmatched = sum(1 for sid in mapping.values() if sid not in previous) if previous else 0
            drift = measure_drift(con, customer_ids, segment_ids, float(model.distances[fit_mask].mean()),
                                  previous_run, unmatched)
            return mapping, segment_ids, drift

        model = candidates = decision = None
        merged = 0  # segments merged to reach model.min_segment_share (a re-chosen k only)
        reason = reselect_reason(previous_run, columns, key, as_of, previous, settings)
        if reason is None:
            # Within the window: the previous k, refitted from the previous centres, no candidate scoring.
            warm = np.vstack([previous[i] for i in sorted(previous)])
            with threadpool_limits(limits=MODEL_THREADS):
                model, _ = fit_final(prepared, fit_mask, previous_run.k, algorithm, settings.seed, warm)
            mapping, segment_ids, drift = assign(model)
            drifted = drift.exceeded(settings)
            smallest = float(np.bincount(model.labels, minlength=model.k).min()) / len(model.labels)
            if drifted is None and smallest < settings.min_segment_share:
                # The carried k must keep the guarantee a chosen k gives: no segment below the minimum share.
                drifted = (f"a segment of the carried k holds {smallest:.1%} of customers, below "
                           f"model.min_segment_share {settings.min_segment_share:.1%}")
            if drifted is None:
                candidates = carried_candidates(con, previous_run)
                merged = previous_run.merged  # the carried choice's, so its row and verdict are repeated
                decision = Decision(CARRIED, f"k carried from run {previous_run.k_selected_run_id}, chosen "
                                    f"{(as_of - previous_run.k_selected_as_of).total_seconds() / 86_400:.1f} "
                                    f"days of data ago; no drift ({drift.describe()})",
                                    previous_run.k_selected_run_id, previous_run.k_selected_as_of)
            else:
                reason = f"drift since the previous run: {drifted}"
        if decision is None:
            # Actionability is judged on every feature of the sampled customers (a segment may stand out by a trait
            # it was not clustered on, as its name may), with the support the names need.
            # Rows of the fitted customers by position, not a filtered copy of every feature (250 MB at 1M
            # customers): only the sampled rows are ever judged.
            fitted_rows = np.flatnonzero(fit_mask)
            support = NameSupport(segments.min_category_buyers_share, segments.min_segment_buyers,
                                  segments.min_profile_coverage_for_names, segments.min_trait_lift)

            def judge(rows: np.ndarray, labels: np.ndarray):
                return judge_actionability(features[fitted_rows[rows]], labels, support)

            with threadpool_limits(limits=MODEL_THREADS):
                candidates = score_candidates(fit_rows, settings, algorithm, judge)
            if not candidates:
                raise ValueError(f"cannot form {settings.k or settings.k_range[0]} segments from "
                                 f"{int(fit_mask.sum())} customers")
            k, choice = choose_k(candidates, settings.min_segment_share, settings.max_segment_share)
            decision = Decision(CHOSEN, f"{reason}; {choice}", run_id, as_of)
            # A drifted carry that re-chooses the same k already has this run's fit: the same start, the same data.
            if model is None or model.k != k:
                start = next(c.centers for c in candidates if c.k == k)
                # The previous model is a start only on the very same columns; ids are still matched on the
                # columns both share (load_previous_centers).
                same_columns = previous_run is not None and set(previous_run.feature_columns) == set(columns)
                warm = np.vstack([previous[i] for i in sorted(previous)]) \
                    if len(previous) == k and same_columns else None
                with threadpool_limits(limits=MODEL_THREADS):
                    model, _ = fit_final(prepared, fit_mask, k, algorithm, settings.seed, warm,
                                         start_centers=start)
                mapping, segment_ids, drift = assign(model)
            # The candidate's shares were measured on the selection sample; the guarantee is on what is published:
            # no segment of the final fit below model.min_segment_share, whichever way k was chosen.
            model, merged = merge_small_segments(model, prepared[1], fit_mask, settings.min_segment_share,
                                                 prep.named_steps["scale"].inverse_transform)
            if merged:
                mapping, segment_ids, drift = assign(model)
                decision.reason += (f"; {merged} segment(s) below {settings.min_segment_share:.1%} of customers "
                                    f"after the final fit merged into their nearest neighbour: k {k} -> {model.k}")
        # The chosen candidate: this run's choice, or the carried k's scores; its k is the model's unless merged.
        chosen_k = model.k + merged
        strength = segmentation_strength(next(c for c in candidates if c.k == chosen_k), settings.min_stability,
                                         merged, settings.max_segment_share)
        k = model.k
        fingerprint = hashlib.sha256(json.dumps(
            {"k": k, "algorithm": algorithm, "seed": settings.seed, "columns": columns,
             "centers": {str(mapping[c]): np.round(model.centers_unscaled[c], 6).tolist() for c in range(k)}},
            sort_keys=True).encode()).hexdigest()[:10]
        model_version = f"{algorithm}-k{k}-{fingerprint}"
        assignments = pl.DataFrame({"customer_id": customer_ids, "segment_id": segment_ids,
                                    "distance": model.distances, "fitted_on": fit_mask})
        centers = pl.DataFrame({
            "model_version": model_version,
            "segment_id": [mapping[c] for c in range(k) for _ in columns],
            "feature": [column for _ in range(k) for column in columns],
            "center": model.centers_unscaled.reshape(-1),
            "fitted_at": fitted_at,
        }, schema_overrides={"segment_id": pl.Int32})
        mean_distance = float(model.distances[fit_mask].mean())
        candidate_rows = pl.DataFrame([{
            "run_id": run_id, "model_version": model_version, "algorithm": algorithm, "k": c.k,
            "chosen": c.k == chosen_k, "silhouette": c.silhouette, "davies_bouldin": c.davies_bouldin,
            "stability": c.stability, "min_share": c.min_share, "meets_constraints": c.meets_constraints,
            "segments_without_trait": c.segments_without_trait, "actionable_share": c.actionable_share,
            "largest_traitless_share": c.largest_traitless_share,
            # k is the candidate's; the chosen row also says how many segments were published (fewer when merged).
            "segments_published": k if c.k == chosen_k else None,
            "reason": decision.reason if c.k == chosen_k else None, "n_customers": features.height,
            "n_fitted": int(fit_mask.sum()), "feature_columns": columns, "feature_families": families,
            "inertia": model.inertia if c.k == chosen_k else None,
            "warm_started": model.warm_started if c.k == chosen_k else None, "fitted_at": fitted_at,
            "k_decision": decision.decision, "k_decision_reason": decision.reason,
            "k_selected_run_id": decision.selected_run_id, "k_selected_as_of": decision.selected_as_of,
            "data_as_of": as_of, "selection_key": key,
            "mean_distance": mean_distance if c.k == chosen_k else None,
            "strength": strength.level if c.k == chosen_k else None,
            "strength_reason": strength.reason if c.k == chosen_k else None,
            "moved_share": drift.moved_share, "distance_change": drift.distance_change,
        } for c in candidates], schema_overrides={
            "k": pl.Int32, "reason": pl.String, "inertia": pl.Float64, "warm_started": pl.Boolean,
            "k_selected_as_of": pl.Datetime("us"), "data_as_of": pl.Datetime("us"), "mean_distance": pl.Float64,
            "moved_share": pl.Float64, "distance_change": pl.Float64, "strength": pl.String,
            "strength_reason": pl.String, "segments_without_trait": pl.Int32, "actionable_share": pl.Float64,
            "largest_traitless_share": pl.Float64, "segments_published": pl.Int32})
        missing = missing_value_report(features, columns, run_id)
        write_model_tables(con, run_id, model_version, fitted_at, assignments, centers, candidate_rows, missing)
        rows = model_table_rows(con)
    counts = assignments.group_by("segment_id").len().sort("segment_id")
    yield dg.MaterializeResult(
        asset_key=["model", "customer_clusters"],
        metadata={
            "dagster/row_count": assignments.height,
            "model_version": model_version,
            "algorithm": algorithm,
            "k": k,
            "k_decision": decision.decision,
            "k_choice": decision.reason,
            "segmentation_strength": strength.level,
            "segmentation_strength_reason": strength.reason,
            "warm_started": model.warm_started,
            "moved_share": -1.0 if drift.moved_share is None else drift.moved_share,  # -1: no previous run
            "features": dg.MetadataValue.json(columns),
            "feature_families": dg.MetadataValue.json(families),
            "feature_families_skipped": dg.MetadataValue.json(skipped_families),
            "fitted_on": int(fit_mask.sum()),
            "left_out_as_outliers": int((~fit_mask).sum()),
            "candidates": dg.MetadataValue.md(preview_markdown(candidate_rows.select(
                "k", "chosen", "silhouette", "davies_bouldin", "stability", "min_share", "meets_constraints",
                "segments_without_trait", "largest_traitless_share"), 20)),
            "segment_sizes": dg.MetadataValue.json(dict(zip(counts["segment_id"].to_list(), counts["len"].to_list()))),
        }
    )
    yield dg.MaterializeResult(asset_key=["model", "segment_centers"], metadata={
        "dagster/row_count": rows["model.segment_centers"], "model_version": model_version,
        "rows_this_run": centers.height})
    yield dg.MaterializeResult(asset_key=["segments", "model_runs"], metadata={
        "dagster/row_count": rows["segments.model_runs"], "rows_this_run": candidate_rows.height,
        "k_decision": decision.decision, "strength": strength.level})
    yield dg.MaterializeResult(asset_key=["quality", "missing_values"], metadata={
        "dagster/row_count": missing.height,
        "features_with_gaps": int(missing.filter(pl.col("missing") > 0).height)})
