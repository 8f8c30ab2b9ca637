"""Errors a user can fix.

A `UserError` carries one line that names what was read, the field, what was given and what is
allowed. The CLI prints it and exits with code 2; everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: a study file, a CSV, a flag. The message is one line, shown as is."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line


def show(given, limit: int = 80) -> str:
    """`given` as a message shows it: repr of the plain Python value (never `np.int64(0)`), cut to
    `limit` characters (a 300-character name need not be echoed whole)."""
    if hasattr(given, "item") and getattr(given, "ndim", None) == 0:  # a NumPy scalar
        given = given.item()
    text = repr(given)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def bad_value(where: str, field: str, given, allowed: str) -> UserError:
    """The house style for a rejected value: `where: field: given X; allowed: Y`."""
    return UserError(f"{where}: {field}: given {show(given)}; allowed: {allowed}")
