"""The report's sections on the predictive layer: churn warning, customer lifetime value and next categories, in
Chinese and English."""

from __future__ import annotations

import polars as pl

from assets.predict.clv import DECILES, one_time_miss, predictions_not_finite, ranks_no_better
from assets.predict.recommendations import SOURCE_POPULARITY
from assets.predict.runs import EVALUATED, NO_CATEGORIES, NO_DATES, SHORT_HISTORY, TRAINED
from assets.report.data import CATEGORY_COUNT_SQL, ReportData
from assets.report.facts import FactBook, FactRef, Sentence, compose, join
from assets.report.narrative import NOTABLE_LIFT, Section
from assets.report.sections import _too_small

# --- predictive layer -------------------------------------------------------------------------------------------

RUN_PREFIXES = {"churn_model_runs": "churn", "recommendation_eval": "recs", "customer_value_eval": "clv"}


def _run_fact(book: FactBook, table: str, run: dict, column: str, kind: str) -> FactRef:
    """A number of the latest predict run row, proved by reading that row."""
    prefix = RUN_PREFIXES[table]
    return book.add(f"{prefix}.{column}", kind, run[column], f"SELECT {column} FROM predict.{table} WHERE run_id = ?",
                    [run["run_id"]])


def _not_available(section: Section, book: FactBook, table: str, run: dict | None, what: dict[str, str]) -> None:
    """Why the churn model or the evaluation of recommendations is missing, in both languages."""
    if run is None:
        section.say(compose("本次运行没有{w}的结果。", w=what["zh"]), compose("This run has no {w}.", w=what["en"]))
    elif run["status"] == NO_DATES:
        section.say(compose("订单没有日期，无法区分过去与之后的时间段，因此无法{w}。", w=what["zh"]),
                    compose("The orders carry no dates, so there is no past and no later period: no {w}.",
                            w=what["en"]))
    elif run["status"] == NO_CATEGORIES:
        section.say(compose("本次导出没有商品品类：orders.columns.category 为 null，因此无法{w}。", w=what["zh"]),
                    compose("This export has no product category: orders.columns.category is null, so no {w}.",
                            w=what["en"]))
    elif run["status"] == SHORT_HISTORY:
        prefix, horizons = RUN_PREFIXES[table], 2 if table == "churn_model_runs" else 1
        span = book.add(f"{prefix}.span_days", "int", (run["data_end"] - run["data_start"]).days,
                        f"SELECT date_diff('day', data_start, data_end) FROM predict.{table} WHERE run_id = ?",
                        [run["run_id"]])
        need = book.add(f"{prefix}.days_needed", "int", run["min_history_days"] + horizons * run["horizon_days"],
                        f"SELECT min_history_days + {horizons} * horizon_days FROM predict.{table} WHERE run_id = ?",
                        [run["run_id"]])
        section.say(compose("订单只覆盖 {a} 天，{w}至少需要 {b} 天。", a=span, b=need, w=what["zh"]),
                    compose("The orders cover {a} days; {w} needs at least {b}.", a=span, b=need, w=what["en"]))
    else:
        section.say(compose("检验时间段内的数据不足以{w}。", w=what["zh"]),
                    compose("The later period has too little data for {w}.", w=what["en"]))


def _high_value_fact(book: FactBook, data: ReportData, segment_id: int, column: str, kind: str) -> FactRef:
    base = ("FROM segments.customer_segments s JOIN segments.customer_value_tiers t USING (customer_id) "
            "LEFT JOIN predict.churn_risk r USING (customer_id) WHERE s.segment_id = ? ")
    sql = {
        "high_value": f"SELECT count(*) {base} AND t.value_tier_key = 'high_value'",
        "high_value_at_risk": f"SELECT count(*) {base} AND t.value_tier_key = 'high_value' AND r.at_risk",
        "high_value_at_risk_share": "SELECT count(*) FILTER (WHERE r.at_risk) / count(*) "
                                    f"{base} AND t.value_tier_key = 'high_value'",
        "high_value_mean_risk": f"SELECT avg(r.churn_risk) {base} AND t.value_tier_key = 'high_value'",
    }[column]
    row = data.at_risk.filter(pl.col("segment_id") == segment_id).row(0, named=True)
    value = (row["high_value_at_risk"] / row["high_value"] if row["high_value"] else None) \
        if column == "high_value_at_risk_share" else row[column]
    return book.add(f"seg{segment_id}.churn.{column}", kind, value, sql, [segment_id])


