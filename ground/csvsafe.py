"""CSV that spreadsheet programs open as data, never as formulas (the one writer of every export).

A supervisor opens an incident export in Excel, WPS or LibreOffice; a cell
whose text starts with ``=``, ``+``, ``-`` or ``@`` (or a tab/line break
before one) is run as a formula there (``=HYPERLINK(...)``,
``=cmd|' /C calc'!A0``). Household names, addresses, notes and actor names
come from people outside the office, so every text cell is neutralised the
way OWASP recommends: a leading apostrophe, which the spreadsheet shows as
text and does not keep in the value. Numbers stay numbers.

The standard library's :mod:`csv` does the quoting; nothing here re-implements it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

__all__ = ["FORMULA_PREFIXES", "csv_text", "safe_cell"]

# What makes Excel, LibreOffice Calc, WPS or Google Sheets read a cell as a formula
# (tab and carriage return because some programs strip them before looking).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
# Full-width forms that input methods for Chinese produce; WPS treats "＝" like "=".
_WIDE_PREFIXES = ("＝", "＋", "－", "＠")


def safe_cell(value: object) -> object:
    """``value`` as a CSV cell a spreadsheet will not evaluate.

    Text whose first non-blank character could start a formula gets a leading
    apostrophe; ``None`` becomes an empty cell; numbers and other values pass
    through unchanged.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    head = value.lstrip(" \u3000")[:1]
    if value[:1] in FORMULA_PREFIXES or head in FORMULA_PREFIXES or head in _WIDE_PREFIXES:
        return "'" + value
    return value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]], *, bom: bool = False) -> str:
    """A whole CSV document: ``header`` then ``rows``, every cell through :func:`safe_cell`.

    ``bom`` starts the text with a UTF-8 byte order mark, which spreadsheet
    programs need to read Chinese text correctly from a downloaded file.
    """
    out = io.StringIO()
    if bom:
        out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()
