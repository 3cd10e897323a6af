"""The report's sections on segments: an interpretation under every chart, in Chinese and English."""

from __future__ import annotations

import polars as pl
import yaml

from assets.report.charts_heatmaps import TOP_CATEGORIES, other_label, shown_categories
from assets.report.data import (
    ReportData,
    _ids,
    f_customers,
    f_lift,
    f_median,
    f_min_size,
    f_payment_lift,
    f_payment_overall,
    f_payment_share,
    f_population_known,
    f_population_median,
    f_population_rate,
    f_quartile,
    f_rate,
    f_share,
    f_small_customers,
    f_small_share,
    f_tier_share,
    f_total,
    method_label,
)
from assets.report.facts import FactBook, FactRef, Sentence, compose, join
from assets.report.narrative import (
    LANGUAGES,
    NOTABLE_LIFT,
    NOTABLE_PAYMENT_LIFT,
    RARE_LIFT,
    Section,
    coverage,
)
from assets.segments.labels import category_names
from assets.segments.naming import UNLABELLED_NOTE

# --- sections ---------------------------------------------------------------------------------------------------


# The code of one `no label: <code> (<languages>)` note in a segment's name evidence (assets/segments/naming.py),
# NULL when the segment's evidence notes no such code: a category code is printed as a fact, since codes may hold
# digits ("xg_01") and every digit on the page must be proved by a query.
UNLABELLED_SQL = """
SELECT any_value(code) FROM (
    SELECT regexp_extract(substr(note, length($1) + 1), '^(.*) \\([^()]*\\)$', 1) AS code
    FROM (SELECT unnest(name_evidence) AS note FROM segments.segment_profiles WHERE segment_id = $2)
    WHERE starts_with(note, $1))
WHERE code = $3"""


def f_unlabelled(book: FactBook, data: ReportData, segment_id: int, code: str) -> FactRef:
    if code not in data.segment(segment_id).unlabelled_categories:
        raise ValueError(f"segment {segment_id} notes no unlabelled category {code!r}")
    return book.add(f"seg{segment_id}.unlabelled.{code}", "text", code, UNLABELLED_SQL,
                    [UNLABELLED_NOTE, segment_id, code])


def _too_small(data: ReportData, book: FactBook, section: Section) -> bool:
    """Profile sections need a segment large enough to describe; say so when there is none."""
    if data.detailed:
        return False
    limit = f_min_size(book)
    section.charts.clear()
    section.say(compose("没有客群达到 {m} 人，为保护隐私不展示客群画像。", m=limit),
                compose("No segment has {m} customers or more, so no profile is shown, for privacy.", m=limit))
    return True


def section_sizes(data: ReportData, book: FactBook) -> Section:
    section = Section("sizes", {"zh": "客群规模", "en": "Segment sizes"}, ["sizes"])
    ranked = sorted(data.detailed, key=lambda s: (-s.customers, s.segment_id))
    if ranked:
        big = ranked[0]
        share, n = f_share(book, data, big.segment_id), f_customers(book, data, big.segment_id)
        section.say(compose("最大的客群是{name}，占全部客户的 {s}（{n} 人）。", name=big.name_zh, s=share, n=n),
                    compose("The largest segment is {name}: {s} of all customers ({n}).", name=big.name_en,
                            s=share, n=n))
    if len(ranked) > 1:
        small = ranked[-1]
        share, n = f_share(book, data, small.segment_id), f_customers(book, data, small.segment_id)
        section.say(compose("规模最小的是{name}，占 {s}（{n} 人）。", name=small.name_zh, s=share, n=n),
                    compose("The smallest is {name} with {s} ({n}).", name=small.name_en, s=share, n=n))
    if data.small:
        n, share, limit = f_small_customers(book, data), f_small_share(book, data), f_min_size(book)
        section.say(compose("另有 {n} 位客户（{s}）属于不足 {m} 人的客群，合并显示为“其他小客群”。", n=n, s=share, m=limit),
                    compose("{n} customers ({s}) belong to segments of fewer than {m} and are shown together as "
                            "“Other small segments”.", n=n, s=share, m=limit))
    return section


