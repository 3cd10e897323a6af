"""Staging products: the shop's product table (`products:`), typed and one row per sku, which order lines join by
sku to take their category (and a unit price they lack).

The table is a snapshot like the customer file: a later row of a sku wins (newer product data), superseded rows
are counted as removed duplicates and, when they differ, logged in quality.key_conflicts. Rows without a sku or
a category, or with a price that is not a number, are quarantined.
"""

import duckdb

from assets.staging.keys import id_text, id_variant, report_id_variants
from assets.staging.rules import Rule, numeric_rules, rule_columns
from assets.staging.typed import money_number, run_sql, text_of

PRODUCT_COLUMNS = ["category", "subcategory", "brand", "unit_price"]
# The temp table of one typed row per sku that order typing joins; staging.products is written from it.
PRODUCT_LOOKUP = "product_lookup"
EMPTY_PRODUCTS = ("SELECT NULL::VARCHAR AS sku, NULL::VARCHAR AS category, NULL::VARCHAR AS subcategory, "
                  "NULL::VARCHAR AS brand, NULL::DOUBLE AS unit_price, NULL::VARCHAR AS _source_file, "
                  "NULL::BIGINT AS _source_row LIMIT 0")


def type_products(con: duckdb.DuckDBPyConnection, params: dict, decimal_comma: bool = False) -> None:
    """typed_products (every raw row with the rules it fails) and product_lookup (the kept row per sku)."""
    rules = [
        Rule("sku", "sku IS NULL", "'missing sku'", "NULL"),
        Rule("category", "category IS NULL", "'missing category'", "NULL"),
        *numeric_rules(["unit_price"]),
        Rule("unit_price", "unit_price < 0", "'unit_price ' || unit_price_text || ' is negative'", "unit_price_text"),
    ]
    run_sql(con, f"""
        CREATE OR REPLACE TEMP TABLE typed_products AS
        WITH typed AS (
            SELECT _source_file, _source_row, {id_text('sku', fold_case=False)} AS sku,
                   {id_variant('sku', id_text('sku', fold_case=False))} AS sku_variant,
                   lower({text_of('category')}) AS category, lower({text_of('subcategory')}) AS subcategory,
                   {text_of('brand')} AS brand,
                   {text_of('unit_price')} AS unit_price_text,
                   {money_number(text_of('unit_price'), decimal_comma)} AS unit_price
            FROM raw.products
        )
        SELECT * EXCLUDE (unit_price_text), {rule_columns(rules)} FROM typed
    """, params)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE ranked_products AS
        SELECT *, row_number() OVER (PARTITION BY sku ORDER BY _source_file DESC, _source_row DESC) AS recency_rank
        FROM typed_products WHERE reason IS NULL""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {PRODUCT_LOOKUP} AS
        SELECT sku, {", ".join(PRODUCT_COLUMNS)}, _source_file, _source_row
        FROM ranked_products WHERE recency_rank = 1""")


def _differs(old: str, kept: str) -> str:
    return " OR ".join(f"{old}.{c} IS DISTINCT FROM {kept}.{c}" for c in PRODUCT_COLUMNS)


def stage_products(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Inside staging's transaction: quarantine, removed duplicates and conflicts of the product rows, and
    staging.products from product_lookup."""
    con.execute("""
        INSERT INTO quality.quarantine
        SELECT ?, 'products', _source_file, _source_row, bad_column, bad_value, reason, current_timestamp
        FROM typed_products WHERE reason IS NOT NULL""", [run_id])
    report_id_variants(con, run_id, "products", "(SELECT * FROM typed_products WHERE reason IS NULL)", "sku",
                       "sku_variant")
    con.execute(f"""
        INSERT INTO quality.removed_duplicates
        SELECT ?, 'products', old._source_file, old._source_row, kept._source_file, kept._source_row,
               CASE WHEN {_differs("old", "kept")} THEN 'conflict_superseded' ELSE 'exact' END
        FROM ranked_products old JOIN ranked_products kept ON kept.sku = old.sku AND kept.recency_rank = 1
        WHERE old.recency_rank > 1""", [run_id])
    differing = ", ".join(f"CASE WHEN old.{c} IS DISTINCT FROM kept.{c} THEN '{c}' END" for c in PRODUCT_COLUMNS)
    con.execute(f"""
        INSERT INTO quality.key_conflicts
        SELECT ?, 'products', 'sku', kept.sku, kept._source_file, kept._source_row, old._source_file,
               old._source_row, list_filter([{differing}], x -> x IS NOT NULL), 'last row in file order wins'
        FROM ranked_products old JOIN ranked_products kept ON kept.sku = old.sku AND kept.recency_rank = 1
        WHERE old.recency_rank > 1 AND ({_differs("old", "kept")})
        ORDER BY old._source_file, old._source_row""", [run_id])
    con.execute(f"CREATE OR REPLACE TABLE staging.products AS SELECT * FROM {PRODUCT_LOOKUP} ORDER BY sku")
    for table in ("typed_products", "ranked_products", PRODUCT_LOOKUP):
        con.execute(f"DROP TABLE IF EXISTS {table}")
