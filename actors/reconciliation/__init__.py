"""Reconciliation: the pure comparison of broker and store, and the actor that runs it."""
