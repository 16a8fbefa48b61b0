"""Engine exceptions. The engine knows no transport: it names the parameter that was wrong and
the servicer maps that name onto the request field path."""

import numbers


class ParameterError(ValueError):
    """A parameter violates a domain rule. `parameter` is the engine's parameter name."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


class Cancelled(Exception):
    """The caller asked the engine to stop (deadline passed, client went away, shutdown).
    `site_updates` is the work done before it stopped (what metering may charge); `message`
    says what a user needs to know (training: whether and how to resume)."""

    def __init__(self, site_updates: int = 0, *, message: str = "") -> None:
        if not isinstance(site_updates, numbers.Integral) or site_updates < 0:
            raise TypeError(f"site_updates is a work count (an integer >= 0), got {site_updates!r}")
        super().__init__(message or f"stopped after {site_updates} site updates")
        self.site_updates = int(site_updates)


class Diverged(ParameterError):
    """A run's state stopped being finite (NaN or Inf): a parameter is too large for the model
    (usually the step size). A ParameterError, so servicers answer INVALID_ARGUMENT on
    `parameter`; `reason` says where it diverged and what to try. `step` is the step at which
    it was detected; `site_updates` the work done until then."""

    def __init__(
        self, parameter: str, reason: str, *, step: int | None = None, site_updates: int = 0
    ) -> None:
        super().__init__(parameter, reason)
        self.step = step
        self.site_updates = site_updates
