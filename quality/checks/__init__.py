"""Checks, one module per layer they check.

- expectations: the Great Expectations suites of the raw and staging tables. They run as an asset,
  quality/validation_results (with quality/validated_inputs), whose blocking checks are the suites; it is loaded
  with the asset layers (pipelines/jobs.py), not listed here.
- staging: the load audit identity and the quarantine share (`quality/load_audit`), blocking.
- segments: every customer segmented with unique names (`segments/customer_segments`), blocking.
- predict: the churn model's quality and the recommendations' lift, warnings only.
"""

from quality.checks import predict, segments, staging
from quality.checks.expectations import validation_tables

__all__ = ["ALL_CHECKS", "validation_tables"]

# The asset checks (blocking checks stop every downstream asset when they fail).
ALL_CHECKS = [*staging.CHECKS, *segments.CHECKS, *predict.CHECKS]
