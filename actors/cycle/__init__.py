"""The daily cycle: its owner, its steps, and every kill switch."""