def section_box(data: ReportData, book: FactBook, column: str) -> Section:
    titles = {"age": {"zh": "各客群年龄分布", "en": "Age by segment"},
              "income": {"zh": "各客群收入分布", "en": "Income by segment"}}
    # data.box holds only segments where MIN_PROFILE_SUPPORT members have the value, and the population median
    # is None below that support: a chart of one person's age would describe that person.
    box = data.box.get(column)
    has_data = box is not None and box.height > 0 and data.population_median.get(column) is not None
    section = Section(column, titles[column], [column] if has_data else [])
    if _too_small(data, book, section):
        return section
    unit_zh, end_zh = (" 岁", " 岁") if column == "age" else (" ", "")
    label = {"age": ("年龄", "age"), "income": ("收入", "income")}[column]
    if not has_data and not data.population_known.get(column):
        section.say(compose("数据中没有客户的{l}信息，此图略去。", l=label[0]),
                    compose("The data has no customer {l}, so this chart is left out.", l=label[1]))
        return section
    if not has_data:
        known, total = f_population_known(book, data, column), f_total(book, data)
        section.say(compose("{n} 位客户中只有 {k} 人有{l}资料，没有客群达到 {m} 人，人数太少，不展示中位数，此图略去。",
                            n=total, k=known, l=label[0], m=f_min_size(book)),
                    compose("The {l} is known for only {k} of {n} customers, and for fewer than {m} in every "
                            "segment: too few for a median, so this chart is left out.", l=label[1], k=known,
                            n=total, m=f_min_size(book)))
        return section
    ranked = sorted(box.iter_rows(named=True), key=lambda r: (r["median"], r["segment_id"]))
    everyone = f_population_median(book, data, column)
    if len(ranked) > 1 and ranked[0]["median"] == ranked[-1]["median"]:
        median = f_median(book, data, ranked[0]["segment_id"], column)
        section.say(compose("各客群的{l}中位数相同，均为 {m}{u}；全体客户的中位数为 {all}{e}。", l=label[0], m=median,
                            all=everyone, u=compose(unit_zh), e=compose(end_zh)),
                    compose("Every segment shown has the same median {l}, {m}; the median of all customers is {all}.",
                            l=label[1], m=median, all=everyone))
    elif len(ranked) > 1:
        low, high = ranked[0]["segment_id"], ranked[-1]["segment_id"]
        lo, hi = f_median(book, data, low, column), f_median(book, data, high, column)
        section.say(
            compose("{l}中位数从{a}的 {lo}{u}到{b}的 {hi}{u}不等；全体客户的中位数为 {all}{e}。", l=label[0],
                    a=data.segment(low).name_zh, lo=lo, b=data.segment(high).name_zh, hi=hi, all=everyone,
                    u=compose(unit_zh), e=compose(end_zh)),
            compose("Median {l} ranges from {lo} ({a}) to {hi} ({b}); the median of all customers is {all}.",
                    l=label[1], a=data.segment(low).name_en, lo=lo, b=data.segment(high).name_en, hi=hi,
                    all=everyone))
    else:
        section.say(compose("全体客户的{l}中位数为 {all}{e}。", l=label[0], all=everyone, e=compose(end_zh)),
                    compose("The median {l} of all customers is {all}.", l=label[1], all=everyone))
    shown = set(box.get_column("segment_id").to_list())
    for segment in data.detailed:
        sid = segment.segment_id
        note = coverage(data, book, sid, column, labelled=False)
        if sid not in shown:
            if note:  # too few members have the value: the coverage instead of a median
                limit = f_min_size(book)
                section.say(compose("{n}：{c}，不足 {m} 人，不展示中位数。", n=segment.name_zh, c=note["zh"], m=limit),
                            compose("{n}: {l} {c}, fewer than {m}, so no median is shown.", n=segment.name_en,
                                    l=label[1], c=note["en"], m=limit), bullet=True)
            continue
        m, q1, q3 = (f_median(book, data, sid, column), f_quartile(book, data, sid, column, "q1"),
                     f_quartile(book, data, sid, column, "q3"))
        zh = compose("{n}：中位数 {m}{e}，中间一半客户在 {a}–{b}{u}之间", n=segment.name_zh, m=m, a=q1, b=q3,
                     u=compose(unit_zh), e=compose(end_zh))
        en = compose("{n}: median {m}; the middle half of the segment's customers are between {a} and {b}",
                     n=segment.name_en, m=m, a=q1, b=q3)
        if note:  # fewer than half have the value: the median speaks for them only
            zh += compose("（{c}）", c=note["zh"])
            en += compose(" ({c})", c=note["en"])
        section.say(zh + compose("。"), en + compose("."), bullet=True)
    section.say(compose("箱体为中间一半客户（四分位距），竖线为中位数，须线延伸到一点五倍四分位距以内的最远值。"),
                compose("Each box holds the middle half of the customers (the interquartile range), the line inside "
                        "is the median, and the whiskers reach the furthest values within one and a half "
                        "interquartile ranges."))
    return section


