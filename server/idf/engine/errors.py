"""Engine exceptions. The engine knows no transport: it names the parameter that was wrong and
the servicer maps that name onto the request field path."""


class ParameterError(ValueError):
    """A parameter violates a domain rule. `parameter` is the engine's parameter name."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


class Cancelled(Exception):
    """The caller asked the engine to stop (deadline passed, client went away, shutdown).
    `site_updates` is the work done before it stopped (what metering may charge)."""

    def __init__(self, site_updates: int = 0) -> None:
        super().__init__(f"stopped after {site_updates} site updates")
        self.site_updates = site_updates
