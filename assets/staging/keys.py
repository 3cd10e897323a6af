"""Staging keys: the one rule that normalises ids (customer_id, order_id, sku) in SQL, the report of ids that
collide only after it (quality.key_conflicts), and the quarantine of order lines whose order id belongs to another
customer.

The id rule (docs/quality.md, "Ids"), applied to the text as read:

1. invisible characters are removed wherever they are: control characters (tab, CR, LF, NUL, U+007F-U+009F),
   format characters (zero-width space U+200B, U+200C, U+200D, U+2060, the byte-order mark U+FEFF, bidi marks,
   soft hyphen), line and paragraph separators and variation selectors;
2. NFKC, as far as it reaches ids: the full-width forms (U+FF01-U+FF5E, what Chinese input methods type) and the
   compatibility spaces (no-break, ideographic, the U+2000 family) become ASCII, the rest of the half-width and
   full-width forms block (half-width katakana, ￥) takes its NFKC character, and the result is composed (NFC).
   Other compatibility characters (ligatures, circled or superscript digits) are kept as they are;
3. trimmed of spaces; a spreadsheet's text formula (`="4926..."`, which Chinese shop consoles write so that Excel keeps
   a long number) is the text between its quotes; a float-typed integer (`14194.0`, a spreadsheet's way of writing
   an id) is the integer's text; an empty id is no id;
4. case is kept, unless `values.id_case` is `upper` or `lower` (customer and order ids; a sku keeps its case).

The rule costs one regular-expression test per id for an id of printable ASCII without spaces (nearly all of
them); only the others take the steps above. An id whose text as read (trimmed of spaces) differs from its
normalised form is a variant: typing keeps that text beside the id, NULL for every other row, and the ids with
more than one such form in a load are reported in quality.key_conflicts.
"""

import unicodedata

import duckdb
import polars as pl

from pipelines.core.ids import COMPAT_SPACES, EXCEL_TEXT_FORMULA, FLOAT_INTEGER, INVISIBLE_CODES, OTHER_FORMS

# Anything else than printable ASCII without spaces, a float-typed integer or a text formula (="4926"): such ids
# take the slow path.
_NEEDS_WORK = r"[^\x21-\x7e]|^[0-9]+\.0+$|^=\""


def _ranges(codes: list[int]) -> str:
    """A regular-expression character class body for the code points, as ranges (RE2 syntax)."""
    parts, start = [], None
    for previous, code in zip([None, *codes], [*codes, None], strict=True):
        if start is None:
            start = code
        elif code is None or code != previous + 1:
            parts.append(f"\\x{{{start:x}}}" if start == previous else f"\\x{{{start:x}}}-\\x{{{previous:x}}}")
            start = code
    return "".join(parts)


INVISIBLE = "[" + _ranges(INVISIBLE_CODES) + "]"
_OTHER_FROM = "".join(chr(code) for code in OTHER_FORMS)
_OTHER_TO = "".join(unicodedata.normalize("NFKC", chr(code)) for code in OTHER_FORMS)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _fold_width(text: str) -> str:
    """Full-width ASCII forms (U+FF01-U+FF5E are ASCII + 0xFEE0) and compatibility spaces as ASCII, character by
    character (0.6 us an id; translate() with the same 95-character map took 4.8 us); only for ids that hold one."""
    spaces = ", ".join(str(code) for code in COMPAT_SPACES)
    per_character = (f"array_to_string(list_transform(string_split({text}, ''), c -> CASE "
                     f"WHEN unicode(c) BETWEEN 65281 AND 65374 THEN chr(unicode(c) - 65248) "
                     f"WHEN unicode(c) IN ({spaces}) THEN ' ' ELSE c END), '')")
    full_width = "[\\x{ff01}-\\x{ff5e}" + _ranges(COMPAT_SPACES) + "]"
    folded = f"CASE WHEN regexp_matches({text}, '{full_width}') THEN {per_character} ELSE {text} END"
    other = "[" + _ranges(OTHER_FORMS) + "]"
    return (f"CASE WHEN regexp_matches({folded}, '{other}') "
            f"THEN translate({folded}, {_literal(_OTHER_FROM)}, {_literal(_OTHER_TO)}) ELSE {folded} END")


def id_text(column: str, fold_case: bool = True) -> str:
    """SQL: the normalised id of a raw text column (the rule above). `fold_case` applies `values.id_case` (the
    bound parameter $id_case); a sku keeps its case."""
    visible = f"regexp_replace({column}, '{INVISIBLE}', '', 'g')"
    composed = f"nfc_normalize({_fold_width(visible)})"
    trimmed = f"NULLIF(trim(regexp_replace(trim({composed}), '{EXCEL_TEXT_FORMULA}', '\\1')), '')"
    worked = f"regexp_replace({trimmed}, '{FLOAT_INTEGER}', '\\1')"
    normalised = f"CASE WHEN regexp_matches({column}, '{_NEEDS_WORK}') THEN {worked} ELSE NULLIF({column}, '') END"
    if not fold_case:
        return normalised
    return f"CASE $id_case WHEN 'upper' THEN upper({normalised}) WHEN 'lower' THEN lower({normalised}) " \
           f"ELSE {normalised} END"


