"""Audience layer: named rules over one per-customer view, materialized every run (issue 22).

A shop declares audiences in its source config (`audiences:`, pipelines/core/audience_rules.py), each a SQL boolean
expression such as `value_tier = 'high_value' and churn_risk >= 0.5 and cat_wine > 0`. The view joins, per customer
of `segments.customer_segments`, the segment, the value and RFM tiers, churn risk, customer value, the recommended
next categories and every column of `features.customer_features` (the columns are listed in docs/configuration.md,
"Audiences"). It sits between predict and campaigns because it reads the predict tables.

Rules are checked twice: parsed at config load (one expression, only allowed nodes and functions, known columns),
and evaluated in a sandboxed in-memory DuckDB connection (no file access, configuration locked) that holds only the
view's columns the rules read. A rule that fails either way fails the run with one line naming the audience, before
anything is written.

Tables (schema `segments`, published like every other):
- `segments.audiences` (audience, customer_id): this run's members, replaced every run;
- `segments.audience_history` (run_id, computed_at, audience, customers, share, rule, description): one row per
  audience per run, appended and kept across runs in the working database (like
  `segments.customer_segment_history`).
"""