def rules_add_little(run: dict) -> bool:
    """The published co-purchase rules beat popularity on the held-out window, but by less than
    predict.min_lift_over_popularity: recommendations_beat_popularity warns, and the report says so too."""
    lift, bar = run.get("lift_over_popularity"), run.get("min_lift_over_popularity")
    return (run.get("status") == EVALUATED and run.get("published_source") != SOURCE_POPULARITY
            and lift is not None and bar is not None and lift < bar)


def adds_nothing_over_recency(run: dict) -> bool:
    """The model's held-out AUC is less than min_gain_over_recency above ranking by recency alone (False for runs
    judged before the comparison was recorded)."""
    gain, margin = run.get("auc_gain_over_recency"), run.get("min_gain_over_recency")
    return gain is not None and margin is not None and gain < margin


def _say_against_recency(section: Section, book: FactBook, run: dict) -> None:
    """The model against the ranking anyone can make without it: longest since the last order first."""
    if run.get("recency_auc") is None:
        return
    table = "churn_model_runs"
    recency, gain = _run_fact(book, table, run, "recency_auc", "score"), _run_fact(book, table, run,
                                                                                   "auc_gain_over_recency", "score")
    if adds_nothing_over_recency(run) and run["auc_gain_over_recency"] < 0:
        margin = _run_fact(book, table, run, "min_gain_over_recency", "score")
        section.say(compose("只按距上次购买的天数排序，在同一时间段的 AUC 为 {r}；模型的 AUC 反而低了（相差 {g}，至少应高出 {m}），"
                            "不如这个简单办法。下面的名单可以使用，但按最近一次购买时间排序效果更好。", r=recency, g=gain, m=margin),
                    compose("Ranking customers by days since their last order alone scores an AUC of {r} on the same "
                            "period; the model does worse (a difference of {g}, where it should be at least {m} "
                            "higher). The list below is usable, but sorting by the last order date does better.",
                            r=recency, g=gain, m=margin))
    elif adds_nothing_over_recency(run):
        margin = _run_fact(book, table, run, "min_gain_over_recency", "score")
        section.say(compose("只按距上次购买的天数排序，在同一时间段的 AUC 为 {r}；模型只高出 {g}（不到 {m}），并没有比这个简单办法更好。"
                            "下面的名单可以使用，但不必把它当作强模型：按最近一次购买时间排序效果相当。", r=recency, g=gain, m=margin),
                    compose("Ranking customers by days since their last order alone scores an AUC of {r} on the same "
                            "period; the model adds only {g} (less than {m}), so it is no better than that simple "
                            "rule. The list below is usable, but not the work of a strong model: sorting by the "
                            "last order date does as well.", r=recency, g=gain, m=margin))
    else:
        section.say(compose("只按距上次购买的天数排序，在同一时间段的 AUC 为 {r}；模型高出 {g}。", r=recency, g=gain),
                    compose("Ranking customers by days since their last order alone scores an AUC of {r} on the same "
                            "period; the model adds {g}.", r=recency, g=gain))


