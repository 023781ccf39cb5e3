"""How messages quote a user's names and paths."""
from __future__ import annotations

import os
import re


def quoted(value: object) -> str:
    """`value` in single quotes as the user wrote it: a Windows path keeps single backslashes and a name its
    accents, where repr() doubles the one; characters that do not print (a newline in a field name) are escaped
    so that they show. Anything but text or a path is given as repr() gives it."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        return repr(value)
    return "'" + "".join(c if c.isprintable() else repr(c)[1:-1] for c in value) + "'"


#: First characters a spreadsheet reads as the start of a formula (OWASP's list for CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: a text starting like a formula (a class or file named
    `=HYPERLINK(...)`) gets a leading apostrophe; numbers, and texts that are numbers ("-3.5"), stay as they are."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


#: Markdown's inline markup (emphasis, code, links, tables, strike-through); `<`, `>` and `&` become entities.
_MARKDOWN_MARKUP = str.maketrans({c: "\\" + c for c in "\\`*_[]|~"})


def markdown_text(value: object) -> str:
    """`value` as literal text in Markdown: a class named `*x*`, `[x](url)` or `<b>x</b>` is shown as written,
    not drawn as emphasis, a link or HTML by whatever renders the file, nor as a heading or list when it starts a
    line; a newline becomes a space."""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = " ".join(text.translate(_MARKDOWN_MARKUP).split("\n"))
    # a line starting "# ", "- ", "+ " or "12. ", or all "=", would be a heading, a list item or an underline ("-3.5"
    # and "268.6" are not)
    return re.sub(r"^(\s*)(?:([#+-](?=\s|$)|=+(?=\s*$))|(\d+)(?=[.)](?:\s|$)))",
                  lambda m: m.group(1) + ("\\" + m.group(2) if m.group(2) else m.group(3) + "\\"), text, count=1)


def clean_name(name: str) -> str:
    """A class name on one line: control characters (newlines, tabs, NUL, terminal escapes) become spaces, runs of
    spaces one, and the ends are trimmed; they broke console tables, the explanation's facts and the style's XML.
    Bidirectional overrides are dropped (they turned the rest of a console line around)."""
    import unicodedata

    text = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in str(name)
                   if c not in _BIDI_CONTROLS)
    return " ".join(text.split())


#: Bidirectional embeddings, overrides and isolates: invisible, they reverse the rest of a console line.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def name_key(name: object) -> str:
    """A class name as names are matched (a base checkpoint's, a twin's, a legend's, a layout's): case, spacing and
    the word separators of field values aside ("Built_area", "built-area" and "Built area" are one class)."""
    text = str(name).casefold().replace("_", " ").replace("-", " ").replace("/", " / ")
    return " ".join(text.split())


def shell_quote(arg: str) -> str:
    """`arg` quoted for pasting into this system's shell: POSIX quoting, or cmd.exe's on Windows (where a single
    quote is a character of the name, so `'C:\\maps\\pts.gpkg'` named a file that does not exist)."""
    if os.name == "nt":
        import subprocess

        return subprocess.list2cmdline([arg])
    import shlex

    return shlex.quote(arg)
