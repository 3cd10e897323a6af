"""How well the segmentation recovers the generator's planted personas, over several seeds.

    .venv/bin/python bench/segmentation_quality.py --customers 4000 --seeds 1 2 3 4 5 6 7 8 9 10

Per seed: the chosen k (planted: 4), the adjusted Rand index against the planted personas, and whether every
persona's segment carries the archetype name it was planted as.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import duckdb
import polars as pl
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import run_generated  # noqa: E402

PLANTED_NAMES = {"young_professionals": "Young professionals", "family_shoppers": "Family shoppers",
                 "refined_living": "Refined living", "budget_minded": "Budget-minded"}


def evaluate(customers: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        data, warehouse = run_generated(Path(folder), customers, seed)
        with duckdb.connect(str(warehouse), read_only=True) as con:
            segments = con.execute("SELECT customer_id, segment_id, segment_name_en, is_outlier "
                                   "FROM segments.customer_segments").pl()
            k = con.execute("SELECT k FROM segments.model_runs WHERE chosen").fetchone()[0]
        truth = pl.read_csv(data.truth_path, schema_overrides={"customer_id": pl.String})
    joined = segments.join(truth, on="customer_id").filter(pl.col("planted_outlier") == 0)
    ari = adjusted_rand_score(joined["persona"].to_list(), joined["segment_id"].to_list())
    # The name most members of each planted persona carry.
    majority = (joined.group_by("persona", "segment_name_en").len().sort("len", descending=True)
                .unique("persona", keep="first"))
    named = {row["persona"]: row["segment_name_en"] for row in majority.iter_rows(named=True)}
    names_ok = all(named.get(persona) == name for persona, name in PLANTED_NAMES.items())
    return {"seed": seed, "k": k, "ari": ari, "names_ok": names_ok, "names": named}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        row = evaluate(args.customers, seed)
        rows.append(row)
        print(f"seed={row['seed']} k={row['k']} ari={row['ari']:.3f} names_ok={row['names_ok']} {row['names']}",
              flush=True)
    print(f"k_equals_planted={sum(r['k'] == 4 for r in rows)}/{len(rows)} "
          f"min_ari={min(r['ari'] for r in rows):.3f} names_ok={sum(r['names_ok'] for r in rows)}/{len(rows)}")


if __name__ == "__main__":
    main()
