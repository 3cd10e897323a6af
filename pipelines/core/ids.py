"""The characters the id rule folds or removes (docs/quality.md, "Ids"), and the rule itself in Python.

Staging applies the rule in SQL (assets/staging/keys.py, `id_text`). The raw layer needs it in Python before it
hashes an id (privacy.pii_columns: hash): a salted hash of `\\t4926`, `="4926"` or an empty cell is no longer the
id staging would read, so the same customer would get two hashed ids, and every row without an id one shared
"customer" (a trial's 拼多多 export: 175 orders of blank phone numbers became one high-value customer).
"""

from __future__ import annotations

import re
import unicodedata


def _invisible_codes() -> list[int]:
    """Control, format, line and paragraph separator characters and variation selectors: removed from ids."""
    return [code for code in range(0x110000)
            if not 0xD800 <= code <= 0xDFFF
            and (unicodedata.category(chr(code)) in ("Cc", "Cf", "Zl", "Zp") or 0xFE00 <= code <= 0xFE0F)]


INVISIBLE_CODES = _invisible_codes()
# Spaces whose NFKC form is the ASCII space (the ideographic space U+3000 among them).
COMPAT_SPACES = [code for code in range(0x80, 0x3001) if unicodedata.normalize("NFKC", chr(code)) == " "]
# The half-width and full-width forms block beyond the full-width ASCII forms: one character each under NFKC.
OTHER_FORMS = [code for code in range(0xFF5F, 0xFFEF)
               if len(unicodedata.normalize("NFKC", chr(code))) == 1 and unicodedata.normalize("NFKC", chr(code))
               != chr(code)]
# Full-width ASCII forms: U+FF01-U+FF5E are ASCII + 0xFEE0.
FULL_WIDTH_ASCII = range(0xFF01, 0xFF5F)

# A spreadsheet formula that keeps a long number as text: Chinese shop consoles write ids so (="4926..."), or the
# export was opened and saved in Excel. The text between the quotes is the id.
EXCEL_TEXT_FORMULA = r'^="(.*)"$'
# A float-typed integer (`14194.0`): a spreadsheet's way of writing an id.
FLOAT_INTEGER = r"^([0-9]+)\.0+$"

_FOLD = {code: None for code in INVISIBLE_CODES}
_FOLD.update({code: code - 0xFEE0 for code in FULL_WIDTH_ASCII})
_FOLD.update({code: " " for code in COMPAT_SPACES})
_FOLD.update({code: unicodedata.normalize("NFKC", chr(code)) for code in OTHER_FORMS})
_TEXT_FORMULA = re.compile(EXCEL_TEXT_FORMULA, re.DOTALL)
_FLOAT_INTEGER = re.compile(FLOAT_INTEGER)


def normalise_id(text: str | None) -> str | None:
    """An id as staging reads it, before any case folding (values.id_case): invisible characters removed, full-width
    forms and compatibility spaces as ASCII, composed (NFC), trimmed of spaces, unwrapped from ="...", a float-typed
    integer as the integer; None for no id (None, empty or blank)."""
    if text is None:
        return None
    folded = unicodedata.normalize("NFC", text.translate(_FOLD)).strip(" ")
    wrapped = _TEXT_FORMULA.match(folded)
    if wrapped is not None:
        folded = wrapped.group(1).strip(" ")
    folded = _FLOAT_INTEGER.sub(r"\1", folded)
    return folded or None
