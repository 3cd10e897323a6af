"""Raw layer, malformed lines: split a CSV file into the records that parse and the lines that do not (a quoted
value never closed, a wrong number of fields, a stray quote, bytes that are not UTF-8, a NUL byte, a line over
MAX_LINE_BYTES), so that one bad line is a quarantined row instead of a failed run.

Only a file the strict parser rejects comes here: a clean file never pays for this pass. The pass streams the file
line by line (memory stays flat) and writes a copy in which each malformed line is an empty line: the CSV readers
skip empty lines but count them, so every other record keeps the row number it has in the original file.
"""

import csv
from collections import deque
from pathlib import Path

# A quoted value may span lines; one still open after this many lines is taken as never closed. This bounds the
# work an unclosed quote costs, since every line after it is read again on its own.
MAX_RECORD_LINES = 1000
RAW_TEXT_CHARS = 500  # the raw text of a malformed line kept in quarantine, cut to this length
# A line (or a record spanning lines) longer than this is quarantined; the strict parser is given the same limit
# (DuckDB's own default), so it sends such a file here. Only the start of an oversized line is held in memory.
MAX_LINE_BYTES = 2_000_000
NUL = "\x00"
# Malformed lines are held in memory until the raw table is written: past this many (50 MB of text at most) the
# file is broken as a whole, and the pass stops instead of growing with the file.
MAX_MALFORMED_LINES = 100_000
# A line that is not UTF-8 but reads whole in one of these is a sign of a Chinese export read with the default
# encoding, not of one damaged line: the caller stops the run and names the setting.
LEGACY_ENCODINGS = ("gbk", "gb18030")


def reads_as_legacy(raw: bytes) -> str | None:
    for encoding in LEGACY_ENCODINGS:
        try:
            raw.decode(encoding)
            return encoding
        except UnicodeDecodeError:
            continue
    return None


class _Record:
    """Fields of one record as its text arrives line by line: the state carries over, so a line is scanned once."""

    def __init__(self, delimiter: str) -> None:
        self.delimiter, self.fields, self.state, self.problem = delimiter, 1, "start", None

    def feed(self, text: str) -> None:
        if self.problem is not None:
            return
        if '"' not in text and self.state == "quoted":
            return  # more of a quoted value: nothing to count
        if '"' not in text and self.state in ("start", "plain"):
            # The common case, at the speed of str.count.
            self.fields += text.count(self.delimiter)
            if text:
                self.state = "start" if text.endswith(self.delimiter) else "plain"
            return
        for char in text:
            if self.state == "quoted":
                if char == '"':
                    self.state = "closing"
            elif self.state == "closing":  # a quote inside a quoted value: doubled (escaped) or the value's end
                if char == '"':
                    self.state = "quoted"
                elif char == self.delimiter:
                    self.fields, self.state = self.fields + 1, "start"
                else:
                    self.problem = "text after the closing quote of a value"
                    return
            elif char == self.delimiter:
                self.fields, self.state = self.fields + 1, "start"
            elif char == '"':
                if self.state == "plain":
                    self.problem = 'a quote inside an unquoted value (quote the whole value and double inner quotes)'
                    return
                self.state = "quoted"
            else:
                self.state = "plain"

    @property
    def open(self) -> bool:
        return self.problem is None and self.state == "quoted"

    def reason(self, width: int) -> str | None:
        if self.problem is not None:
            return self.problem
        if self.open:
            return "a quoted value is never closed"
        return None if self.fields == width else f"expected {width} fields, found {self.fields}"


class TooManyMalformedLines(ValueError):
    """More than MAX_MALFORMED_LINES malformed lines; `first` is the first of them."""

    def __init__(self, first: dict) -> None:
        super().__init__(f"more than {MAX_MALFORMED_LINES} malformed lines")
        self.first = first


def _line_break(raw: bytes) -> bytes:
    return b"\r\n" if raw.endswith(b"\r\n") else b"\n" if raw.endswith(b"\n") else b""


def _with_lf(raw: bytes) -> bytes:
    """The line as the copy writes it: a CRLF break as LF. DuckDB's strict parser takes its line break from the
    first line and fails on a file that mixes CRLF and LF (two exports appended to each other)."""
    return raw[:-2] + b"\n" if raw.endswith(b"\r\n") else raw


def _numbered_lines(src, first: int):
    """(line number, raw bytes, length without the line break) of each line. A line over MAX_LINE_BYTES is not
    read into memory whole: its start and its line break stand for it, its length is counted."""
    number = first
    while raw := src.readline(MAX_LINE_BYTES + 1):
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            size = len(raw)
            while (more := src.readline(1 << 20)) and not more.endswith(b"\n"):
                size += len(more)
            ending = _line_break(more)
            size += len(more) - len(ending)
            raw = raw[:RAW_TEXT_CHARS * 4] + ending
        else:
            size = len(raw) - len(_line_break(raw))
        yield number, raw, size
        number += 1


