"""The report's words: a summary per segment and an interpretation under every chart, in Chinese and English.

Everything here is generated from `ReportData` (the warehouse tables). Numbers enter only as facts
(assets/report/facts.py), so each one carries the query that proves it; templates themselves may not contain digits.
Segments below MIN_DETAIL_SIZE customers are only mentioned as the pooled "other small segments".

This module writes the summary and the notes and assembles the narrative (narrative.py); the interpretations under
the charts are in sections.py (segments) and sections_predict.py (churn, next categories).
"""

from __future__ import annotations

import polars as pl

from assets.report.data import (
    ReportData,
    f_avg,
    f_customers,
    f_lift,
    f_median,
    f_min_size,
    f_profile_share,
    f_segments,
    f_share,
    f_small_customers,
    f_small_share,
    f_total,
)
from assets.report.facts import FactBook, Sentence, compose, join
from assets.report.narrative import (
    LANGUAGES,
    NOTABLE_LIFT,
    Card,
    Narrative,
    _names,
    coverage,
)
from assets.report.sections import (
    TIERS_DIFFER,
    section_box,
    section_categories,
    section_k,
    section_missing_labels,
    section_payments,
    section_sizes,
    section_tiers,
    section_without_categories,
)
from assets.report.sections_audiences import section_audiences
from assets.report.sections_campaigns import section_campaigns
from assets.report.sections_history import section_history, section_migration
from assets.report.sections_predict import expected_value, section_churn, section_next_category
from assets.report.strategies import AppliedStrategy
from assets.report.weekly import section_weekly

__all__ = ["LANGUAGES", "Narrative", "build_narrative"]


# --- summary ----------------------------------------------------------------------------------------------------

def _profile(data: ReportData, book: FactBook, segment_id: int) -> tuple[list[Sentence], list[Sentence]]:
    """Age, income, gender and home ownership of a segment, each only when enough members have the value
    (MIN_PROFILE_SUPPORT) and with its coverage when fewer than half do; where too few have it, the coverage alone."""
    segment = data.segment(segment_id)
    zh, en = [], []

    def add(profile_field: str, number: dict[str, Sentence] | None) -> None:
        note = coverage(data, book, segment_id, profile_field, labelled=number is None)
        if number is None:
            if note:
                zh.append(note["zh"])
                en.append(note["en"])
            return
        zh.append(number["zh"] + (compose("（{c}）", c=note["zh"]) if note else compose("")))
        en.append(number["en"] + (compose(" ({c})", c=note["en"]) if note else compose("")))

    # Medians of too few members are None already (data._segment).
    age = f_median(book, data, segment_id, "age") if segment.median_age is not None else None
    add("age", age and {"zh": compose("年龄中位数 {v} 岁", v=age), "en": compose("median age {v}", v=age)})
    income = f_median(book, data, segment_id, "income") if segment.median_income is not None else None
    add("income", income and {"zh": compose("收入中位数 {v}", v=income), "en": compose("median income {v}", v=income)})
    gender = None
    if segment.female_share is not None and segment.supported("gender"):
        # The majority is named, so an 86% male segment reads "86.0% men", not "14.0% women".
        which = "female" if segment.female_share >= 0.5 else "male"
        ref = f_profile_share(book, data, segment_id, which)
        gender = ({"zh": compose("女性占 {v}", v=ref), "en": compose("{v} women", v=ref)} if which == "female" else
                  {"zh": compose("男性占 {v}", v=ref), "en": compose("{v} men", v=ref)})
    add("gender", gender)
    home = None
    if segment.home_owner_share is not None and segment.supported("home_owner"):
        ref = f_profile_share(book, data, segment_id, "home_owner")
        home = {"zh": compose("有房者占 {v}", v=ref), "en": compose("{v} home owners", v=ref)}
    add("home_owner", home)
    return zh, en


def _portrait(data: ReportData, book: FactBook, segment_id: int) -> dict[str, Sentence]:
    zh, en = _profile(data, book, segment_id)
    orders, spend = f_avg(book, data, segment_id, "avg_orders"), f_avg(book, data, segment_id, "avg_spend")
    zh.append(compose("人均 {o} 单、消费 {s}", o=orders, s=spend))
    en.append(compose("{o} orders and {s} spent per customer", o=orders, s=spend))
    value = expected_value(data, book, segment_id)
    if value is not None:
        zh.append(value["zh"])
        en.append(value["en"])
    top = (data.affinity.filter(pl.col("segment_id") == segment_id).drop_nulls("lift")
           .sort(["lift", "category"], descending=[True, False]))
    if top.height and top["lift"][0] >= NOTABLE_LIFT:
        category = top["category"][0]
        lift = f_lift(book, data, segment_id, category)
        zh.append(compose("{c}购买率为平均的 {l}", c=data.category(category, "zh"), l=lift))
        en.append(compose("{c} bought {l} as often as average", c=data.category(category, "en"), l=lift))
    head = en[0].parts
    if isinstance(head[0], str):
        en[0] = Sentence((head[0][:1].upper() + head[0][1:], *head[1:]))
    return {"zh": join(zh, "；") + compose("。"), "en": join(en, "; ") + compose(".")}


