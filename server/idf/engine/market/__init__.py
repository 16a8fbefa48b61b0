"""Market rules: the constant-product AMM in integers (`amm`); swaps, deposits, withdrawals,
user accounts, the price of work and the reward cap as rules over reserves (`operations`)."""