def section_churn(data: ReportData, book: FactBook) -> Section:
    section = Section("churn_risk", {"zh": "流失预警：高风险的高价值客户", "en": "Churn warning: high-value customers at risk"},
                      [])
    if _too_small(data, book, section):
        return section
    run = data.churn_run
    if run is None or run["status"] != TRAINED:
        # No model, so no customer is called at risk: the title must not claim one (without order dates above all).
        section.title = {"zh": "流失预警", "en": "Churn warning"}
        _not_available(section, book, "churn_model_runs", run, {"zh": "训练流失预测模型", "en": "churn model"})
        say_customer_value(section, data, book)
        _value_bullets(section, data, book)
        return section
    table = "churn_model_runs"
    horizon = _run_fact(book, table, run, "horizon_days", "int")
    auc, error = _run_fact(book, table, run, "auc", "score"), _run_fact(book, table, run, "calibration_error", "pct")
    brier, baseline = _run_fact(book, table, run, "brier", "score"), _run_fact(book, table, run, "brier_baseline",
                                                                                "score")
    section.say(
        compose("流失指未来 {h} 天内没有购买。模型用截止点之前的行为训练，并在它从未见过的最近 {h} 天上检验：AUC {a}，"
                "校准误差 {e}，Brier 分数 {b}（只按平均流失率猜测为 {c}）。", h=horizon, a=auc, e=error, b=brier, c=baseline),
        compose("Churn means no purchase in the next {h} days. The model learns from behaviour before a cutoff and is "
                "judged on the latest {h} days, which it never saw: AUC {a}, calibration error {e}, Brier score {b} "
                "(guessing the average churn rate scores {c}).", h=horizon, a=auc, e=error, b=brier, c=baseline))
    _say_against_recency(section, book, run)
    threshold = _run_fact(book, table, run, "high_risk_threshold", "pct")
    scored = data.at_risk
    at_risk = book.add("churn.at_risk", "count", int(scored["at_risk"].sum()) if scored.height else 0,
                       "SELECT count(*) FILTER (WHERE r.at_risk) FROM predict.churn_risk r "
                       "JOIN segments.customer_segments s USING (customer_id) WHERE s.segment_id IN "
                       f"{_detailed_ids(data)}")
    section.say(compose("流失概率达到 {t} 即视为高风险：各客群共 {n} 位客户。", t=threshold, n=at_risk),
                compose("A churn probability of {t} or more counts as at risk: {n} customers across the segments.",
                        t=threshold, n=at_risk))
    _say_if_most_are_at_risk(section, book, data)
    for segment in data.detailed:
        rows = scored.filter(pl.col("segment_id") == segment.segment_id)
        if rows.is_empty():
            continue
        if not rows["high_value"][0]:
            value = expected_value(data, book, segment.segment_id)
            section.say(compose("{n}：没有高价值客户", n=segment.name_zh)
                        + (compose("；{v}。", v=value["zh"]) if value else compose("。")),
                        compose("{n}: no high-value customers", n=segment.name_en)
                        + (compose("; {v}.", v=value["en"]) if value else compose(".")), bullet=True)
            continue
        sid = segment.segment_id
        high = _high_value_fact(book, data, sid, "high_value", "count")
        risky = _high_value_fact(book, data, sid, "high_value_at_risk", "count")
        share = _high_value_fact(book, data, sid, "high_value_at_risk_share", "pct")
        mean = _high_value_fact(book, data, sid, "high_value_mean_risk", "pct")
        value = expected_value(data, book, sid)
        section.say(compose("{n}：{h} 位高价值客户中有 {r} 位高风险（{s}），平均流失概率 {m}", n=segment.name_zh, h=high,
                            r=risky, s=share, m=mean) + (compose("；{v}。", v=value["zh"]) if value else compose("。")),
                    compose("{n}: {r} of {h} high-value customers at risk ({s}); mean churn probability {m}",
                            n=segment.name_en, h=high, r=risky, s=share, m=mean)
                    + (compose("; {v}.", v=value["en"]) if value else compose(".")), bullet=True)
    _say_what_to_do(section, data, run)
    say_customer_value(section, data, book)
    return section


# At or above this share of the customers at risk, the at_risk list holds too many to act on as one: in a shop where most
# customers buy once, most are likely not to buy again within the horizon, and the threshold marks them all.
MOST_AT_RISK = 0.5


def _say_if_most_are_at_risk(section: Section, book: FactBook, data: ReportData) -> None:
    scored = data.at_risk
    members = int(scored["members"].sum()) if scored.height else 0
    at_risk = int(scored["at_risk"].sum()) if scored.height else 0
    if not members or at_risk / members < MOST_AT_RISK:
        return
    share = book.add("churn.at_risk_share", "pct", at_risk / members,
                     "SELECT count(*) FILTER (WHERE r.at_risk) / count(*) FROM segments.customer_segments s "
                     "JOIN segments.customer_value_tiers t USING (customer_id) "
                     "LEFT JOIN predict.churn_risk r USING (customer_id) "
                     f"WHERE s.segment_id IN {_detailed_ids(data)}")
    section.say(compose("这占客户的 {s}，人数太多，不宜作为一份名单全部联系：请按 churn_risk 从高到低，在预算内先联系排在最前的客户。", s=share),
                compose("That is {s} of the customers, too many to contact as one list: rank them by churn_risk and "
                        "contact the top of the list first, as many as the budget allows.", s=share))


