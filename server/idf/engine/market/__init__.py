"""Market rules: the constant-product AMM in integers (`amm`)."""
