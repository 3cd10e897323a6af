"""Staging rules: the row-level Rule (quarantine a row for a column, with a reason), the rules shared by both
shapes and by profiles, and the config values the staging SQL takes as bound parameters."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from pipelines.core.config import SourceConfig
from pipelines.core.sql import sql_literal


@dataclass(frozen=True)
class Rule:
    """A row-level rule: when `failing_when` holds, the row is quarantined for `column` with `reason`."""

    column: str
    failing_when: str  # SQL over the typed columns; static text, never built from data
    reason: str  # SQL expression yielding the reason text
    raw_value: str  # SQL expression yielding the offending raw text


def rule_columns(rules: list[Rule]) -> str:
    """Three CASE expressions naming the first failing rule's column, reason and raw value."""
    if not rules:
        return "NULL::VARCHAR AS bad_column, NULL::VARCHAR AS reason, NULL::VARCHAR AS bad_value"
    column = " ".join(f"WHEN {r.failing_when} THEN {sql_literal(r.column)}" for r in rules)
    reason = " ".join(f"WHEN {r.failing_when} THEN {r.reason}" for r in rules)
    value = " ".join(f"WHEN {r.failing_when} THEN {r.raw_value}" for r in rules)
    return f"CASE {column} END AS bad_column, CASE {reason} END AS reason, CASE {value} END AS bad_value"


def numeric_rules(columns: list[str]) -> list[Rule]:
    return [
        Rule(c, f"{c}_text IS NOT NULL AND {c} IS NULL", sql_literal(f"{c} is not a number"), f"{c}_text")
        for c in columns
    ]


PROFILE_RULES = [
    *numeric_rules(["age", "birth_year", "income"]),
    Rule("age", "age NOT BETWEEN $age_min AND $age_max",
         "'age ' || age_text || ' is outside quality.age_range ' || $age_range_text", "age_text"),
    Rule("income", "income NOT BETWEEN $income_min AND $income_max",
         "'income ' || income_text || ' is outside quality.income_range ' || $income_range_text", "income_text"),
    Rule("gender", "gender_text IS NOT NULL AND gender IS NULL",
         "'gender ' || gender_text || ' is not in values.gender'", "gender_text"),
    Rule("home_owner", "home_owner_text IS NOT NULL AND home_owner IS NULL",
         "'home_owner ' || home_owner_text || ' is not a yes/no token in values.home_owner'", "home_owner_text"),
]

# Rules shared by both shapes, evaluated after the shape's own parsing rules.
PAYMENT_RULE = Rule(
    "payment_method", "payment_method_text IS NOT NULL AND NOT list_contains($payment_methods, payment_method)",
    "'payment_method ' || payment_method_text || ' is not in values.payment_methods'", "payment_method_text")
FUTURE_RULE = Rule(
    "order_ts", "order_ts > $future_limit",
    "'order_ts ' || order_ts_text || ' is in the future (later than the run by more than "
    "quality.future_tolerance_hours)'", "order_ts_text")


def _range_text(bounds: tuple[float, float]) -> str:
    """[0, 120] whether the config said 0 or 0.0, so a reason reads the same wherever the range came from."""
    return "[" + ", ".join(str(int(b)) if float(b).is_integer() else str(b) for b in bounds) + "]"


def token_parameters(config: SourceConfig, run_started: datetime) -> dict:
    """Bound parameters of the staging SQL: every value from the config travels as a parameter, never as text."""
    gender = config.values.gender
    quality = config.quality
    aliases = config.values.payment_aliases
    return {
        "payment_tokens": [token.upper() for token in aliases],
        "payment_targets": [target.upper() for target in aliases.values()],
        "payment_methods": [code.upper() for code in config.values.payment_methods],
        "cancelled_statuses": [status.upper() for status in config.values.cancelled_statuses],
        "future_limit": run_started + timedelta(hours=quality.future_tolerance_hours),
        "age_min": quality.age_range[0], "age_max": quality.age_range[1],
        "age_range_text": _range_text(quality.age_range),
        "income_min": quality.income_range[0], "income_max": quality.income_range[1],
        "income_range_text": _range_text(quality.income_range),
        "max_quantity": quality.max_quantity, "max_line_amount": quality.max_line_amount,
        "gender_tokens": [token.upper() for token in gender],
        "gender_values": list(gender.values()),
        "true_tokens": [t.upper() for t in config.values.home_owner.true_tokens],
        "false_tokens": [t.upper() for t in config.values.home_owner.false_tokens],
        "flag_true": [t.upper() for t in config.orders.flag_tokens.true_tokens],
        "flag_false": [t.upper() for t in config.orders.flag_tokens.false_tokens],
        "date_formats": list(config.orders.date_formats),
    }
