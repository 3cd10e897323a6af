"""Raw layer, malformed lines: split a CSV file into the records that parse and the lines that do not (a quoted
value never closed, a wrong number of fields, a stray quote, bytes that are not UTF-8), so that one bad line is a
quarantined row instead of a failed run.

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
# Malformed lines are held in memory until the raw table is written: past this many (50 MB of text at most) the
# file is broken as a whole, and the pass stops instead of growing with the file.
MAX_MALFORMED_LINES = 100_000
# A line that is not UTF-8 but reads whole in one of these is a sign of a Chinese export read with the default
# encoding, not of one damaged line: the caller stops the run and names the setting.
LEGACY_ENCODINGS = ("gbk", "gb18030")


def _reads_as_legacy(raw: bytes) -> str | None:
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


def split_malformed_lines(readable: Path, target: Path, delimiter: str) -> tuple[int, list[dict]]:
    """Copy UTF-8 CSV `readable` to `target` with each malformed line emptied. Returns the number of well-formed
    records and the malformed lines: their data row number (as the readers number rows: header 0, blank lines
    counted), file line, raw text (cut to RAW_TEXT_CHARS), reason, and for bytes that are not UTF-8 the legacy
    encoding the line reads in, if any (reads_as)."""
    malformed: list[dict] = []
    good = 0
    with readable.open("rb") as src, target.open("wb") as dst:
        header = src.readline()
        dst.write(header)
        header_text = header.decode("utf-8-sig", errors="replace").rstrip("\r\n")
        width = len(next(csv.reader([header_text], delimiter=delimiter), []))
        ahead: deque[tuple[int, bytes]] = deque()  # lines read while a quoted value was open, to read again
        numbered = enumerate(src, start=2)

        def next_line() -> tuple[int, bytes] | None:
            return ahead.popleft() if ahead else next(numbered, None)

        row = 0
        while (item := next_line()) is not None:
            number, raw = item
            row += 1
            if not raw.rstrip(b"\r\n"):
                dst.write(raw)  # a blank line: no data, but a row number as in the readers
                continue
            taken, reason, reads_as = [item], None, None
            record = _Record(delimiter)
            try:
                record.feed(raw.decode("utf-8").rstrip("\r\n"))
                while record.open and len(taken) < MAX_RECORD_LINES and (more := next_line()) is not None:
                    taken.append(more)
                    record.feed("\n" + more[1].decode("utf-8").rstrip("\r\n"))
            except UnicodeDecodeError as exc:
                if len(taken) == 1:
                    reason = f"bytes {raw[exc.start:exc.end]!r} are not valid utf-8; check 'encoding' in the config"
                    reads_as = _reads_as_legacy(raw)
            reason = reason or record.reason(width)
            if reason is None:
                dst.writelines(line for _, line in taken)
                good += 1
                continue
            # Only the first line is malformed: the lines read after it, while a quote looked open, get their own turn.
            ahead.extendleft(reversed(taken[1:]))
            if len(taken) > 1:  # the first line alone left a quote open, and no later line closes it well
                reason = "a quoted value is never closed"
            dst.write(_line_break(raw))
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            malformed.append({"row": row, "line": number, "raw_text": text[:RAW_TEXT_CHARS], "reason": reason,
                              "reads_as": reads_as})
            if len(malformed) > MAX_MALFORMED_LINES:
                raise TooManyMalformedLines(malformed[0])
    return good, malformed
