"""The daily cycle's steps, one module each, in the order ``Cycle.STEPS`` runs them."""
