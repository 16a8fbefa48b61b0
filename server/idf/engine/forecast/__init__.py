"""Forecasting: the physics forecaster (conservative transport, `physics`) and the learned NVP
forecaster of Kolmogorov flow (`nvp`)."""