def _nul_reason(taken: list[tuple[int, bytes, int]], delimiter: str, names: list[str]) -> str | None:
    """Where the first NUL byte of a record is: line (when not the record's first), column and field."""
    for index, (number, raw, _) in enumerate(taken):
        text = raw.decode("utf-8", errors="replace")
        column = text.find(NUL)
        if column < 0:
            continue
        record = "".join(line.decode("utf-8", errors="replace") for _, line, _ in taken)
        fields = next(csv.reader([record.rstrip("\r\n")], delimiter=delimiter), [])
        field = next((i for i, value in enumerate(fields) if NUL in value), None)
        where = f"on line {number}, column {column + 1}" if index else f"in column {column + 1}"
        named = f" (field {field + 1}, {names[field]!r})" if field is not None and field < len(names) else ""
        return f"a NUL byte (0x00) {where}{named}; the export wrote a binary zero into a value"
    return None


def split_malformed_lines(readable: Path, target: Path, delimiter: str) -> tuple[int, list[dict]]:
    """Copy UTF-8 CSV `readable` to `target` with each malformed line emptied. Returns the number of well-formed
    records and the malformed lines: their data row number (as the readers number rows: header 0, blank lines
    counted), file line, raw text (cut to RAW_TEXT_CHARS), reason, and for bytes that are not UTF-8 the legacy
    encoding the line reads in, if any (reads_as).

    A record that parses but holds a NUL byte or is longer than MAX_LINE_BYTES is left out whole (one empty line
    for all its lines, so the rows after it keep their numbers); a record that does not parse leaves out its first
    line only, and the lines after it get their own turn."""
    malformed: list[dict] = []
    good = 0
    with readable.open("rb") as src, target.open("wb") as dst:
        header = src.readline()
        dst.write(_with_lf(header))
        header_text = header.decode("utf-8-sig", errors="replace").rstrip("\r\n")
        names = next(csv.reader([header_text], delimiter=delimiter), [])
        width = len(names)
        ahead: deque[tuple[int, bytes, int]] = deque()  # lines read while a quoted value was open, to read again
        numbered = _numbered_lines(src, 2)

        def next_line() -> tuple[int, bytes, int] | None:
            return ahead.popleft() if ahead else next(numbered, None)

        row = 0
        while (item := next_line()) is not None:
            number, raw, size = item
            row += 1
            if not raw.rstrip(b"\r\n"):
                dst.write(_with_lf(raw))  # a blank line: no data, but a row number as in the readers
                continue
            taken, reason, reads_as, whole = [item], None, None, False
            if size > MAX_LINE_BYTES:
                reason = (f"the line is {size:,} bytes long, over the limit of {MAX_LINE_BYTES:,} "
                          f"(from column {MAX_LINE_BYTES + 1:,} on); is the delimiter or the quoting wrong?")
            record = _Record(delimiter)
            try:
                if reason is None:
                    record.feed(raw.decode("utf-8").rstrip("\r\n"))
                    while record.open and len(taken) < MAX_RECORD_LINES and (more := next_line()) is not None:
                        taken.append(more)
                        record.feed("\n" + more[1].decode("utf-8").rstrip("\r\n"))
            except UnicodeDecodeError as exc:
                if len(taken) == 1:
                    reason = f"bytes {raw[exc.start:exc.end]!r} are not valid utf-8; check 'encoding' in the config"
                    reads_as = reads_as_legacy(raw)
            reason = reason or record.reason(width)
            if reason is None and (reason := _nul_reason(taken, delimiter, names)) is not None:
                whole = True
            if reason is None and len(taken) > 1 and sum(line[2] + 1 for line in taken) > MAX_LINE_BYTES:
                reason, whole = (f"a record of more than {MAX_LINE_BYTES:,} bytes (lines {number} to "
                                 f"{taken[-1][0]})"), True
            if reason is None:
                dst.writelines(_with_lf(line) for _, line, _ in taken)
                good += 1
                continue
            if not whole:
                # Only the first line is malformed: the lines read after it, while a quote looked open, get their
                # own turn.
                ahead.extendleft(reversed(taken[1:]))
                if len(taken) > 1:  # the first line alone left a quote open, and no later line closes it well
                    reason = "a quoted value is never closed"
                taken = taken[:1]
            dst.write(_with_lf(_line_break(taken[-1][1])))
            text = "".join(line.decode("utf-8", errors="replace") for _, line, _ in taken).rstrip("\r\n")
            text = text.replace(NUL, "\\x00")  # kept visible, and out of the tables' text
            malformed.append({"row": row, "line": number, "raw_text": text[:RAW_TEXT_CHARS], "reason": reason,
                              "reads_as": reads_as})
            if len(malformed) > MAX_MALFORMED_LINES:
                raise TooManyMalformedLines(malformed[0])
    return good, malformed
