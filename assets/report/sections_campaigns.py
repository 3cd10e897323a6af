"""The report's section on campaigns (issue 21): "效果评估 / Campaign results". Per campaign, the uplift of each
metric with its interval (the chart `campaigns`), the verdict in words and what to do next, every number a fact
proved by a query on campaigns.uplift (assets/campaigns)."""

from __future__ import annotations

from assets.report.campaign_data import VERDICT_TEXT, segment_fact, uplift_fact
from assets.report.data import ReportData
from assets.report.facts import PVALUE_FLOOR, FactBook, FactRef, Sentence, compose
from assets.report.narrative import Section, Table

# metric -> (zh, en, kind of the group values, kind of differences); rates differ in percentage points.
METRIC_WORDS = {
    "conversion_rate": ("转化率", "conversion", "pct", "pp"),
    "revenue_per_customer": ("人均消费", "revenue per customer", "money", "signed"),
    "orders_per_customer": ("人均订单数", "orders per customer", "decimal", "signed"),
    "avg_order_value": ("客单价", "average order value", "money", "signed"),
    "repeat_rate": ("复购率", "repeat-purchase rate", "pct", "pp"),
}
HEADLINE_METRICS = ("conversion_rate", "revenue_per_customer")
SECONDARY_METRICS = ("orders_per_customer", "avg_order_value", "repeat_rate")
STEPS = {
    "keep": ("保留：继续向这些客群投放", "keep: continue with this audience"),
    "iterate": ("迭代：调整优惠或人群后再测", "iterate: change the offer or the audience and measure again"),
    "stop": ("停止：对照组表现更好", "stop: the control group did better"),
    "wait": ("等待：窗口结束后再判断", "wait: judge it once its window is over"),
}


def _fact(book: FactBook, row: dict, column: str, kind: str) -> FactRef:
    return uplift_fact(book, row, column, kind)


def _unit(kind: str, language: str) -> str:
    if kind != "pp":
        return ""
    return " 个百分点" if language == "zh" else " percentage points"


def _metric(book: FactBook, row: dict) -> dict[str, Sentence]:
    """`conversion 58.3% vs 45.9%, +12.4 percentage points (+3.1 to +21.3, p = 0.009): a significant gain`."""
    zh_name, en_name, value_kind, diff_kind = METRIC_WORDS[row["metric"]]
    t, c = _fact(book, row, "treatment_value", value_kind), _fact(book, row, "control_value", value_kind)
    verdict = row["verdict"]
    if verdict == "too_small":
        # No interval or p-value beside a control group too small to trust one (a trial's 9 controls, none buying,
        # showed "+63.7 (+47.4 to +80.0, p <0.001)").
        return {"zh": compose("{m}：处理组 {t}，对照组 {c}：对照组过小，无法得出结论", m=zh_name, t=t, c=c),
                "en": compose("{m}: {t} treatment vs {c} control: a control group too small for any verdict",
                              m=en_name, t=t, c=c)}
    if row["ci_low"] is None or row["uplift"] is None:
        return {"zh": compose("{m}：处理组 {t}，对照组 {c}", m=zh_name, t=t, c=c),
                "en": compose("{m}: {t} treatment vs {c} control", m=en_name, t=t, c=c)}
    u, lo, hi = (_fact(book, row, column, diff_kind) for column in ("uplift", "ci_low", "ci_high"))
    zh = compose("{m}：处理组 {t}，对照组 {c}，差值 {u}{x}（区间 {lo} 至 {hi}", m=zh_name, t=t, c=c, u=u,
                 x=_unit(diff_kind, "zh"), lo=lo, hi=hi)
    en = compose("{m}: {t} treatment vs {c} control, {u}{x} ({lo} to {hi}", m=en_name, t=t, c=c, u=u,
                 x=_unit(diff_kind, "en"), lo=lo, hi=hi)
    if row["p_value"] is not None:
        p = _fact(book, row, "p_value", "pvalue")
        # The fact prints "<0.001" below a thousandth: "p <0.001", never "p = <0.001".
        equals = "" if row["p_value"] < PVALUE_FLOOR else "= "
        zh, en = zh + compose("，p " + equals + "{p}）", p=p), en + compose(", p " + equals + "{p})", p=p)
    else:
        zh, en = zh + compose("）"), en + compose(")")
    mde = _fact(book, row, "mde_now", diff_kind) if row["mde_now"] is not None else None
    if verdict == "significant_gain":
        return {"zh": zh + compose("：显著提升"), "en": en + compose(": a significant gain")}
    if verdict == "harm":
        return {"zh": zh + compose("：显著下降，活动有害"), "en": en + compose(": significantly worse, harm")}
    detect = {"zh": compose(""), "en": compose("")}
    if mde is not None:
        detect = {"zh": compose("；当前分组规模可检测的最小效果为 {d}{x}", d=mde, x=_unit(diff_kind, "zh")),
                  "en": compose("; groups of this size detect {d}{x} or more", d=mde, x=_unit(diff_kind, "en"))}
    if verdict == "too_early":
        return {"zh": zh + compose("：为时尚早") + detect["zh"], "en": en + compose(": too early") + detect["en"]}
    return {"zh": zh + compose("：未检测到效果") + detect["zh"],
            "en": en + compose(": no detectable effect") + detect["en"]}


