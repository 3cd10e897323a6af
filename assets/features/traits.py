"""What sets a group of customers apart, measured on their features: profiles, support and distinctive traits.

Shared by the model (assets/model: a candidate k is actionable when every segment has a distinctive trait) and the
segment names (assets/segments/naming.py: a name is made of such traits), so both judge a trait by the same rules:

- a profile per segment: z-scores of its mean on every numeric feature, lifts of its category and payment shares,
  medians of age and income, and the support counts behind them (`build_profiles`);
- a trait needs support (`NameSupport`): a category or payment method enough buyers overall and in the segment,
  a demographic field a known value for enough members, a median enough people with the value;
- a trait is distinctive when the segment's mean is at least TRAIT_THRESHOLD population standard deviations from
  everyone's, and the difference is one people would notice: for age and income by their medians
  (`real_difference`), for a category or payment method by its lift (`lift_names`).
"""

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from assets.features.customer_features import CATEGORY_PREFIX, PAYMENT_PREFIX

TRAIT_THRESHOLD = 0.4  # a trait needs |z| of at least this many population standard deviations
# "年长 / Senior" for a median age of 39 against 32 reads wrong whatever the z-score: age words also need the
# segment's median age this many years from everyone's.
AGE_WORD_YEARS = 10.0
# The same for income, whose unit differs by shop (yearly CNY, monthly, a band): a ratio of medians instead of a
# difference, 1.25x for "high income" and 1/1.25 = 0.8x for "low income".
INCOME_WORD_RATIO = 1.25
# A category or payment method names a segment only when the segment's share of it is at least this many times
# everyone's (segments.min_trait_lift). The z-score alone let a segment be "Card payers" at 82.9% of its orders paid
# by card where 74.8% of everyone's were (1.1x): a habit nearly everyone shares is not what sets a segment apart.
MIN_TRAIT_LIFT = 1.25
MEDIAN_FEATURES = ("age", "income")  # the features whose medians the profile keeps for the rules above
# Profile fields only some customers fill in: a word about them needs enough members with a value (NameSupport).
DEMOGRAPHIC_FEATURES = ("age", "income", "is_female", "is_home_owner")
# A median of fewer people than this is an anecdote: no age or income word from it, whatever the coverage.
MIN_MEDIAN_PEOPLE = 10
# A small segment cannot have 30 buyers of anything: it needs this fraction of its members buying instead
# (min(min_segment_buyers, ceil(fraction x members))), so a shop of 100 customers can still have "wine lovers".
SMALL_SEGMENT_BUYERS_FRACTION = 0.25


@dataclass(frozen=True)
class SegmentProfile:
    segment_id: int
    z_scores: dict[str, float]  # numeric feature -> z of the segment mean
    lifts: dict[str, float]  # cat_*/pay_* column -> segment share / population share
    means: dict[str, float]
    population_means: dict[str, float]
    medians: dict[str, float] = field(default_factory=dict)  # MEDIAN_FEATURES only
    population_medians: dict[str, float] = field(default_factory=dict)
    # Support counts (build_profiles; hand-built profiles may leave them out, and are then judged without them):
    members: int | None = None  # customers in the segment, outliers included
    known: dict[str, int] = field(default_factory=dict)  # DEMOGRAPHIC_FEATURES -> members with a value
    buyers: dict[str, int] = field(default_factory=dict)  # cat_*/pay_* column -> members with a share > 0
    population_buyer_shares: dict[str, float] = field(default_factory=dict)  # ... -> share of all customers


@dataclass(frozen=True)
class NameSupport:
    """How much support a trait needs to name a segment (the `segments.*` settings of the same names)."""

    min_category_buyers_share: float = 0.02
    min_segment_buyers: int = 30
    min_profile_coverage_for_names: float = 0.5
    min_trait_lift: float = MIN_TRAIT_LIFT

    def segment_buyers_needed(self, members: int) -> int:
        return min(self.min_segment_buyers, max(1, math.ceil(SMALL_SEGMENT_BUYERS_FRACTION * members)))

    def supports(self, profile: "SegmentProfile", column: str) -> bool:
        """Whether `column` has the support to name the segment. Counts the profile lacks (hand-built profiles)
        are not held against it."""
        if profile.members is None:
            return True
        if column in DEMOGRAPHIC_FEATURES:
            known = profile.known.get(column)
            if known is None:
                return True
            if column in MEDIAN_FEATURES and known < MIN_MEDIAN_PEOPLE:
                return False
            return profile.members > 0 and known / profile.members >= self.min_profile_coverage_for_names
        if column.startswith((CATEGORY_PREFIX, PAYMENT_PREFIX)):
            buyers, share = profile.buyers.get(column), profile.population_buyer_shares.get(column)
            if buyers is None or share is None:
                return True
            return share >= self.min_category_buyers_share and buyers >= self.segment_buyers_needed(profile.members)
        return True


