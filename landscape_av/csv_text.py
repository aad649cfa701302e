"""Text in the CSV files the toolkit writes (manifests, source lists, fault reports), kept from
being run as a spreadsheet formula ("CSV injection", OWASP).

A spreadsheet that opens a CSV evaluates a cell starting with `=`, `+`, `-`, `@`, a tab or a
carriage return (OWASP's list; ASVS 1.2.10 adds NUL) as a formula: `=HYPERLINK(...)` in a licence
becomes a link, `=cmd|' /C calc'!A0` a command. `to_cell` writes such a cell with a `'` in front,
which spreadsheets take as "this is text". One exception keeps identifiers exact: a cell of `-` or
`+` followed only by letters, digits, `_`, `.` and `-` (a YouTube id such as `-1EXhfqLLwQ`, a
negative number), which cannot call a function, reach another program or leave the sheet.

The rule is reversible, so that the toolkit reads back exactly what it wrote (`from_cell`): a cell
that starts with `'` followed by a formula start or another `'` also gets one more `'`. Parquet
manifests hold the exact text and need none of this.
"""

from __future__ import annotations

import re

FORMULA_START = frozenset("=+-@\t\r\0")
"""First characters that make a spreadsheet read a cell as a formula."""
_PLAIN = re.compile(r"[-+][A-Za-z0-9_.\-]*")
"""A sign and a word: no function call, no DDE, no reference outside the sheet."""


def _formula(text: str) -> bool:
    return text[:1] in FORMULA_START and _PLAIN.fullmatch(text) is None


def _marked(text: str) -> bool:
    """Whether `text` starts with the `'` that `to_cell` adds."""
    return text[:1] == "'" and (_formula(text[1:]) or text[1:2] == "'")


def to_cell(text: str) -> str:
    """`text` as a CSV cell that no spreadsheet evaluates (see the module doc)."""
    return "'" + text if _formula(text) or _marked(text) else text


def from_cell(cell: str) -> str:
    """The text that `to_cell` wrote as `cell` (a cell it left alone comes back as it is)."""
    return cell[1:] if _marked(cell) else cell
