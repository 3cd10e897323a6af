"""The report's section on audiences (issue 22 point 5): "目标人群 / Audiences". Per audience of the source config,
its rule, size, share of all customers and change since the previous run, every number a fact proved by a query on
segments.audiences or segments.audience_history (assets/audiences). The rows come from
assets.audiences.summary.load_audience_summary (one per audience of the latest run)."""

from __future__ import annotations

import html

import polars as pl

from assets.report.facts import FactBook, FactRef, Sentence, compose
from assets.report.narrative import LANGUAGES, Section

TITLE = {"zh": "目标人群", "en": "Audiences"}
HISTORY_SQL = "SELECT {column} FROM segments.audience_history WHERE run_id = ? AND audience = ?"
MEMBERS_SQL = "SELECT count(*) FROM segments.audiences WHERE audience = ?"
CHANGE_SQL = """SELECT (c.customers - p.customers) / p.customers FROM segments.audience_history c
                JOIN segments.audience_history p ON p.audience = c.audience
                WHERE c.run_id = ? AND p.run_id = ? AND c.audience = ?"""
COMPUTED_AT_SQL = "SELECT max(computed_at) FROM segments.audience_history WHERE run_id = ?"


def _history_fact(book: FactBook, row: dict, column: str, kind: str, previous: bool = False) -> FactRef:
    run_id = row["previous_run_id"] if previous else row["run_id"]
    value = row[f"previous_{column}"] if previous else row[column]
    key = f"audience.{row['audience']}.{'previous_' if previous else ''}{column}"
    return book.add(key, kind, value, HISTORY_SQL.format(column=column), [run_id, row["audience"]])


def _change(book: FactBook, row: dict) -> dict[str, Sentence]:
    """Since the previous run: its size then and the relative change, or why there is nothing to compare."""
    if row["previous_run_id"] is None:
        return {"zh": compose("上次运行无此人群（新增）"), "en": compose("new since the previous run")}
    if row["previous_rule"] != row["rule"]:
        return {"zh": compose("规则自上次运行后已修改，不作比较"),
                "en": compose("its rule changed since the previous run, so the sizes are not compared")}
    before = _history_fact(book, row, "customers", "count", previous=True)
    at = book.add(f"audience.{row['audience']}.previous_computed_at", "datetime", row["previous_computed_at"],
                  COMPUTED_AT_SQL, [row["previous_run_id"]])
    if not row["previous_customers"]:
        return {"zh": compose("上次运行（{d}）为 {b} 人", d=at, b=before),
                "en": compose("{b} at the previous run ({d})", b=before, d=at)}
    change = book.add(f"audience.{row['audience']}.change", "change",
                      (row["customers"] - row["previous_customers"]) / row["previous_customers"], CHANGE_SQL,
                      [row["run_id"], row["previous_run_id"], row["audience"]])
    return {"zh": compose("上次运行（{d}）为 {b} 人，变化 {c}", d=at, b=before, c=change),
            "en": compose("{b} at the previous run ({d}), a change of {c}", b=before, d=at, c=change)}


def section_audiences(audiences: pl.DataFrame, book: FactBook) -> Section | None:
    """One line per audience of the latest run; None when there is none (the report then has no such section)."""
    if audiences.height == 0:
        return None
    section = Section("audiences", TITLE, [])
    first = audiences.row(0, named=True)
    count = book.add("audiences.count", "count", audiences.height,
                     "SELECT count(*) FROM segments.audience_history WHERE run_id = ?", [first["run_id"]])
    computed = book.add("audiences.computed_at", "datetime", first["computed_at"], COMPUTED_AT_SQL,
                        [first["run_id"]])
    section.say(
        compose("源配置中定义了 {n} 个目标人群（{d} 计算）。每个人群是对每位客户一行的视图（客群、价值分层、流失风险、"
                "预测价值、推荐品类与客户特征）的一条 SQL 条件；名单在 segments.audiences 表中，可用 persona export "
                "--audience 导出。", n=count, d=computed),
        compose("The source config defines {n} audiences (computed {d}). Each is a SQL condition over a view with one "
                "row per customer (segment, value tier, churn risk, predicted value, recommended categories and the "
                "customer features); the members are in segments.audiences and export with persona export "
                "--audience.", n=count, d=computed))
    for row in audiences.iter_rows(named=True):
        name = row["audience"]
        size = book.add(f"audience.{name}.customers", "count", row["customers"], MEMBERS_SQL, [name])
        share = _history_fact(book, row, "share", "pct")
        change = _change(book, row)
        described = {"zh": compose("{a}", a=name), "en": compose("{a}", a=name)}
        if row["description"]:
            described = {"zh": compose("{a}（{t}）", a=name, t=row["description"]),
                         "en": compose("{a} ({t})", a=name, t=row["description"])}
        section.say(
            described["zh"] + compose("：{s} 人，占全部客户 {p}；", s=size, p=share) + change["zh"]
            + compose("。规则：{r}", r=row["rule"]),
            described["en"] + compose(": {s} customers, {p} of all; ", s=size, p=share) + change["en"]
            + compose(". Rule: {r}", r=row["rule"]),
            bullet=True)
    return section


def audiences_html(audiences: pl.DataFrame, book: FactBook) -> dict[str, str]:
    """The section as HTML per language (zh, en), for a page that does not draw Section objects itself; empty
    strings when there is no audience. Numbers are `<span class="fact">`, names and rules `<span class="label">`."""
    section = section_audiences(audiences, book)
    if section is None:
        return {language: "" for language in LANGUAGES}
    pages = {}
    for language in LANGUAGES:
        out = [f'<section id="section-{section.key}"><h2>{html.escape(section.title[language])}</h2>']
        out += [f"<p>{sentence.html(book, language)}</p>" for sentence in section.paragraphs[language]]
        out.append("<ul>" + "".join(f"<li>{sentence.html(book, language)}</li>"
                                    for sentence in section.bullets[language]) + "</ul></section>")
        pages[language] = "".join(out)
    return pages