def section_categories(data: ReportData, book: FactBook) -> Section:
    has_data = data.affinity.height > 0
    section = Section("categories", {"zh": "品类偏好", "en": "Category preference"},
                      ["categories"] if has_data else [])
    if _too_small(data, book, section):
        return section
    if not has_data:
        section.say(compose("数据中没有品类信息，此图略去。"), compose("The data has no categories, so this chart is left out."))
        return section
    known = data.affinity.drop_nulls("lift")
    strongest = known.sort(["lift", "segment_id", "category"], descending=[True, False, False]).row(0, named=True)
    sid, cat = strongest["segment_id"], strongest["category"]
    lift, rate, pop = f_lift(book, data, sid, cat), f_rate(book, data, sid, cat), f_population_rate(book, data, cat)
    section.say(
        compose("最突出的偏好：{n}购买{c}的比例是全体客户的 {l}（{r} 的订单，全体为 {p}）。", n=data.segment(sid).name_zh,
                c=data.category(cat, "zh"), l=lift, r=rate, p=pop),
        compose("The strongest preference: customers in {n} buy {c} {l} as often as all customers ({r} of the "
                "segment's orders vs {p}).",
                n=data.segment(sid).name_en, c=data.category(cat, "en"), l=lift, r=rate, p=pop))
    for segment in data.detailed:
        rows = known.filter(pl.col("segment_id") == segment.segment_id).sort(["lift", "category"],
                                                                              descending=[True, False])
        if rows.is_empty():
            continue
        top = [r for r in rows.iter_rows(named=True) if r["lift"] >= NOTABLE_LIFT][:3]
        parts = {"zh": [], "en": []}
        for r in top:
            lift, rate = f_lift(book, data, segment.segment_id, r["category"]), f_rate(book, data, segment.segment_id,
                                                                                      r["category"])
            parts["zh"].append(compose("{c}（{l}，{r} 的订单）", c=data.category(r["category"], "zh"), l=lift, r=rate))
            parts["en"].append(compose("{c} ({l}, {r} of orders)", c=data.category(r["category"], "en"), l=lift,
                                       r=rate))
        if top:
            zh = compose("{n}：偏好", n=segment.name_zh) + join(parts["zh"], "、")
            en = compose("{n}: above average on ", n=segment.name_en) + join(parts["en"], ", ")
        else:
            best = rows.row(0, named=True)
            lift = f_lift(book, data, segment.segment_id, best["category"])
            zh = compose("{n}：没有明显偏好的品类（最高为{c}，{l}）", n=segment.name_zh,
                         c=data.category(best["category"], "zh"), l=lift)
            en = compose("{n}: no category stands out (highest: {c}, {l})", n=segment.name_en,
                         c=data.category(best["category"], "en"), l=lift)
        rare = rows.row(rows.height - 1, named=True)
        if rare["lift"] < RARE_LIFT:
            lift = f_lift(book, data, segment.segment_id, rare["category"])
            zh += compose("；较少购买{c}（{l}）", c=data.category(rare["category"], "zh"), l=lift)
            en += compose("; {c} is rarely bought ({l})", c=data.category(rare["category"], "en"), l=lift)
        section.say(zh + compose("。"), en + compose("."), bullet=True)
    shown, folded = shown_categories(data)
    if folded:
        top = book.add("param.top_categories", "param", TOP_CATEGORIES, None)
        rest = book.add("categories.folded", "count", len(folded),
                        "SELECT count(DISTINCT category) - ? FROM segments.segment_category_affinity "
                        f"WHERE segment_id IN {_ids([s.segment_id for s in data.detailed])}", [len(shown)])
        section.say(compose("图中只列出全体客户最常购买的 {t} 个品类，其余 {r} 个品类合并为“{o}”：其提升度为这些品类购买率之和的比值。",
                            t=top, r=rest, o=other_label(data, shown, "zh")),
                    compose("The chart shows the {t} categories all customers buy most; the other {r} are folded "
                            "into “{o}”, whose lift compares the sum of their purchase rates.", t=top, r=rest,
                            o=other_label(data, shown, "en")))
    section.say(compose("格中大字为提升度（客群购买率 ÷ 全体购买率，大于一即高于平均），小字为含该品类的订单占比。"),
                compose("Each cell shows the lift (the segment's purchase rate divided by the rate of all customers; "
                        "above one means more often than average) and, below it, the share of orders with the "
                        "category."))
    return section


