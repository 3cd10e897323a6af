"""Bilingual segment names derived from the data.

1. Every segment gets a profile: z-scores of its numeric features and lifts of its category and payment order
   shares against the population (typical customers only, so outliers do not skew it).
2. Archetype rules (assets/segments/archetypes.yaml, or the shop's own file) are scored against the profiles; a segment
   can take an archetype only if every required condition holds, and each archetype names one segment at most
   (Hungarian assignment on the scores). A segment's previous archetype wins ties, so names stay put.
   Rules speak of category *groups* of the built-in vocabulary (assets/segments/vocabulary.yaml: alcohol,
   fresh_food, ...) rather than one shop's codes, so 生鲜肉类 and freshmeat count alike (see `group_lifts`).
3. A segment no archetype fits is described by what sets it apart most: who they are and what they buy
   (高收入·葡萄酒偏好 / High income · wine lovers). Descriptors clear a threshold, so they never contradict the data;
   age and income words also need a difference people would notice (`real_difference`). Each name is in one
   language: a trait is used only when it has a label in both, so the zh and en names say the same thing, and
   the categories left out for want of a label are listed (`SegmentName.unlabelled`, and the name evidence).
   A shop without categories (orders.columns.category: null) has no category to name: its segments take their two
   strongest traits of demographics, RFM and payment (高收入·刷卡支付 / High income · card payers); archetypes that
   require a category never apply to it (their condition has no data).
4. Every trait a name rests on, descriptive or archetype, needs support (`NameSupport`, from `segments.*`
   settings): a category or payment method enough buyers overall and in the segment, a demographic field a known
   value for enough members, a median word enough people with the value. A lift of 3x on 0.0% of orders or
   "Senior" from the one member of 412 with an age would otherwise name a segment. The evidence states the support.
5. Names chosen by people (`segments.name_overrides`) replace all of this for their segment ids.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from scipy.optimize import linear_sum_assignment

from assets.features.customer_features import CATEGORY_PREFIX, PAYMENT_PREFIX
from assets.features.traits import (
    CATCH_ALL_CATEGORIES,
    TRAIT_THRESHOLD,
    NameSupport,
    SegmentProfile,
    lift_names,
    real_difference,
    support_note,
)
from assets.segments.labels import (
    FALLBACK_NAME,
    PROFILE_DESCRIPTORS,
    category_group,
    category_names,
    payment_kind,
    payment_names,
)
from assets.segments.vocabulary import load_vocabulary, normalize
from pipelines.core.config import yaml_problem

DEFAULT_ARCHETYPES = Path(__file__).with_name("archetypes.yaml")
PREVIOUS_NAME_BONUS = 0.5  # added to a still-valid archetype the segment had before
# Where unlabelled categories are noted in a name's evidence, for the report to ask for `category_labels`.
UNLABELLED_NOTE = "no label: "


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
    # Categories that set the segment apart but have no label in zh or en, so the name leaves them out:
    # code -> the languages missing ("zh", "en"). The evidence repeats them after UNLABELLED_NOTE.
    unlabelled: dict[str, list[str]] = field(default_factory=dict)


def load_archetypes(path: str | Path | None = None) -> list[Archetype]:
    source = Path(path) if path else DEFAULT_ARCHETYPES
    text = ""
    try:
        text = source.read_text(encoding="utf-8")
        document = yaml.safe_load(text) or {}
        return [Archetype(key=a["key"], name_zh=a["name_zh"], name_en=a["name_en"], require=list(a["require"]),
                          prefer=list(a.get("prefer") or [])) for a in document["archetypes"]]
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {yaml_problem(exc, text)}") from None
    except (OSError, KeyError, TypeError) as exc:
        raise ValueError(f"{source}: cannot read archetype rules ({exc.__class__.__name__}: {exc})") from exc


def group_lifts(profile: SegmentProfile, category_overrides: dict | None = None,
                support: NameSupport | None = None) -> dict[str, float]:
    """Vocabulary group -> the segment's lift on the group's categories together.

    A group's lift is the sum of its categories' segment rates over the sum of their population rates (rates are
    the shares of orders holding the category): the lift of "group categories per order". Pooling weighs each
    category by how much it is bought, so one rare category with a big lift cannot carry the group, and a shop
    that splits fresh food into five codes gets about the figure of one that keeps one code. (Order shares of
    the group itself are not in the profile: an order holding two of its categories would need the order lines.)
    Profiles made without rates (hand-built ones) take the plain mean of the lifts. The catch-all group `other`
    and categories the vocabulary cannot place count towards no group; with `support`, neither do categories
    without the support to name a segment (a group none of whose categories has it has no lift)."""
    members: dict[str, list[tuple[float, float | None, float | None]]] = {}
    for column, lift in profile.lifts.items():
        if not column.startswith(CATEGORY_PREFIX) or (support and not support.supports(profile, column)):
            continue
        group = category_group(column.removeprefix(CATEGORY_PREFIX), category_overrides)
        if group is None or group == "other":
            continue
        members.setdefault(group, []).append((lift, profile.means.get(column), profile.population_means.get(column)))
    lifts = {}
    for group, rows in members.items():
        if all(segment is not None and population for _, segment, population in rows):
            lifts[group] = sum(r[1] for r in rows) / sum(r[2] for r in rows)
        else:
            lifts[group] = sum(r[0] for r in rows) / len(rows)
    return lifts


def _same_category(code: str, wanted: str) -> bool:
    """A rule's category code names a shop's category when they are spelt alike or mean the same entry."""
    if normalize(code) == normalize(wanted):
        return True
    categories = load_vocabulary().categories
    term = categories.resolve(code)
    return term is not None and term == categories.resolve(wanted)


def _same_payment(code: str, wanted: str) -> bool:
    """... and a payment code names a method alike, by entry, or by kind (mobile: WeChat Pay, Alipay, ...)."""
    payments = load_vocabulary().payments
    term = payments.resolve(code)
    return (normalize(code) == normalize(wanted) or (term is not None and term == payments.resolve(wanted))
            or normalize(payment_kind(code) or "") == normalize(wanted))


def condition_lifts(profile: SegmentProfile, condition: dict, category_overrides: dict | None = None,
                    support: NameSupport | None = None) -> list[tuple[float, str]]:
    """(lift, what) of everything a lift condition looks at that the profile has (and, with `support`, that has
    the support to name a segment)."""
    if "any_group" in condition:
        groups = group_lifts(profile, category_overrides, support)
        return [(groups[g], g) for g in condition["any_group"] if g in groups]
    if "any_category" in condition:
        prefix, codes, same = CATEGORY_PREFIX, condition["any_category"], _same_category
    else:
        prefix, codes, same = PAYMENT_PREFIX, condition["any_payment"], _same_payment
    return [(lift, column.removeprefix(prefix)) for column, lift in profile.lifts.items()
            if column.startswith(prefix) and any(same(column.removeprefix(prefix), str(c)) for c in codes)
            and (support is None or support.supports(profile, column))]


def condition_margin(profile: SegmentProfile, condition: dict, category_overrides: dict | None = None,
                     support: NameSupport | None = None) -> float | None:
    """How far the condition holds (>= 0), or None when it does not hold, its data is missing or (with
    `support`) the data lacks the support to name a segment."""
    if "feature" in condition:
        z = profile.z_scores.get(condition["feature"])
        if z is None or (support and not support.supports(profile, condition["feature"])):
            return None
        if "z_at_least" in condition:
            margin = z - condition["z_at_least"]
        else:
            margin = condition["z_at_most"] - z
        return margin if margin >= 0 else None
    lifts = condition_lifts(profile, condition, category_overrides, support)
    if not lifts:
        return None
    margin = max(lifts)[0] - condition["lift_at_least"]
    return margin if margin >= 0 else None


def archetype_score(profile: SegmentProfile, archetype: Archetype, category_overrides: dict | None = None,
                    support: NameSupport | None = None) -> float | None:
    required = [condition_margin(profile, c, category_overrides, support) for c in archetype.require]
    if any(m is None for m in required):
        return None
    preferred = [condition_margin(profile, c, category_overrides, support) for c in archetype.prefer]
    return 1.0 + sum(required) + 0.5 * sum(1.0 + m for m in preferred if m is not None)


def _standout_categories(profile: SegmentProfile, category_overrides: dict | None, support: NameSupport | None):
    """(z, column, zh, en) of the categories that set the segment apart, with the support to say so; zh or en None
    without a label."""
    for column, z in profile.z_scores.items():
        code = column.removeprefix(CATEGORY_PREFIX)
        if column.startswith(CATEGORY_PREFIX) and z >= TRAIT_THRESHOLD and code not in CATCH_ALL_CATEGORIES \
                and category_group(code, category_overrides) != "other" and lift_names(profile, column, support) \
                and (support is None or support.supports(profile, column)):
            yield (z, column, *category_names(code, category_overrides))


def unlabelled_categories(profile: SegmentProfile, category_overrides: dict | None,
                          support: NameSupport | None = None) -> dict[str, list[str]]:
    """Category code -> the languages ("zh", "en") it has no label in, for the categories that set the segment
    apart: a `category_labels` entry would let them into its name."""
    return {column.removeprefix(CATEGORY_PREFIX): [lang for lang, label in (("zh", zh), ("en", en)) if not label]
            for _, column, zh, en in _standout_categories(profile, category_overrides, support) if not (zh and en)}


def descriptors(profile: SegmentProfile, category_overrides: dict,
                support: NameSupport | None = None) -> list[tuple[float, str, str, str, str]]:
    """(strength, basis, zh, en, kind) of everything that sets the segment apart, strongest first. Only what has
    a label in both languages: a zh name must not show a Latin code, an en name no Chinese, and both names must
    say the same thing. With `support`, only what has the support to name the segment."""
    found = []
    for column, z in profile.z_scores.items():
        if abs(z) < TRAIT_THRESHOLD or (support and not support.supports(profile, column)):
            continue
        if column in PROFILE_DESCRIPTORS and real_difference(profile, column, z):
            above, below = PROFILE_DESCRIPTORS[column]
            zh, en = above if z > 0 else below
            found.append((abs(z), f"{column}:{'+' if z > 0 else '-'}", zh, en, "profile"))
        elif column.startswith(PAYMENT_PREFIX) and z > 0 and lift_names(profile, column, support):
            zh, en = payment_names(column.removeprefix(PAYMENT_PREFIX))
            if zh and en:
                found.append((z, f"{column}:+", zh, en, "profile"))
    for z, column, zh, en in _standout_categories(profile, category_overrides, support):
        if zh and en:
            found.append((z, f"{column}:+", f"{zh}偏好", f"{en} lovers", "category"))
    return sorted(found, key=lambda d: (-d[0], d[1]))


def _with_support(note: str, profile: SegmentProfile, column: str) -> str:
    support = support_note(profile, column)
    return f"{note} ({support})" if support else note


def _evidence(profile: SegmentProfile, basis: list[str]) -> list[str]:
    notes = []
    for item in basis:
        column = item.split(":")[0]
        if column in profile.lifts:
            notes.append(_with_support(f"{column} lift {profile.lifts[column]:.2f}x", profile, column))
        elif column in profile.z_scores:
            notes.append(_with_support(f"{column} z={profile.z_scores[column]:+.2f}", profile, column))
    return notes


def descriptive_name(profile: SegmentProfile, category_overrides: dict, taken: set[str],
                     previous_basis: list[str] | None = None, has_categories: bool = True,
                     support: NameSupport | None = None) -> SegmentName:
    ranked = descriptors(profile, category_overrides, support)
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
    unlabelled = unlabelled_categories(profile, category_overrides, support)
    notes = [f"{UNLABELLED_NOTE}{code} ({', '.join(languages)})" for code, languages in unlabelled.items()]
    return SegmentName(zh, en[:1].upper() + en[1:], "descriptive", basis, _evidence(profile, basis) + notes,
                       unlabelled)


def name_segments(
    profiles: list[SegmentProfile],
    archetypes: list[Archetype],
    category_overrides: dict,
    overrides: dict[int, tuple[str, str]],
    previous: dict[int, tuple[str, list[str]]],
    has_categories: bool = True,
    support: NameSupport | None = None,
) -> dict[int, SegmentName]:
    """segment id -> name. `previous` holds each known segment's (source, basis) from the catalogue;
    `has_categories`: False for a shop declared without categories (descriptive names then take two traits);
    `support`: what a trait needs to name a segment (default: the `segments.*` defaults)."""
    support = support or NameSupport()
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
                score = archetype_score(profile, archetype, category_overrides, support)
                if score is not None:
                    was = previous.get(profile.segment_id)
                    bonus = PREVIOUS_NAME_BONUS if was and was[1] == [archetype.key] else 0.0
                    scores[i, j] = score + bonus
        rows, cols = linear_sum_assignment(-np.where(scores < 0, -1e6, scores))
        for i, j in zip(rows, cols):
            if scores[i, j] >= 0:
                profile, archetype = open_profiles[i], archetypes[j]
                evidence = [f"{archetype.key}: " + ", ".join(_condition_note(profile, c, category_overrides, support)
                                                             for c in archetype.require)]
                names[profile.segment_id] = SegmentName(archetype.name_zh, archetype.name_en, "archetype",
                                                        [archetype.key], evidence)
    taken = {n.zh for n in names.values()}
    for profile in profiles:
        if profile.segment_id in names:
            continue
        was = previous.get(profile.segment_id)
        name = descriptive_name(profile, category_overrides, taken,
                                was[1] if was and was[0] == "descriptive" else None, has_categories, support)
        names[profile.segment_id] = name
        taken.add(name.zh)
    return names


def _condition_note(profile: SegmentProfile, condition: dict, category_overrides: dict | None = None,
                    support: NameSupport | None = None) -> str:
    if "feature" in condition:
        feature = condition["feature"]
        return _with_support(f"{feature} z={profile.z_scores.get(feature, float('nan')):+.2f}", profile, feature)
    best = max(condition_lifts(profile, condition, category_overrides, support), default=(float("nan"), "-"))
    note = f"{best[1]} lift {best[0]:.2f}x"
    if "any_group" not in condition:
        prefix = PAYMENT_PREFIX if "any_payment" in condition else CATEGORY_PREFIX
        return _with_support(note, profile, f"{prefix}{best[1]}")
    # A group's support is that of the categories its lift counts: the three with the most buyers in the segment.
    counted = sorted((c for c in profile.buyers if c.startswith(CATEGORY_PREFIX)
                      and category_group(c.removeprefix(CATEGORY_PREFIX), category_overrides) == best[1]
                      and (support is None or support.supports(profile, c))), key=lambda c: -profile.buyers[c])
    details = "; ".join(f"{c.removeprefix(CATEGORY_PREFIX)}: {support_note(profile, c)}" for c in counted[:3])
    return f"{note} ({details})" if details else note


def unlabelled_from_evidence(evidence: list[str]) -> list[str]:
    """The category codes a name's evidence (segments.segment_profiles.name_evidence) notes as unlabelled."""
    return [note.removeprefix(UNLABELLED_NOTE).rsplit(" (", 1)[0] for note in evidence or []
            if note.startswith(UNLABELLED_NOTE)]
