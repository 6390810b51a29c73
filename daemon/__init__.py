"""tradingd: the process that runs the actors (it knows how to run actors, not how to trade)."""

__version__ = "0.1.0"