def section_without_categories() -> Section:
    """For an export declared without categories: one sentence in place of every part built on categories (the
    preference heatmap, category words in names, next-category recommendations, category strategies), saying why."""
    section = Section("no_categories", {"zh": "品类", "en": "Categories"}, [])
    section.say(compose("本报告略去品类偏好热力图、客群名称中的品类偏好、下一品类推荐和依赖品类的运营策略，"
                        "因为本次导出没有商品品类：orders.columns.category 为 null。"),
                compose("The category preference heatmap, category lovers in segment names, next-category "
                        "recommendations and category strategies are left out because this export has no product "
                        "category: orders.columns.category is null."))
    return section


# What the category_labels snippet shows for a label nobody has given yet, in the page's language: (zh, en).
LABEL_PLACEHOLDERS = {"zh": ("中文名称", "英文名称"), "en": ("Chinese label", "English label")}
MISSING_LABEL_NOTES = {"zh": {"zh": "缺中文标签", "en": "缺英文标签", "both": "缺中英文标签"},
                       "en": {"zh": "no Chinese label", "en": "no English label", "both": "no label"}}


def _yaml_reads_back(text: str, in_list: bool) -> bool:
    """Whether `text` written plain reads back as the same string in YAML, as a mapping key or inside a flow list
    ("yes", "01", "a: b" or "[x" do not)."""
    document = f"[{text}]" if in_list else f"{text}: x"
    try:
        return yaml.safe_load(document) == ([text] if in_list else {text: "x"})
    except yaml.YAMLError:
        return False


def _yaml_scalar(text: str, shown: Sentence, in_list: bool = False) -> Sentence:
    """`shown` (the text as a fact or label) quoted where YAML needs it, so the snippet pastes as it reads."""
    if _yaml_reads_back(text, in_list):
        return shown
    if "'" in text:  # single quotes double inside single-quoted YAML; a quoted copy of the text is shown then
        return compose("{t}", t="'" + text.replace("'", "''") + "'")
    return compose("'{t}'", t=shown)


