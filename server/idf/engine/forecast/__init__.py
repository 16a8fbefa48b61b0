"""Forecasting: the `Forecaster` protocol and its one `Forecast` type (`base`), the physics
forecaster (conservative transport, `physics`), the learned NVP forecaster of Kolmogorov flow
(`nvp`), and the registry `Predict` looks them up in (`registry`)."""
