"""Errors a user can fix.

A `UserError` carries one line that names what was read, the field, what was given and what is
allowed. The CLI prints it and exits with code 2; everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: a study file, a CSV, a flag. The message is one line, shown as is."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line


def bad_value(where: str, field: str, given, allowed: str) -> UserError:
    """The house style for a rejected value: `where: field: given X; allowed: Y`."""
    return UserError(f"{where}: {field}: given {given!r}; allowed: {allowed}")
