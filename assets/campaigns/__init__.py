"""Campaign layer: campaigns with holdout groups and their measured uplift (issue 21).

Where campaigns live. The published warehouse is replaced whole by every publish and the working database is the
pipeline's own, so the campaign definitions and assignments are kept in a third DuckDB file beside the working
database, `work/<name>.campaigns.duckdb` (the *campaign store*, assets/campaigns/store.py). Only `persona campaign`
writes it, under the run lock (pipelines/runner.py run_lock); nothing else ever deletes or rewrites it. Writing a
separate file also leaves the working database untouched between runs, so a damaged published file can still be
rebuilt from it (assets/publish/repair.py refuses when the working database changed since it was published).

Every nightly run copies the store into the working database (`campaigns.campaigns`, `campaigns.assignments`) and
measures every campaign over its window from `staging.orders` (`campaigns.results`, `campaigns.uplift`); the
publish step then carries the four tables into the published file like every other table. A campaign created
between two runs is in the store at once (`persona campaign list`) and in the published warehouse after the next
run.
"""
