"""Next-category recommendations: purchases per customer, co-purchase rules, the top unbought categories,
their held-out hit-rate against popularity, and whether a run may reuse stored rules."""

from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import polars as pl
from scipy import sparse

from assets.predict.runs import EVALUATED, MINED, NO_NEW_PURCHASES, TimeSplit, _age_reason, _days, _row
from pipelines.core.config import PredictSettings

SCORE_CHUNK_ROWS = 50_000  # customers scored per block: keeps (customers x categories) matrices small
RULES_RECIPE_VERSION = 1
SOURCE_RULES, SOURCE_POPULARITY = "rules", "popularity"


# --- recommendations ---------------------------------------------------------------------------------------------

@dataclass
class Purchases:
    """Which customer bought which category (before some cutoff), as a sparse customers x categories matrix."""

    customer_ids: pl.Series  # the matrix rows
    categories: list[str]  # the matrix columns
    matrix: sparse.csr_matrix  # 1 where bought

    @property
    def buyers_per_category(self) -> np.ndarray:
        return np.asarray(self.matrix.sum(axis=0)).ravel()

    @property
    def customers_with_purchases(self) -> int:
        return int(np.count_nonzero(self.matrix.getnnz(axis=1)))


@dataclass
class FirstPurchases:
    """When each customer first bought each category: one cell per (customer row, category column) bought."""

    customer_ids: pl.Series  # row -> customer_id, sorted
    categories: list[str]  # column -> category, sorted
    rows: np.ndarray  # the cells' customer rows
    columns: np.ndarray  # the cells' category columns
    first_ts: np.ndarray  # datetime64[us]; NaT when the orders carry no dates

    def before(self, cutoff: datetime | None = None) -> Purchases:
        """The purchases made before `cutoff` (every purchase when None)."""
        cells = slice(None) if cutoff is None else self.first_ts < np.datetime64(cutoff, "us")
        rows, columns = self.rows[cells], self.columns[cells]
        matrix = sparse.csr_matrix((np.ones(len(rows)), (rows, columns)),
                                   shape=(len(self.customer_ids), len(self.categories)))
        return Purchases(self.customer_ids, self.categories, matrix)

    @classmethod
    def from_frame(cls, cells: pl.DataFrame, customer_ids: pl.Series, categories: list[str]) -> "FirstPurchases":
        """From a frame of customer_row, category_column, first_ts."""
        return cls(customer_ids, categories, cells["customer_row"].to_numpy(), cells["category_column"].to_numpy(),
                   cells["first_ts"].cast(pl.Datetime("us")).to_numpy())

    @classmethod
    def from_rows(cls, rows: pl.DataFrame, customer_ids: list[str], categories: list[str]) -> "FirstPurchases":
        """From customer_id, category, first_ts rows; rows of customers or categories not listed are ignored."""
        customer_index = pl.DataFrame({"customer_id": customer_ids, "customer_row": np.arange(len(customer_ids))},
                                      schema={"customer_id": pl.String, "customer_row": pl.Int64})
        category_index = pl.DataFrame({"category": categories, "category_column": np.arange(len(categories))},
                                      schema={"category": pl.String, "category_column": pl.Int64})
        cells = rows.join(customer_index, on="customer_id").join(category_index, on="category") \
            .group_by("customer_row", "category_column").agg(pl.col("first_ts").min())
        return cls.from_frame(cells, pl.Series("customer_id", customer_ids, dtype=pl.String), categories)


FIRST_PURCHASES_SQL = """
WITH customers AS (
    SELECT customer_id, row_number() OVER (ORDER BY customer_id) - 1 AS customer_row
    FROM features.customer_features),
categories AS (
    SELECT category, row_number() OVER (ORDER BY category) - 1 AS category_column
    FROM (SELECT DISTINCT category FROM staging.order_lines WHERE category IS NOT NULL))
SELECT customer_row, category_column, min(order_ts) AS first_ts
FROM staging.order_lines JOIN customers USING (customer_id) JOIN categories USING (category)
GROUP BY customer_row, category_column
"""


