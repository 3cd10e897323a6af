"""Asset checks, one module per layer they check."""

from quality.checks.gate import ALL_CHECKS

__all__ = ["ALL_CHECKS"]
