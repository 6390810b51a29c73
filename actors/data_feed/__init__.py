"""Market data: providers, the bar cache, validation, the universe and indicators."""
