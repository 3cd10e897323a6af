"""Strategies per segment from the editable playbook (assets/playbook.yaml).

A strategy applies when one of its `when` alternatives holds for the segment (every condition of it); the numbers
behind those conditions and the strategy's `cite` metrics become its evidence, in both languages, as facts (see
assets/report/facts.py), so each cited number is checked against the warehouse like the rest of the report.
Archetype conditions name the rule; a segment with a descriptive name still gets strategies from the feature
conditions. Only segments with at least MIN_DETAIL_SIZE customers get strategies (privacy, see data.py).

An export without categories (orders.columns.category: null) is offered no strategy that needs them: none that
only a category lift can trigger, and none whose action names {category} unless the playbook gives it an
`action_without_categories` text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from assets.report.campaign_data import last_measured
from assets.report.data import (
    ReportData,
    f_feature_mean,
    f_feature_population_mean,
    f_lift,
    f_median,
    f_payment_overall,
    f_payment_share,
    f_population_median,
    f_rate,
    f_share,
    f_tier_share,
    feature_label,
    method_label,
    payment_share,
    tier_share,
)
from assets.report.facts import FactBook, FactRef, Sentence, compose
from assets.segments.labels import category_group
from assets.segments.value_tiers import ALL_VALUE_TIERS, RFM_TIERS
from pipelines.core.config import yaml_problem

DEFAULT_PLAYBOOK = Path(__file__).with_name("playbook.yaml")
# libyaml's safe loader when PyYAML was built with it: the same documents, parsed in 2 ms instead of 10 ms.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
LANGUAGES = ("zh", "en")
METRICS = {
    "archetype": set(),
    "category_lift": {"at_least", "at_most"},
    "median": {"ratio_at_least", "ratio_at_most"},
    "feature": {"z_at_least", "z_at_most"},
    "payment": {"share_at_least", "lift_at_least"},
    "rfm_tiers": {"share_at_least"},
    "value_tiers": {"share_at_least"},
    "segment_share": {"share_at_least"},
}
TIER_NAMES = {"rfm_tiers": {t.key: (t.zh, t.en) for t in RFM_TIERS},
              # Both lowest tiers: at_risk with order dates, low_value without (assets/segments/value_tiers.py).
              "value_tiers": {t.key: (t.zh, t.en) for t in ALL_VALUE_TIERS}}
GENERIC_CATEGORY = {"zh": "热销商品", "en": "bestsellers"}
# Vocabulary groups that are not something a customer likes: `category_lift: any` never picks them.
NOT_PREFERENCES = {"fees", "other"}


class PlaybookError(ValueError):
    pass


@dataclass(frozen=True)
class Strategy:
    key: str
    priority: int
    title: dict[str, str]
    action: dict[str, str]
    when: list[list[dict]]
    cite: list[dict]
    # The wording for a shop without categories, used there instead of `action`. None: `action` is used, unless it
    # names {category}, and then the strategy is not offered there.
    action_without_categories: dict[str, str] | None = None

    def needs_categories(self) -> bool:
        """Whether the strategy cannot be offered without categories: every trigger rests on a category lift, or
        its action is written around {category} with no wording for a shop without them."""
        only_by_category = bool(self.when) and all(any("category_lift" in c for c in alternative)
                                                   for alternative in self.when)
        names_category = any("{category}" in text for text in self.action.values())
        return only_by_category or (names_category and self.action_without_categories is None)


@dataclass(frozen=True)
class Playbook:
    strategies: list[Strategy]
    fallback: Strategy | None
    max_per_segment: int = 3


@dataclass
class AppliedStrategy:
    key: str
    priority: int
    title: dict[str, str]
    action: dict[str, Sentence]
    evidence: list[dict[str, Sentence]] = field(default_factory=list)


def _check_condition(where: str, condition: object, cite: bool) -> dict:
    if not isinstance(condition, dict):
        raise PlaybookError(f"{where}: a condition is a mapping such as {{feature: recency_days, z_at_least: 0.5}}")
    metrics = [k for k in condition if k in METRICS]
    if len(metrics) != 1:
        raise PlaybookError(f"{where}: name exactly one metric of {sorted(METRICS)}, got {sorted(condition)}")
    metric = metrics[0]
    extra = set(condition) - {metric} - METRICS[metric]
    if extra:
        raise PlaybookError(f"{where}: {metric} takes {sorted(METRICS[metric]) or 'no thresholds'}, "
                            f"not {sorted(extra)}")
    if not cite and metric != "archetype" and len(condition) == 1:
        raise PlaybookError(f"{where}: a condition on {metric} needs a threshold ({sorted(METRICS[metric])})")
    for key in set(condition) - {metric}:
        if not isinstance(condition[key], (int, float)) or isinstance(condition[key], bool):
            raise PlaybookError(f"{where}.{key}: must be a number, got {condition[key]!r}")
    target = condition[metric]
    if metric in ("archetype", "rfm_tiers", "value_tiers") and not (
            isinstance(target, list) and target and all(isinstance(t, str) for t in target)):
        raise PlaybookError(f"{where}.{metric}: must be a list of keys")
    if metric in TIER_NAMES:
        unknown = set(target) - set(TIER_NAMES[metric])
        if unknown:
            raise PlaybookError(f"{where}.{metric}: unknown tier(s) {sorted(unknown)}; "
                                f"use {sorted(TIER_NAMES[metric])}")
    if metric == "category_lift" and target != "any" and not (
            isinstance(target, list) and target and all(isinstance(t, str) for t in target)):
        raise PlaybookError(f"{where}.category_lift: must be a list of category codes or `any`")
    if metric == "median" and target not in ("age", "income"):
        raise PlaybookError(f"{where}.median: must be age or income, got {target!r}")
    if metric in ("feature", "payment") and not isinstance(target, str):
        raise PlaybookError(f"{where}.{metric}: must be one name, got {target!r}")
    return dict(condition)


def _check_text(where: str, value: object) -> dict[str, str]:
    if not isinstance(value, dict) or set(value) != set(LANGUAGES) or not all(
            isinstance(value[lang], str) and value[lang].strip() for lang in LANGUAGES):
        raise PlaybookError(f"{where}: needs zh and en texts")
    for lang in LANGUAGES:
        if any(ch.isdigit() for ch in value[lang]):
            raise PlaybookError(f"{where}.{lang}: texts may not contain digits: every number in the report comes "
                                "from the warehouse (the evidence cites them)")
        try:
            compose(value[lang], category="x")
        except (KeyError, ValueError, IndexError) as exc:
            raise PlaybookError(f"{where}.{lang}: only the placeholder {{category}} is allowed ({exc})") from exc
    return {lang: " ".join(value[lang].split()) if lang == "en" else value[lang].strip() for lang in LANGUAGES}


def _strategy(where: str, raw: object, fallback: bool = False) -> Strategy:
    if not isinstance(raw, dict):
        raise PlaybookError(f"{where}: a strategy is a mapping")
    allowed = {"key", "priority", "title", "action", "action_without_categories", "when", "cite"}
    if set(raw) - allowed:
        raise PlaybookError(f"{where}: unknown key(s) {sorted(set(raw) - allowed)}")
    if not isinstance(raw.get("key"), str):
        raise PlaybookError(f"{where}.key: required")
    when = raw.get("when") or []
    if not isinstance(when, list) or not all(isinstance(a, list) and a for a in when):
        raise PlaybookError(f"{where}.when: a list of alternatives, each a non-empty list of conditions")
    if not when and not fallback:
        raise PlaybookError(f"{where}.when: required (a strategy without conditions is the fallback)")
    priority = raw.get("priority", 50)
    if not isinstance(priority, int):
        raise PlaybookError(f"{where}.priority: must be a whole number")
    without = None
    if raw.get("action_without_categories") is not None:
        without = _check_text(f"{where}.action_without_categories", raw["action_without_categories"])
        if any("{category}" in text for text in without.values()):
            raise PlaybookError(f"{where}.action_without_categories: is for shops without categories, so it may not "
                                "use {category}")
    return Strategy(
        key=raw["key"], priority=priority,
        title=_check_text(f"{where}.title", raw.get("title")),
        action=_check_text(f"{where}.action", raw.get("action")),
        action_without_categories=without,
        when=[[_check_condition(f"{where}.when[{i}][{j}]", c, cite=False) for j, c in enumerate(alternative)]
              for i, alternative in enumerate(when)],
        cite=[_check_condition(f"{where}.cite[{i}]", c, cite=True) for i, c in enumerate(raw.get("cite") or [])],
    )


def load_playbook(path: str | Path | None = None) -> Playbook:
    source = Path(path) if path else DEFAULT_PLAYBOOK
    try:
        text = source.read_text(encoding="utf-8")
        document = yaml.load(text, Loader=YAML_LOADER) or {}
    except OSError as exc:
        raise PlaybookError(f"{source}: cannot read the playbook ({exc.__class__.__name__}: {exc})") from exc
    except yaml.YAMLError as exc:
        raise PlaybookError(f"{source}: not valid YAML: {yaml_problem(exc, text)}") from None
    try:
        if not isinstance(document, dict) or set(document) - {"strategies", "fallback", "max_per_segment"}:
            raise PlaybookError("top level: only strategies, fallback and max_per_segment are allowed")
        strategies = [_strategy(f"strategies[{i}]", s) for i, s in enumerate(document.get("strategies") or [])]
        keys = [s.key for s in strategies]
        if len(set(keys)) != len(keys):
            raise PlaybookError(f"strategies: duplicate keys {sorted({k for k in keys if keys.count(k) > 1})}")
        fallback = _strategy("fallback", document["fallback"], fallback=True) if document.get("fallback") else None
        limit = document.get("max_per_segment", 3)
        if not isinstance(limit, int) or limit < 1:
            raise PlaybookError("max_per_segment: must be a whole number >= 1")
    except PlaybookError as exc:
        raise PlaybookError(f"{source}: {exc}") from None
    return Playbook(strategies, fallback, limit)


# --- evaluation -------------------------------------------------------------------------------------------------

@dataclass
class Measured:
    holds: bool
    evidence: dict[str, Sentence] | None
    category: str | None = None


def _best_category(data: ReportData, segment_id: int, codes: list[str] | str) -> tuple[str, float] | None:
    frame = data.affinity.filter(data.affinity["segment_id"] == segment_id).drop_nulls("lift")
    if codes != "any":
        frame = frame.filter(frame["category"].is_in([c.lower() for c in codes]))
    else:  # postage, deposits and catch-all buckets say nothing of what a segment likes
        liked = [c for c in frame["category"].unique().to_list()
                 if category_group(c, data.category_labels) not in NOT_PREFERENCES]
        frame = frame.filter(frame["category"].is_in(liked))
    if frame.is_empty():
        return None
    best = frame.sort(["lift", "category"], descending=[True, False]).row(0, named=True)
    return best["category"], float(best["lift"])


def _limits(value: float | None, condition: dict, low: str, high: str) -> bool:
    if value is None:
        return False
    if low in condition and value < condition[low]:
        return False
    return not (high in condition and value > condition[high])


def measure(condition: dict, segment_id: int, data: ReportData, book: FactBook) -> Measured:
    """Whether the condition holds for the segment, and the evidence (facts) behind it."""
    segment = data.segment(segment_id)
    if "archetype" in condition:
        holds = segment.name_source == "archetype" and segment.archetype in condition["archetype"]
        return Measured(holds, {
            "zh": compose("符合“{name}”画像规则", name=segment.name_zh),
            "en": compose("matches the “{name}” archetype rules", name=segment.name_en)} if holds else None)
    if "category_lift" in condition:
        best = _best_category(data, segment_id, condition["category_lift"])
        if best is None:
            return Measured(False, None)
        category, lift = best
        lift_ref, rate_ref = f_lift(book, data, segment_id, category), f_rate(book, data, segment_id, category)
        return Measured(_limits(lift, condition, "at_least", "at_most"), {
            "zh": compose("{cat}提升度 {lift}（{rate} 的订单）", cat=data.category(category, "zh"), lift=lift_ref,
                          rate=rate_ref),
            "en": compose("{cat} lift {lift} (in {rate} of orders)", cat=data.category(category, "en"),
                          lift=lift_ref, rate=rate_ref)}, category)
    if "median" in condition:
        column = condition["median"]
        value, population = getattr(segment, f"median_{column}"), data.population_median.get(column)
        if value is None or not population:
            return Measured(False, None)
        ref, all_ref = f_median(book, data, segment_id, column), f_population_median(book, data, column)
        label = {"age": ("年龄", "age"), "income": ("收入", "income")}[column]
        return Measured(_limits(value / population, condition, "ratio_at_least", "ratio_at_most"), {
            "zh": compose("{label}中位数 {v}（全体 {p}）", label=label[0], v=ref, p=all_ref),
            "en": compose("median {label} {v} (all customers {p})", label=label[1], v=ref, p=all_ref)})
    if "feature" in condition:
        feature = condition["feature"]
        rows = data.features.filter((data.features["segment_id"] == segment_id)
                                    & (data.features["feature"] == feature))
        if rows.is_empty() or rows["segment_mean"][0] is None:
            return Measured(False, None)
        z = rows["z_score"][0]
        ref, all_ref = f_feature_mean(book, data, segment_id, feature), f_feature_population_mean(book, data, feature)
        return Measured(_limits(z, condition, "z_at_least", "z_at_most"), {
            lang: compose("{label} {v}（全体 {p}）" if lang == "zh" else "{label} {v} (all customers {p})",
                          label=feature_label(feature, lang), v=ref, p=all_ref) for lang in LANGUAGES})
    if "payment" in condition:
        method = condition["payment"].lower()
        overall = data.payments_overall.filter(data.payments_overall["method"] == method)
        if overall.is_empty() or data.payments.filter(data.payments["segment_id"] == segment_id).is_empty():
            return Measured(False, None)
        share, all_share = payment_share(data, segment_id, method), float(overall["share"][0])
        holds = (_limits(share, condition, "share_at_least", "_")
                 and _limits(share / all_share if all_share else None, condition, "lift_at_least", "_"))
        ref, all_ref = f_payment_share(book, data, segment_id, method), f_payment_overall(book, data, method)
        return Measured(holds, {
            "zh": compose("{m}占订单 {v}（全体 {p}）", m=method_label(method, "zh"), v=ref, p=all_ref),
            "en": compose("{m} {v} of orders (all customers {p})", m=method_label(method, "en"), v=ref, p=all_ref)})
    if "rfm_tiers" in condition or "value_tiers" in condition:
        metric = "rfm_tiers" if "rfm_tiers" in condition else "value_tiers"
        keys = list(condition[metric])
        share = tier_share(data, segment_id, metric.removesuffix("_tiers"), keys)
        if share is None:
            return Measured(False, None)
        ref = f_tier_share(book, data, segment_id, metric.removesuffix("_tiers"), keys)
        names = {lang: "、".join(TIER_NAMES[metric][k][0] for k in keys) if lang == "zh"
                 else " + ".join(TIER_NAMES[metric][k][1] for k in keys) for lang in LANGUAGES}
        return Measured(_limits(share, condition, "share_at_least", "_"), {
            "zh": compose("{t}占 {v}", t=names["zh"], v=ref),
            "en": compose("{t}: {v} of members", t=names["en"], v=ref)})
    if "segment_share" in condition:
        ref = f_share(book, data, segment_id)
        return Measured(_limits(segment.share, condition, "share_at_least", "_"), {
            "zh": compose("占全部客户 {v}", v=ref), "en": compose("{v} of all customers", v=ref)})
    raise PlaybookError(f"unknown metric in {condition}")


def _apply(strategy: Strategy, segment_id: int, data: ReportData, book: FactBook) -> AppliedStrategy | None:
    held: list[Measured] | None = None
    for alternative in strategy.when:
        results = [measure(c, segment_id, data, book) for c in alternative]
        if all(r.holds for r in results):
            held = results
            break
    if held is None:
        if strategy.when:
            return None
        held = []
    # A cited metric with a threshold is evidence only above it (a top category at lift 1.0 backs nothing).
    cited = [r for r in (measure(c, segment_id, data, book) for c in strategy.cite) if r.holds]
    evidence, seen = [], set()
    category = None
    # Numbers first: an archetype match is cited after the measurements that back it.
    results = [*held, *cited]
    results.sort(key=lambda r: r.evidence is not None and r.category is None and not any(
        isinstance(p, FactRef) for p in r.evidence["en"].parts))
    for result in results:
        if result.evidence is None:
            continue
        marker = result.evidence["en"].text(book)
        if marker not in seen:
            seen.add(marker)
            evidence.append(result.evidence)
        category = category or result.category
    if category is None:
        best = _best_category(data, segment_id, "any")
        category = best[0] if best else None
    texts = strategy.action if data.has_categories else (strategy.action_without_categories or strategy.action)
    action = {lang: compose(texts[lang],
                            category=data.category(category, lang) if category else GENERIC_CATEGORY[lang])
              for lang in LANGUAGES}
    # A campaign that ran this strategy: its latest measured uplift (assets/report/campaign_data.py).
    measured = last_measured(data.campaigns, book, strategy.key)
    if measured is not None:
        evidence.append(measured)
    return AppliedStrategy(strategy.key, strategy.priority, strategy.title, action, evidence)


def strategies_for(segment_id: int, data: ReportData, book: FactBook, playbook: Playbook) -> list[AppliedStrategy]:
    """The strategies that apply to one segment, most important first (at most playbook.max_per_segment)."""
    offered = [s for s in playbook.strategies if data.has_categories or not s.needs_categories()]
    applied = [a for s in offered if (a := _apply(s, segment_id, data, book)) is not None]
    applied.sort(key=lambda a: a.priority)  # stable: playbook order breaks ties
    fallback_offered = playbook.fallback is not None and (data.has_categories
                                                         or not playbook.fallback.needs_categories())
    if not applied and fallback_offered:
        fallback = _apply(playbook.fallback, segment_id, data, book)
        applied = [fallback] if fallback else []
    return applied[: playbook.max_per_segment]


def plan(data: ReportData, book: FactBook, playbook: Playbook) -> dict[int, list[AppliedStrategy]]:
    """segment id -> strategies, for every segment large enough to be described."""
    return {s.segment_id: strategies_for(s.segment_id, data, book, playbook) for s in data.detailed}
