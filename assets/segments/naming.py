"""Bilingual segment names derived from the data.

1. Every segment gets a profile: z-scores of its numeric features and lifts of its category and payment order
   shares against the population (typical customers only, so outliers do not skew it).
2. Archetype rules (assets/segments/archetypes.yaml, or the shop's own file) are scored against the profiles; a segment
   can take an archetype only if every required condition holds, and each archetype names one segment at most
   (Hungarian assignment on the scores). A segment's previous archetype wins ties, so names stay put.
3. A segment no archetype fits is described by what sets it apart most: who they are and what they buy
   (高收入·葡萄酒偏好 / High income · wine lovers). Descriptors clear a threshold, so they never contradict the data.
   A shop without categories (orders.columns.category: null) has no category to name: its segments take their two
   strongest traits of demographics, RFM and payment (高收入·刷卡支付 / High income · card payers); archetypes that
   require a category never apply to it (their condition has no data).
4. Names chosen by people (`segments.name_overrides`) replace all of this for their segment ids.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import yaml
from scipy.optimize import linear_sum_assignment

from assets.features.customer_features import CATEGORY_PREFIX, PAYMENT_PREFIX
from assets.segments.labels import (
    FALLBACK_NAME,
    PROFILE_DESCRIPTORS,
    category_label,
    payment_label,
)

DEFAULT_ARCHETYPES = Path(__file__).with_name("archetypes.yaml")
NAME_THRESHOLD = 0.4  # descriptors need |z| of at least this many population standard deviations
PREVIOUS_NAME_BONUS = 0.5  # added to a still-valid archetype the segment had before


@dataclass(frozen=True)
class SegmentProfile:
    segment_id: int
    z_scores: dict[str, float]  # numeric feature -> z of the segment mean
    lifts: dict[str, float]  # cat_*/pay_* column -> segment share / population share
    means: dict[str, float]
    population_means: dict[str, float]


@dataclass(frozen=True)
class Archetype:
    key: str
    name_zh: str
    name_en: str
    require: list[dict]
    prefer: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class SegmentName:
    zh: str
    en: str
    source: str  # archetype | descriptive | override
    basis: list[str]  # archetype key, or descriptors as "feature:+" / "feature:-"
    evidence: list[str]  # human-readable numbers behind the name


def load_archetypes(path: str | Path | None = None) -> list[Archetype]:
    source = Path(path) if path else DEFAULT_ARCHETYPES
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
        return [Archetype(key=a["key"], name_zh=a["name_zh"], name_en=a["name_en"], require=list(a["require"]),
                          prefer=list(a.get("prefer") or [])) for a in document["archetypes"]]
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise ValueError(f"{source}: cannot read archetype rules ({exc.__class__.__name__}: {exc})") from exc


def _column_stats(features: pl.DataFrame, columns: list[str], rows: np.ndarray, stat: str) -> dict[str, float]:
    """The mean or std of each column over the rows of the boolean mask `rows`, one column at a time: a filtered
    copy of every column at once is 230 MB per call at 1M customers (the same values, the same statistics)."""
    chosen = pl.lit(pl.Series(rows))
    return features.select([getattr(pl.col(c).filter(chosen), stat)() for c in columns]).row(0, named=True)


def build_profiles(features: pl.DataFrame, segment_ids: np.ndarray, typical: np.ndarray) -> list[SegmentProfile]:
    numeric = [c for c, dtype in features.schema.items() if dtype.is_numeric()]
    pop_mean = _column_stats(features, numeric, typical, "mean")
    pop_std = _column_stats(features, numeric, typical, "std")
    profiles = []
    for segment in sorted(set(segment_ids.tolist())):
        in_segment = segment_ids == segment
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
        profiles.append(SegmentProfile(int(segment), z_scores, lifts, means, pop_mean))
    return profiles


def condition_margin(profile: SegmentProfile, condition: dict) -> float | None:
    """How far the condition holds (>= 0), or None when it does not hold or its data is missing."""
    if "feature" in condition:
        z = profile.z_scores.get(condition["feature"])
        if z is None:
            return None
        if "z_at_least" in condition:
            margin = z - condition["z_at_least"]
        else:
            margin = condition["z_at_most"] - z
        return margin if margin >= 0 else None
    prefix, codes = ((CATEGORY_PREFIX, condition["any_category"]) if "any_category" in condition
                     else (PAYMENT_PREFIX, condition["any_payment"]))
    lifts = [profile.lifts[prefix + code.lower()] for code in codes if prefix + code.lower() in profile.lifts]
    if not lifts:
        return None
    margin = max(lifts) - condition["lift_at_least"]
    return margin if margin >= 0 else None


def archetype_score(profile: SegmentProfile, archetype: Archetype) -> float | None:
    required = [condition_margin(profile, c) for c in archetype.require]
    if any(m is None for m in required):
        return None
    preferred = [condition_margin(profile, c) for c in archetype.prefer]
    return 1.0 + sum(required) + 0.5 * sum(1.0 + m for m in preferred if m is not None)


# The buckets staging fills for lines no rule or product table placed (orders.category_rules, products.unknown_sku):
# buying more of them says nothing a segment could be named for.
CATCH_ALL_CATEGORIES = frozenset({"other", "unknown"})


def descriptors(profile: SegmentProfile, category_overrides: dict) -> list[tuple[float, str, str, str, str]]:
    """(strength, basis, zh, en, kind) of everything that sets the segment apart, strongest first."""
    found = []
    for column, z in profile.z_scores.items():
        if abs(z) < NAME_THRESHOLD:
            continue
        if column in PROFILE_DESCRIPTORS:
            above, below = PROFILE_DESCRIPTORS[column]
            zh, en = above if z > 0 else below
            found.append((abs(z), f"{column}:{'+' if z > 0 else '-'}", zh, en, "profile"))
        elif column.startswith(CATEGORY_PREFIX) and z > 0 \
                and column.removeprefix(CATEGORY_PREFIX) not in CATCH_ALL_CATEGORIES:
            zh, en = category_label(column.removeprefix(CATEGORY_PREFIX), category_overrides)
            found.append((z, f"{column}:+", f"{zh}偏好", f"{en} lovers", "category"))
        elif column.startswith(PAYMENT_PREFIX) and z > 0:
            zh, en = payment_label(column.removeprefix(PAYMENT_PREFIX))
            found.append((z, f"{column}:+", zh, en, "profile"))
    return sorted(found, key=lambda d: (-d[0], d[1]))


def _evidence(profile: SegmentProfile, basis: list[str]) -> list[str]:
    notes = []
    for item in basis:
        column = item.split(":")[0]
        if column in profile.lifts:
            notes.append(f"{column} lift {profile.lifts[column]:.2f}x")
        elif column in profile.z_scores:
            notes.append(f"{column} z={profile.z_scores[column]:+.2f}")
    return notes


def descriptive_name(profile: SegmentProfile, category_overrides: dict, taken: set[str],
                     previous_basis: list[str] | None = None, has_categories: bool = True) -> SegmentName:
    ranked = descriptors(profile, category_overrides)
    by_basis = {d[1]: d for d in ranked}
    if previous_basis and all(b in by_basis for b in previous_basis):
        chosen = [by_basis[b] for b in previous_basis]  # still true: keep the name people know
    elif not has_categories:
        # A shop without categories (orders.columns.category: null): who they are and how they buy, from the two
        # strongest traits (demographics, RFM, payment), instead of one trait and a category.
        chosen = [d for d in ranked if d[4] == "profile"][:2]
        # Who they are before how they pay, as "High income · wine lovers" puts the trait before the category.
        chosen.sort(key=lambda d: d[1].startswith(PAYMENT_PREFIX))
    else:
        chosen = [d for d in (next((d for d in ranked if d[4] == "profile"), None),
                              next((d for d in ranked if d[4] == "category"), None)) if d]
    extra = [d for d in ranked if d not in chosen]
    while True:
        zh = "·".join(d[2] for d in chosen) if chosen else FALLBACK_NAME[0]
        en = " · ".join(d[3] for d in chosen) if chosen else FALLBACK_NAME[1]
        if zh not in taken:
            break
        if extra:
            chosen.append(extra.pop(0))
            continue
        zh, en = f"{zh}{profile.segment_id}组", f"{en} (group {profile.segment_id})"
        break
    basis = [d[1] for d in chosen]
    return SegmentName(zh, en[:1].upper() + en[1:], "descriptive", basis, _evidence(profile, basis))


def name_segments(
    profiles: list[SegmentProfile],
    archetypes: list[Archetype],
    category_overrides: dict,
    overrides: dict[int, tuple[str, str]],
    previous: dict[int, tuple[str, list[str]]],
    has_categories: bool = True,
) -> dict[int, SegmentName]:
    """segment id -> name. `previous` holds each known segment's (source, basis) from the catalogue;
    `has_categories`: False for a shop declared without categories (descriptive names then take two traits)."""
    names: dict[int, SegmentName] = {}
    for profile in profiles:
        if profile.segment_id in overrides:
            zh, en = overrides[profile.segment_id]
            names[profile.segment_id] = SegmentName(zh, en, "override", [], [])
    open_profiles = [p for p in profiles if p.segment_id not in names]
    if open_profiles and archetypes:
        scores = np.full((len(open_profiles), len(archetypes)), -1.0)
        for i, profile in enumerate(open_profiles):
            for j, archetype in enumerate(archetypes):
                score = archetype_score(profile, archetype)
                if score is not None:
                    was = previous.get(profile.segment_id)
                    bonus = PREVIOUS_NAME_BONUS if was and was[1] == [archetype.key] else 0.0
                    scores[i, j] = score + bonus
        rows, cols = linear_sum_assignment(-np.where(scores < 0, -1e6, scores))
        for i, j in zip(rows, cols):
            if scores[i, j] >= 0:
                profile, archetype = open_profiles[i], archetypes[j]
                evidence = [f"{archetype.key}: " + ", ".join(_condition_note(profile, c) for c in archetype.require)]
                names[profile.segment_id] = SegmentName(archetype.name_zh, archetype.name_en, "archetype",
                                                        [archetype.key], evidence)
    taken = {n.zh for n in names.values()}
    for profile in profiles:
        if profile.segment_id in names:
            continue
        was = previous.get(profile.segment_id)
        name = descriptive_name(profile, category_overrides, taken,
                                was[1] if was and was[0] == "descriptive" else None, has_categories)
        names[profile.segment_id] = name
        taken.add(name.zh)
    return names


def _condition_note(profile: SegmentProfile, condition: dict) -> str:
    if "feature" in condition:
        return f"{condition['feature']} z={profile.z_scores.get(condition['feature'], float('nan')):+.2f}"
    prefix, codes = ((CATEGORY_PREFIX, condition["any_category"]) if "any_category" in condition
                     else (PAYMENT_PREFIX, condition["any_payment"]))
    best = max(((profile.lifts[prefix + c.lower()], c) for c in codes if prefix + c.lower() in profile.lifts),
               default=(float("nan"), "-"))
    return f"{best[1]} lift {best[0]:.2f}x"