def summary(data: ReportData, book: FactBook, plans: dict[int, list[AppliedStrategy]]) \
        -> tuple[dict[str, list[Sentence]], list[Card], dict[str, Sentence] | None]:
    total, k = f_total(book, data), f_segments(book, data)
    version = book.add("model.version", "text", data.model_version,
                       "SELECT any_value(model_version) FROM segments.segment_profiles")
    updated = book.add("model.assigned_at", "datetime", data.assigned_at,
                       "SELECT max(assigned_at) FROM segments.segment_profiles")
    intro = {
        "zh": [compose("{n} 位客户分为 {k} 个客群（模型 {v}，更新于 {t} UTC）。", n=total, k=k, v=version, t=updated)],
        "en": [compose("{n} customers in {k} segments (model {v}, updated {t} UTC).", n=total, k=k, v=version,
                       t=updated)],
    }
    cards = [Card(s.segment_id, _names(data, s.segment_id), f_share(book, data, s.segment_id),
                  f_customers(book, data, s.segment_id), _portrait(data, book, s.segment_id),
                  plans.get(s.segment_id, []))
             for s in sorted(data.detailed, key=lambda s: (-s.customers, s.segment_id))]
    other = None
    if data.small:
        n, share, limit = f_small_customers(book, data), f_small_share(book, data), f_min_size(book)
        other = {
            "zh": compose("其他小客群：{n} 位客户（{s}），分布在不足 {m} 人的客群中，为保护隐私不单独描述。",
                          n=n, s=share, m=limit),
            "en": compose("Other small segments: {n} customers ({s}) in segments of fewer than {m}; not described "
                          "on their own, for privacy.", n=n, s=share, m=limit),
        }
    return intro, cards, other


def notes(data: ReportData, book: FactBook) -> dict[str, list[Sentence]]:
    limit = f_min_size(book)
    texts = {
        "zh": [compose("报告中的每个数字都直接取自数据仓库中的表（segments.*、predict.* 及 features.customer_features、"
                       "staging.orders），并由测试逐一核对。"),
               compose("隐私：不足 {m} 人的客群不单独描述，只在规模图中合并为“其他小客群”。", m=limit),
               compose("每张图都另存为 PNG 和 SVG，位于本报告旁的 charts 文件夹，可直接用于幻灯片。")],
        "en": [compose("Every number in this report is read from the warehouse tables (segments.*, predict.*, "
                       "features.customer_features and staging.orders) and checked by a test."),
               compose("Privacy: segments with fewer than {m} customers are not described; the size charts pool "
                       "them as “Other small segments”.", m=limit),
               compose("Every chart is also saved as PNG and SVG in the charts folder beside this report, ready "
                       "for slides.")],
    }
    # The strategies and the churn warning cite both tier systems: how they differ, once more beside them.
    if data.rfm_known and data.value_tiers.height and data.rfm_tiers.height:
        for language in ("zh", "en"):
            texts[language].append(TIERS_DIFFER[language])
    return texts


def build_narrative(data: ReportData, book: FactBook, plans: dict[int, list[AppliedStrategy]]) -> Narrative:
    intro, cards, other = summary(data, book, plans)
    # Without categories, one section says why the category preference and the next categories are left out.
    categories = [section_categories(data, book)] if data.has_categories else [section_without_categories()]
    # Right after the category preference: the categories left out of names for lack of a label, and the fix.
    missing_labels = section_missing_labels(data, book) if data.has_categories else None
    categories += [missing_labels] if missing_labels else []
    next_category = [section_next_category(data, book)] if data.has_categories else []
    # Campaign results (效果评估) only when the warehouse holds a campaign.
    campaign = section_campaigns(data, book)
    campaigns = [campaign] if campaign else []
    audience = section_audiences(data.audiences, book)
    audiences = [audience] if audience else []
    sections = [section_sizes(data, book), section_weekly(data, book), section_box(data, book, "age"),
                section_box(data, book, "income"),
                *categories, section_payments(data, book), section_tiers(data, book),
                section_churn(data, book), *next_category, *audiences, *campaigns, section_k(data, book),
                section_migration(data, book), section_history(data, book)]
    return Narrative(intro, cards, other, sections, notes(data, book))

