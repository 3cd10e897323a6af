"""Facts: every number the report prints, with the query that proves it.

The report never formats a number directly. Each number is a `Fact` added to a `FactBook`: its value (computed by
the report from the tables it loaded), how to print it (`kind`), and a scalar SQL query against the warehouse that
returns the same value on its own. Sentences are built from templates whose placeholders are facts or labels
(segment names, categories, ...), so the HTML marks every number as `<span class="fact" data-fact=KEY>`.

That makes "every number comes from a table" testable: re-run each fact's query, print the result the same way,
compare it with the span, and check that no digit in the visible text sits outside a fact or a label.

Facts of kind `param` are the report's own settings (the privacy threshold); they carry no query.
"""

from __future__ import annotations

import html
import math
import string
from dataclasses import dataclass, field
from datetime import date, datetime

PVALUE_FLOOR = 0.001  # a p-value below it prints as "<0.001"
KINDS = ("count", "pct", "money", "number", "decimal", "lift", "ratio", "score", "int", "date", "datetime", "text",
         "param", "pp", "signed", "pvalue", "change")


@dataclass(frozen=True)
class Fact:
    key: str
    kind: str
    value: object
    sql: str | None  # a query returning exactly one row with one column: the value
    params: tuple = ()


@dataclass(frozen=True)
class FactRef:
    key: str


@dataclass(frozen=True)
class Label:
    """Text taken from the tables or the label dictionaries (names, categories, methods, tiers), not a number."""

    text: str
    role: str = "label"


def _strip_zeros(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_value(kind: str, value: object, language: str = "en") -> str:
    """How a fact is printed. Both languages use the same digits; only a lift reads "5.3 倍" in Chinese prose and
    "5.3×" in English."""
    if value is None:
        return "–"
    if kind in ("text",):
        return str(value)
    if kind == "date":
        return value.strftime("%Y-%m-%d") if isinstance(value, (date, datetime)) else str(value)[:10]
    if kind == "datetime":
        return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else str(value)[:16]
    number = float(value)
    if math.isnan(number):
        return "–"
    if kind in ("count", "int", "param"):
        return f"{round(number):,}"
    if kind == "pct":
        return f"{number * 100:.1f}%"
    if kind == "money":
        return _strip_zeros(f"{number:,.0f}" if abs(number) >= 1000 else f"{number:,.1f}")
    if kind == "number":  # ages, days: whole when whole, else one decimal
        return _strip_zeros(f"{number:,.1f}")
    if kind == "decimal":
        return f"{number:,.1f}"
    if kind == "lift":
        digits = f"{number:.1f}" if number >= 0.95 else f"{number:.2f}"
        return f"{digits} 倍" if language == "zh" else f"{digits}×"
    if kind == "ratio":  # a ratio judged against a threshold near 1 (1.06× against 1.1×): two decimals always
        return f"{number:.2f} 倍" if language == "zh" else f"{number:.2f}×"
    if kind == "change":  # a relative change (week on week), signed
        return f"{number * 100:+.1f}%"
    if kind == "score":
        return f"{number:.3f}"
    if kind == "pp":  # a difference of two rates, in percentage points, signed
        return f"{number * 100:+.1f}"
    if kind == "signed":  # a difference of two amounts, signed
        return f"{number:+,.0f}" if abs(number) >= 1000 else f"{number:+,.1f}" if abs(number) >= 10 else \
            f"{number:+.2f}"
    if kind == "pvalue":
        return "<0.001" if number < PVALUE_FLOOR else f"{number:.3f}"
    raise ValueError(f"unknown fact kind {kind!r}")


@dataclass
class FactBook:
    facts: dict[str, Fact] = field(default_factory=dict)

    def add(self, key: str, kind: str, value: object, sql: str | None, params: tuple | list = ()) -> FactRef:
        if kind not in KINDS:
            raise ValueError(f"unknown fact kind {kind!r}")
        if kind != "param" and not sql:
            raise ValueError(f"fact {key} has no query")
        fact = Fact(key, kind, value, sql, tuple(params))
        known = self.facts.get(key)
        if known is not None and known != fact:
            raise ValueError(f"fact {key} added twice with different values")
        self.facts[key] = fact
        return FactRef(key)

    def text(self, ref: FactRef, language: str = "en") -> str:
        fact = self.facts[ref.key]
        return format_value(fact.kind, fact.value, language)

    def values(self) -> dict[str, object]:
        return {key: fact.value for key, fact in self.facts.items()}


Part = str | FactRef | Label


@dataclass(frozen=True)
class Sentence:
    parts: tuple[Part, ...]

    def html(self, book: FactBook, language: str = "en") -> str:
        out = []
        for part in self.parts:
            if isinstance(part, FactRef):
                out.append(f'<span class="fact" data-fact="{html.escape(part.key)}">'
                           f"{html.escape(book.text(part, language))}</span>")
            elif isinstance(part, Label):
                out.append(f'<span class="{part.role}">{html.escape(part.text)}</span>')
            else:
                out.append(html.escape(part))
        return "".join(out)

    def text(self, book: FactBook, language: str = "en") -> str:
        return "".join(book.text(p, language) if isinstance(p, FactRef) else p.text if isinstance(p, Label) else p
                       for p in self.parts)

    def __add__(self, other: Sentence) -> Sentence:
        return Sentence(self.parts + other.parts)


def compose(template: str, **values: Part | Sentence) -> Sentence:
    """A sentence from a template with named placeholders; the literal text must not contain digits (numbers are
    facts), so a template can never smuggle in an unchecked number."""
    parts: list[Part] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        if any(ch.isdigit() for ch in literal):
            raise ValueError(f"template text may not contain digits (numbers must be facts): {template!r}")
        if literal:
            parts.append(literal)
        if name is not None:
            value = values[name]
            if isinstance(value, Sentence):
                parts.extend(value.parts)
            elif isinstance(value, str):
                parts.append(Label(value))
            else:
                parts.append(value)
    return Sentence(tuple(parts))


def join(items: list[Sentence], separator: str) -> Sentence:
    parts: list[Part] = []
    for i, item in enumerate(items):
        if i:
            parts.append(separator)
        parts.extend(item.parts)
    return Sentence(tuple(parts))
