"""The report's sections on runs over time: migration since the last run and segment sizes over time. On a
first run there is nothing to compare with: the sections say so in words, in both languages, and draw no chart."""

from __future__ import annotations

import polars as pl

from assets.report.data import MIN_DETAIL_SIZE, OTHER_ID, ReportData, f_min_size, pooled
from assets.report.facts import FactBook, FactRef, compose, join
from assets.report.narrative import LANGUAGES, Section

# Nearly every customer gone and nearly every customer new since the previous run: the ids changed, not the
# customers (a trial turned on hashing of the e-mail ids after a first run; the report said "0.0% stayed").
ID_CHANGE_SHARE = 0.9
ID_CHANGE_MIN_CUSTOMERS = 50


def section_migration(data: ReportData, book: FactBook) -> Section:
    moves = data.migration
    section = Section("migration", {"zh": "客群迁移（相比上次运行）", "en": "Migration since the last run"},
                      ["migration"] if moves.height else [])
    if moves.is_empty():
        section.say(compose("还没有历史记录：迁移需要至少两次运行，下次运行后此处会显示客群之间的迁移。"),
                    compose("There is no history yet: migration needs two runs, so the moves between segments "
                            "appear here after the next run."))
        return section
    run = data.migration_run
    base = "SELECT coalesce(sum(customers), 0) FROM segments.segment_migration WHERE run_id = ?"

    def total(key: str, where: str, value: int) -> FactRef:
        return book.add(f"migration.{key}", "count", value, f"{base} AND {where}", [run])

    new = total("new", "from_segment_id IS NULL",
                int(moves.filter(pl.col("from_segment_id").is_null())["customers"].sum()))
    if data.previous_run_date is None:  # nothing to compare with: words, no chart of new customers only
        section.charts.clear()
        section.say(compose("这是第一次运行，还没有历史记录可以比较：全部 {n} 位客户都是新客户。下次运行后此处会显示客群之间的迁移。",
                            n=new),
                    compose("This is the first run, so there is no history to compare with yet: all {n} customers "
                            "are new. The moves between segments appear here after the next run.", n=new))
        return section
    stayed_n = int(moves.filter(pl.col("from_segment_id") == pl.col("to_segment_id"))["customers"].sum())
    moved_n = int(moves.filter(pl.col("from_segment_id").is_not_null() & pl.col("to_segment_id").is_not_null()
                               & (pl.col("from_segment_id") != pl.col("to_segment_id")))["customers"].sum())
    gone_n = int(moves.filter(pl.col("to_segment_id").is_null())["customers"].sum())
    before = int(moves.filter(pl.col("from_segment_id").is_not_null())["customers"].sum())
    stayed = total("stayed", "from_segment_id = to_segment_id", stayed_n)
    moved = total("moved", "from_segment_id <> to_segment_id", moved_n)
    gone = total("gone", "to_segment_id IS NULL", gone_n)
    stay_share = book.add("migration.stayed_share", "pct", stayed_n / before if before else None,
                          # coalesce: nobody stayed is 0%, not NULL (a run after the ids changed).
                          "SELECT coalesce(sum(customers) FILTER (WHERE from_segment_id = to_segment_id), 0) / "
                          "sum(customers) FILTER (WHERE from_segment_id IS NOT NULL) "
                          "FROM segments.segment_migration WHERE run_id = ?", [run])
    previous = book.add("migration.previous_run", "datetime", data.previous_run_date,
                        "SELECT max(run_date) FROM segments.segment_migration WHERE run_date < "
                        "(SELECT run_date FROM segments.segment_migration WHERE run_id = ? LIMIT 1)", [run])
    section.say(
        compose("与上次运行（{d} UTC）相比，{p} 的客户留在原客群（{s} 人）；{m} 人换了客群，新增 {n} 人，离开 {g} 人。",
                d=previous, p=stay_share, s=stayed, m=moved, n=new, g=gone),
        compose("Since the previous run ({d} UTC), {p} of customers stayed in their segment ({s}); {m} moved to "
                "another segment, {n} are new and {g} left.", d=previous, p=stay_share, s=stayed, m=moved, n=new,
                g=gone))
    now_n = stayed_n + moved_n + int(moves.filter(pl.col("from_segment_id").is_null())["customers"].sum())
    if before >= ID_CHANGE_MIN_CUSTOMERS and gone_n >= ID_CHANGE_SHARE * before and now_n and \
            (now_n - stayed_n - moved_n) >= ID_CHANGE_SHARE * now_n:
        left_share = book.add("migration.gone_share", "pct", gone_n / before,
                              "SELECT sum(customers) FILTER (WHERE to_segment_id IS NULL) / "
                              "sum(customers) FILTER (WHERE from_segment_id IS NOT NULL) "
                              "FROM segments.segment_migration WHERE run_id = ?", [run])
        section.say(
            compose("上次运行的客户中有 {g} 已不在，而几乎所有客户都是新的：客户编号很可能变了（映射了另一个客户编号列，"
                    "或在 privacy.pii_columns 中开启了哈希），因此这里的迁移记录是重新开始，而不是客户真的换了客群。",
                    g=left_share),
            compose("{g} of the previous run's customers are gone and nearly every customer is new: the customer ids "
                    "most likely changed (another customer id column, or hashing turned on in privacy.pii_columns), "
                    "so this history starts again rather than showing real moves.", g=left_share))
    small = data.small_ids
    flows = (moves.drop_nulls(["from_segment_id", "to_segment_id"])
             .filter(pl.col("from_segment_id") != pl.col("to_segment_id"))
             .with_columns(pl.when(pl.col(c).is_in(small)).then(OTHER_ID).otherwise(pl.col(c)).alias(c)
                           for c in ("from_segment_id", "to_segment_id"))
             .group_by("from_segment_id", "to_segment_id").agg(pl.col("customers").sum())
             .filter(pl.col("from_segment_id") != pl.col("to_segment_id"))
             .sort(["customers", "from_segment_id", "to_segment_id"], descending=[True, False, False]).head(3))
    if flows.height:
        items = {"zh": [], "en": []}
        for row in flows.iter_rows(named=True):
            a, b = row["from_segment_id"], row["to_segment_id"]
            ref = book.add(f"migration.flow.{a}.{b}", "count", row["customers"],
                           f"SELECT sum(customers) FROM segments.segment_migration WHERE run_id = ? "
                           f"AND {pooled('from_segment_id', small)} = ? AND {pooled('to_segment_id', small)} = ?",
                           [run, a, b])
            for lang in LANGUAGES:
                items[lang].append(compose("{a} → {b}（{n}）" if lang == "zh" else "{a} → {b} ({n})",
                                           a=data.group_name(a, lang), b=data.group_name(b, lang), n=ref))
        section.say(compose("最大的迁移：") + join(items["zh"], "；") + compose("。"),
                    compose("Largest moves: ") + join(items["en"], "; ") + compose("."))
    return section


