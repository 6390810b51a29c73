"""Risk: the kill-switch board and the RiskSupervisor that runs the daily cycle's gates."""
