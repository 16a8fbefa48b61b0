"""Flow regimes: their dynamical definition and window features (`features`) and the learned
detector (`detector`)."""
