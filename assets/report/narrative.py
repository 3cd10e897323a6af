"""What the report says, as data: sections, segment cards and the whole narrative, with the thresholds the
words use. Built by text.build_narrative, drawn by html.render_page."""

from __future__ import annotations

from dataclasses import dataclass, field

from assets.report.data import ReportData, f_customers, f_known
from assets.report.facts import FactBook, FactRef, Sentence, compose
from assets.report.strategies import AppliedStrategy

LANGUAGES = ("zh", "en")
NOTABLE_LIFT = 1.2  # a category "stands out" for a segment from this lift on
RARE_LIFT = 0.5  # ... and is "rarely bought" below this one
NOTABLE_PAYMENT_LIFT = 1.2


@dataclass
class Table:
    """A table under a section's charts: one row per segment (`data-segment`, so the segment selector can focus
    it), cells as sentences (numbers are facts)."""

    headers: dict[str, list[str]]  # language -> column titles (no digits)
    rows: list[tuple[int, dict[str, list[Sentence]]]]  # (segment_id, language -> cells)
    caption: dict[str, str] = field(default_factory=dict)


@dataclass
class Section:
    key: str
    title: dict[str, str]
    charts: list[str]
    paragraphs: dict[str, list[Sentence]] = field(default_factory=lambda: {"zh": [], "en": []})
    bullets: dict[str, list[Sentence]] = field(default_factory=lambda: {"zh": [], "en": []})
    # Lines of a block to copy as is (a config snippet), shown after the text, one Sentence per line.
    snippet: dict[str, list[Sentence]] = field(default_factory=lambda: {"zh": [], "en": []})
    table: Table | None = None

    def say(self, zh: Sentence, en: Sentence, bullet: bool = False) -> None:
        target = self.bullets if bullet else self.paragraphs
        target["zh"].append(zh)
        target["en"].append(en)


@dataclass
class Card:
    segment_id: int
    name: dict[str, str]
    share: FactRef
    customers: FactRef
    portrait: dict[str, Sentence]
    strategies: list[AppliedStrategy]


@dataclass
class Narrative:
    intro: dict[str, list[Sentence]]
    cards: list[Card]
    other: dict[str, Sentence] | None
    sections: list[Section]
    notes: dict[str, list[Sentence]]


def _names(data: ReportData, segment_id: int) -> dict[str, str]:
    segment = data.segment(segment_id)
    return {"zh": segment.name_zh, "en": segment.name_en}


PROFILE_LABELS = {"age": ("年龄", "Age"), "income": ("收入", "Income"), "gender": ("性别", "Gender"),
                  "home_owner": ("住房情况", "Home ownership")}


def coverage(data: ReportData, book: FactBook, segment_id: int, profile_field: str,
             labelled: bool = True) -> dict[str, Sentence] | None:
    """Says how few members of a segment have a profile value, when fewer than half do or too few to print a
    median or share: "年龄：412 人中仅 1 人有资料" / "Age: known for 1 of 412". None when coverage needs no word
    (most members have the value, the warehouse predates coverage, or the export lacks the field for everyone).
    Without `labelled`, the field's name is left out, for a note in brackets beside its number."""
    segment = data.segment(segment_id)
    known = segment.known_of(profile_field)
    if known is None or not data.shop_has(profile_field) or not (segment.sparse(profile_field)
                                                                 or not segment.supported(profile_field)):
        return None
    n = f_customers(book, data, segment_id)
    if known == 0:
        zh, en = compose("{n} 人均无资料", n=n), compose("unknown for all {n}", n=n)
    else:
        k = f_known(book, data, segment_id, profile_field)
        zh, en = compose("{n} 人中仅 {k} 人有资料", n=n, k=k), compose("known for {k} of {n}", n=n, k=k)
    if not labelled:
        return {"zh": zh, "en": en}
    label_zh, label_en = PROFILE_LABELS[profile_field]
    return {"zh": compose("{l}：", l=label_zh) + zh, "en": compose("{l}: ", l=label_en) + en}
