"""The package's own errors: what the user can fix. The CLI turns these, and only these, into a
one-line message and exit code 2; anything else is a bug and keeps its traceback."""


class AvauditError(Exception):
    """A problem with the user's input, files or machine; `str()` names the file and the reason."""


class UsageError(AvauditError, ValueError):
    """An option, argument or DATA that cannot be used as given."""


class AvauditWarning(UserWarning):
    """Something the user should know that does not stop the run (the CLI prints it as one yellow line)."""