def section_missing_labels(data: ReportData, book: FactBook) -> Section | None:
    """Categories that set a segment apart but were left out of its name for lack of a Chinese or English label
    (assets/segments/naming.py notes them in the name evidence): which, for which segment, and a `category_labels`
    snippet for the source config that lets the next run use them. None when every such category is labelled.
    Only segments the report describes (MIN_DETAIL_SIZE) are listed, for privacy."""
    listed = [s for s in data.detailed if s.unlabelled_categories]
    if not listed:
        return None
    section = Section("missing_labels", {"zh": "缺少品类标签", "en": "Missing category labels"}, [])
    section.say(compose("以下品类能体现客群的特点，但缺少中文或英文标签，因此没有用在客群名称中（名称只使用中英文都有标签的品类，"
                        "以保证两种语言的名称说的是同一件事）："),
                compose("These categories set a segment apart but have no Chinese or English label, so they were "
                        "left out of the segment's name (a name uses only categories labelled in both languages, so "
                        "that both names say the same thing):"))
    codes: dict[str, FactRef] = {}  # every unlabelled code once, in the order of the segments
    for segment in listed:
        items = {"zh": [], "en": []}
        for code in segment.unlabelled_categories:
            ref = f_unlabelled(book, data, segment.segment_id, code)
            codes.setdefault(code, ref)
            zh, en = category_names(code, data.category_labels)
            missing = "both" if not (zh or en) else "zh" if not zh else "en" if not en else None
            for language in LANGUAGES:
                note = MISSING_LABEL_NOTES[language].get(missing)
                template = ("{c}（{m}）" if language == "zh" else "{c} ({m})") if note else "{c}"
                items[language].append(compose(template, c=ref, m=note or ""))
        section.say(compose("{n}：", n=segment.name_zh) + join(items["zh"], "、") + compose("。"),
                    compose("{n}: ", n=segment.name_en) + join(items["en"], ", ") + compose("."))
    section.say(compose("补救方法：在数据源配置文件的 category_labels 下为每个品类添加标签，中文在前、英文在后"
                        "（英文标签会嵌在英文名称的短语中，请用小写）。下面的片段可直接粘贴，只需把占位文字换成真实名称；"
                        "如果配置中已有 category_labels，只粘贴其下的条目。下次运行时这些品类就会出现在客群名称中。"),
                compose("To fix it, add a label for each category under category_labels in the source config, "
                        "Chinese first, English second (the English label reads inside phrases such as “… lovers”, "
                        "so write it in lower case). The snippet below is ready to paste once the placeholders are "
                        "replaced with real names; if the config already has category_labels, paste only the entries "
                        "under it. The next run then uses these categories in segment names."))
    for language in LANGUAGES:
        lines = [compose("category_labels:")]
        for code, ref in codes.items():
            known = category_names(code, data.category_labels)
            labels = []
            for label, placeholder in zip(known, LABEL_PLACEHOLDERS[language]):
                text = label or placeholder
                # A label that is the code itself (an unknown code in its own script) is shown as the code's fact.
                shown = compose("{c}", c=ref) if text == code else compose("{t}", t=text)
                labels.append(_yaml_scalar(text, shown, in_list=True))
            lines.append(compose("  ") + _yaml_scalar(code, compose("{c}", c=ref)) + compose(": [")
                         + join(labels, ", ") + compose("]"))
        section.snippet[language] = lines
    return section


def section_payments(data: ReportData, book: FactBook) -> Section:
    has_data = data.payments.height > 0
    section = Section("payments", {"zh": "支付方式偏好", "en": "Payment methods"}, ["payments"] if has_data else [])
    if _too_small(data, book, section):
        return section
    if not has_data:
        section.say(compose("数据中没有支付方式，此图略去。"),
                    compose("The data has no payment methods, so this chart is left out."))
        return section
    overall = {"zh": [], "en": []}
    for method in data.payments_overall["method"].to_list():
        ref = f_payment_overall(book, data, method)
        overall["zh"].append(compose("{m} {v}", m=method_label(method, "zh"), v=ref))
        overall["en"].append(compose("{m} {v}", m=method_label(method, "en"), v=ref))
    section.say(compose("全部订单中：") + join(overall["zh"], "，") + compose("。"),
                compose("Across all orders: ") + join(overall["en"], ", ") + compose("."))
    overall_share = dict(data.payments_overall.select("method", "share").iter_rows())
    notable = False
    for segment in data.detailed:
        sid = segment.segment_id
        rows = data.payments.filter(pl.col("segment_id") == sid).with_columns(
            lift=pl.col("share") / pl.col("method").replace_strict(overall_share, default=None))
        if rows.is_empty():
            continue
        # "Most used" is the largest share of the segment's own orders; the method with the highest lift is only
        # over-represented (12.3% cheques against 7.7% overall is not what a segment pays with most).
        top = rows.sort(["share", "method"], descending=[True, False]).row(0, named=True)
        over = rows.drop_nulls("lift").sort(["lift", "method"], descending=[True, False])
        over = over.row(0, named=True) if over.height and over["lift"][0] >= NOTABLE_PAYMENT_LIFT else None
        notable = notable or over is not None
        m, v = top["method"], f_payment_share(book, data, sid, top["method"])
        if over is not None and over["method"] == m:
            lift = f_payment_lift(book, data, sid, m)
            zh = compose("{n}：最常用{m}（{v}，为全体的 {l}）", n=segment.name_zh, m=method_label(m, "zh"), v=v, l=lift)
            en = compose("{n}: {m} is used most ({v} of the segment's orders, {l} the rate of all customers)",
                         n=segment.name_en, m=method_label(m, "en"), v=v, l=lift)
        else:
            zh = compose("{n}：最常用{m}（{v}）", n=segment.name_zh, m=method_label(m, "zh"), v=v)
            en = compose("{n}: {m} is used most ({v} of the segment's orders)", n=segment.name_en,
                         m=method_label(m, "en"), v=v)
            if over is not None:
                o = over["method"]
                share, lift = f_payment_share(book, data, sid, o), f_payment_lift(book, data, sid, o)
                zh += compose("；相对全体，{m}使用偏多（{v}，为全体的 {l}）", m=method_label(o, "zh"), v=share, l=lift)
                en += compose("; {m} is over-represented ({v}, {l} the rate of all customers)",
                              m=method_label(o, "en"), v=share, l=lift)
        section.say(zh + compose("。"), en + compose("."), bullet=True)
    if not notable:
        section.say(compose("各客群的支付方式与整体相近，没有明显差异。"),
                    compose("Payment methods are much the same in every segment."))
    return section