def _say_what_to_do(section: Section, data: ReportData, run: dict) -> None:
    """Where the list is, and what to do with it: a weak model's list is not advice to act on as it stands."""
    where = ("名单见 predict.churn_risk（at_risk 列）与 segments.customer_value_tiers；",
             "The list is in predict.churn_risk (column at_risk) joined with segments.customer_value_tiers; ")
    if adds_nothing_over_recency(run):
        section.say(compose(where[0] + "但模型不比按最近购买时间排序更好（见上文），挽回对象请按距上次购买的天数挑选，"
                            "并保留对照组（persona campaign create --holdout）检验联系是否真的有效。"),
                    compose(where[1] + "but the model is no better than ranking by the last order (above), so choose "
                            "whom to win back by days since their last order, and keep a holdout group (persona "
                            "campaign create --holdout) to measure whether contacting them helps."))
    elif run.get("min_auc") is not None and run["auc"] < run["min_auc"]:
        section.say(compose(where[0] + "但模型较弱（AUC 低于 predict.min_auc，见上文），名单只可作为粗略的排序；"
                            "联系时请保留对照组（persona campaign create --holdout）检验是否真的有效。"),
                    compose(where[1] + "but the model is weak (its AUC is below predict.min_auc, above), so take the "
                            "list as a rough ranking, and keep a holdout group (persona campaign create --holdout) "
                            "to measure whether contacting them helps."))
    elif data.has_categories:
        section.say(compose(where[0] + "建议在他们停止购买之前，用专属权益和常购品类主动联系。"),
                    compose(where[1] + "reach out before they stop buying, with personal perks on their usual "
                            "categories."))
    else:
        section.say(compose(where[0] + "建议在他们停止购买之前，用专属权益主动联系。"),
                    compose(where[1] + "reach out before they stop buying, with personal perks."))


# --- customer lifetime value -----------------------------------------------------------------------------------

def _segment_value_fact(book: FactBook, data: ReportData, segment_id: int, column: str) -> FactRef:
    """A segment's mean expected purchases or spend per customer over the next clv_horizon_days."""
    row = data.segment_value.filter(pl.col("segment_id") == segment_id).row(0, named=True)
    return book.add(f"seg{segment_id}.clv.{column}", "money" if column == "expected_spend" else "decimal", row[column],
                    f"SELECT avg(v.{column}) FROM segments.customer_segments s JOIN predict.customer_value v "
                    "USING (customer_id) WHERE s.segment_id = ? AND isfinite(v.expected_spend) "
                    "AND isfinite(v.expected_purchases)", [segment_id])


def _has_value(data: ReportData, segment_id: int) -> bool:
    run = data.value_run
    return (run is not None and bool(run.get("n_scored")) and not data.segment_value.is_empty()
            and data.segment_value.filter(pl.col("segment_id") == segment_id).height > 0)


def expected_value(data: ReportData, book: FactBook, segment_id: int) -> dict[str, Sentence] | None:
    """The summary card's phrase: a segment's expected spend per customer over the next clv_horizon_days days
    (None without customer values)."""
    if not _has_value(data, segment_id):
        return None
    horizon = _run_fact(book, "customer_value_eval", data.value_run, "clv_horizon_days", "int")
    spend = _segment_value_fact(book, data, segment_id, "expected_spend")
    return {"zh": compose("未来 {h} 天预计人均消费 {v}", h=horizon, v=spend),
            "en": compose("{v} expected spend per customer over the next {h} days", h=horizon, v=spend)}


def _decile_fact(book: FactBook, run: dict, decile: int, column: str) -> FactRef:
    return book.add(
        f"clv.decile{decile}.{column}", "decimal",
        run["deciles"].filter(pl.col("decile") == decile)[column][0],
        f"SELECT {column} FROM predict.customer_value_deciles WHERE run_id = ? AND decile = ?",
        [run["run_id"], decile])


def _value_bullets(section: Section, data: ReportData, book: FactBook) -> None:
    """Without a churn model: a bullet per segment with its expected spend per customer, when there are values."""
    for segment in data.detailed:
        value = expected_value(data, book, segment.segment_id)
        if value is not None:
            section.say(compose("{n}：{v}。", n=segment.name_zh, v=value["zh"]),
                        compose("{n}: {v}.", n=segment.name_en, v=value["en"]), bullet=True)