# Which categories each customer bought, as one bit per category in 64-bit words (word w holds the categories
# numbered 64w to 64w + 63): grouping the 8.8M order lines by customer (1M groups) instead of by customer and
# category (4.7M groups) made loading the purchases of a run that reuses its rules 1.1 s of CPU instead of 2.7-3.3 s.
PURCHASE_WORDS_SQL = """
SELECT f.customer_id, {words}
FROM features.customer_features f
LEFT JOIN (
    SELECT customer_id, {word_aggregates}
    FROM staging.order_lines JOIN purchase_categories USING (category)
    GROUP BY customer_id) bought USING (customer_id)
ORDER BY f.customer_id
"""


def load_purchases(con: duckdb.DuckDBPyConnection) -> Purchases:
    """Every customer of features.customer_features (sorted) and every category of staging.order_lines (sorted),
    with whether the customer bought the category: what load_first_purchases(con).before(None) gives, without the
    dates, which only mining the rules needs."""
    categories = [row[0] for row in con.execute("SELECT DISTINCT category FROM staging.order_lines "
                                                "WHERE category IS NOT NULL ORDER BY category").fetchall()]
    n_words = max(1, -(-len(categories) // 64))
    # Each category's bit, in its word's column (0 in the others), so that the aggregate is a plain bit_or.
    bits = {f"word{w}": [1 << (c % 64) if c // 64 == w else 0 for c in range(len(categories))]
            for w in range(n_words)}
    purchase_categories = pl.DataFrame({"category": categories, **bits},  # noqa: F841 - read by DuckDB
                                       schema={"category": pl.String, **{word: pl.UInt64 for word in bits}})
    frame = con.execute(PURCHASE_WORDS_SQL.format(
        words=", ".join(f"coalesce(bought.{word}, 0::UBIGINT) AS {word}" for word in bits),
        word_aggregates=", ".join(f"bit_or({word}) AS {word}" for word in bits))).pl()
    words = [frame.get_column(word).to_numpy() for word in bits]
    bought = np.empty((frame.height, len(categories)), dtype=bool)
    for column in range(len(categories)):  # a category at a time: no (customers x categories) integer temporaries
        word, bit = divmod(column, 64)
        bought[:, column] = (words[word] >> np.uint64(bit)) & np.uint64(1)
    # Row by row with ascending columns: already the canonical CSR layout, built without sorting anything.
    indptr = np.concatenate([[0], np.cumsum(bought.sum(axis=1))]).astype(np.int32)
    indices = np.nonzero(bought)[1].astype(np.int32)
    matrix = sparse.csr_matrix((np.ones(len(indices)), indices, indptr), shape=bought.shape)
    return Purchases(frame.get_column("customer_id"), categories, matrix)


def load_first_purchases(con: duckdb.DuckDBPyConnection) -> FirstPurchases:
    """Every customer of features.customer_features and every category of staging.order_lines, with the first
    purchase of each category by each customer (numbered in DuckDB, so no customer_id string crosses into Python
    per order line)."""
    customer_ids = con.execute("SELECT customer_id FROM features.customer_features ORDER BY customer_id") \
        .pl().get_column("customer_id")
    categories = [row[0] for row in con.execute("SELECT DISTINCT category FROM staging.order_lines "
                                                "WHERE category IS NOT NULL ORDER BY category").fetchall()]
    return FirstPurchases.from_frame(con.execute(FIRST_PURCHASES_SQL).pl(), customer_ids, categories)


RULE_SCHEMA = {"antecedent": pl.String, "consequent": pl.String, "antecedent_customers": pl.Int64,
               "consequent_customers": pl.Int64, "both_customers": pl.Int64, "customers": pl.Int64,
               "support": pl.Float64, "confidence": pl.Float64, "lift": pl.Float64}


def mine_rules(bought: Purchases, settings: PredictSettings) -> pl.DataFrame:
    """Single-category rules antecedent -> consequent over customers who bought anything.

    support = share of those customers who bought both; confidence = share of the antecedent's buyers who also
    bought the consequent; lift = confidence / the consequent's share. Kept: support >= min_support and
    confidence >= min_confidence. Sorted by antecedent, then lift (highest first), then consequent.
    """
    buyers = bought.customers_with_purchases
    schema = RULE_SCHEMA
    if buyers == 0:
        return pl.DataFrame(schema=schema)
    both = (bought.matrix.T @ bought.matrix).toarray()
    counts = np.diag(both).copy()
    a, c = np.nonzero(both)
    keep = (a != c) & (counts[a] > 0)
    a, c = a[keep], c[keep]
    pair = both[a, c]
    confidence = pair / counts[a]
    rules = pl.DataFrame({
        "antecedent": [bought.categories[i] for i in a], "consequent": [bought.categories[i] for i in c],
        "antecedent_customers": counts[a].astype(np.int64), "consequent_customers": counts[c].astype(np.int64),
        "both_customers": pair.astype(np.int64), "customers": np.full(len(a), buyers, dtype=np.int64),
        "support": pair / buyers, "confidence": confidence, "lift": confidence / (counts[c] / buyers),
    }, schema=schema)
    return (rules.filter((pl.col("support") >= settings.min_support)
                         & (pl.col("confidence") >= settings.min_confidence))
            .sort(["antecedent", "lift", "consequent"], descending=[False, True, False]))


def popularity_order(bought: Purchases) -> np.ndarray:
    """Rank of each category by customers who bought it (0 = most popular; ties by name)."""
    order = np.lexsort((np.array(bought.categories), -bought.buyers_per_category))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def _rule_weights(rules: pl.DataFrame, categories: list[str]) -> np.ndarray:
    """categories x categories matrix of ln(lift) for the kept rules (0 where there is no rule)."""
    position = {name: i for i, name in enumerate(categories)}
    weights = np.zeros((len(categories), len(categories)))
    for antecedent, consequent, lift in rules.select("antecedent", "consequent", "lift").iter_rows():
        if antecedent in position and consequent in position:
            weights[position[antecedent], position[consequent]] = np.log(lift)
    return weights


RECOMMENDATION_SCHEMA = {"customer_id": pl.String, "rank": pl.Int32, "category": pl.String, "score": pl.Float64,
                         "source": pl.String}


@dataclass
class Picks:
    """Recommendations as matrix positions, in customer row order then rank."""

    rows: np.ndarray  # customer row
    ranks: np.ndarray  # 0 first
    columns: np.ndarray  # category column
    scores: np.ndarray  # sum of ln(lift) of the rules (0 without rules; -inf never happens: such cells are dropped)



def top_picks(bought: Purchases, rules: pl.DataFrame | None, top_n: int,
              customer_rows: np.ndarray | None = None) -> Picks:
    """The top_n unbought categories of each customer (of `customer_rows`, ascending; default every customer):
    highest rule score first, ties by popularity. Bought categories and categories nobody bought are never picked;
    a customer with fewer than top_n left gets fewer."""
    rows_wanted = np.arange(len(bought.customer_ids)) if customer_rows is None else customer_rows
    n_categories = len(bought.categories)
    if n_categories == 0 or len(rows_wanted) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Picks(empty, empty, empty, np.zeros(0))
    buyers = bought.buyers_per_category
    # Columns from the most popular: a stable sort on the score then breaks ties by popularity.
    by_popularity = np.argsort(popularity_order(bought))
    weights = _rule_weights(rules, bought.categories)[:, by_popularity] if rules is not None else None
    never_bought = (buyers == 0)[by_popularity]
    parts = []
    for start in range(0, len(rows_wanted), SCORE_CHUNK_ROWS):
        chunk = rows_wanted[start:start + SCORE_CHUNK_ROWS]
        block = bought.matrix[chunk]
        unavailable = (block.toarray()[:, by_popularity] > 0) | never_bought
        score = block @ weights if weights is not None else np.zeros(unavailable.shape)
        # A negative score (the customer's categories make this one less likely) ranks below no evidence at all.
        score = np.where(unavailable, -np.inf, score)
        order = np.argsort(-score, axis=1, kind="stable")[:, :top_n]
        picked_score = np.take_along_axis(score, order, axis=1)
        rows, ranks = np.nonzero(np.isfinite(picked_score))  # fewer than top_n unbought categories: fewer rows
        parts.append((chunk[rows], ranks, by_popularity[order[rows, ranks]], picked_score[rows, ranks]))
    return Picks(*(np.concatenate(arrays) for arrays in zip(*parts)))


def recommend(bought: Purchases, rules: pl.DataFrame | None, top_n: int,
              customer_rows: np.ndarray | None = None) -> pl.DataFrame:
    """Up to top_n unbought categories per customer: customer_id, rank (1 first), category, score, source.

    With `rules`, the score is the sum of ln(lift) of the rules from the customer's categories, highest first, ties
    by popularity; a positive score is a rule-based pick (source 'rules'), others are labelled popularity picks
    (source 'popularity', the score is then the category's share of customers). Without
    rules (the popularity baseline) every pick is by popularity and the score is the share of customers who
    bought the category. A category nobody bought is never picked (see top_picks).
    """
    picks = top_picks(bought, rules, top_n, customer_rows)
    share = bought.buyers_per_category / max(bought.customers_with_purchases, 1)
    by_rules = picks.scores > 0
    return pl.DataFrame({
        "customer_id": bought.customer_ids.gather(picks.rows),
        "rank": (picks.ranks + 1).astype(np.int32),
        "category": pl.Series(bought.categories, dtype=pl.String).gather(picks.columns),
        "score": np.where(by_rules, picks.scores, share[picks.columns]),
        "source": pl.Series([SOURCE_POPULARITY, SOURCE_RULES], dtype=pl.String).gather(by_rules.astype(np.int64)),
    }, schema=RECOMMENDATION_SCHEMA)


def _cell_keys(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    return (rows.astype(np.int64) << 32) | columns.astype(np.int64)


def hit_rate(recommended: Picks, new_rows: np.ndarray, new_columns: np.ndarray) -> tuple[int, int]:
    """(hits, customers evaluated): the customers with a new category in the window (cells new_rows x
    new_columns), and how many of them bought at least one recommended category there."""
    # Membership by binary search in the sorted new cells (numpy's isin hashes, several times slower here).
    new_keys = np.sort(_cell_keys(new_rows, new_columns))
    keys = _cell_keys(recommended.rows, recommended.columns)
    found = np.minimum(np.searchsorted(new_keys, keys), max(len(new_keys) - 1, 0))
    hit = new_keys[found] == keys if len(new_keys) else np.zeros(len(keys), dtype=bool)
    return _distinct(recommended.rows[hit]), _distinct(new_rows)


def _distinct(rows: np.ndarray) -> int:
    """How many different customer rows (a count per row number: cheaper than hashing for dense row numbers)."""
    return int(np.count_nonzero(np.bincount(rows))) if len(rows) else 0


def evaluate_recommendations(first: FirstPurchases, split: TimeSplit, settings: PredictSettings) -> dict:
    """Rules and recommendations from the purchases before the evaluation cutoff, judged on the categories
    customers bought for the first time in the evaluation window, against the popularity baseline."""
    past = first.before(split.eval_cutoff)
    had_history = past.matrix.getnnz(axis=1) > 0
    window_start, window_end = np.datetime64(split.eval_cutoff, "us"), np.datetime64(split.data_end, "us")
    new = (first.first_ts >= window_start) & (first.first_ts < window_end)
    new &= had_history[first.rows]
    new_rows, new_columns = first.rows[new], first.columns[new]
    # Only the customers who bought something new can hit or miss: recommend for them alone.
    evaluated_rows = np.flatnonzero(np.bincount(new_rows, minlength=len(first.customer_ids)))
    rules = mine_rules(past, settings)
    hits, evaluated = hit_rate(top_picks(past, rules, settings.top_n, evaluated_rows), new_rows, new_columns)
    baseline_hits, _ = hit_rate(top_picks(past, None, settings.top_n, evaluated_rows), new_rows, new_columns)
    rate = hits / evaluated if evaluated else None
    baseline = baseline_hits / evaluated if evaluated else None
    return {
        "status": EVALUATED if evaluated else NO_NEW_PURCHASES,
        "reason": None if evaluated else "no customer bought a new category in the evaluation window",
        "eval_cutoff": split.eval_cutoff, "window_end": split.data_end,
        "customers_evaluated": evaluated, "hits": hits, "hit_rate": rate,
        "popularity_hits": baseline_hits, "popularity_hit_rate": baseline,
        "lift_over_popularity": rate / baseline if rate is not None and baseline else None,
        "rules_used": rules.height,
    }


# --- recommendations: rules or popularity -------------------------------------------------------------------------

def choose_source(evaluation: dict) -> dict:
    """What the run publishes in predict.next_category, decided on the held-out window: the rules' ranking only
    when it hit more customers there than recommending the most popular categories, the popularity ranking
    otherwise (a tie too: the rules then add only complexity). Measured on real exports the rules scored 0.19x and
    0.93x of popularity, and publishing them made every recommendation worse than the obvious one.

    Returns the recommendation_eval columns published_source, published_hits, published_hit_rate and
    source_decision. Without an evaluation (no dates, too short a history, no new purchases in the window) there is
    nothing to compare and the rules are published, as before. Derived from hits and popularity_hits, so a run
    reusing rules mined before these columns existed decides the same way."""
    hits, baseline, evaluated = (evaluation.get(k) for k in ("hits", "popularity_hits", "customers_evaluated"))
    if evaluation.get("status") != EVALUATED or not evaluated or hits is None or baseline is None:
        return {"published_source": SOURCE_RULES, "published_hits": None, "published_hit_rate": None,
                "source_decision": "rules: no held-out evaluation to compare them with popularity"}
    compared = (f"on the held-out window the rules hit {hits} of {evaluated} customers, the most popular "
                f"categories {baseline}")
    if hits > baseline:
        return {"published_source": SOURCE_RULES, "published_hits": hits, "published_hit_rate": hits / evaluated,
                "source_decision": f"rules: {compared}"}
    return {"published_source": SOURCE_POPULARITY, "published_hits": baseline,
            "published_hit_rate": baseline / evaluated,
            "source_decision": f"popularity: {compared}; the rules do not beat popularity, so popularity is published"}


# --- recommendations: when to reuse the rules ---------------------------------------------------------------------

# The evaluation figures a reusing run copies from the run that mined its rules (the choice between rules and
# popularity is derived again from them by choose_source).
EVALUATION_COLUMNS = ("status", "reason", "eval_cutoff", "window_end", "customers_evaluated", "hits", "hit_rate",
                      "popularity_hits", "popularity_hit_rate", "lift_over_popularity", "rules_used")


def rules_recipe(settings: PredictSettings) -> str:
    """What stored rules and their evaluation must have been made with to be reused."""
    return (f"rules-v{RULES_RECIPE_VERSION} horizon_days={settings.horizon_days} top_n={settings.top_n} "
            f"min_support={settings.min_support} min_confidence={settings.min_confidence}")


@dataclass
class StoredRules:
    version: str  # the run id that mined them
    rules: pl.DataFrame  # predict.category_rules as that run wrote it
    mined: dict  # that run's row of predict.recommendation_eval (its held-out figures)


def choose_rules(con: duckdb.DuckDBPyConnection, run_id: str, split: TimeSplit | None, eval_reason: str | None,
                 settings: PredictSettings) -> tuple[StoredRules | None, str]:
    """The latest rules when this run may reuse them (None: mine), and why."""
    if settings.retrain_every_days == 0:
        return None, "predict.retrain_every_days is 0: every run mines"
    if split is None or eval_reason:
        return None, "no evaluation window: rules are mined every run"
    latest = _row(con, "SELECT rules_version FROM predict.recommendation_eval WHERE run_id <> ? "
                       "ORDER BY evaluated_at DESC LIMIT 1", [run_id])
    if latest is None or latest["rules_version"] is None:
        return None, "no earlier run has rules"
    mined = _row(con, f"SELECT * FROM predict.recommendation_eval WHERE run_id = ? AND rules_action = '{MINED}'",
                 [latest["rules_version"]])
    if mined is None or mined["status"] != EVALUATED:
        return None, f"the run that mined rules {latest['rules_version']} has no evaluation to keep"
    age, too_old = _age_reason("rules", mined["data_end"], split, settings)
    if too_old:
        return None, too_old
    if mined["rules_recipe"] != rules_recipe(settings):
        return None, f"the rule settings changed: the rules have '{mined['rules_recipe']}'"
    rules = con.execute("SELECT * FROM predict.category_rules").pl()
    if set(rules["run_id"].unique()) - {mined["run_id"]}:
        return None, "predict.category_rules no longer holds the rules of that run"
    return StoredRules(mined["run_id"], rules.drop("run_id"), mined), (
        f"reused: mined from data ending {mined['data_end']:%Y-%m-%d}, {_days(age)} before this data "
        f"(mined again at predict.retrain_every_days {settings.retrain_every_days})")