# How the two tier systems differ (assets/segments/value_tiers.py), said wherever both are shown.
TIERS_DIFFER = {
    "zh": compose("两种分层的区别：RFM 分层按最近一次购买（R）、购买频次（F）和消费金额（M）在全体购买客户中的五分位打分，"
                  "三项各分高低，组合成八个经典分层；价值分层不看最近一次购买，只用购买频次和消费金额做 k-means 聚类，"
                  "分为高价值、潜力和流失风险三档。"),
    "en": compose("How the two differ: RFM tiers score recency, frequency and spend by quintile among all buyers and "
                  "combine high or low on each into eight classic tiers; value tiers ignore recency and group "
                  "customers into three tiers (high value, potential, at risk) by k-means clustering on order count "
                  "and spend."),
}


def section_tiers(data: ReportData, book: FactBook) -> Section:
    has_rfm = data.rfm_tiers.height > 0
    section = Section("tiers", {"zh": "客户价值分层（RFM）", "en": "Customer value tiers (RFM)"},
                      (["value_tiers"] if data.value_tiers.height else []) + (["rfm_tiers"] if has_rfm else []))
    if _too_small(data, book, section):
        return section
    if data.value_tiers.height:
        everyone = book.add("all.value_tiers.high_value", "pct", data.value_tier_overall.get("high_value", 0.0),
                            "SELECT count(*) FILTER (WHERE value_tier_key = 'high_value') / count(*) "
                            "FROM segments.customer_value_tiers")
        section.say(compose("全体客户中高价值客户占 {v}。", v=everyone),
                    compose("High-value customers are {v} of all customers.", v=everyone))
        for segment in data.detailed:
            if data.value_tiers.filter(pl.col("segment_id") == segment.segment_id).is_empty():
                continue
            high = f_tier_share(book, data, segment.segment_id, "value", ["high_value"])
            lowest = f_tier_share(book, data, segment.segment_id, "value", [data.value_tier_scale[-1].key])
            if data.rfm_known:
                section.say(compose("{n}：高价值 {h}，流失风险 {r}。", n=segment.name_zh, h=high, r=lowest),
                            compose("{n}: {h} high value, {r} at risk.", n=segment.name_en, h=high, r=lowest),
                            bullet=True)
            else:  # the lowest tier is "low value": without dates no churn risk can be measured
                section.say(compose("{n}：高价值 {h}，低价值 {r}。", n=segment.name_zh, h=high, r=lowest),
                            compose("{n}: {h} high value, {r} low value.", n=segment.name_en, h=high, r=lowest),
                            bullet=True)
    if data.rfm_known and data.value_tiers.height and has_rfm:
        section.say(TIERS_DIFFER["zh"], TIERS_DIFFER["en"])
    if not data.rfm_known:
        section.say(compose("订单没有日期，无法计算最近一次购买（R）和经典 RFM 分层；上面的价值分层只用购买频次和金额。"),
                    compose("The orders carry no dates, so recency (R) and the classic RFM tiers cannot be computed; "
                            "the value tiers use frequency and spend only."))
        if data.value_tiers.height:
            section.say(compose("没有日期也就无法判断客户是否已不再购买，所以最低一档称为“低价值客户”：购买次数最少、花费最少，"
                                "并不表示他们会流失。"),
                        compose("Without dates there is no telling whether customers have stopped buying, so the lowest "
                                "tier is called “Low value”: they order least often and spend least, which says nothing "
                                "about whether they will leave."))
        return section
    for segment in data.detailed:
        rows = data.rfm_tiers.filter(pl.col("segment_id") == segment.segment_id).sort(
            ["customers", "tier_key"], descending=[True, False])
        if rows.is_empty():
            continue
        top = rows.row(0, named=True)
        ref = f_tier_share(book, data, segment.segment_id, "rfm", [top["tier_key"]])
        section.say(compose("{n}：最多的是{t}（{v}）。", n=segment.name_zh, t=top["tier_zh"], v=ref),
                    compose("{n}: mostly {t} ({v}).", n=segment.name_en, t=top["tier_en"], v=ref), bullet=True)
    lapsing = data.rfm_tiers.filter(pl.col("tier_key") == "important_win_back").sort(
        ["share", "segment_id"], descending=[True, False])
    if lapsing.height:
        sid = lapsing["segment_id"][0]
        ref = f_tier_share(book, data, sid, "rfm", ["important_win_back"])
        section.say(compose("久未购买的高价值客户（重要挽留客户）在{n}中最多，占 {v}。", n=data.segment(sid).name_zh, v=ref),
                    compose("Lapsing high-value customers (Important win-back) are most common in {n}: {v}.",
                            n=data.segment(sid).name_en, v=ref))
    return section


