"""Performance reports: statistics over the equity curve and closed trades, and charts."""
