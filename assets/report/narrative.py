"""What the report says, as data: sections, segment cards and the whole narrative, with the thresholds the
words use. Built by text.build_narrative, drawn by html.render_page."""

from __future__ import annotations

from dataclasses import dataclass, field

from assets.report.data import ReportData
from assets.report.facts import FactRef, Sentence
from assets.report.strategies import AppliedStrategy

LANGUAGES = ("zh", "en")
NOTABLE_LIFT = 1.2  # a category "stands out" for a segment from this lift on
RARE_LIFT = 0.5  # ... and is "rarely bought" below this one
NOTABLE_PAYMENT_LIFT = 1.2


@dataclass
class Section:
    key: str
    title: dict[str, str]
    charts: list[str]
    paragraphs: dict[str, list[Sentence]] = field(default_factory=lambda: {"zh": [], "en": []})
    bullets: dict[str, list[Sentence]] = field(default_factory=lambda: {"zh": [], "en": []})

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
