"""Audiences: named rules over one per-customer view, as the source config declares them (`audiences:`).

A rule is a SQL boolean expression, e.g. `value_tier = 'high_value' and churn_risk >= 0.5 and cat_wine > 0`. It is
read-only by construction, in two layers:

1. Parsed, not pattern-matched (`parse_rule`, at config load): DuckDB's own parser serialises
   `SELECT 1 FROM audience_base WHERE <rule>` to JSON (`json_serialize_sql`, which accepts only SELECT statements),
   and the tree must be that one SELECT with nothing but the WHERE clause filled in (no second statement, no
   ORDER BY / GROUP BY / UNION / CTE smuggled after the expression), and the expression may only hold column
   names, constants, comparisons, AND / OR / NOT, IN lists, BETWEEN, CASE, CAST, IS [NOT] NULL, LIKE and the
   scalar functions of `ALLOWED_FUNCTIONS`. Subqueries, `*`, parameters, qualified names (`quality.load_audit.x`),
   table functions (`read_csv`, `glob`, ...) and every other function are refused with a one-line reason naming
   the audience. Column names must be columns of the view: the fixed ones (`FIXED_COLUMNS`) or a feature column
   (`cat_<category>`, `pay_<method>`), whose exact set depends on the shop's data and is checked again at run time.
2. Evaluated in a sandbox (assets/audiences/): an in-memory DuckDB connection with file access off, extension
   loading off and its configuration locked, which holds only the per-customer view; so even an expression that
   slipped past the parser could not read or write a file or see another table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import duckdb
from pydantic import Field, model_validator

from pipelines.core.sources import Strict

VIEW_NAME = "audience_base"
_WRAPPER = f"SELECT 1 FROM {VIEW_NAME} WHERE "

# The per-customer view every rule reads, column -> (source table, meaning); documented in docs/configuration.md.
FIXED_COLUMNS: dict[str, tuple[str, str]] = {
    "customer_id": ("segments.customer_segments", "the customer id"),
    "segment_id": ("segments.customer_segments", "stable segment id"),
    "segment_name_zh": ("segments.customer_segments", "Chinese segment name"),
    "segment_name_en": ("segments.customer_segments", "English segment name"),
    "is_outlier": ("segments.customer_segments", "flagged by the outlier screen"),
    "value_tier": ("segments.customer_value_tiers", "value_tier_key: high_value, potential, at_risk, low_value"),
    "value_tier_zh": ("segments.customer_value_tiers", "value tier in Chinese"),
    "value_tier_en": ("segments.customer_value_tiers", "value tier in English"),
    "rfm_tier": ("segments.customer_value_tiers", "rfm_tier_key: important_value, general_win_back, ..."),
    "rfm_tier_zh": ("segments.customer_value_tiers", "RFM tier in Chinese"),
    "rfm_tier_en": ("segments.customer_value_tiers", "RFM tier in English"),
    "r_score": ("segments.customer_value_tiers", "recency score 1..5"),
    "f_score": ("segments.customer_value_tiers", "frequency score 1..5"),
    "m_score": ("segments.customer_value_tiers", "monetary score 1..5"),
    "churn_risk": ("predict.churn_risk", "probability of no purchase in the next predict.horizon_days days"),
    "at_risk": ("predict.churn_risk", "churn_risk >= predict.high_risk_threshold"),
    "p_alive": ("predict.customer_value", "probability that the customer still buys (MBG/NBD)"),
    "expected_purchases": ("predict.customer_value", "expected purchase days in the next clv_horizon_days"),
    "expected_order_value": ("predict.customer_value", "expected spend per purchase"),
    "expected_spend": ("predict.customer_value", "expected spend in the next clv_horizon_days"),
    "next_categories": ("predict.next_category", "the recommended categories, best first (a list)"),
    "age": ("features.customer_features", "age in years"),
    "income": ("features.customer_features", "yearly income"),
    "is_female": ("features.customer_features", "1 female, 0 male, NULL unknown"),
    "is_home_owner": ("features.customer_features", "1 owner, 0 not, NULL unknown"),
    "n_orders": ("features.customer_features", "orders"),
    "total_spend": ("features.customer_features", "spend over all orders"),
    "avg_basket_value": ("features.customer_features", "spend per order"),
    "recency_days": ("features.customer_features", "days since the last order"),
    "tenure_days": ("features.customer_features", "days since the first order"),
}
# Feature columns whose names come from the data: the share of a customer's orders with that category / payment.
FEATURE_PREFIXES = ("cat_", "pay_")

# Scalar functions a rule may call (DuckDB's names; operators such as + and LIKE are functions in its tree).
ALLOWED_FUNCTIONS = frozenset({
    "+", "-", "*", "/", "//", "%", "^", "**", "||", "~~", "!~~", "~~*", "!~~*", "~~~",
    "abs", "round", "floor", "ceil", "ceiling", "sqrt", "ln", "log", "log10", "log2", "exp", "pow", "power",
    "sign", "greatest", "least", "isnan", "isfinite",
    "lower", "upper", "lcase", "ucase", "trim", "ltrim", "rtrim", "length", "strlen", "substr", "substring",
    "starts_with", "ends_with", "prefix", "suffix", "contains", "replace", "concat",
    "regexp_matches", "regexp_full_match",
    "list_contains", "list_has", "array_contains", "array_has", "list_has_any", "array_has_any", "list_has_all",
    "array_has_all", "list_value", "list_position", "list_extract", "array_extract", "len", "array_length",
    "list_count",
    "nullif", "ifnull", "date_diff", "datediff", "year", "month", "day",
})
# Expression nodes allowed at all (by DuckDB's class), besides FUNCTION (checked against the list above).
_ALLOWED_CLASSES = {"CONJUNCTION", "COMPARISON", "OPERATOR", "BETWEEN", "CASE", "CAST", "CONSTANT", "COLUMN_REF"}
_REFUSED_OPERATORS = {"ARRAY_CONSTRUCTOR_SUBQUERY"}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class RuleRefused(ValueError):
    """A rule that is not a read-only expression over the per-customer view; one line naming the audience."""


@dataclass(frozen=True)
class ParsedRule:
    columns: tuple[str, ...]  # the view's columns the rule reads, lower-cased, in order of first use


def _serialise(sql: str) -> dict:
    # A connection of its own, without file access: parsing needs none.
    with duckdb.connect(":memory:", config={"enable_external_access": False,
                                            "autoload_known_extensions": False}) as con:
        return json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])


def _template() -> dict:
    node = _serialise(_WRAPPER + "true")["statements"][0]["node"]
    node.pop("where_clause")
    return node


_TEMPLATE: dict | None = None


def _walk(node, audience: str, columns: list[str]) -> None:
    """Every expression node below `node`, checked; column names collected into `columns`."""
    if isinstance(node, list):
        for item in node:
            _walk(item, audience, columns)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("class")
    if kind is not None:
        if kind == "SUBQUERY" or node.get("type") in _REFUSED_OPERATORS:
            raise RuleRefused(f"audience {audience}: subqueries are not allowed; a rule reads only the columns of "
                              "the per-customer view")
        if kind == "STAR":
            raise RuleRefused(f"audience {audience}: * and COLUMNS(...) are not allowed; name the columns")
        if kind == "PARAMETER":
            raise RuleRefused(f"audience {audience}: parameters ($1, ?) are not allowed; write the value")
        if kind == "FUNCTION":
            name = str(node.get("function_name", "")).lower()
            if name not in ALLOWED_FUNCTIONS or node.get("schema") not in ("", "main") or node.get("catalog"):
                raise RuleRefused(f"audience {audience}: function {node.get('function_name')}() is not allowed in a "
                                  "rule (only comparisons, arithmetic and simple text, number and list functions)")
            if node.get("filter") or node.get("distinct") or (node.get("order_bys") or {}).get("orders"):
                raise RuleRefused(f"audience {audience}: aggregate clauses (FILTER, DISTINCT, ORDER BY) are not "
                                  "allowed in a rule")
        elif kind == "COLUMN_REF":
            names = node.get("column_names") or []
            if len(names) != 1:
                raise RuleRefused(f"audience {audience}: {'.'.join(names)!r} names another table; a rule reads only "
                                  "the columns of the per-customer view")
            if names[0].lower() not in columns:
                columns.append(names[0].lower())
        elif kind not in _ALLOWED_CLASSES:
            raise RuleRefused(f"audience {audience}: {kind.lower()} expressions are not allowed in a rule")
    for key, value in node.items():
        if key != "value":  # a constant's value is data, never an expression
            _walk(value, audience, columns)


def rule_expression(rule: str) -> str:
    """The rule as it is parsed and evaluated: in parentheses, each on a line of its own (so a trailing `--`
    comment ends at the rule's end)."""
    return f"(\n{rule.strip()}\n)"


def parse_rule(rule: str, audience: str = "?") -> ParsedRule:
    """The rule checked by DuckDB's parser as one read-only expression; RuleRefused (one line) otherwise."""
    global _TEMPLATE
    if not rule.strip():
        raise RuleRefused(f"audience {audience}: the rule is empty")
    parsed = _serialise(_WRAPPER + rule_expression(rule))
    if parsed.get("error"):
        message = " ".join(str(parsed.get("error_message", "")).split())
        if "Only SELECT" in message or 'at or near ";"' in message:
            message = "only one expression is allowed (no ';' or other statements)"
        raise RuleRefused(f"audience {audience}: the rule is not one SQL expression: {message}")
    statements = parsed.get("statements") or []
    if len(statements) != 1:
        raise RuleRefused(f"audience {audience}: only one expression is allowed (no ';' or other statements)")
    node = dict(statements[0]["node"])
    where = node.pop("where_clause", None)
    if _TEMPLATE is None:
        _TEMPLATE = _template()
    columns: list[str] = []
    _walk(where, audience, columns)
    if where is None or node != _TEMPLATE or statements[0].get("named_param_map"):
        raise RuleRefused(f"audience {audience}: the rule must be one boolean expression (no ORDER BY, GROUP BY, "
                          "UNION, LIMIT or other clauses after it)")
    return ParsedRule(tuple(columns))


def is_known_column(column: str, available: set[str] | None = None) -> bool:
    """At config load (`available` None) a fixed column or a cat_ / pay_ feature; at run time one of `available`."""
    if available is not None:
        return column in available
    return column in FIXED_COLUMNS or column.startswith(FEATURE_PREFIXES)


def check_columns(parsed: ParsedRule, audience: str, available: set[str] | None = None) -> None:
    for column in parsed.columns:
        if is_known_column(column, available):
            continue
        if available is None:
            raise RuleRefused(f"audience {audience}: unknown column {column!r}; the rule may read "
                              f"{', '.join(FIXED_COLUMNS)} and the cat_<category> / pay_<method> feature columns")
        raise RuleRefused(f"audience {audience}: unknown column {column!r}; this warehouse's per-customer view has "
                          f"{', '.join(sorted(available))}")


class Audience(Strict):
    """One named rule: customers of the per-customer view for whom it is true."""

    name: str = Field(min_length=1)
    description: str | None = None
    rule: str = Field(min_length=1)

    @model_validator(mode="after")
    def _valid(self) -> Audience:
        if not _NAME.match(self.name):
            raise ValueError(f"audience name {self.name!r}: use lower-case letters, digits and _, starting with a "
                             "letter (it names the export file audience_<name>.csv)")
        check_columns(parse_rule(self.rule, self.name), self.name)
        return self