def section_history(data: ReportData, book: FactBook) -> Section:
    sizes = data.sizes
    section = Section("history", {"zh": "客群规模变化", "en": "Segment sizes over time"},
                      ["history"] if sizes.height else [])
    if sizes.is_empty():
        section.say(compose("还没有历史记录：每次运行后此处会记录各客群的规模变化。"),
                    compose("There is no history yet: the size of every segment is recorded here run after run."))
        return section
    runs = sizes.select("run_id", "run_date").unique().sort("run_date")
    n_runs = book.add("history.runs", "count", runs.height,
                      "SELECT count(DISTINCT run_id) FROM segments.segment_migration")
    first_id, first_date = runs.row(0)
    last_id, last_date = runs.row(runs.height - 1)
    first = book.add("history.first_run", "datetime", first_date,
                     "SELECT min(run_date) FROM segments.segment_migration")
    last = book.add("history.last_run", "datetime", last_date, "SELECT max(run_date) FROM segments.segment_migration")
    if runs.height == 1:  # one point per segment is no trend: words, no chart
        section.charts.clear()
        section.say(compose("目前只有一次运行（{d} UTC），还没有历史记录；下次运行后此处会显示各客群的规模变化。", d=first),
                    compose("Only one run so far ({d} UTC), so there is no history yet; the sizes of the segments "
                            "over time appear here after the next run.", d=first))
        return section
    section.say(compose("共 {r} 次运行，从 {a} 到 {b}（UTC）：", r=n_runs, a=first, b=last),
                compose("{r} runs from {a} to {b} (UTC):", r=n_runs, a=first, b=last))
    base = ("SELECT coalesce(sum(customers), 0) FROM segments.segment_migration WHERE run_id = ? "
            "AND to_segment_id = ?")
    limit = None
    for segment in data.detailed:
        sid = segment.segment_id
        at_first = sizes.filter((pl.col("run_id") == first_id) & (pl.col("segment_id") == sid))["customers"]
        at_last = sizes.filter((pl.col("run_id") == last_id) & (pl.col("segment_id") == sid))["customers"]
        now = book.add(f"history.seg{sid}.last", "count", int(at_last.sum()), base, [last_id, sid])
        if at_first.len() and int(at_first.sum()) >= MIN_DETAIL_SIZE:
            then = book.add(f"history.seg{sid}.first", "count", int(at_first.sum()), base, [first_id, sid])
            section.say(compose("{n}：{a} → {b} 人", n=segment.name_zh, a=then, b=now),
                        compose("{n}: {a} → {b} customers", n=segment.name_en, a=then, b=now), bullet=True)
        else:
            limit = limit or f_min_size(book)
            section.say(compose("{n}：首次运行时不足 {m} 人，现在 {b} 人", n=segment.name_zh, m=limit, b=now),
                        compose("{n}: fewer than {m} in the first run, {b} now", n=segment.name_en, m=limit, b=now),
                        bullet=True)
    return section
