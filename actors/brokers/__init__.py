"""Brokers behind one async protocol: SimBroker (the default) and AlpacaBroker."""
