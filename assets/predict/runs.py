"""Run statuses and model/rules actions shared by the predict modules, the time split of a run, and the
checks of whether stored models or rules are too old to reuse."""

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from pipelines.core.config import PredictSettings

# Run statuses (the report words each one in both languages). `trained`: a churn model scored this run, fitted now
# or reused (model_action says which).
TRAINED, EVALUATED = "trained", "evaluated"
NO_DATES, SHORT_HISTORY, ONE_CLASS, NO_NEW_PURCHASES = "no_dates", "short_history", "one_class", "no_new_purchases"
# Customer value: too few customers, or too few repeat buyers, to fit the lifetime-value models on.
TOO_FEW_BUYERS = "too_few_buyers"
# Recommendations of an export declared without categories (orders.columns.category: null): nothing to mine,
# recommend or judge, so the run skips them, leaves predict.category_rules and predict.next_category empty and
# says why in predict.recommendation_eval.
NO_CATEGORIES = "no_categories"
NO_CATEGORIES_REASON = "this export has no product category: orders.columns.category is null"
# What a run did about its model (churn) or its rules (recommendations).
FITTED, MINED, REUSED, SKIPPED = "trained", "mined", "reused", "skipped"


# --- the time split ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TimeSplit:
    """Cutoffs of one run. Orders before a cutoff are its past; the H days from it are its label window."""

    data_start: datetime  # midnight of the first order day
    data_end: datetime  # midnight after the last order day: scores are as of here
    horizon_days: int

    @property
    def horizon(self) -> timedelta:
        return timedelta(days=self.horizon_days)

    @property
    def eval_cutoff(self) -> datetime:
        return self.data_end - self.horizon

    @property
    def train_cutoff(self) -> datetime:
        return self.data_end - 2 * self.horizon

    @property
    def span_days(self) -> int:
        return (self.data_end - self.data_start).days


def plan_time_split(first_order: datetime | None, last_order: datetime | None, settings: PredictSettings) \
        -> tuple[TimeSplit | None, str | None, str | None]:
    """The split, and why churn (second) or the recommendation evaluation (third) cannot run; None when they can.

    Churn needs min_history_days before the training cutoff plus two horizons; the evaluation of recommendations
    needs min_history_days before the evaluation cutoff plus one horizon.
    """
    if first_order is None or last_order is None:
        reason = "the orders carry no dates, so there is no past to learn from and no later window to judge on"
        return None, reason, reason
    start = datetime.combine(first_order.date(), datetime.min.time())
    end = datetime.combine(last_order.date(), datetime.min.time()) + timedelta(days=1)
    split = TimeSplit(start, end, settings.horizon_days)
    history = settings.min_history_days
    churn_needs, eval_needs = history + 2 * settings.horizon_days, history + settings.horizon_days
    covered = f"the orders cover {split.span_days} days"
    churn_reason = None if split.span_days >= churn_needs else (
        f"{covered}; churn needs {churn_needs} (predict.min_history_days {history} + two horizons of "
        f"{settings.horizon_days})")
    eval_reason = None if split.span_days >= eval_needs else (
        f"{covered}; judging recommendations needs {eval_needs} (predict.min_history_days {history} + one horizon "
        f"of {settings.horizon_days})")
    return split, churn_reason, eval_reason


# --- reuse: whether a stored model or stored rules are too old -----------------------------------------------

def _row(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> dict | None:
    frame = con.execute(sql, params).pl()
    return frame.row(0, named=True) if frame.height else None


def _days(count: int) -> str:
    return f"{count} day" if abs(count) == 1 else f"{count} days"


def _age_reason(what: str, trained_end: datetime, split: TimeSplit,
                settings: PredictSettings) -> tuple[int, str | None]:
    """Days of data since `trained_end`, and why that is too old or wrong to reuse (None when it is fine)."""
    age = (split.data_end - trained_end).days
    if age < 0:
        return age, (f"the data now ends {_days(-age)} before the data the {what} came from "
                     f"({trained_end:%Y-%m-%d}): the history was reloaded")
    if age >= settings.retrain_every_days:
        return age, (f"the {what} came from data ending {trained_end:%Y-%m-%d}, {_days(age)} before this data "
                     f"(predict.retrain_every_days {settings.retrain_every_days})")
    return age, None
