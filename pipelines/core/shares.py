"""Whether a share of a file's rows is above a limit beyond chance, or only as far as a few rows can be by chance.

The quarantine gate of a run (quality/checks/staging.py) and `persona check` (pipelines/check_report.py) judge a file
by the same rule, so check says what a run will do. A file's faulty rows are taken as a sample of what its export
gets wrong: a nightly file of 20 rows with 2 bad lines (10%) cannot tell an export that spoils one row in ten from
one that spoils one in a hundred, while 2,000 bad rows of 20,000 can.
"""

from __future__ import annotations

CONFIDENCE = 0.95  # a share is beyond a limit when this Wilson interval of it lies wholly beyond the limit

OK, BEYOND, BY_CHANCE = "ok", "beyond", "by chance"


def wilson_interval(count: int, rows: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of the share count/rows (scipy's binomtest)."""
    from scipy.stats import binomtest  # about a second to import: only a share above its limit needs it

    interval = binomtest(count, rows).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def above_limit(count: int, rows: int, limit: float) -> tuple[str, tuple[float, float] | None]:
    """OK when count/rows is at most `limit`; above it, BEYOND when its CONFIDENCE interval lies wholly above the
    limit, else BY_CHANCE (too few rows to call it more than chance). The interval comes back with the last two."""
    if rows <= 0 or count / rows <= limit:
        return OK, None
    low, high = wilson_interval(count, rows)
    return (BEYOND if low > limit else BY_CHANCE), (low, high)


def interval_text(bounds: tuple[float, float]) -> str:
    """`1.8%–40.4% at 95% confidence` (two decimals below 1%)."""
    low, high = (f"{b:.2%}" if b < 0.01 else f"{b:.1%}" for b in bounds)
    return f"{low}–{high} at {CONFIDENCE:.0%} confidence"