def lift_names(profile: SegmentProfile, column: str, support: NameSupport | None = None) -> bool:
    """Whether the segment buys the category (or pays by the method) enough more than everyone to be named for
    it: a lift of at least `min_trait_lift` (MIN_TRAIT_LIFT without `support`). A profile without the column's
    lift (built by hand) is judged on its z-score alone."""
    lift = profile.lifts.get(column)
    return lift is None or lift >= (support.min_trait_lift if support else MIN_TRAIT_LIFT)


def support_note(profile: SegmentProfile, column: str) -> str:
    """The support behind a trait, for the name evidence: "212 buyers in segment, 18% of customers", "age known
    for 300 of 412 members"; empty when the profile has no counts for it."""
    if column in profile.buyers and column in profile.population_buyer_shares:
        return f"{profile.buyers[column]} buyers in segment, {profile.population_buyer_shares[column]:.0%} of customers"
    if column in profile.known and profile.members is not None:
        return f"known for {profile.known[column]} of {profile.members} members"
    return ""


def _column_stats(features: pl.DataFrame, columns: list[str], rows: np.ndarray, stat: str) -> dict[str, float]:
    """The mean or std of each column over the rows of the boolean mask `rows`, one column at a time: a filtered
    copy of every column at once is 230 MB per call at 1M customers (the same values, the same statistics)."""
    chosen = pl.lit(pl.Series(rows))
    return features.select([getattr(pl.col(c).filter(chosen), stat)() for c in columns]).row(0, named=True)


def build_profiles(features: pl.DataFrame, segment_ids: np.ndarray, typical: np.ndarray) -> list[SegmentProfile]:
    numeric = [c for c, dtype in features.schema.items() if dtype.is_numeric()]
    pop_mean = _column_stats(features, numeric, typical, "mean")
    pop_std = _column_stats(features, numeric, typical, "std")
    medianed = [c for c in MEDIAN_FEATURES if c in numeric]
    pop_median = _column_stats(features, medianed, typical, "median") if medianed else {}
    segments, index = np.unique(segment_ids, return_inverse=True)
    members = np.bincount(index, minlength=len(segments))
    # Support counts over all members (outliers are people too), one column at a time for memory's sake.
    known = {c: np.bincount(index, weights=features.get_column(c).is_not_null().to_numpy(), minlength=len(segments))
             for c in DEMOGRAPHIC_FEATURES if c in numeric}
    buyers, buyer_shares = {}, {}
    for column in (c for c in numeric if c.startswith((CATEGORY_PREFIX, PAYMENT_PREFIX))):
        values = features.get_column(column)
        values = values.fill_nan(0) if values.dtype.is_float() else values  # polars orders NaN above every number
        bought = (values.fill_null(0) > 0).to_numpy()
        buyers[column] = np.bincount(index, weights=bought, minlength=len(segments))
        buyer_shares[column] = float(bought.mean()) if len(bought) else 0.0
    profiles = []
    for position, segment in enumerate(segments.tolist()):
        in_segment = index == position
        # A segment made only of outliers is still described, from its own members.
        chosen = in_segment & typical if (in_segment & typical).any() else in_segment
        means = _column_stats(features, numeric, chosen, "mean")
        z_scores, lifts = {}, {}
        for column in numeric:
            mean, std, value = pop_mean[column], pop_std[column], means[column]
            if value is None or mean is None:
                continue
            if std:
                z_scores[column] = (value - mean) / std
            if column.startswith((CATEGORY_PREFIX, PAYMENT_PREFIX)) and mean > 0:
                lifts[column] = value / mean
        medians = _column_stats(features, medianed, chosen, "median") if medianed else {}
        profiles.append(SegmentProfile(int(segment), z_scores, lifts, means, pop_mean,
                                       {c: v for c, v in medians.items() if v is not None},
                                       {c: v for c, v in pop_median.items() if v is not None},
                                       int(members[position]), {c: int(k[position]) for c, k in known.items()},
                                       {c: int(b[position]) for c, b in buyers.items()}, buyer_shares))
    return profiles