def _merged_segments(section: Section, book: FactBook, chosen: pl.DataFrame, run_id: str, kref: FactRef) -> None:
    """What became of a chosen k that met no constraint, or whose small segments were merged: a trial's report said
    "chose k = 6" above a header of 5 segments, and listed k = 6 among the candidates that failed."""
    if not chosen["meets_constraints"].fill_null(True)[0]:
        section.say(compose("没有哪个 k 满足全部约束（最小客群占比与稳定性）。"),
                    compose("No k met every constraint (the smallest segment's share and the stability)."))
    published = chosen["segments_published"][0] if "segments_published" in chosen.columns else None
    k = int(chosen["k"][0])
    if published is None or int(published) >= k:
        return
    query = "SELECT {} FROM segments.model_runs WHERE run_id = ? AND chosen"
    merged = book.add("model.merged_segments", "int", k - int(published), query.format("k - segments_published"),
                      [run_id])
    kept = book.add("model.segments_published", "int", int(published), query.format("segments_published"), [run_id])
    section.say(compose("k = {k} 中有 {m} 个客群小于最小占比（model.min_segment_share），已并入最近的客群，最终发布 {n} 个客群。",
                        k=kref, m=merged, n=kept),
                compose("{m} segment of k = {k} fell below the minimum share (model.min_segment_share) and was "
                        "merged into its nearest neighbour, so {n} segments are published." if k - int(published) == 1
                        else "{m} segments of k = {k} fell below the minimum share (model.min_segment_share) and were "
                        "merged into their nearest neighbours, so {n} segments are published.",
                        k=kref, m=merged, n=kept))


