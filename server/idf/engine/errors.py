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


class Diverged(ParameterError):
    """A run's state stopped being finite (NaN or Inf): a parameter is too large for the model
    (usually the step size). A ParameterError, so servicers answer INVALID_ARGUMENT on
    `parameter`; `reason` says where it diverged and what to try. `step` is the step at which
    it was detected; `site_updates` the work done until then."""

    def __init__(self, parameter: str, reason: str, *, step: int | None = None, site_updates: int = 0) -> None:
        super().__init__(parameter, reason)
        self.step = step
        self.site_updates = site_updates
