"""The Dagster code location that `make ui` and the daemon load: the graph with resources configured from the
environment (PERSONA_CONFIG, PERSONA_WAREHOUSE, resolved when a run or a tick starts, not at import)."""

import os

import dagster as dg

from pipelines.core.resources import (
    DEFAULT_MEMORY_LIMIT,
    SourceResource,
    WarehouseResource,
)
from pipelines.jobs import build_definitions

defs = build_definitions({
    "warehouse": WarehouseResource(
        path=dg.EnvVar("PERSONA_WAREHOUSE"),
        memory_limit=os.environ.get("PERSONA_DUCKDB_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT),
    ),
    "source": SourceResource(config_path=dg.EnvVar("PERSONA_CONFIG")),
})