def say_customer_value(section: Section, data: ReportData, book: FactBook) -> None:
    """Customer lifetime value, at the end of the churn section: the model, its held-out judgement, the top and
    bottom deciles. The per-segment expected spend is in the churn bullets and the summary cards."""
    run, table = data.value_run, "customer_value_eval"
    if run is None:
        return
    if run["status"] == NO_DATES or not run.get("n_scored"):
        if run["status"] == NO_DATES:
            _not_available(section, book, table, run, {"zh": "估算客户终身价值", "en": "customer lifetime value"})
        else:
            section.say(compose("购买过两次以上的客户太少，无法估算客户终身价值。"),
                        compose("Too few customers bought more than once to estimate customer lifetime value."))
        return
    horizon = _run_fact(book, table, run, "clv_horizon_days", "int")
    section.say(
        compose("客户终身价值：每位客户未来 {h} 天的预计购买次数与消费额来自“购买直至流失”模型：MBG/NBD 估计客户多久购买一次、"
                "何时不再回来（包括第一次购买之后），Gamma-Gamma 估计每次购买的金额。", h=horizon),
        compose("Customer lifetime value: each customer's expected purchases and spend over the next {h} days come "
                "from a buy-till-you-die model: MBG/NBD for how often customers buy and when they stop coming back "
                "(after their first purchase too), Gamma-Gamma for how much they spend per purchase.", h=horizon))
    if run["status"] == EVALUATED and run.get("spearman") is not None:
        window, n = _run_fact(book, table, run, "horizon_days", "int"), _run_fact(book, table, run, "n_eval", "count")
        rho = _run_fact(book, table, run, "spearman", "score")
        baseline = _run_fact(book, table, run, "baseline_spearman", "score")
        section.say(
            compose("检验：用最近 {w} 天之前的订单重新拟合模型，预测这 {w} 天的购买次数，与 {n} 位客户的实际购买比较："
                    "斯皮尔曼等级相关系数 {r}（只按过去的购买频率排序为 {b}）。", w=window, n=n, r=rho, b=baseline),
            compose("Judged on the latest {w} days: refitted on the orders before them, the model predicted each "
                    "customer's purchases in those days; against what {n} customers actually bought, the Spearman "
                    "rank correlation is {r} (ranking by past purchase rate alone: {b}).", w=window, n=n, r=rho,
                    b=baseline))
        _say_one_time_buyers(section, book, run)
        deciles = data.value_deciles
        if deciles.height == DECILES:
            judged = {**run, "deciles": deciles}
            top_p, top_a = (_decile_fact(book, judged, DECILES, c) for c in ("mean_predicted_purchases",
                                                                              "mean_actual_purchases"))
            low_p, low_a = (_decile_fact(book, judged, 1, c) for c in ("mean_predicted_purchases",
                                                                       "mean_actual_purchases"))
            share = _run_fact(book, table, run, "top_decile_purchase_share", "pct")
            section.say(
                compose("预测最高的十分之一客户人均预计 {p} 次、实际 {a} 次，贡献了这段时间 {s} 的购买；预测最低的十分之一人均预计 {q} 次、实际 {b} 次。"
                        "逐组对比见 predict.customer_value_deciles。", p=top_p, a=top_a, s=share, q=low_p, b=low_a),
                compose("The tenth of customers with the highest predictions was expected to buy {p} times each and "
                        "bought {a} times, {s} of all purchases in those days; the lowest tenth was expected to buy "
                        "{q} times and bought {b}. Every decile is in predict.customer_value_deciles.", p=top_p,
                        a=top_a, s=share, q=low_p, b=low_a))
    else:
        _not_available(section, book, table, run, {"zh": "在后续时间段检验客户终身价值",
                                                    "en": "evaluation of customer lifetime value on a later period"})
    # One purchase tells the model least: a one-time buyer's values rest on the population's, hence frequency beside.
    section.say(compose("逐人数值见 predict.customer_value（expected_purchases、expected_spend、p_alive）；可用于决定每项策略值得投入在哪些客户身上。"
                        "p_alive（仍是客户的概率）随距上次购买的时间下降；模型对只购买过一次的客户了解最少，挑选时请同时看 frequency（再次购买次数）。"),
                compose("Per-customer values are in predict.customer_value (expected_purchases, expected_spend, "
                        "p_alive): use them to decide which customers a strategy is worth spending on. p_alive, the "
                        "probability of still being a customer, falls with the time since the last purchase; the "
                        "model knows least about customers who bought only once: choose with frequency (repeat "
                        "purchases) beside it."))


def _say_one_time_buyers(section: Section, book: FactBook, run: dict) -> None:
    """How the model did on held-out time for the customers who had bought once, of whom it knows least: their
    predicted purchases against what they bought (clv.one_time_miss judges it). Nothing for a run judged before
    these figures were recorded, or without one-time buyers."""
    if not run.get("one_time_buyers"):
        return
    table = "customer_value_eval"
    n, predicted, actual = (_run_fact(book, table, run, column, kind) for column, kind in (
        ("one_time_buyers", "count"), ("one_time_predicted_purchases", "decimal"),
        ("one_time_actual_purchases", "count")))
    section.say(compose("其中只购买过一次的 {n} 位客户，模型预计他们在这段时间共购买 {p} 次，实际购买 {a} 次。", n=n, p=predicted,
                        a=actual),
                compose("Of them, the {n} customers who had bought only once were expected to buy {p} times in "
                        "those days, and bought {a} times.", n=n, p=predicted, a=actual))
    miss = one_time_miss(run)
    if miss is not None:
        zh, en = _one_time_warning(book, run, miss)
        section.say(zh, en)


