"""The package's own errors: what the user can fix. The CLI turns these, and only these, into a
one-line message and exit code 2; anything else is a bug and keeps its traceback."""


class AvauditError(Exception):
    """A problem with the user's input, files or machine; `str()` names the file and the reason."""


class UsageError(AvauditError, ValueError):
    """An option, argument or DATA that cannot be used as given."""


class AvauditWarning(UserWarning):
    """Something the user should know that does not stop the run (the CLI prints it as one yellow line)."""


class ParameterError(UsageError):
    """A Python API parameter of the wrong type or value, in the caller's terms (`fraction must be in
    (0, 1], not 2`); the CLI names the flag instead (`--sufficiency must be ...`)."""

    def __init__(self, parameter: str, problem: str):
        super().__init__(f"{parameter} {problem}")
        self.parameter, self.problem = parameter, problem


class NotRankZero(Exception):
    """Raised on torchrun ranks other than 0 once their shard is in the cache: rank 0 alone writes the
    outputs, so a caller on another rank has nothing to read and should simply return."""