def section_k(data: ReportData, book: FactBook) -> Section:
    runs = data.model_runs
    section = Section("k_selection", {"zh": "分群数 k 的选择", "en": "Choosing the number of segments (k)"},
                      ["k_selection"] if runs.height else [])
    if runs.is_empty():
        section.say(compose("没有模型运行记录。"), compose("No model run is recorded."))
        return section
    run_id = runs["run_id"][0]

    def fact(k: int, column: str, kind: str) -> FactRef:
        value = runs.filter(pl.col("k") == k)[column][0]
        return book.add(f"model.k{k}.{column}", kind, value,
                        f"SELECT {column} FROM segments.model_runs WHERE run_id = ? AND k = ?", [run_id, k])

    kmin = book.add("model.kmin", "int", runs["k"].min(), "SELECT min(k) FROM segments.model_runs WHERE run_id = ?",
                    [run_id])
    kmax = book.add("model.kmax", "int", runs["k"].max(), "SELECT max(k) FROM segments.model_runs WHERE run_id = ?",
                    [run_id])
    chosen = runs.filter(pl.col("chosen"))
    if chosen.is_empty():
        return section
    k = int(chosen["k"][0])
    kref, sil, stab = fact(k, "k", "int"), fact(k, "silhouette", "score"), fact(k, "stability", "score")
    if runs.height > 1:
        section.say(compose("模型评估了 k = {a} 到 {b}，选择 k = {k}：轮廓系数 {s}，稳定性 {t}。", a=kmin, b=kmax, k=kref,
                            s=sil, t=stab),
                    compose("The model scored k from {a} to {b} and chose k = {k}: silhouette {s}, stability {t}.",
                            a=kmin, b=kmax, k=kref, s=sil, t=stab))
    else:
        section.say(compose("模型只评估了 k = {k}：轮廓系数 {s}，稳定性 {t}。", k=kref, s=sil, t=stab),
                    compose("Only k = {k} was scored: silhouette {s}, stability {t}.", k=kref, s=sil, t=stab))
    _merged_segments(section, book, chosen, run_id, kref)
    scored = runs.drop_nulls("silhouette").sort(["silhouette", "k"], descending=[True, False])
    if scored.height and int(scored["k"][0]) != k:
        kb = int(scored["k"][0])
        refs = dict(k=fact(kb, "k", "int"), s=fact(kb, "silhouette", "score"), t=fact(kb, "stability", "score"),
                    m=fact(kb, "min_share", "pct"))
        if not scored["meets_constraints"][0]:
            section.say(compose("k = {k} 的轮廓系数更高（{s}），但未满足规模或稳定性约束（稳定性 {t}，最小客群占 {m}）。", **refs),
                        compose("k = {k} had a higher silhouette ({s}) but failed the size or stability constraints "
                                "(stability {t}, smallest segment {m}).", **refs))
        else:
            # Shown to three decimals, 0.3442 and 0.3438 both read 0.344: "higher" would contradict the figures.
            same = round(float(scored["silhouette"][0]), 3) == round(float(chosen["silhouette"][0]), 3)
            zh_than, en_than = ("与之相当", "a silhouette as high") if same else ("更高", "a higher silhouette")
            traitless = scored["segments_without_trait"][0] if "segments_without_trait" in scored.columns else None
            if traitless and not chosen["segments_without_trait"][0]:
                n = fact(kb, "segments_without_trait", "int")
                section.say(compose(f"k = {{k}} 的轮廓系数{zh_than}（{{s}}），但其中 {{n}} 个客群没有可命名、可运营的显著特征，"
                                    "而 k = {c} 的每个客群都有。", k=refs["k"], s=refs["s"], n=n, c=kref),
                            compose(f"k = {{k}} had {en_than} ({{s}}), but {{n}} of its segments had no "
                                    "distinctive trait to name and act on, and every segment of k = {c} has one.",
                                    k=refs["k"], s=refs["s"], n=n, c=kref))
            else:
                section.say(compose(f"k = {{k}} 的轮廓系数{zh_than}（{{s}}）。", k=refs["k"], s=refs["s"]),
                            compose(f"k = {{k}} had {en_than} ({{s}}).", k=refs["k"], s=refs["s"]))
    failed = [int(v) for v in runs.filter(~pl.col("meets_constraints").fill_null(False))["k"].to_list()]
    if failed:
        refs = [fact(v, "k", "int") for v in failed]
        section.say(compose("未满足约束的 k：") + join([compose("{k}", k=r) for r in refs], "、") + compose("。"),
                    compose("Candidates that failed the constraints: k = ") +
                    join([compose("{k}", k=r) for r in refs], ", ") + compose("."))
    section.say(compose("轮廓系数衡量客群之间分得多开，稳定性衡量在重抽样上重新拟合时客群能否保持一致；两者越高越好。图中空心点为未满足约束的 k。"),
                compose("Silhouette measures how well the segments are separated; stability how much they stay the "
                        "same when the model is refitted on resamples. Higher is better for both. Hollow points "
                        "failed the constraints."))
    return section