def _one_time_warning(book: FactBook, run: dict, miss: float) -> tuple[Sentence, Sentence]:
    """The one-time buyers' values are off: said in the CLV section and in the weak results at the top."""
    if miss == float("inf"):
        return (compose("只购买过一次的客户预计价值被高估：模型预计他们会再次购买，但在检验时间段没有一人回购；请谨慎看待主要由这类客户组成的客群的预计消费。"),
                compose("One-time buyers' expected values are overstated: the model expected them to buy again, and "
                        "none of them did in the later period; read the expected spend of segments made mostly of "
                        "one-time buyers with care."))
    ratio = book.add("clv.one_time_ratio", "lift", miss,
                     "SELECT one_time_predicted_purchases / one_time_actual_purchases FROM predict.customer_value_eval "
                     "WHERE run_id = ?", [run["run_id"]])
    if miss > 1:
        return (compose("只购买过一次的客户预计价值被高估：在检验时间段，模型对他们的预测购买次数是实际的 {r}；请谨慎看待主要由这类客户组成的客群的预计消费。",
                        r=ratio),
                compose("One-time buyers' expected values are overstated: on the later period the model predicted "
                        "{r} the purchases they made; read the expected spend of segments made mostly of one-time "
                        "buyers with care.", r=ratio))
    return (compose("只购买过一次的客户预计价值被低估：在检验时间段，模型对他们的预测购买次数只有实际的 {r}。", r=ratio),
            compose("One-time buyers' expected values are understated: on the later period the model predicted only "
                    "{r} the purchases they made.", r=ratio))


def _reason_rule(data: ReportData, segment_id: int, category: str) -> tuple[str, float] | None:
    """Why a segment gets `category`: a notable rule towards it (lift >= NOTABLE_LIFT) from the category the segment
    buys most; None when there is none."""
    if data.rules.is_empty() or data.affinity.is_empty():
        return None
    rates = data.affinity.filter(pl.col("segment_id") == segment_id).select(
        pl.col("category").alias("antecedent"), "segment_rate")
    candidates = (data.rules.filter((pl.col("consequent") == category) & (pl.col("lift") >= NOTABLE_LIFT))
                  .join(rates, on="antecedent")
                  .sort(["segment_rate", "lift", "antecedent"], descending=[True, True, False]))
    return (candidates["antecedent"][0], candidates["lift"][0]) if candidates.height else None


def _detailed_ids(data: ReportData) -> str:
    return "(" + ",".join(str(int(s.segment_id)) for s in data.detailed) + ")" if data.detailed else "(NULL)"