# The buckets staging fills for lines no rule or product table placed (orders.category_rules, products.unknown_sku):
# buying more of them says nothing a segment could be named for.
CATCH_ALL_CATEGORIES = frozenset({"other", "unknown"})


def real_difference(profile: SegmentProfile, column: str, z: float) -> bool:
    """Whether an age or income word is earned beyond the z-score: the segment's median age at least
    AGE_WORD_YEARS from everyone's, its median income at least INCOME_WORD_RATIO times everyone's (or at most
    1/INCOME_WORD_RATIO). Medians, else means, when the profile has them; a profile with neither (built by hand)
    is judged on the z-score alone."""
    if column not in MEDIAN_FEATURES:
        return True
    segment = profile.medians.get(column, profile.means.get(column))
    population = profile.population_medians.get(column, profile.population_means.get(column))
    if segment is None or population is None:
        return True
    if column == "age":
        return abs(segment - population) >= AGE_WORD_YEARS
    if population <= 0:
        return False
    ratio = segment / population
    return ratio >= INCOME_WORD_RATIO if z > 0 else ratio <= 1 / INCOME_WORD_RATIO


# The profile fields a segment can be told apart by, besides its categories and payment methods (each has words in
# assets/segments/labels.py PROFILE_DESCRIPTORS).
PROFILE_TRAITS = ("age", "income", "is_female", "is_home_owner", "total_spend", "n_orders", "avg_basket_value",
                  "recency_days")


def distinctive_traits(profile: SegmentProfile, support: NameSupport | None = None) -> list[str]:
    """Every trait that sets the segment apart with support, as "column:+" / "column:-", strongest first: a profile
    field at least TRAIT_THRESHOLD standard deviations from everyone's (age and income also by a real difference),
    a category or payment method bought more (not less: "buys less beer" is nothing to act on; never a catch-all)
    by a lift that names it (`lift_names`). Labels play no part: whether a trait can be worded in both languages
    is the names' concern."""
    found = []
    for column, z in profile.z_scores.items():
        if abs(z) < TRAIT_THRESHOLD or (support and not support.supports(profile, column)):
            continue
        if column in PROFILE_TRAITS and real_difference(profile, column, z):
            found.append((abs(z), f"{column}:{'+' if z > 0 else '-'}"))
        elif z > 0 and lift_names(profile, column, support) and (
                column.startswith(PAYMENT_PREFIX) or column.startswith(CATEGORY_PREFIX)
                and column.removeprefix(CATEGORY_PREFIX) not in CATCH_ALL_CATEGORIES):
            found.append((z, f"{column}:+"))
    return [basis for _, basis in sorted(found, key=lambda t: (-t[0], t[1]))]


@dataclass(frozen=True)
class Actionability:
    """How many customers a segmentation puts in segments an ops team can act on (each with a distinctive trait)."""

    segments_without_trait: int
    actionable_share: float  # customers in segments with a distinctive trait
    largest_traitless_share: float  # the largest segment without one (0 when every segment has one)


def judge_actionability(features: pl.DataFrame, labels: np.ndarray, support: NameSupport | None = None) \
        -> Actionability:
    """Actionability of the segments `labels` (one per row of `features`), every row counted as typical."""
    profiles = build_profiles(features, labels, np.ones(len(labels), dtype=bool))
    shares = {p.segment_id: (p.members or 0) / max(len(labels), 1) for p in profiles}
    traitless = [p.segment_id for p in profiles if not distinctive_traits(p, support)]
    return Actionability(len(traitless), round(1.0 - sum(shares[s] for s in traitless), 6),
                         round(max((shares[s] for s in traitless), default=0.0), 6))
