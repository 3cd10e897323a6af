"""Raw layer, JSON: a file holding an array of records, or one record per line (JSON Lines), read as an all-text
frame with 1-based row numbers.

Polars reads a well-formed file in one go. When it cannot (a cut-off line, a value that is text in one record and a
number or true/false in another), the file is read again record by record:

- in JSON Lines each line stands alone, so a line that is not a JSON object is left out and kept as a malformed
  line (row, file line, raw text, reason with its column, format JSON), which staging quarantines as it does a
  CSV's; the other lines load. A file with no good line stops with the first bad one's line and column;
- an array is a single JSON value, so a syntax error anywhere stops the file, naming the line and column.

Either way every value is read as text, whatever type other records give it."""

import io
import json
import math
from pathlib import Path

import polars as pl

from assets.raw.errors import IngestError
from assets.raw.lines import MAX_MALFORMED_LINES, RAW_TEXT_CHARS, reads_as_legacy

BOM_TEXT = "\ufeff"


def read_json_records(path: Path, data: bytes) -> tuple[pl.DataFrame, list[int] | None, list[dict]]:
    """The records of JSON text `data` (UTF-8, without a byte-order mark) read from `path`, as text; their row
    numbers when some lines were left out (a JSON Lines row is its line among the non-blank ones), else None for
    1, 2, ...; and the malformed lines of a JSON Lines file (row, line, raw_text, reason)."""
    body = data.lstrip(b" \r\n\t")
    if not body:
        raise IngestError(f"{path}: the file is empty")
    is_array = body.startswith(b"[")
    read = pl.read_json if is_array else pl.read_ndjson
    try:
        # Inferring types finds the columns; reading again with every column as text takes each value as text
        # (inferred types would turn a true among numbers into 1, or reject a quoted "12" after 12s).
        columns = pl.read_json(io.BytesIO(data), infer_schema_length=None).schema if is_array \
            else pl.scan_ndjson(io.BytesIO(data), infer_schema_length=None).collect_schema()
        _reject_nested(path, [name for name, dtype in columns.items() if dtype.is_nested()])
        return read(io.BytesIO(data), schema={name: pl.String for name in columns}), None, []
    except pl.exceptions.PolarsError:
        pass  # read it record by record below, which says where and what the problem is
    return _array_records(path, data) if is_array else _line_records(path, data)


def _array_records(path: Path, data: bytes) -> tuple[pl.DataFrame, list[int] | None, list[dict]]:
    try:
        records = json.loads(data, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise IngestError(f"{path}: values nested too deeply; the contract needs flat records") from None
    except UnicodeDecodeError:
        raise IngestError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    except ValueError as exc:
        where = f"line {exc.lineno}, column {exc.colno}: " if isinstance(exc, json.JSONDecodeError) else ""
        raise IngestError(f"{path}: {where}not valid JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise IngestError(f"{path}: not a JSON array of records (objects)")
    names = list(dict.fromkeys(key for record in records for key in record))
    _reject_nested(path, [name for name in names
                          if any(isinstance(record.get(name), dict | list) for record in records)])
    return _as_text(path, names, [json.dumps(record).encode("utf-8") for record in records]), None, []


def _line_records(path: Path, data: bytes) -> tuple[pl.DataFrame, list[int] | None, list[dict]]:
    """JSON Lines read line by line: the good lines' texts are kept (not their parsed values, so memory stays near
    the file's size), the others become malformed lines."""
    texts, rows, malformed = [], [], []
    names: dict[str, None] = {}  # every key, in order of first appearance
    nested: dict[str, None] = {}
    row = 0
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        row += 1
        record, reason, body = _line_record(path, number, raw)
        if reason is not None:
            malformed.append({"row": row, "line": number, "reason": reason, "format": "JSON",
                              "raw_text": raw.decode("utf-8", errors="replace")[:RAW_TEXT_CHARS]})
            if len(malformed) > MAX_MALFORMED_LINES:
                break
            continue
        for key, value in record.items():
            names[key] = None
            if isinstance(value, dict | list):
                nested[key] = None
        texts.append(body.encode("utf-8"))
        rows.append(row)
    if malformed and (not texts or len(malformed) > MAX_MALFORMED_LINES):
        first = malformed[0]
        many = f"; more than {MAX_MALFORMED_LINES:,} lines are malformed" if len(malformed) > MAX_MALFORMED_LINES \
            else ""
        raise IngestError(f"{path}: line {first['line']}: malformed JSON record: {first['reason']}{many}")
    _reject_nested(path, list(nested))
    return _as_text(path, list(names), texts), rows, malformed


def _line_record(path: Path, number: int, raw: bytes) -> tuple[dict | None, str | None, str]:
    """One line's record, or why it is not one, and its JSON text. Columns count characters of the line as it is
    in the file."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        legacy = reads_as_legacy(raw)
        if legacy:  # the whole file is in a legacy encoding, not one damaged line: stop, as a CSV's read does
            raise IngestError(f"{path}: line {number}: bytes that are not UTF-8 but read as {legacy.upper()}; "
                              "JSON files must be UTF-8: save the file as UTF-8") from None
        column = len(raw[:exc.start].decode("utf-8", errors="replace")) + 1
        return None, f"bytes that are not UTF-8 at column {column}", ""
    # A byte-order mark inside the file (two exports joined end to end) starts a record as any other line.
    body = text.lstrip().removeprefix(BOM_TEXT).lstrip()
    offset = len(text) - len(body)
    try:
        record = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        # "Unterminated string starting at" is the one message of json's that names its own place.
        return None, f"{exc.msg.removesuffix(' at')} at column {exc.colno + offset}", body
    except ValueError as exc:
        return None, str(exc), body
    except RecursionError:
        return None, "values nested too deeply", body
    if not isinstance(record, dict):
        return None, f"a JSON {type(record).__name__}, not an object", body
    return record, None, body


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a number")
    return value


def _as_text(path: Path, names: list[str], texts: list[bytes]) -> pl.DataFrame:
    """The good JSON texts' records as text columns named `names` (every key, in order of first appearance)."""
    if not texts:
        return pl.DataFrame()
    try:
        return pl.read_ndjson(io.BytesIO(b"\n".join(texts)), schema={name: pl.String for name in names})
    except pl.exceptions.PolarsError as exc:
        raise IngestError(f"{path}: not valid JSON records ({str(exc).splitlines()[0]})") from None


def _reject_nested(path: Path, nested: list[str]) -> None:
    if nested:
        raise IngestError(f"{path}: column(s) {nested} hold nested values; the contract needs flat records")


def _reject_constant(name: str) -> None:
    """NaN and Infinity are not JSON, though Python's parser takes them."""
    raise ValueError(f"{name} is not a JSON value")