SEGMENT_HEADERS = {
    "zh": ["活动", "客群", "处理组人数", "对照组人数", "转化率差值（区间）", "转化率结论", "人均消费差值（区间）", "人均消费结论"],
    "en": ["Campaign", "Segment", "Treatment", "Control", "Conversion uplift (interval)", "Conversion verdict",
           "Revenue per customer uplift (interval)", "Revenue verdict"],
}
# Many rows are many tests: at the 95% level about one in twenty is "significant" by chance, so the caption says to
# act on the campaign's own verdict and read the rows as where to look next.
SEGMENT_CAPTION = {
    "zh": "每个活动按客户被分配时所在的客群分别评估：处理组 − 对照组，括号内为置信区间；转化率的差值单位为百分点。"
          "逐客群比较次数多，约二十次中就会有一次纯属偶然的“显著”，请以活动整体的结论为准，客群行用来发现值得单独再测的人群。",
    "en": "Every campaign per segment, the segment customers were in when assigned: treatment − control with its "
          "confidence interval in brackets; conversion differences in percentage points. With this many comparisons "
          "about one in twenty is \"significant\" by chance: act on the campaign's own verdict, and read these rows for "
          "segments worth a campaign of their own.",
}


def _segment_cells(book: FactBook, campaign: str, metric: str, row: dict | None) -> dict[str, list[Sentence]]:
    """The uplift with its interval, and the verdict, of one metric in one segment of a campaign."""
    if row is None:
        return {language: [compose("–"), compose("–")] for language in ("zh", "en")}
    zh_verdict, en_verdict = VERDICT_TEXT[row["verdict"]]
    # No interval beside a control group too small to trust one (as in _metric).
    if row["uplift"] is None or row["ci_low"] is None or row["verdict"] == "too_small":
        return {"zh": [compose("–"), compose("{v}", v=zh_verdict)], "en": [compose("–"), compose("{v}", v=en_verdict)]}
    diff_kind = METRIC_WORDS[metric][3]
    u, lo, hi = (segment_fact(book, campaign, metric, row, column, diff_kind)
                 for column in ("uplift", "ci_low", "ci_high"))
    return {"zh": [compose("{u}（{lo} 至 {hi}）", u=u, lo=lo, hi=hi), compose("{v}", v=zh_verdict)],
            "en": [compose("{u} ({lo} to {hi})", u=u, lo=lo, hi=hi), compose("{v}", v=en_verdict)]}


def segment_table(data: ReportData, book: FactBook, refs: dict[str, FactRef]) -> Table | None:
    """The per-segment rows of every campaign (campaigns.uplift, segment_id not NULL) as a table: group sizes and
    the uplift of the headline metrics with interval and verdict, every number read from its row. None when no
    campaign has segment rows. `refs`: each campaign's name fact."""
    rows = []
    for name, ref in refs.items():
        mine = data.campaigns.filter(data.campaigns["campaign"] == name)
        per_metric = {r["metric"]: {s["segment_id"]: s for s in r["segment_rows"]} for r in mine.iter_rows(named=True)}
        head = per_metric.get(HEADLINE_METRICS[0], {})
        for segment_id, first in head.items():
            zh_name, en_name = data.names.get(segment_id, ("–", "–"))
            n_t = segment_fact(book, name, HEADLINE_METRICS[0], first, "treatment_customers", "count")
            n_c = segment_fact(book, name, HEADLINE_METRICS[0], first, "control_customers", "count")
            metrics = [_segment_cells(book, name, metric, per_metric.get(metric, {}).get(segment_id))
                       for metric in HEADLINE_METRICS]
            rows.append((segment_id, {
                language: [compose("{a}", a=ref), compose("{s}", s=segment_name), compose("{t}", t=n_t),
                           compose("{c}", c=n_c), *(cell for m in metrics for cell in m[language])]
                for language, segment_name in (("zh", zh_name), ("en", en_name))}))
    return Table(SEGMENT_HEADERS, rows, SEGMENT_CAPTION) if rows else None


