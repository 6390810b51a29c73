"""Orders: the OrderManager actor, deterministic order intents, execution costs."""