def section_next_category(data: ReportData, book: FactBook) -> Section:
    section = Section("next_category", {"zh": "“你可能还需要”：各客群推荐组合", "en": "“You may also need”: a bundle per segment"},
                      [])
    if _too_small(data, book, section):
        return section
    run = data.recommendation_eval
    table = "recommendation_eval"
    if run is not None and run["status"] == EVALUATED:
        evaluated, hit = _run_fact(book, table, run, "customers_evaluated", "count"), _run_fact(book, table, run,
                                                                                              "hit_rate", "pct")
        popular = _run_fact(book, table, run, "popularity_hit_rate", "pct")
        lift, top = _run_fact(book, table, run, "lift_over_popularity", "ratio"), _run_fact(book, table, run, "top_n",
                                                                                            "int")
        horizon = _run_fact(book, table, run, "horizon_days", "int")
        section.say(
            compose("推荐来自“买过甲的客户也买乙”的共同购买规则（支持度、置信度、提升度），为每位客户挑出尚未买过的前 {k} 个品类。"
                    "在它从未见过的最近 {h} 天检验：{n} 位买了新品类的客户中，{r} 买了推荐品类之一；只推荐热门品类为 {p}，"
                    "共同购买规则是其 {l}。", k=top, h=horizon, n=evaluated, r=hit, p=popular, l=lift),
            compose("Recommendations come from co-purchase rules (“customers who bought A also bought B”, with support, "
                    "confidence and lift): the top {k} categories each customer has not bought yet. Judged on the "
                    "latest {h} days, which they never saw: of {n} customers who bought a new category, {r} bought a "
                    "recommended one; recommending the most popular categories scores {p}, so the rules do {l} as "
                    "well.", k=top, h=horizon, n=evaluated, r=hit, p=popular, l=lift))
        if 0 < data.category_count <= run["top_n"] + 1:
            categories = book.add("categories.count", "int", data.category_count, CATEGORY_COUNT_SQL)
            section.say(compose("但订单只有 {c} 个品类：前 {k} 个推荐已包含每位客户尚未买过的全部品类，任何新品类购买都算命中，"
                                "因此这一命中率说明不了推荐的好坏。", c=categories, k=top),
                        compose("But the orders hold only {c} categories: the top {k} a customer has not bought are "
                                "all the categories they have not bought, so any new category counts as a hit, and "
                                "this hit rate cannot tell good recommendations from any list.", c=categories, k=top))
        if run.get("published_source") == SOURCE_POPULARITY:
            section.say(compose("规则没有超过热门品类，因此本次发布的推荐（predict.next_category）改为每位客户尚未买过的最热门品类。"),
                        compose("The rules do not beat popularity, so the published recommendations "
                                "(predict.next_category) are each customer's most popular categories not bought yet."))
        elif rules_add_little(run):
            least = _run_fact(book, table, run, "min_lift_over_popularity", "ratio")
            section.say(compose("这低于要求的 {m}（predict.min_lift_over_popularity）：规则略胜热门品类，因此仍然发布，但提升有限，"
                                "下面的组合与热销品类相差不大。", m=least),
                        compose("That is below the {m} required (predict.min_lift_over_popularity): the rules beat "
                                "popularity, so they are published, but they add little; the bundles below are close "
                                "to the best sellers.", m=least))
    else:
        _not_available(section, book, table, run, {"zh": "在后续时间段检验推荐", "en": "evaluation on a later period"})
        section.say(compose("推荐仍由全部购物篮中的共同购买规则得出。"),
                    compose("The recommendations still come from the co-purchase rules of every basket."))
    bundles = data.bundles
    if bundles.is_empty():
        section.say(compose("没有可推荐的品类。"), compose("There is no category left to recommend."))
        return section
    for segment in data.detailed:
        rows = bundles.filter(pl.col("segment_id") == segment.segment_id).sort("rank")
        if rows.is_empty():
            continue
        sid = segment.segment_id
        items = {"zh": [], "en": []}
        for category in rows["category"].to_list():
            share = book.add(
                f"seg{sid}.bundle.{category}", "pct", rows.filter(pl.col("category") == category)["share"][0],
                "SELECT (SELECT count(*) FROM predict.next_category n JOIN segments.customer_segments s "
                "USING (customer_id) WHERE s.segment_id = ? AND n.category = ?) / "
                "(SELECT count(*) FROM segments.customer_segments WHERE segment_id = ?)", [sid, category, sid])
            items["zh"].append(compose("{c}（{s} 的成员）", c=data.category(category, "zh"), s=share))
            items["en"].append(compose("{c} ({s} of members)", c=data.category(category, "en"), s=share))
        zh = compose("{n}：", n=segment.name_zh) + join(items["zh"], "、")
        en = compose("{n}: ", n=segment.name_en) + join(items["en"], ", ")
        first = rows["category"][0]
        reason = _reason_rule(data, sid, first)
        if reason is not None:
            antecedent, rule_lift = reason
            lift = book.add(f"rule.{antecedent}.{first}", "lift", rule_lift,
                            "SELECT lift FROM predict.category_rules WHERE antecedent = ? AND consequent = ?",
                            [antecedent, first])
            zh += compose("；买过{a}的客户购买{c}的比例是平均的 {l}", a=data.category(antecedent, "zh"),
                          c=data.category(first, "zh"), l=lift)
            en += compose("; customers who bought {a} buy {c} {l} as often as average",
                          a=data.category(antecedent, "en"), c=data.category(first, "en"), l=lift)
        section.say(zh + compose("。"), en + compose("."), bullet=True)
    section.say(compose("组合为该客群成员最常获得的推荐品类（每位客户只推荐尚未买过的品类）；逐人名单见 predict.next_category。"),
                compose("A bundle lists the categories recommended to most members (each customer only gets categories "
                        "they have not bought yet); the per-customer list is in predict.next_category."))
    return section


# --- the banner at the top of the pages: weak results of this run --------------------------------------------------

