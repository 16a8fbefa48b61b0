"""Engine exceptions. The engine knows no transport: it names the parameter that was wrong and
the servicer maps that name onto the request field path."""


class ParameterError(ValueError):
    """A parameter violates a domain rule. `parameter` is the engine's parameter name."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


class Cancelled(Exception):
    """The caller asked the engine to stop (deadline passed, client went away, shutdown)."""
