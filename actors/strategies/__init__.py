"""Strategies: the ``Strategy`` base with ATR sizing, the four strategies, the strategy actor."""
