"""The baseline: the same work done the way a user would without us, in one pandas + scikit-learn script.

Read the CSVs, drop duplicates, fill missing values, IsolationForest outliers, groupby features (RFM, category
order shares, payment shares, demographics), KMeans over k = 3..8 chosen by silhouette, and the customer segments
and segment profiles written to Parquet. Run by bench/run.py in its own subprocess; writes its timings as JSON.

Choices, so the comparison is fair rather than flattering:
- The silhouette is computed with `silhouette_score(..., sample_size=10000, random_state=0)`: the exact score is
  O(n^2) in time and memory (infeasible at 100k customers), and sampling is what a user would end up doing.
- KMeans uses scikit-learn's defaults (n_init="auto") and is fitted on every non-outlier customer for each k;
  IsolationForest uses the pipeline's settings (200 trees, 4096-row samples, contamination 0.5%).
- Numeric features are log1p-scaled where the pipeline does it, then standardised, as the pipeline does.

    python bench/baseline_pandas.py --data DIR --out-dir DIR --result result.json
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.ensemble import IsolationForest
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

K_RANGE = range(3, 9)
LOG_SCALED = ["n_orders", "total_spend", "avg_basket_value"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with order_lines.csv and customers.csv")
    parser.add_argument("--out-dir", type=Path, required=True, help="where the Parquet outputs go")
    parser.add_argument("--result", type=Path, required=True, help="timings as JSON")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stages: dict[str, float] = {}
    started = last = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        stages[name] = now - last
        last = now

    # Read, drop duplicates, fill missing values.
    lines = pd.read_csv(args.data / "order_lines.csv", parse_dates=["order_ts"])
    customers = pd.read_csv(args.data / "customers.csv")
    lap("read")
    lines = lines.drop_duplicates(subset=["order_id", "category", "sku"])
    customers = customers.drop_duplicates(subset=["customer_id"], keep="last")
    lines = lines.dropna(subset=["order_id", "customer_id", "order_ts"])
    lines["amount"] = lines["amount"].fillna(lines["quantity"] * lines["unit_price"])
    lines["quantity"] = lines["quantity"].fillna(1)
    for column in ["category", "payment_method", "channel"]:
        lines[column] = lines[column].fillna("unknown")
    for column in ["age", "income"]:
        customers[column] = customers[column].fillna(customers[column].median())
    for column in ["gender", "home_owner", "city"]:
        customers[column] = customers[column].fillna(customers[column].mode().iloc[0])
    lap("clean")

    # Features: one row per customer.
    orders = lines.groupby("order_id").agg(
        customer_id=("customer_id", "first"), order_ts=("order_ts", "min"), order_amount=("amount", "sum"),
        n_items=("quantity", "sum"), payment_method=("payment_method", "first"))
    as_of = orders["order_ts"].max()
    rfm = orders.groupby("customer_id").agg(
        n_orders=("order_amount", "size"), total_spend=("order_amount", "sum"),
        avg_basket_value=("order_amount", "mean"), last_order=("order_ts", "max"), first_order=("order_ts", "min"),
        max_order_amount=("order_amount", "max"), max_items_per_order=("n_items", "max"))
    rfm["recency_days"] = (as_of - rfm.pop("last_order")).dt.days.astype(float)
    rfm["tenure_days"] = (as_of - rfm.pop("first_order")).dt.days.astype(float)
    category_orders = lines[["customer_id", "order_id", "category"]].drop_duplicates()
    categories = pd.crosstab(category_orders["customer_id"], category_orders["category"])
    categories = categories.div(rfm["n_orders"].reindex(categories.index), axis=0).add_prefix("cat_")
    payments = pd.crosstab(orders["customer_id"], orders["payment_method"].str.lower())
    payments = payments.div(rfm["n_orders"].reindex(payments.index), axis=0).add_prefix("pay_")
    demographics = customers.set_index("customer_id")[["age", "income"]].astype(float)
    demographics["is_female"] = (customers.set_index("customer_id")["gender"] == "F").astype(float)
    demographics["is_home_owner"] = (customers.set_index("customer_id")["home_owner"] == "YES").astype(float)
    features = demographics.join(rfm, how="left").join(categories, how="left").join(payments, how="left")
    features = features.fillna(0.0).sort_index()
    lap("features")

    # Outliers, then KMeans over k with silhouette.
    outlier_columns = ["total_spend", "n_orders", "avg_basket_value", "max_order_amount", "max_items_per_order",
                       "income"]
    forest = IsolationForest(n_estimators=200, max_samples=min(4096, len(features)), contamination=0.005,
                             random_state=0)
    is_outlier = forest.fit_predict(np.log1p(features[outlier_columns].clip(lower=0))) == -1
    lap("outliers")
    model_columns = [c for c in features.columns if c not in ("max_order_amount", "max_items_per_order")]
    matrix = features[model_columns].copy()
    matrix[LOG_SCALED] = np.log1p(matrix[LOG_SCALED])
    scaler = StandardScaler().fit(matrix[~is_outlier])
    scaled = scaler.transform(matrix)
    fit = scaled[~is_outlier]
    candidates = []
    for k in K_RANGE:
        kmeans = KMeans(n_clusters=k, random_state=0).fit(fit)
        score = silhouette_score(fit, kmeans.labels_, sample_size=min(10_000, len(fit)), random_state=0)
        candidates.append((score, k, kmeans))
    silhouette, k, best = max(candidates, key=lambda c: c[0])
    lap("model")

    # Outputs: customer segments and segment profiles.
    segments = pd.DataFrame({"customer_id": features.index, "segment_id": best.predict(scaled) + 1,
                             "is_outlier": is_outlier})
    segments.to_parquet(args.out_dir / "customer_segments.parquet", index=False)
    profiles = features.assign(segment_id=segments["segment_id"].to_numpy()).groupby("segment_id").agg(
        ["mean", "median"])
    profiles.columns = [f"{column}_{stat}" for column, stat in profiles.columns]
    profiles.insert(0, "customers", segments.groupby("segment_id").size())
    profiles.reset_index().to_parquet(args.out_dir / "segment_profiles.parquet", index=False)
    lap("write")

    args.result.write_text(json.dumps({
        "seconds": time.perf_counter() - started, "stages": stages, "k": int(k), "silhouette": float(silhouette),
        "customers": int(len(features)), "outliers": int(is_outlier.sum())}), encoding="utf-8")


if __name__ == "__main__":
    main()
