"""SQL text helpers: quoting identifiers and literals for statements built in Python.

Every value that reaches SQL text from a file header, a setting or a mapping file goes
through these (or is bound as a parameter), so no input can change a statement's meaning.
"""

from __future__ import annotations


def ident(name: str) -> str:
    """A double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str | None) -> str:
    """A single-quoted SQL string literal (NULL for None)."""
    return "NULL" if text is None else "'" + text.replace("'", "''") + "'"


def in_list(values: tuple[str, ...] | list[str]) -> str:
    """Comma-separated literals for ``IN (...)``."""
    return ", ".join(literal(v) for v in values)