def weak_results(data: ReportData, book: FactBook) -> dict[str, list[Sentence]]:
    """The weak results of the latest predict runs, one sentence each per language, for the top of both pages.

    The same conditions as the warn checks (quality/checks/predict.py), read from the run tables: the report may run
    before the checks' steps, and a reader of the report never sees the Dagster event log. Empty when nothing is
    weak, and for runs that did not train or judge (their sections already say why)."""
    banner: dict[str, list[Sentence]] = {"zh": [], "en": []}

    def say(zh: Sentence, en: Sentence) -> None:
        banner["zh"].append(zh)
        banner["en"].append(en)

    churn = data.churn_run
    if churn is not None and churn["status"] == TRAINED:
        table = "churn_model_runs"
        auc = _run_fact(book, table, churn, "auc", "score")
        if churn["min_auc"] is not None and churn["auc"] < churn["min_auc"]:
            least = _run_fact(book, table, churn, "min_auc", "score")
            say(compose("流失模型在检验时间段的 AUC 为 {a}，低于要求的 {m}：它区分会流失与不会流失客户的能力较弱。", a=auc, m=least),
                compose("The churn model's AUC on the later period is {a}, below the required {m}: it tells "
                        "leaving customers from staying ones poorly.", a=auc, m=least))
        if adds_nothing_over_recency(churn):
            recency = _run_fact(book, table, churn, "recency_auc", "score")
            say(compose("流失模型的 AUC（{a}）并不比只按距上次购买天数排序（{r}）更好：它没有带来实质提升。", a=auc, r=recency),
                compose("The churn model's AUC ({a}) is no better than ranking by days since the last order alone "
                        "({r}): it adds nothing over recency.", a=auc, r=recency))
        error = churn["calibration_error"]
        if churn["max_calibration_error"] is not None and error is not None and error > churn["max_calibration_error"]:
            err = _run_fact(book, table, churn, "calibration_error", "pct")
            limit = _run_fact(book, table, churn, "max_calibration_error", "pct")
            say(compose("流失概率的校准误差为 {e}，高于上限 {m}：概率只宜用于排序，不宜当作真实的流失比例。", e=err, m=limit),
                compose("The churn probabilities' calibration error is {e}, above the limit of {m}: use them to rank "
                        "customers, not as actual churn rates.", e=err, m=limit))
    value = data.value_run
    if value is not None and value["status"] == EVALUATED and value.get("n_scored"):
        table = "customer_value_eval"
        if predictions_not_finite(value):
            say(compose("客户终身价值模型的预测不是有限数值，无法使用：本次的预计购买次数与预计消费不可信。"),
                compose("The customer lifetime value model's predictions are not finite numbers: this run's expected "
                        "purchases and spend cannot be used."))
        elif ranks_no_better(value):
            rho = _run_fact(book, table, value, "spearman", "score")
            baseline = _run_fact(book, table, value, "baseline_spearman", "score")
            say(compose("客户终身价值模型在检验时间段的排序（斯皮尔曼 {r}）并不比只按过去的购买频率排序（{b}）更好。", r=rho, b=baseline),
                compose("The customer lifetime value model ranks customers no better on the later period (Spearman "
                        "{r}) than their past purchase rate alone ({b}).", r=rho, b=baseline))
        miss = one_time_miss(value)
        if miss is not None:
            say(*_one_time_warning(book, value, miss))
    recs = data.recommendation_eval
    if recs is not None and recs["status"] == EVALUATED and recs.get("published_source") == SOURCE_POPULARITY:
        table = "recommendation_eval"
        hit, popular = _run_fact(book, table, recs, "hit_rate", "pct"), _run_fact(book, table, recs,
                                                                                   "popularity_hit_rate", "pct")
        say(compose("共同购买规则在检验时间段的命中率（{r}）没有超过只推荐热门品类（{p}），因此本次发布的推荐已改为热门品类。",
                    r=hit, p=popular),
            compose("The co-purchase rules hit {r} on the later period, no better than recommending the most popular "
                    "categories ({p}); the published recommendations are therefore the most popular categories.",
                    r=hit, p=popular))
    elif recs is not None and rules_add_little(recs):
        table = "recommendation_eval"
        lift = _run_fact(book, table, recs, "lift_over_popularity", "ratio")
        least = _run_fact(book, table, recs, "min_lift_over_popularity", "ratio")
        say(compose("共同购买规则的命中率只有热门品类推荐的 {l}，低于要求的 {m}：推荐与热销品类相差不大。", l=lift, m=least),
            compose("The co-purchase rules hit only {l} as often as recommending the most popular categories, below "
                    "the required {m}: the recommendations add little over the best sellers.", l=lift, m=least))
    return banner
