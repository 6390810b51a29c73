"""Risk: the trading rules as pure functions (heat, daily loss, regime, correlation, stops)."""
