"""How messages quote a user's names and paths."""
from __future__ import annotations

import os


def quoted(value: object) -> str:
    """`value` in single quotes as the user wrote it: a Windows path keeps single backslashes and a name its
    accents, where repr() doubles the one; characters that do not print (a newline in a field name) are escaped
    so that they show. Anything but text or a path is given as repr() gives it."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        return repr(value)
    return "'" + "".join(c if c.isprintable() else repr(c)[1:-1] for c in value) + "'"
