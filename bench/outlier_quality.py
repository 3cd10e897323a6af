"""Recall and precision of the isolation-forest outlier flags against the generator's planted extremes.

    .venv/bin/python bench/outlier_quality.py --customers 20000 --seeds 7 1 2 3

Each seed generates demo data, runs the whole asset graph on a temporary warehouse, and compares
`quality.outliers.is_outlier` with `truth.csv.planted_outlier`.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import duckdb
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import run_generated  # noqa: E402


def evaluate(customers: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        data, warehouse = run_generated(Path(folder), customers, seed)
        with duckdb.connect(str(warehouse), read_only=True) as con:
            flagged = {row[0] for row in con.execute("SELECT customer_id FROM quality.outliers WHERE is_outlier")
                       .fetchall()}
        truth = pl.read_csv(data.truth_path, schema_overrides={"customer_id": pl.String})
        planted = set(truth.filter(pl.col("planted_outlier") == 1).get_column("customer_id"))
    hits = len(flagged & planted)
    return {"seed": seed, "planted": len(planted), "flagged": len(flagged),
            "recall": hits / len(planted) if planted else 1.0, "precision": hits / len(flagged) if flagged else 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 1, 2, 3])
    args = parser.parse_args()
    rows = [evaluate(args.customers, seed) for seed in args.seeds]
    for row in rows:
        print(f"seed={row['seed']} planted={row['planted']} flagged={row['flagged']} "
              f"recall={row['recall']:.3f} precision={row['precision']:.3f}")
    print(f"min_recall={min(r['recall'] for r in rows):.3f} min_precision={min(r['precision'] for r in rows):.3f}")


if __name__ == "__main__":
    main()
