"""The market's calendar, which trading date a moment belongs to, and the daily scheduler."""