def id_variant(raw: str, normalised: str) -> str:
    """SQL: the raw id text (trimmed of spaces) when it is not its normalised form, else NULL. `normalised` should
    be a column computed in an earlier step: the comparison with the raw text is cheap, the rule is not."""
    # Nested CASEs, not AND: DuckDB may reorder AND's terms and trim every row.
    return (f"CASE WHEN {normalised} IS DISTINCT FROM {raw} THEN "
            f"CASE WHEN {normalised} IS DISTINCT FROM NULLIF(trim({raw}), '') THEN trim({raw}) END END")


def _shown(text: str) -> str:
    """An id as a reason shows it: invisible and space characters other than the ASCII space as <U+XXXX>."""
    return "".join(f"<U+{ord(c):04X}>" if (unicodedata.category(c)[0] in "CZ" and c != " ")
                   or 0xFE00 <= ord(c) <= 0xFE0F else c for c in text)


def report_id_variants(con: duckdb.DuckDBPyConnection, run_id: str, input_name: str, table: str, key: str,
                       variant: str) -> None:
    """quality.key_conflicts: one row per form of an id beyond its first, when the load holds more than one form
    of it (`C001`, `C001<U+200B>`, `Ｃ００１`): kept = the first row of the first form in file order, superseded =
    the first row of the other form. The rows stay loaded, under the normalised id. `variant` is the column that
    holds the raw text of rows whose id was changed by normalisation."""
    rows = con.execute(f"""
        WITH variant_ids AS (SELECT DISTINCT {key} AS id FROM {table} WHERE {variant} IS NOT NULL),
        forms AS (
            SELECT {key} AS id, COALESCE({variant}, {key}) AS form,
                   min({{'file': _source_file, 'row': _source_row}}) AS first
            FROM {table} WHERE {key} IN (SELECT id FROM variant_ids)
            GROUP BY ALL),
        ranked AS (
            SELECT *, row_number() OVER (PARTITION BY id ORDER BY first) AS n,
                   first_value(first) OVER (PARTITION BY id ORDER BY first) AS kept,
                   first_value(form) OVER (PARTITION BY id ORDER BY first) AS kept_form
            FROM forms)
        SELECT id, kept.file, kept.row, first.file, first.row, kept_form, form
        FROM ranked WHERE n > 1 ORDER BY first""").fetchall()
    if not rows:
        return
    conflicts = [(run_id, input_name, key, id_, kept_file, kept_row, file, row, [key],
                  f"id variant: {_shown(form)!r} and {_shown(kept_form)!r} are both {id_!r} after normalisation "
                  "(NFKC, trimmed, invisible characters removed, values.id_case); loaded as one id")
                 for id_, kept_file, kept_row, file, row, kept_form, form in rows]
    # A frame, not executemany: an export that writes every id both ways makes one row per customer.
    frame = pl.DataFrame(conflicts, orient="row", schema={  # noqa: F841 - read by DuckDB's replacement scan
        "run_id": pl.Utf8, "input": pl.Utf8, "key_column": pl.Utf8, "key_value": pl.Utf8, "kept_file": pl.Utf8,
        "kept_row": pl.Int64, "superseded_file": pl.Utf8, "superseded_row": pl.Int64,
        "differing_columns": pl.List(pl.Utf8), "resolution": pl.Utf8})
    con.execute("INSERT INTO quality.key_conflicts SELECT * FROM frame")


FILE_ORDER = "ORDER BY _source_file, _source_row"


def quarantine_shared_order_ids(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """An order belongs to one customer: the customer of its first valid line in file order (files in name order,
    then rows), the line that also gives the order its payment method and channel. A later line of the same
    order_id naming another customer is quarantined as `order_id used by another customer`, naming both customers
    and the owner's line; the order keeps only its owner's lines. Runs on valid_typed_orders after the duplicate
    ranking (long shape, source order ids), so every row here is valid."""
    # Orders with more than one customer are found by hashes (grouping integers is cheaper than text, as in
    # rank_order_duplicates); a hash collision only brings an order into `shared`, where the exact test follows.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE shared_order_lines AS
        WITH candidates AS (
            SELECT hash(order_id) AS order_hash FROM valid_typed_orders
            GROUP BY 1 HAVING min(hash(customer_id)) <> max(hash(customer_id))),
        shared AS (
            SELECT typed_rowid, order_id, customer_id, _source_file, _source_row FROM valid_typed_orders
            WHERE hash(order_id) IN (SELECT order_hash FROM candidates)),
        owned AS (
            SELECT *,
                first_value(customer_id) OVER (PARTITION BY order_id {FILE_ORDER}) AS owner,
                first_value(_source_file) OVER (PARTITION BY order_id {FILE_ORDER}) AS owner_file,
                first_value(_source_row) OVER (PARTITION BY order_id {FILE_ORDER}) AS owner_row
            FROM shared)
        SELECT * FROM owned WHERE customer_id <> owner""")
    con.execute("""
        INSERT INTO quality.quarantine
        SELECT ?, 'orders', _source_file, _source_row, 'order_id', order_id,
               'order_id used by another customer: order ' || order_id || ' belongs to customer ' || owner
               || ' (its first line, row ' || owner_row::VARCHAR
               || CASE WHEN owner_file <> _source_file THEN ' of ' || parse_filename(owner_file) ELSE '' END
               || '), this line names customer ' || customer_id,
               current_timestamp
        FROM shared_order_lines ORDER BY _source_file, _source_row""", [run_id])
    con.execute("INSERT INTO dropped_typed_rows SELECT typed_rowid FROM shared_order_lines")
    con.execute("DROP TABLE shared_order_lines")