def section_campaigns(data: ReportData, book: FactBook) -> Section | None:
    """None when the warehouse holds no campaign: the report then has no such section."""
    if data.campaigns.height == 0:
        return None
    section = Section("campaigns", {"zh": "效果评估", "en": "Campaign results"}, ["campaigns"])
    campaigns = data.campaigns
    count = book.add("campaigns.count", "count", campaigns["campaign"].n_unique(),
                     "SELECT count(DISTINCT campaign) FROM campaigns.uplift WHERE segment_id IS NULL")
    first = campaigns.row(0, named=True)
    confidence = book.add("campaigns.confidence", "int", round(first["confidence"] * 100),
                          "SELECT max(round(confidence * 100)) FROM campaigns.uplift")
    power = book.add("campaigns.power", "int", round(first["power"] * 100),
                     "SELECT max(round(power * 100)) FROM campaigns.uplift")
    section.say(
        compose("共 {n} 个活动。每个活动的目标客户按（活动，客户）的加盐哈希随机分为处理组与对照组；提升 = 处理组 − 对照组，"
                "括号内为 {c}% 置信区间（比率用 Newcombe/Wilson 区间，均值用 Welch 区间），可检测效果按 {p}% 检验力计算。"
                "结论和下一步只看转化率；其他指标仅供参考，其区间单独不足以说明活动有效。"
                "消费额为窗口内的购买额，未扣除退货。", n=count, c=confidence, p=power),
        compose("{n} campaigns. Each splits its customers into treatment and control by a salted hash of (campaign, "
                "customer); uplift = treatment − control, with its {c}% confidence interval in brackets (Newcombe/"
                "Wilson for rates, Welch for means) and detectable effects at {p}% power. The verdict reads the "
                "conversion rate, and so does the next step; the other metrics are shown for reference, and an "
                "interval of theirs that excludes zero is not enough on its own to call the campaign a success. "
                "Revenue is what the groups bought in the window, before returns.",
                n=count, c=confidence, p=power))
    refs: dict[str, FactRef] = {}
    for name in campaigns["campaign"].unique(maintain_order=True).to_list():
        rows = {row["metric"]: row for row in campaigns.filter(campaigns["campaign"] == name).iter_rows(named=True)}
        head = rows["conversion_rate"]
        ref = book.add(f"campaign.{name}.name", "text", name,
                       "SELECT campaign FROM campaigns.campaigns WHERE campaign = ?", [name])
        start = book.add(f"campaign.{name}.start_day", "date", head["start_day"],
                         "SELECT start_day FROM campaigns.campaigns WHERE campaign = ?", [name])
        end = book.add(f"campaign.{name}.end_day", "date", head["end_day"],
                       "SELECT end_day FROM campaigns.campaigns WHERE campaign = ?", [name])
        n_t = _fact(book, head, "treatment_customers", "count")
        n_c = _fact(book, head, "control_customers", "count")
        zh = compose("{a}（{s} 至 {e}，处理组 {t} 人，对照组 {c} 人", a=ref, s=start, e=end, t=n_t, c=n_c)
        en = compose("{a} ({s} to {e}, {t} treatment and {c} control customers", a=ref, s=start, e=end, t=n_t, c=n_c)
        if head["strategy_key"]:
            zh, en = (zh + compose("，策略 {k}", k=head["strategy_key"]),
                      en + compose(", strategy {k}", k=head["strategy_key"]))
        if not head["window_over"]:
            through = _fact(book, head, "data_through", "date")
            zh, en = (zh + compose("，订单截至 {d}", d=through), en + compose(", orders through {d}", d=through))
        headline = [_metric(book, rows[metric]) for metric in HEADLINE_METRICS]
        step_zh, step_en = STEPS[head["next_step"]]
        section.say(zh + compose("）：") + headline[0]["zh"] + compose("；") + headline[1]["zh"]
                    + compose("。建议{s}。", s=step_zh),
                    en + compose("): ") + headline[0]["en"] + compose("; ") + headline[1]["en"]
                    + compose(". Next: {s}.", s=step_en))
        for metric in SECONDARY_METRICS:
            line = _metric(book, rows[metric])
            section.say(compose("{a}，", a=ref) + line["zh"] + compose("。"),
                        compose("{a}, ", a=ref) + line["en"] + compose("."), bullet=True)
        refs[name] = ref
    if "segment_rows" in campaigns.columns:
        section.table = segment_table(data, book, refs)
    return section
